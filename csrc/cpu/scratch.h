#pragma once
// Temporaries that live only inside one op call (the input projection, the
// gate gradients, the packed weights) are reused across calls instead of
// allocated each time: glibc hands out buffers this large as fresh mmaps,
// whose tens of megabytes of zeroed pages would be faulted in on every call.
// They are raw memory, not tensors: at batch 1 the fixed cost of an ATen call
// (a narrow, a view) is of the order of a step's arithmetic, and more once
// another model's work has evicted ATen's code and data from the caches
// (figures: benchmarks/README.md, "Measurements behind the code's choices").
// Each calling thread keeps one buffer per slot, grown to the largest request
// and held until the thread ends. Ops run one at a time on a thread, and a
// slot's contents never outlive the call that asked for it.

#include <array>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "../temporaries.h"

namespace fastrnn::cpu {

// At least numel (>= 1) elements of T, 64-byte aligned, uninitialised.
template <typename T>
T* scratch(Scratch slot, int64_t numel) {
  struct Buffer {
    void* data = nullptr;
    size_t bytes = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local std::array<Buffer, static_cast<size_t>(Scratch::kCount)> buffers;
  Buffer& buffer = buffers[static_cast<size_t>(slot)];
  const size_t bytes = static_cast<size_t>(numel > 0 ? numel : 1) * sizeof(T);
  if (buffer.bytes < bytes) {
    std::free(buffer.data);
    buffer.data = nullptr;
    buffer.bytes = 0;
    if (posix_memalign(&buffer.data, 64, bytes) != 0) throw std::bad_alloc();
    buffer.bytes = bytes;
  }
  return static_cast<T*>(buffer.data);
}

}  // namespace fastrnn::cpu
