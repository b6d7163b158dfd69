#pragma once
// LSTM cell, one (batch, hidden) element, torch.nn's gate order i, f, g, o:
//   i = sigmoid(pre_i)  f = sigmoid(pre_f)  g = tanh(pre_g)  o = sigmoid(pre_o)
//   c = f * c_prev + i * g
//   h = o * tanh(c)
// where pre_* = (W_ih x + b_ih + W_hh h_prev + b_hh) for that gate.

#include <ATen/OpMathType.h>

#include "../pointwise.h"
#include "activations.h"
#include "storage.h"

namespace fastrnn::cells {

template <typename acc_t>
struct LSTMActivations {
  acc_t i, f, g, o;  // gate outputs, after their nonlinearity
  acc_t c;           // new cell state
  acc_t h;           // new hidden state
};

template <typename acc_t>
C10_HOST_DEVICE FASTRNN_INLINE LSTMActivations<acc_t> lstm_forward(acc_t pre_i, acc_t pre_f,
                                                                   acc_t pre_g, acc_t pre_o,
                                                                   acc_t c_prev) {
  LSTMActivations<acc_t> a;
  a.i = sigmoid(pre_i);
  a.f = sigmoid(pre_f);
  a.g = tanh(pre_g);
  a.o = sigmoid(pre_o);
  a.c = a.f * c_prev + a.i * a.g;
  a.h = a.o * tanh(a.c);
  return a;
}

template <typename acc_t>
struct LSTMGrads {
  acc_t pre_i, pre_f, pre_g, pre_o;  // d loss / d pre-activations
  acc_t c_prev;                      // d loss / d c_prev
};

// dh, dc: gradients arriving at this step's h and c (from the output, the
// final state and the next step). The activations are the forward's.
template <typename acc_t>
C10_HOST_DEVICE FASTRNN_INLINE LSTMGrads<acc_t> lstm_backward(acc_t dh, acc_t dc, acc_t i, acc_t f,
                                                              acc_t g, acc_t o, acc_t c,
                                                              acc_t c_prev) {
  const acc_t tanh_c = tanh(c);
  const acc_t dc_total = dc + dh * o * tanh_grad(tanh_c);
  LSTMGrads<acc_t> d;
  d.pre_i = dc_total * g * sigmoid_grad(i);
  d.pre_f = dc_total * c_prev * sigmoid_grad(f);
  d.pre_g = dc_total * i * tanh_grad(g);
  d.pre_o = dh * tanh_c * sigmoid_grad(o);
  d.c_prev = dc_total * f;
  return d;
}

}  // namespace fastrnn::cells

namespace fastrnn {

// The LSTM's pointwise pass on the step buffers of csrc/pointwise.h.
// kProject: with a projection (torch.nn.LSTM's proj_size P), h = (o *
// tanh(c)) W_hr^T, so h and h_prev are [B, P] and W_hh is [4H, P]. The
// pointwise pass is then the LSTM's up to o * tanh(c), written to out (when
// training, out is workspace plane 6 itself); the driver runs the projection
// GEMM (forward) and its transpose (backward) around it, and saves h_prev.
template <bool kProject>
struct LSTMCellImpl {
  static constexpr int kGates = 4;
  // i, f, g, o, c, c_prev, h_prev; with a projection o * tanh(c) before
  // h_prev, which then fills the plane's first P columns (zeros beyond)
  static constexpr int kSaved = kProject ? 8 : 7;
  static constexpr bool kDirectDh = false;
  static constexpr bool kProjected = kProject;

  template <bool kTraining, bool kRelu, typename scalar_t>
  C10_HOST_DEVICE FASTRNN_INLINE static void forward(const ForwardStep<scalar_t>& s, int64_t b,
                                                     int64_t j) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t H = s.H;
    const int64_t e = b * H + j;
    const int64_t g = b * 4 * H + j;  // gate i of this element; f, g, o follow at +H
    const auto pre = [&](int64_t k) {  // gate k's pre-activation
      return cells::widen(s.x_proj[g + k * H]) + cells::widen(s.h_proj[g + k * H]) +
             cells::widen(s.bias[j + k * H]);
    };
    const auto a = cells::lstm_forward<acc_t>(pre(0), pre(1), pre(2), pre(3), cells::widen(s.c[e]));
    if constexpr (kTraining) {
      const int64_t p = s.plane;
      cells::store(s.ws[e], a.i);
      cells::store(s.ws[p + e], a.f);
      cells::store(s.ws[2 * p + e], a.g);
      cells::store(s.ws[3 * p + e], a.o);
      cells::store(s.ws[4 * p + e], a.c);
      cells::store(s.ws[5 * p + e], cells::widen(s.c[e]));
      if constexpr (!kProject) cells::store(s.ws[6 * p + e], cells::widen(s.h_prev[e]));
    }
    cells::store(s.c[e], a.c);
    if constexpr (!kProject) cells::store(s.h[e], a.h);
    cells::store(s.out[e], a.h);
  }

  // kProject: dh is the whole gradient into o * tanh(c) (the driver projected
  // dh + grad_out back through W_hr), so grad_out is not added here.
  template <bool kRelu, typename scalar_t>
  C10_HOST_DEVICE FASTRNN_INLINE static void backward(const BackwardStep<scalar_t>& s, int64_t b,
                                                      int64_t j) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t H = s.H;
    const int64_t p = s.plane;
    const int64_t e = b * H + j;
    const int64_t g = b * 4 * H + j;
    const acc_t dh =
        kProject ? cells::widen(s.dh[e]) : cells::widen(s.dh[e]) + cells::widen(s.grad_out[e]);
    const auto d = cells::lstm_backward<acc_t>(
        dh, cells::widen(s.dc[e]), cells::widen(s.ws[e]), cells::widen(s.ws[p + e]),
        cells::widen(s.ws[2 * p + e]), cells::widen(s.ws[3 * p + e]), cells::widen(s.ws[4 * p + e]),
        cells::widen(s.ws[5 * p + e]));
    cells::store(s.dgates_x[g], d.pre_i);
    cells::store(s.dgates_x[g + H], d.pre_f);
    cells::store(s.dgates_x[g + 2 * H], d.pre_g);
    cells::store(s.dgates_x[g + 3 * H], d.pre_o);
    cells::store(s.dc[e], d.c_prev);
  }
};
using LSTMCell = LSTMCellImpl<false>;
using LSTMProjCell = LSTMCellImpl<true>;  // torch.nn.LSTM with proj_size > 0

}  // namespace fastrnn
