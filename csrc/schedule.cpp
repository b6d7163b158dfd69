#include "recurrence.h"

namespace fastrnn {

std::vector<Step> make_schedule(const at::Tensor& batch_sizes, int64_t T, int64_t B, bool reverse) {
  std::vector<Step> steps;
  steps.reserve(T);
  int64_t offset = 0;
  if (batch_sizes.defined()) {
    const int64_t* bs = batch_sizes.const_data_ptr<int64_t>();
    for (int64_t t = 0; t < T; ++t) {
      steps.push_back({offset, bs[t]});
      offset += bs[t];
    }
  } else {
    for (int64_t t = 0; t < T; ++t) {
      steps.push_back({offset, B});
      offset += B;
    }
  }
  if (reverse) std::reverse(steps.begin(), steps.end());
  return steps;
}

}  // namespace fastrnn
