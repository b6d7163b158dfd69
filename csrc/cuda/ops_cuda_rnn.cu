// The RNN ops on the CUDA backend.

#include "register.h"

namespace fastrnn::cuda {

namespace {

void register_rnn(torch::Library& m) {
  m.impl("rnn_forward", &Ops::rnn_forward);
  m.impl("rnn_backward", &Ops::rnn_backward);
}

}  // namespace

FASTRNN_DEVICE_REGISTRATIONS(register_rnn)

}  // namespace fastrnn::cuda
