#pragma once
// What the CPU does differently: GEMMs go straight to the BLAS that torch is
// linked with (MKL on x86 wheels), with no dispatcher call or allocation per
// time step; the pointwise pass is an at::parallel_for over (b, j).

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

extern "C" {
// Fortran BLAS, exported by libtorch_cpu. Column-major.
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b, const int* ldb,
            const double* beta, double* c, const int* ldc);
}

namespace fastrnn {

struct CPUBackend {
  // Row-major C[m, n] = alpha * op(A)[m, k] op(B)[k, n] + beta * C, with
  // leading dimensions (row strides) lda, ldb, ldc. BLAS is column-major, so
  // it computes C^T = op(B)^T op(A)^T.
  template <typename scalar_t>
  static void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, scalar_t alpha,
                   const scalar_t* a, int64_t lda, const scalar_t* b, int64_t ldb, scalar_t beta,
                   scalar_t* c, int64_t ldc) {
    const char ta = trans_b ? 'T' : 'N';
    const char tb = trans_a ? 'T' : 'N';
    const int m_ = static_cast<int>(n), n_ = static_cast<int>(m), k_ = static_cast<int>(k);
    const int lda_ = static_cast<int>(std::max<int64_t>(ldb, 1));
    const int ldb_ = static_cast<int>(std::max<int64_t>(lda, 1));
    const int ldc_ = static_cast<int>(std::max<int64_t>(ldc, 1));
    if constexpr (std::is_same_v<scalar_t, float>) {
      sgemm_(&ta, &tb, &m_, &n_, &k_, &alpha, b, &lda_, a, &ldb_, &beta, c, &ldc_);
    } else {
      dgemm_(&ta, &tb, &m_, &n_, &k_, &alpha, b, &lda_, a, &ldb_, &beta, c, &ldc_);
    }
  }

  // f(b, j) for b in [0, rows), j in [0, H), split across threads only when
  // there is enough work to pay for waking them.
  template <class F>
  static void pointwise(int64_t rows, int64_t H, const F& f) {
    constexpr int64_t kGrain = 16384;  // elements per thread, at least
    at::parallel_for(0, rows * H, kGrain, [&](int64_t begin, int64_t end) {
      int64_t b = begin / H;
      int64_t j = begin % H;
      for (int64_t e = begin; e < end; ++e) {
        f(b, j);
        if (++j == H) {
          j = 0;
          ++b;
        }
      }
    });
  }
};

}  // namespace fastrnn
