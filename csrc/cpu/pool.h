#pragma once
// Buffers that outlive one op call but not a training step: the forward's
// workspace, which autograd keeps until the backward has run. Such buffers
// are tens of megabytes (an LSTM at batch 64, hidden 256, 100 steps saves
// 46 MB), above glibc's largest mmap threshold (32 MB), so each one came
// fresh from mmap and its pages were faulted in, zeroed, on every step.
// Here a freed buffer goes back to a small free list and the next request of
// about its size takes it again.

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

namespace fastrnn::cpu {

class BufferPool {
 public:
  // Never destroyed: tensors may be freed during interpreter shutdown.
  static BufferPool& instance() {
    static BufferPool* pool = new BufferPool();
    return *pool;
  }

  // An uninitialised tensor whose storage returns to the pool when freed.
  at::Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
    const size_t bytes = c10::multiply_integers(sizes) * options.dtype().itemsize();
    if (bytes < kMinBytes) return at::empty(sizes, options);  // glibc reuses these itself
    const Buffer buffer = take(bytes);
    return at::from_blob(
        buffer.data, sizes, [buffer](void*) { BufferPool::instance().give(buffer); }, options);
  }

 private:
  struct Buffer {
    void* data;
    size_t bytes;  // capacity
  };

  static constexpr size_t kMinBytes = size_t(1) << 20;
  static constexpr size_t kAlignment = 64;  // as c10's CPU allocator
  static constexpr size_t kMaxFree = 8;  // a 4-layer bidirectional step keeps 8 alive

  // The smallest free buffer that fits and wastes at most half of itself, or a new one.
  Buffer take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto best = free_.end();
      for (auto it = free_.begin(); it != free_.end(); ++it) {
        if (it->bytes >= bytes && it->bytes <= 2 * bytes &&
            (best == free_.end() || it->bytes < best->bytes)) {
          best = it;
        }
      }
      if (best != free_.end()) {
        const Buffer found = *best;
        free_.erase(best);
        return found;
      }
    }
    void* data = nullptr;
    if (posix_memalign(&data, kAlignment, bytes) != 0) throw std::bad_alloc();
    return {data, bytes};
  }

  void give(Buffer buffer) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(buffer);
    if (free_.size() > kMaxFree) {  // keep the largest, which the largest calls need
      auto smallest =
          std::min_element(free_.begin(), free_.end(),
                           [](const Buffer& a, const Buffer& b) { return a.bytes < b.bytes; });
      std::free(smallest->data);
      free_.erase(smallest);
    }
  }

  std::mutex mutex_;
  std::vector<Buffer> free_;
};

}  // namespace fastrnn::cpu
