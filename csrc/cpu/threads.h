#pragma once
// Whether an op call's parallel loops split across torch's threads, decided
// once per call from whether this process has the cores to itself.
//
// A step's work split across two threads finishes only when both have run
// their share, so a thread that loses its core to another process stalls
// every step: with one busy process beside a 2-thread run on 2 cores the
// LSTM's training step slowed 3-5x and one thread beat two (issue 14;
// benchmarks/README.md, "On a shared machine"). So a call splits while the
// split calls of the last 20 ms got at least 80% of the CPU time of the
// threads they split across (each thread's own CPU clock, read at either
// end of the call; torch's idle workers spin between loops, so a quiet
// machine gives them ~100%), and runs on the calling thread otherwise, for
// a back-off of 0.25 s, doubled while the sharing lasts (at most 4 s), after
// which it splits again to look.
//
// Only loops that give the same bits however they are split go through
// here (each block of hidden units, tile of C or block of columns is
// computed alone in a fixed order), so the results never depend on the load.
// BLAS calls keep torch's thread count: MKL's sums depend on it.
//
// FASTRNN_CPU_THREADS=adaptive (default) | all (always split, as before) |
// one (never split; the tests compare its bits with all's).

#include <ATen/Parallel.h>

#include <cstdint>
#include <mutex>

namespace fastrnn::cpu {

enum class ThreadMode { kAdaptive, kAll, kOne };

// FASTRNN_CPU_THREADS, read once (a bad value raises).
ThreadMode thread_mode();

// The decision's state, on clocks given by the caller (the tests drive it with
// made-up ones). Thread-safe.
class CoreSharing {
 public:
  static constexpr double kWindowS = 0.02;      // wall time of split calls judged together
  static constexpr double kMinShare = 0.8;      // of the split threads' CPU time
  static constexpr double kFirstBackoffS = 0.25;
  static constexpr double kMaxBackoffS = 4.0;

  // Whether a call starting at now_s splits.
  bool splits(double now_s);
  // A call that split ended at now_s after wall_s seconds, in which the
  // `threads` threads it split across used cpu_s seconds of CPU time.
  void report(double now_s, double wall_s, double cpu_s, int threads);

  struct Counts {
    int64_t split_calls = 0;   // calls that split
    int64_t serial_calls = 0;  // calls run on one thread because the cores were shared
    int64_t backoffs = 0;      // windows judged shared
  };
  Counts counts();

 private:
  std::mutex mutex_;
  double window_wall_s_ = 0, window_cpu_s_ = 0, window_capacity_s_ = 0;
  double serial_until_s_ = -1;
  double backoff_s_ = kFirstBackoffS;
  Counts counts_;
};

// The process's CoreSharing.
CoreSharing& core_sharing();

// One op call's choice (a member of CPUBackend): decided when made, reported
// when destroyed. cpu::parallel_for reads it on the calling thread.
class CallThreads {
 public:
  CallThreads();
  ~CallThreads();
  CallThreads(const CallThreads&) = delete;
  CallThreads& operator=(const CallThreads&) = delete;

 private:
  bool previous_;             // the enclosing call's choice (an op calling an op)
  bool previous_split_a_loop_;
  uint64_t call_id_ = 0;  // nonzero: this call splits and is measured
  double wall_start_s_ = 0;
  int threads_ = 1;
};

namespace detail {
// Whether the current call on this thread splits its loops, and whether one
// of them did (a call whose loops were all too small to split says nothing
// about the cores).
inline thread_local bool call_splits = true;
inline thread_local bool call_split_a_loop = false;
}  // namespace detail

// at::parallel_for when the current call splits; else f(begin, end) on the
// calling thread.
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  if (detail::call_splits) {
    if (end - begin > grain) detail::call_split_a_loop = true;
    return at::parallel_for(begin, end, grain, f);
  }
  if (begin < end) f(begin, end);
}

}  // namespace fastrnn::cpu
