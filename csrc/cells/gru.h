#pragma once
// GRU cell, one (batch, hidden) element, torch.nn's gate order r, z, n:
//   r = sigmoid(x_r + h_r)
//   z = sigmoid(x_z + h_z)
//   n = tanh(x_n + r * h_n)
//   h = (h_prev - n) * z + n        (= (1 - z) * n + z * h_prev)
// where x_* = (W_ih x + b_ih) and h_* = (W_hh h_prev + b_hh) for that gate:
// the reset gate multiplies the whole hidden projection of n, bias included.
// h is written as torch.nn's cell writes it, and the backward is that
// expression's chain rule term by term, so that Inf and NaN give the same
// pattern of NaN as torch's autograd: with dh = Inf and z = 0, d n is
// dh - dh * z = NaN there, where dh * (1 - z) would be Inf.

#include <ATen/OpMathType.h>

#include "../pointwise.h"
#include "activations.h"
#include "storage.h"

namespace fastrnn::cells {

template <typename acc_t>
struct GRUActivations {
  acc_t r, z, n;  // gate outputs, after their nonlinearity
  acc_t h;        // new hidden state
};

template <typename acc_t>
C10_HOST_DEVICE FASTRNN_INLINE GRUActivations<acc_t> gru_forward(acc_t x_r, acc_t x_z, acc_t x_n,
                                                                 acc_t h_r, acc_t h_z, acc_t h_n,
                                                                 acc_t h_prev) {
  GRUActivations<acc_t> a;
  a.r = sigmoid(x_r + h_r);
  a.z = sigmoid(x_z + h_z);
  a.n = tanh(x_n + a.r * h_n);
  a.h = (h_prev - a.n) * a.z + a.n;
  return a;
}

template <typename acc_t>
struct GRUGrads {
  acc_t pre_r, pre_z;  // d loss / d (x_r + h_r), d loss / d (x_z + h_z)
  acc_t x_n;           // d loss / d x_n
  acc_t h_n;           // d loss / d h_n  (= x_n's gradient times r)
  acc_t h_prev;        // the part of d loss / d h_prev that skips W_hh
};

// dh: gradient arriving at this step's h. h_n is the forward's W_hn h_prev + b_hn.
template <typename acc_t>
C10_HOST_DEVICE FASTRNN_INLINE GRUGrads<acc_t> gru_backward(acc_t dh, acc_t r, acc_t z, acc_t n,
                                                            acc_t h_n, acc_t h_prev) {
  const acc_t dh_z = dh * z;  // d loss / d (h_prev - n)
  // dh - dh * z with the product exact for float (in double): rounded, it
  // cancels against dh as z nears 1.
  const acc_t dn = acc_t(double(dh) - double(dh) * double(z));
  const acc_t dz = dh * (h_prev - n);
  GRUGrads<acc_t> d;
  d.x_n = dn * tanh_grad(n);
  d.h_n = d.x_n * r;
  d.pre_r = d.x_n * h_n * sigmoid_grad(r);
  d.pre_z = dz * sigmoid_grad(z);
  d.h_prev = dh_z;
  return d;
}

}  // namespace fastrnn::cells

namespace fastrnn {

// The GRU's pointwise pass on the step buffers of csrc/pointwise.h.
struct GRUCell {
  static constexpr int kGates = 3;
  static constexpr int kSaved = 5;  // r, z, n, h_n (= W_hn h_prev + b_hn), h_prev
  static constexpr bool kDirectDh = true;
  static constexpr bool kProjected = false;

  template <bool kTraining, bool kRelu, typename scalar_t>
  C10_HOST_DEVICE FASTRNN_INLINE static void forward(const ForwardStep<scalar_t>& s, int64_t b,
                                                     int64_t j) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t H = s.H;
    const int64_t e = b * H + j;
    const int64_t g = b * 3 * H + j;  // gate r of this element; z, n follow at +H
    const acc_t h_n = cells::widen(s.h_proj[g + 2 * H]) + cells::widen(s.b_hn[j]);
    const auto a = cells::gru_forward<acc_t>(
        cells::widen(s.x_proj[g]) + cells::widen(s.bias[j]),
        cells::widen(s.x_proj[g + H]) + cells::widen(s.bias[j + H]),
        cells::widen(s.x_proj[g + 2 * H]) + cells::widen(s.bias[j + 2 * H]),
        cells::widen(s.h_proj[g]), cells::widen(s.h_proj[g + H]), h_n, cells::widen(s.h_prev[e]));
    if constexpr (kTraining) {
      const int64_t p = s.plane;
      cells::store(s.ws[e], a.r);
      cells::store(s.ws[p + e], a.z);
      cells::store(s.ws[2 * p + e], a.n);
      cells::store(s.ws[3 * p + e], h_n);
      cells::store(s.ws[4 * p + e], cells::widen(s.h_prev[e]));
    }
    cells::store(s.h[e], a.h);
    cells::store(s.out[e], a.h);
  }

  template <bool kRelu, typename scalar_t>
  C10_HOST_DEVICE FASTRNN_INLINE static void backward(const BackwardStep<scalar_t>& s, int64_t b,
                                                      int64_t j) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t H = s.H;
    const int64_t p = s.plane;
    const int64_t e = b * H + j;
    const int64_t g = b * 3 * H + j;
    const auto d = cells::gru_backward<acc_t>(
        cells::widen(s.dh[e]) + cells::widen(s.grad_out[e]), cells::widen(s.ws[e]),
        cells::widen(s.ws[p + e]), cells::widen(s.ws[2 * p + e]), cells::widen(s.ws[3 * p + e]),
        cells::widen(s.ws[4 * p + e]));
    cells::store(s.dgates_x[g], d.pre_r);
    cells::store(s.dgates_x[g + H], d.pre_z);
    cells::store(s.dgates_x[g + 2 * H], d.x_n);
    cells::store(s.dgates_h[g], d.pre_r);
    cells::store(s.dgates_h[g + H], d.pre_z);
    cells::store(s.dgates_h[g + 2 * H], d.h_n);
    cells::store(s.dh[e], d.h_prev);
  }
};

}  // namespace fastrnn
