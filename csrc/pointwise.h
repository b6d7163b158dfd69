#pragma once
// The fused pointwise pass of one time step, per cell: for ONE (batch row b,
// hidden unit j) element, load what the cell math needs from the step's
// buffers, call the math of csrc/cells/, and store the results. Host and device
// code share these functions: the CPU backend calls them in a parallel loop and
// a CUDA backend would call them from a kernel.
//
// Layouts (row-major; G = number of gates, H = hidden size, B = batch, N = total
// rows over all time steps, K = Cell::kSaved workspace planes; P = features of
// h: proj_size for LSTMProjCell, else H):
//   x_proj   [N, G*H]  W_ih x, all steps (this step's rows used)
//   bias     [G*H]     b_ih + b_hh, except GRU's b_hn (kept apart: the reset gate scales it)
//   h_proj   [B, G*H]  W_hh h_prev for this step (no bias)
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

#include "cells/gru.h"
#include "cells/lstm.h"
#include "cells/rnn.h"

namespace fastrnn {

// Buffers of one forward step. Row pointers already point at the step's first row.
template <typename scalar_t>
struct ForwardStep {
  const scalar_t* x_proj;  // [bs, G*H]
  const scalar_t* h_proj;  // [bs, G*H]
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

// Each cell: kGates gates; kSaved workspace planes (the last one is h_prev);
// forward<kTraining, kRelu>: kTraining writes the workspace, kRelu is the RNN's
// relu instead of tanh (other cells ignore it). Compile-time flags keep the
// loops over j free of branches, so they vectorise.
// kDirectDh: backward writes a part of d h_prev that does not go through W_hh,
// so the recurrent gradient GEMM accumulates onto it (beta = 1).
// kProjected: h = out W_hr^T, which the driver computes after the pointwise
// pass (torch.nn.LSTM's proj_size); only LSTMProjCell.
struct RNNCell {
  static constexpr int kGates = 1;
  static constexpr int kSaved = 2;  // h, h_prev
  static constexpr bool kDirectDh = false;
  static constexpr bool kProjected = false;

  template <bool kTraining, bool kRelu, typename scalar_t>
  C10_HOST_DEVICE FASTRNN_INLINE static void forward(const ForwardStep<scalar_t>& s, int64_t b, int64_t j) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t e = b * s.H + j;
    const acc_t pre = acc_t(s.x_proj[e]) + acc_t(s.h_proj[e]) + acc_t(s.bias[j]);
    const scalar_t h = scalar_t(cells::rnn_forward<acc_t>(pre, kRelu));
    if constexpr (kTraining) {
      s.ws[e] = h;
      s.ws[s.plane + e] = s.h_prev[e];
    }
    s.h[e] = h;
    s.out[e] = h;
  }

  template <bool kRelu, typename scalar_t>
  C10_HOST_DEVICE FASTRNN_INLINE static void backward(const BackwardStep<scalar_t>& s, int64_t b, int64_t j) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t e = b * s.H + j;
    const acc_t dh = acc_t(s.dh[e]) + acc_t(s.grad_out[e]);
    s.dgates_x[e] = scalar_t(cells::rnn_backward<acc_t>(dh, acc_t(s.ws[e]), kRelu));
  }
};

// LSTM; kProject: with a projection (torch.nn.LSTM's proj_size P), h = (o *
// tanh(c)) W_hr^T, so h and h_prev are [B, P] and W_hh is [4H, P]. The
// pointwise pass is then the LSTM's up to o * tanh(c), written to out (when
// training, out is workspace plane 6 itself); the driver runs the projection
// GEMM (forward) and its transpose (backward) around it, and saves h_prev.
template <bool kProject>
struct LSTMCellImpl {
  static constexpr int kGates = 4;
  // i, f, g, o, c, c_prev, h_prev; with a projection o * tanh(c) before
  // h_prev, which then fills the plane's first P columns (zeros beyond)
  static constexpr int kSaved = kProject ? 8 : 7;
  static constexpr bool kDirectDh = false;
  static constexpr bool kProjected = kProject;

