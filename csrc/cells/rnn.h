#pragma once
// Elman RNN cell, one (batch, hidden) element:
//   h = act(x_proj + h_proj)        act = tanh or relu
// where x_proj = W_ih x + b_ih and h_proj = W_hh h_prev + b_hh.

#include "activations.h"

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
