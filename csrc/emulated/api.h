#pragma once
// The emulated device (csrc/cuda/api.h says what every device gives): the CUDA
// backend's kernels and driver, compiled by the host compiler, run on the CPU
// with CPU tensors as device memory. A launch runs the kernel body once for
// every thread of every block, one after the other, in the order that
// FASTRNN_EMULATED_ORDER names ("forward", the default, or "reversed": blocks
// and the threads within them from the last): a kernel whose result depends
// on the order of blocks gives a different result in the other order. GEMMs
// take cuBLAS's column-major arguments to the CPU's BLAS (Fortran BLAS takes
// the same); float16 and bfloat16 ones are summed in float32 and C rounded
// once, as cuBLAS's CUBLAS_COMPUTE_32F does.
// Launches and GEMMs are checked against what the device would refuse (grid
// and block limits, cuBLAS's leading dimensions, C overlapping an input) and
// counted, so that a test can see that the ops ran here (emulated.cpp).

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <cstdint>

#include "../cpu/gemm_calls.h"
#include "cuda_shim.h"

namespace fastrnn::emulated {

// Whether blocks and threads run from the last (FASTRNN_EMULATED_ORDER=reversed).
bool reversed_order();
// TORCH_CHECKs what a CUDA launch refuses: a grid or block that is empty or
// exceeds the limits of every CUDA device (grid 2^31-1 x 65535 x 65535,
// block 1024 x 1024 x 64 and at most 1024 threads). Counts the launch.
void check_launch(dim3 grid, dim3 block);
// TORCH_CHECKs what cuBLAS refuses (CUBLAS_STATUS_INVALID_VALUE) or leaves
// undefined (C overlapping A or B); sizes in elements of element_size bytes
// (A and B) and c_element_size (C). Counts the GEMM.
void check_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a,
                int64_t lda, const void* b, int64_t ldb, const void* c, int64_t ldc,
                int64_t element_size, int64_t c_element_size);

// The column-major matrix [rows, cols] with column stride ld at p, as a
// strided CPU tensor of type `type` on that memory.
inline at::Tensor column_major(const void* p, int64_t rows, int64_t cols, int64_t ld,
                               at::ScalarType type) {
  return at::from_blob(const_cast<void*>(p), {rows, cols}, {1, ld}, at::TensorOptions(type));
}

}  // namespace fastrnn::emulated

namespace fastrnn::device {

template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, const Args&... args) {
  emulated::check_launch(grid, block);
  const bool reversed = emulated::reversed_order();
  const int64_t blocks = int64_t(grid.x) * grid.y * grid.z;
  const int64_t threads = int64_t(block.x) * block.y * block.z;
  gridDim = grid;
  blockDim = block;
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t b = reversed ? blocks - 1 - i : i;
    blockIdx = {unsigned(b % grid.x), unsigned(b / grid.x % grid.y),
                unsigned(b / (int64_t(grid.x) * grid.y))};
    for (int64_t j = 0; j < threads; ++j) {
      const int64_t t = reversed ? threads - 1 - j : j;
      threadIdx = {unsigned(t % block.x), unsigned(t / block.x % block.y),
                   unsigned(t / (block.x * block.y))};
      kernel(args...);
    }
  }
}

template <typename scalar_t, typename c_t>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          at::opmath_type<scalar_t> alpha, const scalar_t* a, int64_t lda, const scalar_t* b,
          int64_t ldb, at::opmath_type<scalar_t> beta, c_t* c, int64_t ldc) {
  emulated::check_gemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, sizeof(scalar_t),
                       sizeof(c_t));
  if constexpr (std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>) {
    static_assert(std::is_same_v<c_t, scalar_t>);
    // The CPU backend's BLAS call takes row-major matrices, where the
    // column-major C = op(A) op(B) is C^T = op(B)^T op(A)^T.
    cpu::blas_gemm(trans_b, trans_a, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc);
  } else {
    // float16 and bfloat16: the operands widened to float (exactly), one float
    // GEMM (alpha op(A) op(B) + beta C, all sums in float), C rounded once.
    const auto in = c10::CppTypeToScalarType<scalar_t>::value;
    const at::Tensor a_t = emulated::column_major(a, trans_a ? k : m, trans_a ? m : k, lda, in);
    const at::Tensor b_t = emulated::column_major(b, trans_b ? n : k, trans_b ? k : n, ldb, in);
    const at::Tensor op_a = (trans_a ? a_t.t() : a_t).to(at::kFloat);
    const at::Tensor op_b = (trans_b ? b_t.t() : b_t).to(at::kFloat);
    at::Tensor c_view = emulated::column_major(c, m, n, ldc, c10::CppTypeToScalarType<c_t>::value);
    // beta = 0 does not read C (it may hold NaN)
    c_view.copy_(beta == 0 ? at::mm(op_a, op_b).mul_(alpha)
                           : at::addmm(c_view.to(at::kFloat), op_a, op_b, beta, alpha));
  }
}

}  // namespace fastrnn::device

// CPU tensors play device memory: the CPU keys, as csrc/cpu/ops_cpu.cpp
// registers them (which the emulated build leaves out).
#define FASTRNN_DEVICE_REGISTRATIONS(register_ops)                  \
  TORCH_LIBRARY_IMPL(fastrnn, CPU, m) { register_ops(m); }          \
  TORCH_LIBRARY_IMPL(fastrnn, SparseCPU, m) { register_ops(m); }    \
  TORCH_LIBRARY_IMPL(fastrnn, SparseCsrCPU, m) { register_ops(m); } \
  TORCH_LIBRARY_IMPL(fastrnn, MkldnnCPU, m) { register_ops(m); }    \
  TORCH_LIBRARY_IMPL(fastrnn, QuantizedCPU, m) { register_ops(m); } \
  TORCH_LIBRARY_IMPL(fastrnn, NestedTensorCPU, m) { register_ops(m); }
