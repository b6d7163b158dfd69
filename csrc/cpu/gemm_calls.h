#pragma once
// The two GEMM libraries the CPU backend calls, oneDNN's brgemm micro-kernel
// (through ATen) and Fortran BLAS (exported by libtorch_cpu), wrapped so that
// every call stays within the sizes each one takes, for any 64-bit shape that
// fits in memory:
//   - brgemm refuses (std::bad_alloc) an operand of 2^31 bytes or more, counted
//     as M * lda, K * ldb and M * ldc elements: the call is split into pieces
//     of rows, columns and of the reduction below that. A reduction longer
//     than kLongReduction also goes in blocks of kReductionBlock, each block's
//     sum added to C: brgemm sums all of K in its accumulators, one term after
//     the other, and on long reductions its float32 error grew past twice that
//     of MKL's sgemm (which blocks K), the project's rule; in blocks of 256 it
//     stayed about MKL's (figures: benchmarks/README.md, "Measurements behind
//     the code's choices");
//   - BLAS takes 32-bit integers: m, n and k are split into pieces that fit,
//     and a leading dimension that does not fit is refused. The same holds for
//     MKL's float16 and bfloat16 GEMMs with float results (half_gemm), which
//     run on the CPU's bfloat16/float16 units where it has them.
// Both handle the empty cases themselves (k = 0: C = beta C; m or n = 0:
// nothing), where the libraries fail (brgemm) or check leading dimensions
// against sizes of 0 (BLAS).
// All matrices are row-major: C[m, n] with row stride ldc, and so on.

#include <ATen/native/CPUBlas.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

extern "C" {
// Fortran BLAS, exported by libtorch_cpu. Column-major.
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b, const int* ldb,
            const double* beta, double* c, const int* ldc);
// MKL's GEMMs of bfloat16 and float16 operands with float results, summed in
// float (CBLAS, 32-bit integers). libtorch_cpu exports them when torch is built
// with MKL, as the x86-64 wheels are; weak, so that the extension still loads
// where it is not (half_gemm_available() then says false).
void cblas_gemm_bf16bf16f32(int layout, int transa, int transb, int m, int n, int k, float alpha,
                            const uint16_t* a, int lda, const uint16_t* b, int ldb, float beta,
                            float* c, int ldc) __attribute__((weak));
void cblas_gemm_f16f16f32(int layout, int transa, int transb, int m, int n, int k, float alpha,
                          const uint16_t* a, int lda, const uint16_t* b, int ldb, float beta,
                          float* c, int ldc) __attribute__((weak));
}

namespace fastrnn::cpu {

// C[0:m, 0:n] = beta * C, as a GEMM with k = 0 leaves it (beta 0 writes zeros,
// also over NaN: BLAS does not read C then).
template <typename scalar_t>
void scale_rows(int64_t m, int64_t n, scalar_t beta, scalar_t* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    scalar_t* row = c + i * ldc;
    if (beta == scalar_t(0)) {
      std::fill(row, row + n, scalar_t(0));
    } else if (beta != scalar_t(1)) {
      for (int64_t j = 0; j < n; ++j) row[j] *= beta;
    }
  }
}

// The largest operand brgemm takes, in floats: 2^31 bytes and up fail.
constexpr int64_t kBrgemmMaxElements = (int64_t(INT_MAX) + 1) / int64_t(sizeof(float)) - 1;
// Reductions up to kLongReduction go in one call, the fastest, whose error
// there is about MKL's; longer ones in blocks (see above).
constexpr int64_t kLongReduction = 1024;
constexpr int64_t kReductionBlock = 256;

// C[m, n] (+= if add_c) A[m, k] B[k, n] with brgemm (batch size 1, no VNNI).
inline void brgemm(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc,
                   bool add_c, const float* a, const float* b, float* c) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) return scale_rows(m, n, add_c ? 1.f : 0.f, c, ldc);
  constexpr int64_t kMax = kBrgemmMaxElements;
  if (k <= kLongReduction && m * std::max(lda, ldc) <= kMax && k * ldb <= kMax) {
    return at::native::cpublas::brgemm(m, n, k, lda, ldb, ldc, add_c, a, b, c,
                                       /*is_vnni=*/false);
  }
  // Pieces: rows so that m * lda and m * ldc fit, reduction steps so that
  // k * ldb fits (and blocks of a long one). A single row (or reduction
  // step) may have any stride: its leading dimension is then given as its own
  // length, which brgemm never steps over. The later reduction pieces add to C.
  const int64_t m_step = std::max<int64_t>(1, kMax / std::max(lda, ldc));
  const int64_t k_block = k > kLongReduction ? kReductionBlock : k;
  const int64_t k_step = std::clamp<int64_t>(kMax / ldb, 1, k_block);
  const int64_t n_step = std::min(n, kMax);
  for (int64_t j0 = 0; j0 < n; j0 += n_step) {
    const int64_t nn = std::min(n_step, n - j0);
    for (int64_t i0 = 0; i0 < m; i0 += m_step) {
      const int64_t mm = std::min(m_step, m - i0);
      for (int64_t k0 = 0; k0 < k; k0 += k_step) {
        const int64_t kk = std::min(k_step, k - k0);
        at::native::cpublas::brgemm(mm, nn, kk, mm == 1 ? kk : lda, kk == 1 ? nn : ldb,
                                    mm == 1 ? nn : ldc, add_c || k0 > 0, a + i0 * lda + k0,
                                    b + k0 * ldb + j0, c + i0 * ldc + j0, /*is_vnni=*/false);
      }
    }
  }
}

