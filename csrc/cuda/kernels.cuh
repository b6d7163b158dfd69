#pragma once
// The CUDA backend's one kernel, and the element functors it runs. Every
// pass of the backend is a function f(r, c) over the elements of a
// [rows, cols] range: the cells' pointwise functors (pointwise.h's ForwardFn
// and BackwardFn over (b, j)) and the elementwise primitives below. Each
// element is independent of every other, so the result does not depend on
// the order in which blocks or threads run.

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include <cstdint>

#include "api.h"

namespace fastrnn::cuda {

// f(r, c) for r < rows, c < cols. A block's threads take adjacent columns
// (coalesced accesses) in x and adjacent rows in y; rows go over grid.x and
// columns over grid.y, and both loops stride by the whole grid, so any size
// runs within the grid's limits and no element index is ever divided.
template <class F>
__global__ void for_each_2d(int64_t rows, int64_t cols, F f) {
  const int64_t row_step = int64_t(gridDim.x) * blockDim.y;
  const int64_t col_step = int64_t(gridDim.y) * blockDim.x;
  for (int64_t r = int64_t(blockIdx.x) * blockDim.y + threadIdx.y; r < rows; r += row_step) {
    for (int64_t c = int64_t(blockIdx.y) * blockDim.x + threadIdx.x; c < cols; c += col_step) {
      f(r, c);
    }
  }
}

// Queues f over [rows, cols] on the current stream; nothing when empty.
template <class F>
void launch_2d(int64_t rows, int64_t cols, const F& f) {
  if (rows <= 0 || cols <= 0) return;
  constexpr int64_t kThreads = 256;
  // a warp's multiple of columns per block (all 256 threads from 256 columns
  // on), the rest of the block's threads on further rows
  const int64_t width = cols >= kThreads ? kThreads : (cols + 31) / 32 * 32;
  const int64_t height = kThreads / width;
  const int64_t row_blocks = (rows + height - 1) / height;
  const int64_t col_blocks = (cols + width - 1) / width;
  constexpr int64_t kMaxGridX = 2147483647, kMaxGridY = 65535;
  const dim3 grid(unsigned(row_blocks < kMaxGridX ? row_blocks : kMaxGridX),
                  unsigned(col_blocks < kMaxGridY ? col_blocks : kMaxGridY));
  device::launch(&for_each_2d<F>, grid, dim3(unsigned(width), unsigned(height)), rows, cols, f);
}

// The elementwise primitives (backend.h), each f(r, c) of one element of
// its [rows, cols] range. Matrices are row-major with row stride ld. Any
// arithmetic runs in acc_t (at::opmath_type: float for float16 and bfloat16,
// whose types torch's build gives no device operators), converted explicitly.

template <typename T>
struct Fill {  // dst[r, c] = value
  T value;
  T* dst;
  int64_t ld;
  C10_HOST_DEVICE void operator()(int64_t r, int64_t c) const { dst[r * ld + c] = value; }
};

template <typename T>
struct Scale {  // dst[r, c] *= beta; beta = 0 writes zeros, over NaN too (as a GEMM with k = 0)
  using acc_t = at::opmath_type<T>;
  acc_t beta;
  T* dst;
  int64_t ld;
  C10_HOST_DEVICE void operator()(int64_t r, int64_t c) const {
    T& x = dst[r * ld + c];
    x = static_cast<T>(beta == acc_t(0) ? acc_t(0) : beta * static_cast<acc_t>(x));
  }
};

template <typename S, typename D = S>
struct Copy2d {  // dst[r, c] = src[r, c], rounded to nearest where D is narrower than S
  const S* src;
  int64_t ld_src;
  D* dst;
  int64_t ld_dst;
  C10_HOST_DEVICE void operator()(int64_t r, int64_t c) const {
    dst[r * ld_dst + c] = static_cast<D>(src[r * ld_src + c]);
  }
};

template <typename T>
struct Transpose {  // over dst's [cols, rows]: dst[r, c] = src[c, r], writes coalesced
  const T* src;
  int64_t ld_src;
  T* dst;
  int64_t ld_dst;
  C10_HOST_DEVICE void operator()(int64_t r, int64_t c) const {
    dst[r * ld_dst + c] = src[c * ld_src + r];
  }
};

template <typename T>
struct Add {  // over [1, n]: dst[i] = a[i] + b[i], a or b nullptr read as zeros
  using acc_t = at::opmath_type<T>;
  const T* a;
  const T* b;
  T* dst;
  C10_HOST_DEVICE void operator()(int64_t, int64_t i) const {
    dst[i] = static_cast<T>((a != nullptr ? static_cast<acc_t>(a[i]) : acc_t(0)) +
                            (b != nullptr ? static_cast<acc_t>(b[i]) : acc_t(0)));
  }
};

template <typename T>
struct ColumnSums {  // over [1, cols]: sums[c] += sum over r of a[r, c], in double, r in order
  const T* a;
  int64_t rows;
  int64_t cols;
  double* sums;
  C10_HOST_DEVICE void operator()(int64_t, int64_t c) const {
    double sum = 0;
    for (int64_t r = 0; r < rows; ++r) {
      sum += static_cast<double>(static_cast<at::opmath_type<T>>(a[r * cols + c]));
    }
    sums[c] += sum;
  }
};

// float16 and bfloat16 by way of float: rounded twice, which differs from
// rounding once only for a double within float's rounding error of a halfway
// point between two float16 values.
template <typename T>
struct Round {  // over [1, n]: dst[i] = T(src[i])
  const double* src;
  T* dst;
  C10_HOST_DEVICE void operator()(int64_t, int64_t i) const {
    dst[i] = static_cast<T>(static_cast<at::opmath_type<T>>(src[i]));
  }
};

}  // namespace fastrnn::cuda
