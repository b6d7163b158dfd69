#pragma once
// Conversions between a cell's storage type and its math type (acc_t =
// at::opmath_type: float for float16 and bfloat16, the type itself otherwise),
// for the loads and stores of the pointwise passes. On the host, float16 and
// bfloat16 are converted here on their bits, without branches, to the same
// bits as c10's conversions, so that the CPU's pointwise loops vectorise:
// c10's bfloat16 rounding tests for NaN with a branch, its float16 one is a
// scalar instruction, and a load or store of the 16-bit struct itself is a
// statement GCC's vectoriser refuses (figures: benchmarks/README.md). Device
// code and the other types use c10's conversions.

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "activations.h"  // FASTRNN_INLINE

namespace fastrnn::cells {

// dst = v rounded to scalar_t, to nearest even (NaN: bfloat16's quiet NaN
// 0x7FC0, as c10), written as its bits.
template <typename scalar_t>
C10_HOST_DEVICE FASTRNN_INLINE void store(scalar_t& dst, at::opmath_type<scalar_t> v) {
#if !defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<scalar_t, c10::BFloat16>) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    const bool nan = (bits & 0x7FFFFFFFu) > 0x7F800000u;
    dst.x = static_cast<uint16_t>(nan ? 0x7FC0u : rounded);
    return;
  } else if constexpr (std::is_same_v<scalar_t, c10::Half>) {
    dst.x = c10::detail::fp16_ieee_from_fp32_value(v);  // c10's portable (branch-free) rounding
    return;
  }
#endif
  dst = scalar_t(v);
}

// v in acc_t, exactly, read from its bits in place.
template <typename scalar_t>
C10_HOST_DEVICE FASTRNN_INLINE at::opmath_type<scalar_t> widen(const scalar_t& v) {
#if !defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<scalar_t, c10::BFloat16>) {
    const uint32_t bits = uint32_t(v.x) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
  } else if constexpr (std::is_same_v<scalar_t, c10::Half>) {
    return c10::detail::fp16_ieee_to_fp32_value(v.x);
  }
#endif
  return at::opmath_type<scalar_t>(v);
}

}  // namespace fastrnn::cells
