// The GRU ops on the CUDA backend.

#include "register.h"

namespace fastrnn::cuda {

namespace {

void register_gru(torch::Library& m) {
  m.impl("gru_forward", &Ops::gru_forward);
  m.impl("gru_backward", &Ops::gru_backward);
}

}  // namespace

FASTRNN_DEVICE_REGISTRATIONS(register_gru)

}  // namespace fastrnn::cuda
