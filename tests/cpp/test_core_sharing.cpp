// cpu::CoreSharing (csrc/cpu/threads.h), the choice between splitting an op
// call's loops across threads and running them on one, on made-up clocks:
// a quiet machine keeps splitting, a shared one stops within a window of
// split calls, the back-off doubles up to its cap while the sharing lasts,
// and splitting resumes once the cores are free again.

#include <algorithm>
#include <cstdio>
#include <string>

#include "cpu/threads.h"
#include "expect.h"

using fastrnn::cpu::CoreSharing;

namespace {

using fastrnn::testing::expect;

// Calls of call_s seconds each, from now_s, every one that splits reporting
// that the process got `share` of the CPU time of `threads` threads, until
// until_s. Returns the time reached; counts the calls that split.
double run(CoreSharing& sharing, double now_s, double until_s, double call_s, double share,
           int threads, int* split_calls = nullptr) {
  while (now_s < until_s) {
    const bool split = sharing.splits(now_s);
    now_s += call_s;
    if (split) {
      sharing.report(now_s, call_s, share * call_s * threads, threads);
      if (split_calls != nullptr) ++*split_calls;
    }
  }
  return now_s;
}

// When, after `from_s`, calls split again (to a millisecond).
double next_split(CoreSharing& sharing, double from_s) {
  double t = from_s;
  while (!sharing.splits(t) && t < from_s + 100) t += 1e-3;
  return t;
}

}  // namespace

int main() {
  constexpr double kMs = 1e-3;
  {
    CoreSharing sharing;
    int split = 0;
    run(sharing, 0, 2.0, 4 * kMs, 0.97, 2, &split);
    expect("quiet: every call splits", split == 500);
    expect("quiet: no back-off",
           sharing.counts().backoffs == 0 && sharing.counts().serial_calls == 0);
  }
  {
    CoreSharing sharing;
    // 19 calls of 1 ms shared: less than a window, still splitting
    double t = run(sharing, 0, 19 * kMs - 1e-9, kMs, 0.55, 2);
    expect("shared: no decision before a window's wall time", sharing.splits(t));
    t += 1.5 * kMs;
    sharing.report(t, 1.5 * kMs, 0.55 * 1.5 * kMs * 2, 2);  // past 20 ms: the window is judged
    expect("shared: one back-off after a window", sharing.counts().backoffs == 1);
    expect("shared: the next call runs on one thread", !sharing.splits(t));
    const double resumed = next_split(sharing, t);
    expect("shared: the first back-off lasts 0.25 s",
           resumed > t + 0.25 - 2 * kMs && resumed < t + 0.25 + 2 * kMs);
    // still shared: 0.5, 1, 2, 4, 4 s
    double expected = 0.5;
    t = resumed;
    for (int i = 0; i < 5; ++i) {
      t = run(sharing, t, t + 20.5 * kMs, kMs, 0.55, 2);  // judged at 20 or 21 ms
      const double back = next_split(sharing, t) - t;
      expect("shared: back-off " + std::to_string(expected) + " s",
             back > expected - 2 * kMs && back < expected + 2 * kMs);
      t += back;
      expected = std::min(2 * expected, CoreSharing::kMaxBackoffS);
    }
    // the cores free again: calls keep splitting, and the back-off starts
    // over at 0.25 s the next time
    int split = 0;
    t = run(sharing, t, t + 1.0, 2 * kMs, 0.97, 2, &split);
    expect("freed: every call splits again", split == 500);
    t = run(sharing, t, t + 20.5 * kMs, kMs, 0.55, 2);
    const double back = next_split(sharing, t) - t;
    expect("freed: the back-off starts over", back > 0.25 - 2 * kMs && back < 0.25 + 2 * kMs);
    expect("shared: calls ran on one thread", sharing.counts().serial_calls > 0);
  }
  {
    // the share is of the threads a call split across: 90% of one thread is quiet
    CoreSharing sharing;
    run(sharing, 0, 0.5, 2 * kMs, 0.9, 1);
    expect("one thread at 90%: quiet", sharing.counts().backoffs == 0);
    run(sharing, 0.5, 0.6, 2 * kMs, 0.45, 2);
    expect("two threads at 45%: shared", sharing.counts().backoffs == 1);
  }
  {
    // one long call is judged on its own
    CoreSharing sharing;
    sharing.report(0.1, 0.1, 0.1 * 2 * 0.6, 2);
    expect("a long shared call: back-off", !sharing.splits(0.1 + 1e-6));
  }
  return fastrnn::testing::report();
}
