// Every op's signature, in one place. Backends register implementations in
// their own files (csrc/cpu/ops_cpu.cpp); autograd and fake tensors are
// registered in fastrnn/ops.py.
//
// One call runs one layer in one direction. input is [T, B, I] (padded), or
// [N, I] packed with batch_sizes [T] (int64, CPU, non-increasing). reverse
// runs the sequence from its end. training keeps the workspace that the
// backward op needs; without it the workspace comes back empty.

#include <torch/library.h>

TORCH_LIBRARY(fastrnn, m) {
  m.def(
      "rnn_forward(Tensor input, Tensor hx, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
      "Tensor? b_hh, Tensor? batch_sizes, bool reverse, bool relu, bool training) "
      "-> (Tensor output, Tensor h_n, Tensor workspace)");
  m.def(
      "rnn_backward(Tensor grad_output, Tensor grad_h_n, Tensor input, Tensor w_ih, "
      "Tensor w_hh, Tensor? batch_sizes, bool reverse, bool relu, Tensor workspace) "
      "-> (Tensor grad_input, Tensor grad_hx, Tensor grad_w_ih, Tensor grad_w_hh, "
      "Tensor grad_b)");
  // w_hr [proj_size, hidden_size]: torch.nn.LSTM's projection, h = (o * tanh(c)) W_hr^T;
  // then hx, h_n and the output have proj_size features and w_hh proj_size columns.
  // Without it, grad_w_hr is an empty tensor.
  m.def(
      "lstm_forward(Tensor input, Tensor hx, Tensor cx, Tensor w_ih, Tensor w_hh, "
      "Tensor? b_ih, Tensor? b_hh, Tensor? w_hr, Tensor? batch_sizes, bool reverse, "
      "bool training) -> (Tensor output, Tensor h_n, Tensor c_n, Tensor workspace)");
  m.def(
      "lstm_backward(Tensor grad_output, Tensor grad_h_n, Tensor grad_c_n, Tensor input, "
      "Tensor w_ih, Tensor w_hh, Tensor? w_hr, Tensor? batch_sizes, bool reverse, "
      "Tensor workspace) -> (Tensor grad_input, Tensor grad_hx, Tensor grad_cx, "
      "Tensor grad_w_ih, Tensor grad_w_hh, Tensor grad_b, Tensor grad_w_hr)");
  m.def(
      "gru_forward(Tensor input, Tensor hx, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
      "Tensor? b_hh, Tensor? batch_sizes, bool reverse, bool training) "
      "-> (Tensor output, Tensor h_n, Tensor workspace)");
  m.def(
      "gru_backward(Tensor grad_output, Tensor grad_h_n, Tensor input, Tensor w_ih, "
      "Tensor w_hh, Tensor? batch_sizes, bool reverse, Tensor workspace) "
      "-> (Tensor grad_input, Tensor grad_hx, Tensor grad_w_ih, Tensor grad_w_hh, "
      "Tensor grad_b_ih, Tensor grad_b_hh)");
}
