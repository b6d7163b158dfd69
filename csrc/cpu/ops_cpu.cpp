// CPU implementations of the ops declared in csrc/ops.cpp.

#include <torch/library.h>

#include "../ops_impl.h"
#include "backend.h"

namespace fastrnn {

using Ops = RNNOps<CPUBackend>;

namespace {

void register_ops(torch::Library& m) {
  m.impl("rnn_forward", &Ops::rnn_forward);
  m.impl("rnn_backward", &Ops::rnn_backward);
  m.impl("lstm_forward", &Ops::lstm_forward);
  m.impl("lstm_backward", &Ops::lstm_backward);
  m.impl("gru_forward", &Ops::gru_forward);
  m.impl("gru_backward", &Ops::gru_backward);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastrnn, CPU, m) { register_ops(m); }

// A CPU tensor of another layout among the arguments (a sparse hx, an mkldnn
// weight, a nested input) sends the call to that layout's dispatch key. The
// same kernels take it there, and their first check refuses it by argument
// name (ops_impl.h's dense()), where the dispatcher would only say that the
// op has no kernel for that backend. Quantized tensors are strided: their
// dtype is refused.
TORCH_LIBRARY_IMPL(fastrnn, SparseCPU, m) { register_ops(m); }
TORCH_LIBRARY_IMPL(fastrnn, SparseCsrCPU, m) { register_ops(m); }
TORCH_LIBRARY_IMPL(fastrnn, MkldnnCPU, m) { register_ops(m); }
TORCH_LIBRARY_IMPL(fastrnn, QuantizedCPU, m) { register_ops(m); }
TORCH_LIBRARY_IMPL(fastrnn, NestedTensorCPU, m) { register_ops(m); }

}  // namespace fastrnn
