#pragma once
// LSTM cell, one (batch, hidden) element, torch.nn's gate order i, f, g, o:
//   i = sigmoid(pre_i)  f = sigmoid(pre_f)  g = tanh(pre_g)  o = sigmoid(pre_o)
//   c = f * c_prev + i * g
//   h = o * tanh(c)
// where pre_* = (W_ih x + b_ih + W_hh h_prev + b_hh) for that gate.

#include "activations.h"

namespace fastrnn::cells {

template <typename acc_t>
struct LSTMActivations {
  acc_t i, f, g, o;  // gate outputs, after their nonlinearity
  acc_t c;           // new cell state
  acc_t h;           // new hidden state
};

template <typename acc_t>
C10_HOST_DEVICE FASTRNN_INLINE LSTMActivations<acc_t> lstm_forward(
    acc_t pre_i, acc_t pre_f, acc_t pre_g, acc_t pre_o, acc_t c_prev) {
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
C10_HOST_DEVICE FASTRNN_INLINE LSTMGrads<acc_t> lstm_backward(
    acc_t dh, acc_t dc, acc_t i, acc_t f, acc_t g, acc_t o, acc_t c,
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
