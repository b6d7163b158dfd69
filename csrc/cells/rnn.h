#pragma once
// Elman RNN cell, one (batch, hidden) element:
//   h = act(x_proj + h_proj)        act = tanh or relu
// where x_proj = W_ih x + b_ih and h_proj = W_hh h_prev + b_hh.

#include <ATen/OpMathType.h>

#include "../pointwise.h"
#include "activations.h"
#include "storage.h"

namespace fastrnn::cells {

template <typename acc_t>
C10_HOST_DEVICE FASTRNN_INLINE acc_t rnn_forward(acc_t pre, bool relu_act) {
  return relu_act ? relu(pre) : tanh(pre);
}

// Returns d loss / d pre, given dh = d loss / d h and the forward's output h.
template <typename acc_t>
C10_HOST_DEVICE FASTRNN_INLINE acc_t rnn_backward(acc_t dh, acc_t h, bool relu_act) {
  return relu_act ? relu_backward(dh, h) : dh * tanh_grad(h);
}

}  // namespace fastrnn::cells

namespace fastrnn {

// The RNN's pointwise pass on the step buffers of csrc/pointwise.h.
struct RNNCell {
  static constexpr int kGates = 1;
  static constexpr int kSaved = 2;  // h, h_prev
  static constexpr bool kDirectDh = false;
  static constexpr bool kProjected = false;

  template <bool kTraining, bool kRelu, typename scalar_t>
  C10_HOST_DEVICE FASTRNN_INLINE static void forward(const ForwardStep<scalar_t>& s, int64_t b,
                                                     int64_t j) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t e = b * s.H + j;
    const acc_t pre =
        cells::widen(s.x_proj[e]) + cells::widen(s.h_proj[e]) + cells::widen(s.bias[j]);
    const acc_t h = cells::rnn_forward<acc_t>(pre, kRelu);
    if constexpr (kTraining) {
      cells::store(s.ws[e], h);
      cells::store(s.ws[s.plane + e], cells::widen(s.h_prev[e]));
    }
    cells::store(s.h[e], h);
    cells::store(s.out[e], h);
  }

  template <bool kRelu, typename scalar_t>
  C10_HOST_DEVICE FASTRNN_INLINE static void backward(const BackwardStep<scalar_t>& s, int64_t b,
                                                      int64_t j) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t e = b * s.H + j;
    const acc_t dh = cells::widen(s.dh[e]) + cells::widen(s.grad_out[e]);
    cells::store(s.dgates_x[e], cells::rnn_backward<acc_t>(dh, cells::widen(s.ws[e]), kRelu));
  }
};

}  // namespace fastrnn
