#pragma once
// The temporaries of one op call that a backend may keep between calls
// (Backend::temporary): buffers no output aliases, dead when the call returns.

namespace fastrnn {

enum class Scratch {
  kInputProjection,      // [N, G*H]  forward: x W_ih^T
  kRecurrentProjection,  // [B, G*H]  forward: h_prev W_hh^T of one step
  kGatesGradX,           // [N, G*H]  backward: d loss / d x_proj
  kGatesGradH,           // [N, G*H]  backward: d loss / d h_proj (GRU only)
  kInputsAndStates,      // [rows, I+P] backward, a chunk of steps: x and h_prev side by side (not GRU)
  kUnprojected,          // [B, H]    forward, LSTM with projection, not training: o * tanh(c) of one step
  kProjectedGrad,        // [N, P]    backward, LSTM with projection: d loss / d h of every step
  kUnprojectedGrad,      // [B, H]    backward, LSTM with projection: d loss / d (o * tanh(c)) of one step
  kCount
};

}  // namespace fastrnn
