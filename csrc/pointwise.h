#pragma once
// The fused pointwise pass of one time step: what every cell shares. Each
// cell's header in csrc/cells/ holds its math and its Cell struct, whose
// forward and backward, for ONE (batch row b, hidden unit j) element, load
// what the math needs from the step's buffers (laid out below), call it, and
// store the results. Host and device code share these functions: the CPU
// backend calls them in a parallel loop and a CUDA backend would call them
// from a kernel.
//
// Layouts (row-major; G = number of gates, H = hidden size, B = batch, N = total
// rows over all time steps, K = Cell::kSaved workspace planes; P = features of
// h: proj_size for LSTMProjCell, else H):
//   x_proj   [N, G*H]  W_ih x, all steps (this step's rows used)
//   bias     [G*H]     b_ih + b_hh, except GRU's b_hn (kept apart: the reset gate scales it)
//   h_proj   [B, G*H]  W_hh h_prev for this step (no bias)
//                      (x_proj and h_proj in acc_t = at::opmath_type<scalar_t>: the
//                      GEMMs' float sums, for float16 and bfloat16 not rounded to
//                      16 bits before the gates add them; scalar_t itself otherwise)
//   h        [B, P]    hidden state, double-buffered (h_prev -> h)
//   c        [B, H]    LSTM cell state, updated in place
//   out      [N, H]    hidden output of every step; for LSTMProjCell the
//                      unprojected o * tanh(c), which the driver then projects
//   ws       [K, N, H] workspace saved for backward; plane K-1 holds h_prev
//                      (in its first P columns)
//   dgates_x [N, G*H]  d loss / d x_proj (input side of the gates)
//   dgates_h [N, G*H]  d loss / d h_proj (hidden side); aliases dgates_x except for GRU

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>

#include <cstdint>

#include "cells/activations.h"  // FASTRNN_INLINE

namespace fastrnn {

// Buffers of one forward step. Row pointers already point at the step's first row.
template <typename scalar_t>
struct ForwardStep {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t* x_proj;     // [bs, G*H]
  const acc_t* h_proj;     // [bs, G*H]
  const scalar_t* bias;    // [G*H] folded biases (zeros without bias)
  const scalar_t* b_hn;    // [H] GRU's b_hn (scaled by the reset gate; zeros without bias)
  const scalar_t* h_prev;  // [B, P] state before the step (the GEMM's input)
  scalar_t* h;             // [B, P] state after the step, rows < bs written; never h_prev,
                           // which other threads' GEMM tiles may still be reading.
                           // Unused by LSTMProjCell (its h is out W_hr^T).
  scalar_t* c;             // [B, H] LSTM cell state, else nullptr; updated in place
  scalar_t* out;           // [bs, H] (LSTMProjCell: o * tanh(c), before the projection)
  scalar_t* ws;            // [K, N, H] at the step's first row; written when training
  int64_t plane;           // N * H, the stride between workspace planes
  int64_t H;
};

// Buffers of one backward step.
template <typename scalar_t>
struct BackwardStep {
  const scalar_t* grad_out;  // [bs, H]; unused by LSTMProjCell (the driver adds it to dh)
  scalar_t* dh;              // [B, H] gradient into the hidden state, in place
                             // (LSTMProjCell: into o * tanh(c), read only)
  scalar_t* dc;              // [B, H] gradient into the LSTM cell state, in place
  const scalar_t* ws;        // [K, N, H] at the step's first row
  scalar_t* dgates_x;        // [bs, G*H]
  scalar_t* dgates_h;        // [bs, G*H]
  int64_t plane;
  int64_t H;
};

// What each Cell struct (csrc/cells/) provides: kGates gates; kSaved
// workspace planes (the last one is h_prev); forward<kTraining, kRelu>:
// kTraining writes the workspace, kRelu is the RNN's relu instead of tanh
// (other cells ignore it). Compile-time flags keep the loops over j free of
// branches, so they vectorise.
// kDirectDh: backward writes a part of d h_prev that does not go through W_hh,
// so the recurrent gradient GEMM accumulates onto it (beta = 1).
// kProjected: h = out W_hr^T, which the driver computes after the pointwise
// pass (torch.nn.LSTM's proj_size); only LSTMProjCell.
// csrc/python_module.cpp hands kGates and kSaved to fastrnn/fake.py.

// Functors the backends launch over (b, j) in [0, bs) x [0, H).
template <class Cell, typename scalar_t, bool kTraining, bool kRelu>
struct ForwardFn {
  ForwardStep<scalar_t> step;
  C10_HOST_DEVICE FASTRNN_INLINE void operator()(int64_t b, int64_t j) const {
    Cell::template forward<kTraining, kRelu>(step, b, j);
  }
};

template <class Cell, typename scalar_t, bool kRelu>
struct BackwardFn {
  BackwardStep<scalar_t> step;
  C10_HOST_DEVICE FASTRNN_INLINE void operator()(int64_t b, int64_t j) const {
    Cell::template backward<kRelu>(step, b, j);
  }
};

}  // namespace fastrnn
