#pragma once
// The only CUDA API calls of the CUDA backend, behind one small interface, so
// that everything else (kernels, the backend, the registrations) is source
// shared with the emulated-device build, which runs it on the CPU:
//   - api_cuda.cuh   the real device (nvcc): the <<<>>> launch on the current
//                    stream, cuBLAS on the current handle;
//   - ../emulated/api.h  the host compiler (FASTRNN_EMULATED): each launch
//                    runs the kernel body for every (block, thread) of the
//                    grid, GEMMs go to a CPU BLAS, CPU tensors play device memory.
//
// Both give, in namespace fastrnn::device:
//   launch(kernel, grid, block, args...)
//                 kernel<<<grid, block, 0, current stream>>>(args...), checked
//   gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
//                 cuBLAS's column-major GEMM, m, n, k > 0:
//                 C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C, leading
//                 dimensions (column strides) as cuBLAS checks them; A and B
//                 float, double, float16 or bfloat16, C of their type or, for
//                 the 16-bit ones, float; alpha, beta and the sums in
//                 at::opmath_type (float for the 16-bit types)
//   FASTRNN_DEVICE_REGISTRATIONS(register_ops)
//                 TORCH_LIBRARY_IMPL(fastrnn, key, m) { register_ops(m); } for
//                 the device's dispatch keys
// A kernel is a `template <...> __global__ void` function. The backend object
// of an op call holds its device's guard (backend.h), so the current stream
// and handle are those of the op's device.

#if defined(FASTRNN_EMULATED)
#include "../emulated/api.h"
#else
#include "api_cuda.cuh"
#endif
