#pragma once
// Scalar activations and their derivatives, usable from host and device code.
// Derivatives are written in terms of the activation's output, which is what
// the forward pass saves.

#include <c10/macros/Macros.h>
#include <cmath>

namespace fastrnn::cells {

template <typename acc_t>
C10_HOST_DEVICE inline acc_t sigmoid(acc_t x) {
  return acc_t(1) / (acc_t(1) + ::exp(-x));
}

template <typename acc_t>
C10_HOST_DEVICE inline acc_t tanh(acc_t x) {
  return ::tanh(x);
}

template <typename acc_t>
C10_HOST_DEVICE inline acc_t relu(acc_t x) {
  return x > acc_t(0) ? x : acc_t(0);
}

// d sigmoid(x) / dx, given y = sigmoid(x)
template <typename acc_t>
C10_HOST_DEVICE inline acc_t sigmoid_grad(acc_t y) {
  return y * (acc_t(1) - y);
}

// d tanh(x) / dx, given y = tanh(x)
template <typename acc_t>
C10_HOST_DEVICE inline acc_t tanh_grad(acc_t y) {
  return acc_t(1) - y * y;
}

// d relu(x) / dx, given y = relu(x); 0 at x = 0, as torch's threshold_backward.
template <typename acc_t>
C10_HOST_DEVICE inline acc_t relu_grad(acc_t y) {
  return y > acc_t(0) ? acc_t(1) : acc_t(0);
}

}  // namespace fastrnn::cells
