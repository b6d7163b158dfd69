#pragma once
// dst[j, i] = src[i, j], for float matrices in 8 x 8 register tiles (AVX2).
// Every call transposes a weight (W_hh^T for the forward's steps, W_ih^T for
// brgemm's input projection, W_hr^T with a projection). ATen's copy_ of a transposed
// view goes element by element, a large share of a call at batch 1 (figures:
// benchmarks/README.md, "Measurements behind the code's choices").

#include <ATen/ATen.h>

#include <cstdint>
#include <type_traits>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "isa.h"

namespace fastrnn::cpu {

namespace detail {

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) inline void transpose_8x8(const float* src, int64_t lds, float* dst,
                                                          int64_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; i += 2) {  // interleave row pairs
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {  // then pairs of pairs
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {  // then the 128-bit halves
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
#endif

}  // namespace detail

// dst [cols, rows] (row stride ldd) = src [rows, cols] (row stride lds) transposed.
template <typename T>
void transpose(const T* src, int64_t lds, T* dst, int64_t ldd, int64_t rows, int64_t cols) {
  int64_t rows8 = 0, cols8 = 0;
#if defined(__x86_64__) && defined(__GNUC__)
  if constexpr (std::is_same_v<T, float>) {
    if (isa() >= Isa::kAvx2) {
      rows8 = rows / 8 * 8;
      cols8 = cols / 8 * 8;
      for (int64_t i = 0; i < rows8; i += 8) {
        for (int64_t j = 0; j < cols8; j += 8) {
          detail::transpose_8x8(src + i * lds + j, lds, dst + j * ldd + i, ldd);
        }
      }
    }
  }
#endif
  // the edges (everything without AVX2, and other types than float)
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = (i < rows8 ? cols8 : 0); j < cols; ++j) dst[j * ldd + i] = src[i * lds + j];
  }
}

// w [k, n] as a contiguous float tensor; a transposed view (stride (1, k)) is
// copied with `transpose`, anything else with ATen.
inline at::Tensor contiguous(const at::Tensor& w) {
  if (w.is_contiguous() || w.scalar_type() != at::kFloat || w.dim() != 2 || w.stride(0) != 1) {
    return w.contiguous();
  }
  at::Tensor out = at::empty(w.sizes(), w.options());
  transpose(w.const_data_ptr<float>(), w.stride(1), out.mutable_data_ptr<float>(), w.size(1),
            w.size(1), w.size(0));
  return out;
}

}  // namespace fastrnn::cpu
