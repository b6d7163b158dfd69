#pragma once
// The real device (api.h says what every device gives): the only code of the
// CUDA backend that the emulated build does not compile. Launches and GEMMs
// are queued on the current stream of the current device (the op's, set by
// its device guard), and nothing here waits for the device.

#include <ATen/Context.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <torch/library.h>

#include <cstdint>
#include <type_traits>

namespace fastrnn::device {

template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, const Args&... args) {
  kernel<<<grid, block, 0, at::cuda::getCurrentCUDAStream()>>>(args...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// cuBLAS's name of each element type.
template <typename T>
constexpr cudaDataType_t data_type() {
  if constexpr (std::is_same_v<T, double>) {
    return CUDA_R_64F;
  } else if constexpr (std::is_same_v<T, float>) {
    return CUDA_R_32F;
  } else if constexpr (std::is_same_v<T, c10::Half>) {
    return CUDA_R_16F;
  } else {
    static_assert(std::is_same_v<T, c10::BFloat16>);
    return CUDA_R_16BF;
  }
}

// The handle torch gives is set up for the current stream, with torch's
// workspace for it and the math mode of torch.backends.cuda.matmul.allow_tf32;
// calling cublasSetStream again would reset that workspace. float accumulates
// in float32, in TF32 only where allow_tf32 allows it, as torch's own matmuls.
// float16 and bfloat16 (A and B; C in them or in float) accumulate in float32,
// with float alpha and beta, and never in reduced precision: the handle's math
// mode forbids cuBLAS's reduced-precision reductions (split-K sums in 16 bits)
// for the call, and is restored after it.
template <typename scalar_t, typename c_t>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          at::opmath_type<scalar_t> alpha, const scalar_t* a, int64_t lda, const scalar_t* b,
          int64_t ldb, at::opmath_type<scalar_t> beta, c_t* c, int64_t ldc) {
  constexpr bool kDouble = std::is_same_v<scalar_t, double>;
  constexpr bool kFloat = std::is_same_v<scalar_t, float>;
  const cublasComputeType_t compute = kDouble ? CUBLAS_COMPUTE_64F
                                      : (kFloat && at::globalContext().allowTF32CuBLAS())
                                          ? CUBLAS_COMPUTE_32F_FAST_TF32
                                          : CUBLAS_COMPUTE_32F;
  const auto op = [](bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; };
  const cublasHandle_t handle = at::cuda::getCurrentCUDABlasHandle();
  cublasMath_t mode = CUBLAS_DEFAULT_MATH;
  if constexpr (!kDouble && !kFloat) {
    TORCH_CUDABLAS_CHECK(cublasGetMathMode(handle, &mode));
    TORCH_CUDABLAS_CHECK(cublasSetMathMode(
        handle, cublasMath_t(mode | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
  }
  const cublasStatus_t status = cublasGemmEx_64(
      handle, op(trans_a), op(trans_b), m, n, k, &alpha, a, data_type<scalar_t>(), lda, b,
      data_type<scalar_t>(), ldb, &beta, c, data_type<c_t>(), ldc, compute, CUBLAS_GEMM_DEFAULT);
  if constexpr (!kDouble && !kFloat) TORCH_CUDABLAS_CHECK(cublasSetMathMode(handle, mode));
  TORCH_CUDABLAS_CHECK(status);
}

}  // namespace fastrnn::device

// The CUDA keys, as csrc/cpu/ops_cpu.cpp registers the CPU's: a tensor of
// another layout among the arguments reaches the op's checks, which name it.
#define FASTRNN_DEVICE_REGISTRATIONS(register_ops)                   \
  TORCH_LIBRARY_IMPL(fastrnn, CUDA, m) { register_ops(m); }          \
  TORCH_LIBRARY_IMPL(fastrnn, SparseCUDA, m) { register_ops(m); }    \
  TORCH_LIBRARY_IMPL(fastrnn, SparseCsrCUDA, m) { register_ops(m); } \
  TORCH_LIBRARY_IMPL(fastrnn, QuantizedCUDA, m) { register_ops(m); } \
  TORCH_LIBRARY_IMPL(fastrnn, NestedTensorCUDA, m) { register_ops(m); }
