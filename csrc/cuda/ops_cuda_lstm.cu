// The LSTM ops on the CUDA backend.

#include "register.h"

namespace fastrnn::cuda {

namespace {

void register_lstm(torch::Library& m) {
  m.impl("lstm_forward", &Ops::lstm_forward);
  m.impl("lstm_backward", &Ops::lstm_backward);
}

}  // namespace

FASTRNN_DEVICE_REGISTRATIONS(register_lstm)

}  // namespace fastrnn::cuda
