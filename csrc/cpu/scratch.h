#pragma once
// Temporaries that live only inside one op call (the input projection, the
// gate gradients) are reused across calls instead of allocated each time:
// glibc hands out buffers this large as fresh mmaps, and faulting in tens of
// megabytes of zeroed pages cost a quarter of an LSTM training step. Each
// calling thread keeps one buffer per slot, grown to the largest request and
// held until the thread ends. Ops run one at a time on a thread, and a slot's
// contents never outlive the call that asked for it.

#include <ATen/ATen.h>

#include <array>

#include "../temporaries.h"

namespace fastrnn::cpu {

inline at::Tensor scratch(Scratch slot, at::IntArrayRef sizes, const at::TensorOptions& options) {
  thread_local std::array<at::Tensor, static_cast<size_t>(Scratch::kCount)> buffers;
  at::Tensor& buffer = buffers[static_cast<size_t>(slot)];
  const int64_t numel = c10::multiply_integers(sizes);
  const int64_t bytes = numel * static_cast<int64_t>(options.dtype().itemsize());
  if (!buffer.defined() || buffer.numel() < bytes) {
    buffer = at::empty({bytes}, options.dtype(at::kByte));
  }
  return buffer.narrow(0, 0, bytes).view(options.dtype().toScalarType()).view(sizes);
}

}  // namespace fastrnn::cpu
