#pragma once
// The real device (api.h says what every device gives): the only code of the
// CUDA backend that the emulated build does not compile. Launches and GEMMs
// are queued on the current stream of the current device (the op's, set by
// its device guard), and nothing here waits for the device.

#include <ATen/Context.h>
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

// The handle torch gives is set up for the current stream, with torch's
// workspace for it and the math mode of torch.backends.cuda.matmul.allow_tf32;
// calling cublasSetStream again would reset that workspace. float accumulates
// in float32, in TF32 only where allow_tf32 allows it, as torch's own matmuls.
template <typename scalar_t>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, scalar_t alpha,
          const scalar_t* a, int64_t lda, const scalar_t* b, int64_t ldb, scalar_t beta,
          scalar_t* c, int64_t ldc) {
  static_assert(std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>);
  constexpr bool kFloat = std::is_same_v<scalar_t, float>;
  constexpr cudaDataType_t type = kFloat ? CUDA_R_32F : CUDA_R_64F;
  const cublasComputeType_t compute =
      !kFloat ? CUBLAS_COMPUTE_64F
              : (at::globalContext().allowTF32CuBLAS() ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                       : CUBLAS_COMPUTE_32F);
  const auto op = [](bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; };
  TORCH_CUDABLAS_CHECK(cublasGemmEx_64(at::cuda::getCurrentCUDABlasHandle(), op(trans_a),
                                       op(trans_b), m, n, k, &alpha, a, type, lda, b, type, ldb,
                                       &beta, c, type, ldc, compute, CUBLAS_GEMM_DEFAULT));
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
