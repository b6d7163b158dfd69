// CPU implementations of the ops declared in csrc/ops.cpp.

#include <torch/library.h>

#include "../ops_impl.h"
#include "backend.h"

namespace fastrnn {

using Ops = RNNOps<CPUBackend>;

TORCH_LIBRARY_IMPL(fastrnn, CPU, m) {
  m.impl("rnn_forward", &Ops::rnn_forward);
  m.impl("rnn_backward", &Ops::rnn_backward);
  m.impl("lstm_forward", &Ops::lstm_forward);
  m.impl("lstm_backward", &Ops::lstm_backward);
  m.impl("gru_forward", &Ops::gru_forward);
  m.impl("gru_backward", &Ops::gru_backward);
}

}  // namespace fastrnn