  template <bool kTraining, bool kRelu, typename scalar_t>
  C10_HOST_DEVICE FASTRNN_INLINE static void forward(const ForwardStep<scalar_t>& s, int64_t b, int64_t j) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t H = s.H;
    const int64_t e = b * H + j;
    const int64_t g = b * 4 * H + j;  // gate i of this element; f, g, o follow at +H
    const auto pre = [&](int64_t k) {  // gate k's pre-activation
      return acc_t(s.x_proj[g + k * H]) + acc_t(s.h_proj[g + k * H]) + acc_t(s.bias[j + k * H]);
    };
    const auto a = cells::lstm_forward<acc_t>(pre(0), pre(1), pre(2), pre(3), acc_t(s.c[e]));
    if constexpr (kTraining) {
      const int64_t p = s.plane;
      s.ws[e] = scalar_t(a.i);
      s.ws[p + e] = scalar_t(a.f);
      s.ws[2 * p + e] = scalar_t(a.g);
      s.ws[3 * p + e] = scalar_t(a.o);
      s.ws[4 * p + e] = scalar_t(a.c);
      s.ws[5 * p + e] = s.c[e];
      if constexpr (!kProject) s.ws[6 * p + e] = s.h_prev[e];
    }
    s.c[e] = scalar_t(a.c);
    if constexpr (!kProject) s.h[e] = scalar_t(a.h);
    s.out[e] = scalar_t(a.h);
  }

  // kProject: dh is the whole gradient into o * tanh(c) (the driver projected
  // dh + grad_out back through W_hr), so grad_out is not added here.
  template <bool kRelu, typename scalar_t>
  C10_HOST_DEVICE FASTRNN_INLINE static void backward(const BackwardStep<scalar_t>& s, int64_t b, int64_t j) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t H = s.H;
    const int64_t p = s.plane;
    const int64_t e = b * H + j;
    const int64_t g = b * 4 * H + j;
    const acc_t dh = kProject ? acc_t(s.dh[e]) : acc_t(s.dh[e]) + acc_t(s.grad_out[e]);
    const auto d = cells::lstm_backward<acc_t>(
        dh, acc_t(s.dc[e]),
        acc_t(s.ws[e]), acc_t(s.ws[p + e]), acc_t(s.ws[2 * p + e]),
        acc_t(s.ws[3 * p + e]), acc_t(s.ws[4 * p + e]), acc_t(s.ws[5 * p + e]));
    s.dgates_x[g] = scalar_t(d.pre_i);
    s.dgates_x[g + H] = scalar_t(d.pre_f);
    s.dgates_x[g + 2 * H] = scalar_t(d.pre_g);
    s.dgates_x[g + 3 * H] = scalar_t(d.pre_o);
    s.dc[e] = scalar_t(d.c_prev);
  }
};
using LSTMCell = LSTMCellImpl<false>;
using LSTMProjCell = LSTMCellImpl<true>;  // torch.nn.LSTM with proj_size > 0

struct GRUCell {
  static constexpr int kGates = 3;
  static constexpr int kSaved = 5;  // r, z, n, h_n (= W_hn h_prev + b_hn), h_prev
  static constexpr bool kDirectDh = true;
  static constexpr bool kProjected = false;

  template <bool kTraining, bool kRelu, typename scalar_t>
  C10_HOST_DEVICE FASTRNN_INLINE static void forward(const ForwardStep<scalar_t>& s, int64_t b, int64_t j) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t H = s.H;
    const int64_t e = b * H + j;
    const int64_t g = b * 3 * H + j;  // gate r of this element; z, n follow at +H
    const acc_t h_n = acc_t(s.h_proj[g + 2 * H]) + acc_t(s.b_hn[j]);
    const auto a = cells::gru_forward<acc_t>(
        acc_t(s.x_proj[g]) + acc_t(s.bias[j]), acc_t(s.x_proj[g + H]) + acc_t(s.bias[j + H]),
        acc_t(s.x_proj[g + 2 * H]) + acc_t(s.bias[j + 2 * H]),
        acc_t(s.h_proj[g]), acc_t(s.h_proj[g + H]), h_n, acc_t(s.h_prev[e]));
    if constexpr (kTraining) {
      const int64_t p = s.plane;
      s.ws[e] = scalar_t(a.r);
      s.ws[p + e] = scalar_t(a.z);
      s.ws[2 * p + e] = scalar_t(a.n);
      s.ws[3 * p + e] = scalar_t(h_n);
      s.ws[4 * p + e] = s.h_prev[e];
    }
    s.h[e] = scalar_t(a.h);
    s.out[e] = scalar_t(a.h);
  }

  template <bool kRelu, typename scalar_t>
  C10_HOST_DEVICE FASTRNN_INLINE static void backward(const BackwardStep<scalar_t>& s, int64_t b, int64_t j) {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t H = s.H;
    const int64_t p = s.plane;
    const int64_t e = b * H + j;
    const int64_t g = b * 3 * H + j;
    const auto d = cells::gru_backward<acc_t>(
        acc_t(s.dh[e]) + acc_t(s.grad_out[e]), acc_t(s.ws[e]), acc_t(s.ws[p + e]),
        acc_t(s.ws[2 * p + e]), acc_t(s.ws[3 * p + e]), acc_t(s.ws[4 * p + e]));
    s.dgates_x[g] = scalar_t(d.pre_r);
    s.dgates_x[g + H] = scalar_t(d.pre_z);
    s.dgates_x[g + 2 * H] = scalar_t(d.x_n);
    s.dgates_h[g] = scalar_t(d.pre_r);
    s.dgates_h[g + H] = scalar_t(d.pre_z);
    s.dgates_h[g + 2 * H] = scalar_t(d.h_n);
    s.dh[e] = scalar_t(d.h_prev);
  }
};

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