// Whether MKL's GEMM for scalar_t (c10::BFloat16 or c10::Half) is there.
template <typename scalar_t>
bool half_gemm_available() {
  if constexpr (std::is_same_v<scalar_t, c10::BFloat16>) {
    return cblas_gemm_bf16bf16f32 != nullptr;
  } else {
    return cblas_gemm_f16f16f32 != nullptr;
  }
}

// Row-major C[m, n] = alpha * op(A)[m, k] op(B)[k, n] + beta * C with A and B
// in bfloat16 or float16, C in float: MKL's CBLAS, in pieces whose sizes fit
// its 32-bit integers (beta 0 writes C without reading it).
template <typename scalar_t>
void half_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const scalar_t* a, int64_t lda, const scalar_t* b, int64_t ldb, float beta, float* c,
               int64_t ldc) {
  static_assert(std::is_same_v<scalar_t, c10::BFloat16> || std::is_same_v<scalar_t, c10::Half>);
  if (m <= 0 || n <= 0) return;
  if (k <= 0) return scale_rows(m, n, beta, c, ldc);
  TORCH_CHECK(half_gemm_available<scalar_t>(),
              "fastrnn: this torch has no MKL GEMM for float16/bfloat16");
  TORCH_CHECK(std::max({lda, ldb, ldc}) <= INT_MAX, "fastrnn: a GEMM operand's row stride (",
              std::max({lda, ldb, ldc}), " elements) exceeds MKL's 32-bit arguments");
  constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;  // CBLAS's enums
  constexpr int64_t kMax = INT_MAX;
  const auto a_at = [&](int64_t i, int64_t l) {
    return reinterpret_cast<const uint16_t*>(trans_a ? a + l * lda + i : a + i * lda + l);
  };
  const auto b_at = [&](int64_t l, int64_t j) {
    return reinterpret_cast<const uint16_t*>(trans_b ? b + j * ldb + l : b + l * ldb + j);
  };
  const auto call =
      std::is_same_v<scalar_t, c10::BFloat16> ? cblas_gemm_bf16bf16f32 : cblas_gemm_f16f16f32;
  for (int64_t i0 = 0; i0 < m; i0 += kMax) {
    for (int64_t j0 = 0; j0 < n; j0 += kMax) {
      for (int64_t l0 = 0; l0 < k; l0 += kMax) {
        const int m_ = static_cast<int>(std::min(kMax, m - i0));
        const int n_ = static_cast<int>(std::min(kMax, n - j0));
        const int k_ = static_cast<int>(std::min(kMax, k - l0));
        // a stride is only read across rows: one row may be given any (>= its length)
        const int lda_ = static_cast<int>(std::max<int64_t>(lda, trans_a ? m_ : k_));
        const int ldb_ = static_cast<int>(std::max<int64_t>(ldb, trans_b ? k_ : n_));
        const int ldc_ = static_cast<int>(std::max<int64_t>(ldc, n_));
        call(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans, m_, n_, k_, alpha,
             a_at(i0, l0), lda_, b_at(l0, j0), ldb_, l0 == 0 ? beta : 1.f, c + i0 * ldc + j0, ldc_);
      }
    }
  }
}

// Row-major C[m, n] = alpha * op(A)[m, k] op(B)[k, n] + beta * C through
// Fortran BLAS. BLAS is column-major, so it computes C^T = op(B)^T op(A)^T.
template <typename scalar_t>
void blas_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, scalar_t alpha,
               const scalar_t* a, int64_t lda, const scalar_t* b, int64_t ldb, scalar_t beta,
               scalar_t* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) return scale_rows(m, n, beta, c, ldc);
  TORCH_CHECK(std::max({lda, ldb, ldc}) <= INT_MAX, "fastrnn: a GEMM operand's row stride (",
              std::max({lda, ldb, ldc}), " elements) exceeds BLAS's 32-bit arguments");
  constexpr int64_t kMax = INT_MAX;
  // A[i, l] = a[i * lda + l], or a[l * lda + i] when transposed; B likewise.
  const auto a_at = [&](int64_t i, int64_t l) {
    return trans_a ? a + l * lda + i : a + i * lda + l;
  };
  const auto b_at = [&](int64_t l, int64_t j) {
    return trans_b ? b + j * ldb + l : b + l * ldb + j;
  };
  const char ta = trans_b ? 'T' : 'N';
  const char tb = trans_a ? 'T' : 'N';
  const int lda_ = static_cast<int>(std::max<int64_t>(ldb, 1));
  const int ldb_ = static_cast<int>(std::max<int64_t>(lda, 1));
  const int ldc_ = static_cast<int>(std::max<int64_t>(ldc, 1));
  for (int64_t i0 = 0; i0 < m; i0 += kMax) {
    for (int64_t j0 = 0; j0 < n; j0 += kMax) {
      for (int64_t l0 = 0; l0 < k; l0 += kMax) {
        const int m_ = static_cast<int>(std::min(kMax, n - j0));  // BLAS's m: columns of C
        const int n_ = static_cast<int>(std::min(kMax, m - i0));
        const int k_ = static_cast<int>(std::min(kMax, k - l0));
        const scalar_t beta_ = l0 == 0 ? beta : scalar_t(1);
        scalar_t* c_ = c + i0 * ldc + j0;
        if constexpr (std::is_same_v<scalar_t, float>) {
          sgemm_(&ta, &tb, &m_, &n_, &k_, &alpha, b_at(l0, j0), &lda_, a_at(i0, l0), &ldb_, &beta_,
                 c_, &ldc_);
        } else {
          dgemm_(&ta, &tb, &m_, &n_, &k_, &alpha, b_at(l0, j0), &lda_, a_at(i0, l0), &ldb_, &beta_,
                 c_, &ldc_);
        }
      }
    }
  }
}

}  // namespace fastrnn::cpu
