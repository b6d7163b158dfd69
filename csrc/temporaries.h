#pragma once
// The temporaries of one op call that a backend may keep between calls
// (the Backend's temporary): buffers no output aliases, dead when the call returns.

namespace fastrnn {

enum class Scratch {
  kInputProjection,      // [chunk rows, G*H]  forward: x W_ih^T of a chunk of steps
  kRecurrentProjection,  // [B, G*H]  forward: h_prev W_hh^T of one step
  kStates,               // [2, B, P] forward: the hidden state, double-buffered
  kBias,                 // [G*H + H] forward: the folded biases, then GRU's b_hn
  kStepWeight,           // the weight of every step's GEMM, as step_weight lays it out
  kInputWeight,          // W_ih in step_weight's layout: the input projection, and grad_x
  kProjectionWeight,     // [H, P]    forward, LSTM with projection: W_hr^T
  kGatesGradX,           // [N, G*H]  backward: d loss / d x_proj
  kGatesGradH,           // [N, G*H]  backward: d loss / d h_proj (GRU only)
  kInputsAndStates,      // [rows, I+P] backward, per chunk: x and h_prev side by side (not GRU)
  kWeightGrad,           // [G*H, I+P] backward: grad_w_ih | grad_w_hh
  kBiasGrad,             // [2, G*H]  backward: the biases' gradients, summed in double
  kUnprojected,          // [B, H]    forward, LSTM with projection, eval: one step's o * tanh(c)
  kProjectedGrad,        // [N, P]    backward, LSTM with projection: d loss / d h of every step
  kUnprojectedGrad,  // [B, H]    backward, with projection: one step's d loss / d (o * tanh(c))
  kNarrowGemm,       // [m, n]   CPU: a GEMM's float sums, before they are rounded to 16 bits
  kTransposedA,  // [m, k]   CPU: A of a float GEMM given as A^T (the weight gradients), as rows
  kCount
};

}  // namespace fastrnn
