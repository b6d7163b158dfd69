#include "threads.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <utility>

namespace fastrnn::cpu {

namespace {

double seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

ThreadMode choose() {
  const char* asked = std::getenv("FASTRNN_CPU_THREADS");
  if (asked == nullptr || *asked == '\0' || std::strcmp(asked, "adaptive") == 0) {
    return ThreadMode::kAdaptive;
  }
  if (std::strcmp(asked, "all") == 0) return ThreadMode::kAll;
  if (std::strcmp(asked, "one") == 0) return ThreadMode::kOne;
  TORCH_CHECK(false, "FASTRNN_CPU_THREADS=", asked, ": expected adaptive, all or one");
}

// Each thread's own CPU clock at the start of the call that last marked it.
struct ThreadMark {
  uint64_t call = 0;
  double cpu_s = 0;
};
thread_local ThreadMark mark;

// The call's threads' CPU time is read by each thread from its own clock, in
// a parallel region at either end of the call: a thread's reading of its own
// clock is exact, while the process's clock, read by the calling thread,
// counts another thread's time only when the scheduler last booked it (at a
// tick, up to 4 ms late), which made calls of a few milliseconds look shared
// on a quiet machine (measured that way, 73% of an RNN's forward calls at
// B 32 / I 128 / H 128, T 30, ran on one thread on an idle 2-core AMD EPYC
// Zen 4).
void mark_threads(uint64_t call, int threads) {
  at::parallel_for(0, threads, 1,
                   [&](int64_t, int64_t) { mark = {call, seconds(CLOCK_THREAD_CPUTIME_ID)}; });
}

// The CPU time the threads marked for `call` used since, and how many of
// them there were.
std::pair<double, int> threads_cpu_since(uint64_t call, int threads) {
  std::mutex mutex;
  double total_s = 0;
  int counted = 0;
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    if (mark.call != call) return;  // a thread that was not in the first region
    const double used_s = seconds(CLOCK_THREAD_CPUTIME_ID) - mark.cpu_s;
    std::lock_guard<std::mutex> lock(mutex);
    total_s += used_s;
    ++counted;
  });
  return {total_s, counted};
}

uint64_t next_call_id() {
  static std::atomic<uint64_t> calls{0};
  return ++calls;
}

}  // namespace

ThreadMode thread_mode() {
  static const ThreadMode mode = choose();
  return mode;
}

bool CoreSharing::splits(double now_s) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (now_s < serial_until_s_) {
    ++counts_.serial_calls;
    return false;
  }
  ++counts_.split_calls;
  return true;
}

void CoreSharing::report(double now_s, double wall_s, double cpu_s, int threads) {
  std::lock_guard<std::mutex> lock(mutex_);
  window_wall_s_ += wall_s;
  window_cpu_s_ += cpu_s;
  window_capacity_s_ += wall_s * threads;
  if (window_wall_s_ < kWindowS) return;
  if (window_cpu_s_ < kMinShare * window_capacity_s_) {
    serial_until_s_ = now_s + backoff_s_;
    backoff_s_ = std::min(2 * backoff_s_, kMaxBackoffS);
    ++counts_.backoffs;
  } else {
    backoff_s_ = kFirstBackoffS;
  }
  window_wall_s_ = window_cpu_s_ = window_capacity_s_ = 0;
}

CoreSharing::Counts CoreSharing::counts() {
  std::lock_guard<std::mutex> lock(mutex_);
  return counts_;
}

CoreSharing& core_sharing() {
  static CoreSharing sharing;
  return sharing;
}

CallThreads::CallThreads()
    : previous_(detail::call_splits), previous_split_a_loop_(detail::call_split_a_loop) {
  detail::call_split_a_loop = false;
  const ThreadMode mode = thread_mode();
  threads_ = at::get_num_threads();
  if (!previous_ || mode == ThreadMode::kOne) {
    detail::call_splits = false;
  } else if (mode == ThreadMode::kAll || threads_ == 1 || at::in_parallel_region()) {
    detail::call_splits = true;  // nothing to decide (or to measure)
  } else {
    wall_start_s_ = seconds(CLOCK_MONOTONIC);
    detail::call_splits = core_sharing().splits(wall_start_s_);
    if (detail::call_splits) {
      call_id_ = next_call_id();
      mark_threads(call_id_, threads_);
    }
  }
}

CallThreads::~CallThreads() {
  if (call_id_ != 0 && detail::call_split_a_loop) {
    const auto [cpu_s, threads] = threads_cpu_since(call_id_, threads_);
    const double now_s = seconds(CLOCK_MONOTONIC);
    if (threads > 0) core_sharing().report(now_s, now_s - wall_start_s_, cpu_s, threads);
  }
  detail::call_splits = previous_;
  detail::call_split_a_loop = previous_split_a_loop_;
}

}  // namespace fastrnn::cpu
