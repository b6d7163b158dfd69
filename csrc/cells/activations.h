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

// Every function of the cell math is inlined into the pointwise loops, which
// must vectorise: one call left in a loop keeps it scalar. GCC's own heuristics
// declined to inline tanh<float> into the LSTM's training loop (it writes seven
// workspace planes, so the loop is long), which then ran 4x slower per element.
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

// float: a branch-free rational approximation (Eigen's generic_fast_tanh_float),
// so that the CPU's pointwise loops vectorise. Measured against float64 tanh
// over [-20, 20]: at most 6 ulp, 3.6e-7 absolute. The same formula runs on
// the device, so CPU tests check the GPU's math.
template <>
C10_HOST_DEVICE FASTRNN_INLINE float tanh<float>(float x) {
  constexpr float kSaturate = 7.99881172180175781f;  // tanh(x) is 1 to 2.4e-7 from here
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  // From kSaturate on (where the polynomials soon overflow) exactly +-1, as
  // torch's tanh(+-Inf): then tanh's and sigmoid's derivatives are exactly 0
  // there, and Inf * 0 gives torch's NaN. A clamp of x to kSaturate before
  // the polynomials did not: the rational's value at the clamp is 1 - 1.8e-7
  // or 1 depending on how the compiler evaluates it. One select, after the
  // polynomials, which a NaN fails, so NaN stays NaN.
  return ::fabsf(x) >= kSaturate ? ::copysignf(1.f, x) : x * p / q;
}

template <typename acc_t>
C10_HOST_DEVICE FASTRNN_INLINE acc_t sigmoid(acc_t x) {
  return acc_t(1) / (acc_t(1) + ::exp(-x));
}

// float: sigmoid(x) = (1 + tanh(x / 2)) / 2, exactly, with the tanh above;
// at most 2.3e-7 absolute error.
template <>
C10_HOST_DEVICE FASTRNN_INLINE float sigmoid<float>(float x) {
  return 0.5f + 0.5f * tanh<float>(0.5f * x);
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
