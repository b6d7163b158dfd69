#pragma once
// Scalar activations and their derivatives, usable from host and device code.
// Derivatives are written in terms of the activation's output, which is what
// the forward pass saves.
//
// NaN and Inf follow torch's ops: every select is written so that a NaN
// operand falls through to the NaN (a comparison with NaN is false), never to
// a finite constant; +-Inf saturate as they do in torch (tanh(+-Inf) = +-1,
// sigmoid(-Inf) = 0, relu(+Inf) = +Inf).

#include <c10/macros/Macros.h>
#include <cmath>
#include <cstdint>
#include <cstring>

// Every function of the cell math is inlined into the pointwise loops, which
// must vectorise: one call left in a loop keeps it scalar. GCC's own heuristics
// declined to inline tanh<float> into the LSTM's training loop (it writes seven
// workspace planes, so the loop is long), which then ran scalar (figures:
// benchmarks/README.md, "Measurements behind the code's choices").
#if defined(__CUDACC__)
#define FASTRNN_INLINE __forceinline__
#elif defined(__GNUC__)
#define FASTRNN_INLINE inline __attribute__((always_inline))
#else
#define FASTRNN_INLINE inline
#endif

namespace fastrnn::cells {

template <typename acc_t>
C10_HOST_DEVICE FASTRNN_INLINE acc_t tanh(acc_t x) {
  return ::tanh(x);
}

// float: exp(x) for the activations below, branch free so that the CPU's
// pointwise loops vectorise: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two
// parts, Cody and Waite), e^r by a degree-7 polynomial (Cephes' expf), times
// 2^n made from n's bits. Measured against float64 exp: at most 1 ulp where
// e^x is a normal float. The ends are what sigmoid and tanh need, and
// cheaper than exp's (one scale factor, not two): 0 from x = -87.7 on (e^x
// is below float's smallest normal there, and 1 + e^x rounds to 1 all the
// same), Inf from 88.4 on (where 1 / (1 + e^x) is below float's smallest
// normal), NaN stays NaN (comparisons with NaN are false, and the polynomial
// carries it).
C10_HOST_DEVICE FASTRNN_INLINE float exp_float(float x) {
  x = x < -88.f ? -88.f : x;
  x = x > 89.f ? 89.f : x;
  const float n = ::rintf(x * 1.44269504088896341f);  // x / ln2, in [-127, 128]
  float r = x - n * 0.693359375f;                       // ln2's high bits: n * it is exact
  r = r - n * -2.12194440e-4f;                          // and its low part
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  // 2^n as a float's bits: exponent field n + 127, which is 0 (the float 0)
  // at n = -127 and 255 (Inf) at n = 128
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// float: branch free, so that the CPU's pointwise loops vectorise; the same
// formulas run on the device, so CPU tests check the GPU's math. Near 0 an odd
// polynomial (Cephes' tanhf), from |x| = 0.625 on 1 - 2 / (e^2|x| + 1), which
// is accurate where tanh nears +-1 (the derivative 1 - tanh^2 is then a small
// difference, and an error of a few ulp in tanh was a large one in it).
// Measured against float64 tanh: at most 1.3 ulp; +-Inf give exactly +-1 and
// NaN stays NaN (it fails |x| < 0.625 and goes through exp).
template <>
C10_HOST_DEVICE FASTRNN_INLINE float tanh<float>(float x) {
  const float z = x * x;
  float q = -5.70498872745e-3f;
  q = q * z + 2.06390887954e-2f;
  q = q * z - 5.37397155531e-2f;
  q = q * z + 1.33314422036e-1f;
  q = q * z - 3.33332819422e-1f;
  const float near_zero = q * z * x + x;
  const float a = ::fabsf(x);
  const float far = ::copysignf(1.f - 2.f / (exp_float(2.f * a) + 1.f), x);
  return a < 0.625f ? near_zero : far;
}

template <typename acc_t>
C10_HOST_DEVICE FASTRNN_INLINE acc_t sigmoid(acc_t x) {
  return acc_t(1) / (acc_t(1) + ::exp(-x));
}

// float: torch's formula, with exp_float: at most 2.5 ulp against float64
// down to float's smallest normal result; exactly 0 from x = -88.4 on (and
// at -Inf) and 1 at +Inf, NaN stays NaN.
template <>
C10_HOST_DEVICE FASTRNN_INLINE float sigmoid<float>(float x) {
  return 1.f / (1.f + exp_float(-x));
}

// NaN stays NaN, as torch.relu.
template <typename acc_t>
C10_HOST_DEVICE FASTRNN_INLINE acc_t relu(acc_t x) {
  return x < acc_t(0) ? acc_t(0) : x;
}

// d sigmoid(x) / dx, given y = sigmoid(x)
template <typename acc_t>
C10_HOST_DEVICE FASTRNN_INLINE acc_t sigmoid_grad(acc_t y) {
  return y * (acc_t(1) - y);
}

// d tanh(x) / dx, given y = tanh(x)
template <typename acc_t>
C10_HOST_DEVICE FASTRNN_INLINE acc_t tanh_grad(acc_t y) {
  return acc_t(1) - y * y;
}

// d loss / dx of y = relu(x), given dy = d loss / dy: torch's
// threshold_backward(dy, y, 0), a select rather than a product, so that dy
// passes unchanged where y is not <= 0 (y NaN included) and the gradient is
// exactly 0 elsewhere (also when dy is NaN or Inf, where dy * 0 would be NaN).
template <typename acc_t>
C10_HOST_DEVICE FASTRNN_INLINE acc_t relu_backward(acc_t dy, acc_t y) {
  return y <= acc_t(0) ? acc_t(0) : dy;
}

}  // namespace fastrnn::cells
