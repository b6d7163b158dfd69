#pragma once
// The recurrence driver of one layer in one direction, written once for every
// cell and every backend. Backend supplies what differs between devices: a
// row-major GEMM on raw pointers (gemm), one step's GEMM followed by its
// pointwise pass over (b, j) in [0, rows) x [0, H) (gemm_pointwise, which a
// backend may fuse), the layout of a step's weight (step_weight), the
// workspace saved for backward (workspace) and temporaries it may keep
// between calls (temporary).
// Everything else outside the time loop uses ATen ops.
//
// Sequences are packed, as in torch.nn.utils.rnn.PackedSequence: time step t
// owns rows [offset_t, offset_t + batch_t) of the [N, ...] buffers, and
// batch_t never grows with t, so the sequences alive at step t are rows
// 0..batch_t-1 of the [B, H] state. A padded [T, B, I] input is the special
// case batch_t = B. The state rows of finished sequences are not updated
// again (and are carried into the other buffer of the double-buffered h), so
// h_n holds each sequence's state after its own last step; in reverse, a
// sequence's rows keep h0 until its last element is reached.
//
// With a projection (Cell::kProjected, torch.nn.LSTM's proj_size P), h is
// [B, P] = (o * tanh(c)) W_hr^T: each step's pointwise pass writes o * tanh(c)
// [B, H], then a GEMM projects it into the step's output rows and the next h.
// Backward runs the transposes: d(o * tanh(c)) = (dh + grad_out) W_hr, fused
// with the pointwise pass, and grad_w_hr is one GEMM over all rows after the loop.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "cells/gru.h"  // GRUCell: its b_hn is not folded
#include "pointwise.h"
#include "static_switch.h"
#include "temporaries.h"

namespace fastrnn {

// The geometry of one call: T steps, B sequences, N rows in all, input size
// I, hidden size H, and P, the features of h: proj_size with a projection
// (w_hr), else H.
struct Shape {
  int64_t T, B, N, I, H, P;
};

struct Step {
  int64_t offset;  // first row of this time step in the packed [N, ...] buffers
  int64_t batch;   // number of sequences alive at this step
};

// The steps in the order the forward pass runs them (reversed for reverse).
// batch_sizes: undefined for a padded input of T steps of B rows, otherwise
// the packed sequence's batch sizes as ops_impl.h checked them: a contiguous
// int64 CPU tensor (read by raw pointer), non-increasing, zeros allowed.
std::vector<Step> make_schedule(const at::Tensor& batch_sizes, int64_t T, int64_t B, bool reverse);

// The pointwise pass of a gemm_pointwise call that has none.
struct NoPointwise {
  C10_HOST_DEVICE void operator()(int64_t, int64_t) const {}
};

template <class Cell, class Backend, typename scalar_t>
struct Recurrence {
  static constexpr int G = Cell::kGates;
  static constexpr int K = Cell::kSaved;

  // bias[G*H]: every bias that can be added to the input projection: b_ih,
  // and b_hh except GRU's b_hn, which the reset gate scales; b_hn[H]: that
  // one (GRU). Zeros where a bias is absent (nullptr).
  static void fold_biases(const scalar_t* b_ih, const scalar_t* b_hh, int64_t H, scalar_t* bias,
                          scalar_t* b_hn) {
    const int64_t GH = G * H;
    const int64_t folded = std::is_same_v<Cell, GRUCell> ? 2 * H : GH;
    for (int64_t j = 0; j < GH; ++j) {
      bias[j] = (b_ih ? b_ih[j] : scalar_t(0)) + (b_hh && j < folded ? b_hh[j] : scalar_t(0));
    }
    for (int64_t j = 0; j < H; ++j) b_hn[j] = b_hh && folded < GH ? b_hh[folded + j] : scalar_t(0);
  }

  // A new contiguous tensor holding t's values (as clone, without ATen's copy).
  static at::Tensor copy_of(const at::Tensor& t) {
    const at::Tensor src = t.contiguous();
    at::Tensor dst = at::empty(src.sizes(), src.options());
    std::copy(src.const_data_ptr<scalar_t>(), src.const_data_ptr<scalar_t>() + src.numel(),
              dst.mutable_data_ptr<scalar_t>());
    return dst;
  }

  // The input projection runs in chunks of consecutive steps, each chunk just
  // before the steps that read it, so that the pointwise passes find it in
  // cache: one GEMM over all N rows sends it to memory and back (26 MB for an
  // LSTM at batch 64, hidden 256, 100 steps; timings in
  // benchmarks/README.md, "Measurements behind the code's choices").
  // A chunk has at least kChunkRows rows (one GEMM that size runs at full
  // speed), and the last one takes a remainder smaller than that: at most
  // 2 * kChunkRows + B rows.
  static constexpr int64_t kChunkRows = 512;

  // Consecutive steps' rows are contiguous (offsets run monotonically through
  // the steps, up or down), so a chunk's rows are one block of x.
  struct Chunk {
    size_t end = 0;         // one past its last step (in the order the steps run)
    int64_t row0 = 0;       // its first row
    int64_t rows = 0;
    int64_t rows_left = 0;  // rows of the steps after it
  };

  // The chunk that starts at steps[first]; rows_left: the rows of steps[first] and after.
  static Chunk next_chunk(const std::vector<Step>& steps, size_t first, int64_t rows_left) {
    Chunk c;
    c.end = first;
    c.row0 = steps[first].offset;
    while (c.end < steps.size() && (c.rows < kChunkRows || rows_left - c.rows < kChunkRows)) {
      const Step& step = steps[c.end++];
      c.row0 = std::min(c.row0, step.offset);
      c.rows += step.batch;
    }
    c.rows_left = rows_left - c.rows;
    return c;
  }

  // x_proj[0:rows] = x[row0:row0 + rows] W_ih^T, x_proj: [rows, G*H], with
  // W_ih^T as step_weight laid it out. The biases are added in the pointwise
  // pass, which saves a pass over x_proj.
  template <class StepWeight>
  static void input_projection(const scalar_t* x, int64_t I, const StepWeight& w_in, int64_t GH,
                               int64_t row0, int64_t rows, scalar_t* x_proj) {
    Backend::gemm_pointwise(rows, GH, 1, I, x + row0 * I, I, w_in, false, x_proj, GH, 0,
                            NoPointwise{});
  }

  // Every tensor argument contiguous. x: the input, [N, I] rows (any shape
  // of N * I elements); h0: [B, P]; c0: [B, H] (undefined unless LSTM);
  // w_ih: [G*H, I]; w_hh: [G*H, P]; b_ih, b_hh: [G*H] or undefined; w_hr:
  // [P, H] (Cell::kProjected only, else undefined). P = H without projection.
  // Returns the output (out_shape, N * P elements), h_n [B, P], c_n [B, H]
  // (undefined unless LSTM) and the workspace [K, N, H] (empty when not training).
  static std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> forward(
      const std::vector<Step>& steps, const Shape& d, const at::Tensor& x,
      at::IntArrayRef out_shape, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_ih,
      const at::Tensor& w_hh, const at::Tensor& b_ih, const at::Tensor& b_hh,
      const at::Tensor& w_hr, bool relu, bool training) {
    const int64_t N = d.N, I = d.I, H = d.H, P = d.P, B = d.B;
    const at::TensorOptions options = x.options();

    // [chunk rows, G*H] the input projection of the current chunk of steps
    scalar_t* x_proj = Backend::template temporary<scalar_t>(
        Scratch::kInputProjection, std::min(N, 2 * kChunkRows + B) * G * H);
    // [G*H] the folded biases, then [H] GRU's b_hn
    scalar_t* bias = Backend::template temporary<scalar_t>(Scratch::kBias, G * H + H);
    fold_biases(b_ih.defined() ? b_ih.const_data_ptr<scalar_t>() : nullptr,
                b_hh.defined() ? b_hh.const_data_ptr<scalar_t>() : nullptr, H, bias, bias + G * H);
    // W_hh^T [P, G*H], transposed out of W_hh
    const auto w_step = Backend::template step_weight<scalar_t>(
        Scratch::kStepWeight, w_hh.const_data_ptr<scalar_t>(), true, P, H, G, B);
    // W_ih^T [I, G*H] in panels too: the input projection runs on brgemm over
    // them, as the steps do, faster than on MKL's sgemm (see benchmarks/README.md)
    const auto w_in = Backend::template step_weight<scalar_t>(Scratch::kInputWeight,
                                                              w_ih.const_data_ptr<scalar_t>(), true,
                                                              I, G * H, 1, std::min(N, kChunkRows));
    // [2, B, P] the hidden state, double-buffered: a step reads one buffer
    // (its GEMM's input) and writes the other. Both start as h0.
    scalar_t* cur = Backend::template temporary<scalar_t>(Scratch::kStates, 2 * B * P);
    scalar_t* nxt = cur + B * P;
    std::copy(h0.const_data_ptr<scalar_t>(), h0.const_data_ptr<scalar_t>() + B * P, cur);
    std::copy(cur, cur + B * P, nxt);
    at::Tensor c = c0.defined() ? copy_of(c0) : c0;                    // [B, H]
    at::Tensor out = at::empty(out_shape, options);                     // [N, P]
    at::Tensor ws = Backend::workspace({training ? K : 0, N, H}, options);  // [K, N, H]
    scalar_t* h_proj =                                                  // [B, G*H]
        Backend::template temporary<scalar_t>(Scratch::kRecurrentProjection, B * G * H);
    // Projection only: W_hr^T [H, P]; o * tanh(c) of one step [B, H] (when
    // training it goes to workspace plane K-2 instead); h_prev is saved in the
    // first P columns of plane K-1, the others are zeroed.
    scalar_t* w_hr_t = nullptr;
    scalar_t* unprojected = nullptr;
    if constexpr (Cell::kProjected) {
      w_hr_t = Backend::template temporary<scalar_t>(Scratch::kProjectionWeight, H * P);
      const scalar_t* w = w_hr.const_data_ptr<scalar_t>();
      for (int64_t p = 0; p < P; ++p) {
        for (int64_t j = 0; j < H; ++j) w_hr_t[j * P + p] = w[p * H + j];
      }
      if (training) {
        scalar_t* saved = ws.mutable_data_ptr<scalar_t>() + (K - 1) * N * H;
        for (int64_t r = 0; r < N; ++r)
          std::fill(saved + r * H + P, saved + (r + 1) * H, scalar_t(0));
      } else {
        unprojected = Backend::template temporary<scalar_t>(Scratch::kUnprojected, B * H);
      }
    }

    ForwardStep<scalar_t> s{};
    s.bias = bias;
    s.b_hn = bias + G * H;
    s.c = c.defined() ? c.mutable_data_ptr<scalar_t>() : nullptr;
    s.h_proj = h_proj;
    s.plane = N * H;
    s.H = H;
    const scalar_t* x_rows = x.const_data_ptr<scalar_t>();
    scalar_t* out_rows = out.mutable_data_ptr<scalar_t>();
    scalar_t* ws_rows = ws.mutable_data_ptr<scalar_t>();
    int64_t prev_batch = B;
    bool_switch(training, [&](auto kTraining) {
      bool_switch(relu, [&](auto kRelu) {
        Chunk chunk{0, 0, 0, N};  // the chunk of the input projection that x_proj holds
        for (size_t t = 0; t < steps.size(); ++t) {
          const Step& step = steps[t];
          if (t == chunk.end) {
            chunk = next_chunk(steps, t, chunk.rows_left);
            input_projection(x_rows, I, w_in, G * H, chunk.row0, chunk.rows, x_proj);
          }
          // Sequences that ended at the previous step keep their final state in
          // both buffers (only when the batch shrinks, as it does going forwards).
          if (step.batch < prev_batch) {
            std::copy(cur + step.batch * P, cur + prev_batch * P, nxt + step.batch * P);
          }
          prev_batch = step.batch;
          s.h_prev = cur;
          s.h = nxt;
          s.x_proj = x_proj + (step.offset - chunk.row0) * G * H;
          s.ws = ws_rows + (kTraining ? step.offset * H : 0);
          if constexpr (Cell::kProjected) {  // o * tanh(c) [batch, H], projected below
            s.out = kTraining ? s.ws + (K - 2) * s.plane : unprojected;
          } else {
            s.out = out_rows + step.offset * H;
          }
          // h_proj[0:batch] = h[0:batch] W_hh^T, then the gates, per block of hidden units
          Backend::gemm_pointwise(step.batch, H, G, P, s.h_prev, P, w_step, false, h_proj, G * H,
                                  step.batch, ForwardFn<Cell, scalar_t, kTraining, kRelu>{s});
          if constexpr (Cell::kProjected) {
            // output rows = (o * tanh(c)) W_hr^T [batch, P], the next step's h
            scalar_t* h = out_rows + step.offset * P;
            Backend::gemm(false, false, step.batch, P, H, scalar_t(1), s.out, H, w_hr_t, P,
                          scalar_t(0), h, P);
            std::copy(h, h + step.batch * P, nxt);
            if constexpr (kTraining) {
              for (int64_t b = 0; b < step.batch; ++b) {
                std::copy(cur + b * P, cur + (b + 1) * P, s.ws + (K - 1) * s.plane + b * H);
              }
            }
          }
          std::swap(cur, nxt);
        }
      });
    });
    // the buffer the last step wrote (cur after the swap)
    at::Tensor h_n = at::empty({B, P}, options);
    std::copy(cur, cur + B * P, h_n.mutable_data_ptr<scalar_t>());
    return {out, h_n, c, ws};
  }

  // Every tensor argument contiguous. grad_out: [N, P]; grad_h_n: [B, P];
  // grad_c_n: [B, H] (undefined unless LSTM); x: [N, I] rows, input_shape its
  // shape; w_hr: [P, H] (Cell::kProjected only, else undefined); ws: [K, N, H].
  // Returns grad_x (input_shape), grad_h0 [B, P], grad_c0 [B, H], grad_w_ih,
  // grad_w_hh, grad_b_ih [G*H] (the gradient of either bias unless GRU),
  // grad_b_hh [G*H] (GRU only, else undefined), grad_w_hr [P, H] (undefined
  // without projection).
  static std::vector<at::Tensor> backward(const std::vector<Step>& steps, const Shape& d,
                                          const at::Tensor& grad_out, const at::Tensor& grad_h_n,
                                          const at::Tensor& grad_c_n, const at::Tensor& x,
                                          at::IntArrayRef input_shape, const at::Tensor& w_ih,
                                          const at::Tensor& w_hh, const at::Tensor& w_hr,
                                          const at::Tensor& ws, bool relu) {
    const int64_t N = d.N, I = d.I, H = d.H, P = d.P, B = d.B;
    const at::TensorOptions options = x.options();

    at::Tensor dh = copy_of(grad_h_n);                            // [B, P] becomes grad_h0
    at::Tensor dc = grad_c_n.defined() ? copy_of(grad_c_n) : grad_c_n;  // [B, H]
    scalar_t* dgates_x =                                          // [N, G*H]
        Backend::template temporary<scalar_t>(Scratch::kGatesGradX, N * G * H);
    scalar_t* dgates_h =                                          // [N, G*H]
        Cell::kDirectDh ? Backend::template temporary<scalar_t>(Scratch::kGatesGradH, N * G * H)
                        : dgates_x;
    // Projection only: dh + grad_out of every step [N, P] (grad_w_hr's GEMM
    // input), and one step's (dh + grad_out) W_hr [B, H], the pointwise pass's dh.
    scalar_t* dh_total = nullptr;
    scalar_t* dh_unprojected = nullptr;
    if constexpr (Cell::kProjected) {
      dh_total = Backend::template temporary<scalar_t>(Scratch::kProjectedGrad, N * P);
      dh_unprojected = Backend::template temporary<scalar_t>(Scratch::kUnprojectedGrad, B * H);
    }

    BackwardStep<scalar_t> s{};
    s.dh = Cell::kProjected ? dh_unprojected : dh.mutable_data_ptr<scalar_t>();
    s.dc = dc.defined() ? dc.mutable_data_ptr<scalar_t>() : nullptr;
    s.plane = N * H;
    s.H = H;
    // The weight of the GEMM fused with each step's pointwise pass: W_hh
    // [G*H, H], or with a projection W_hr [P, H] (and W_hh [G*H, P] apart).
    const at::Tensor& w_fused = Cell::kProjected ? w_hr : w_hh;
    const auto w_step = Backend::template step_weight<scalar_t>(
        Scratch::kStepWeight, w_fused.const_data_ptr<scalar_t>(), false, w_fused.size(0), H, 1, B);
    const scalar_t* w_hh_p = w_hh.const_data_ptr<scalar_t>();
    at::Tensor grad_x = at::empty(input_shape, options);                    // [N, I]
    // [G*H, I + P]: grad_w_ih, then grad_w_hh, in one GEMM where both take the
    // same gate gradients (every cell but GRU): two GEMMs would each pack the
    // gate gradients, one of I + P columns packs them once (see benchmarks/README.md).
    scalar_t* grad_w = Backend::template temporary<scalar_t>(Scratch::kWeightGrad, G * H * (I + P));
    // [2, G*H] the biases' gradients, b_ih's then (GRU) b_hh's, summed in
    // double: rounding the sum over N rows to scalar_t once
    double* grad_b = Backend::template temporary<double>(Scratch::kBiasGrad, 2 * G * H);
    std::fill(grad_b, grad_b + 2 * G * H, 0.0);
    // [chunk rows, I + P] a chunk's x and h_prev side by side, the merged GEMM's input
    scalar_t* inputs =
        Cell::kDirectDh ? nullptr
                        : Backend::template temporary<scalar_t>(
                              Scratch::kInputsAndStates, std::min(N, 2 * kChunkRows + B) * (I + P));
    // The gradients that need whole steps run per chunk of steps, as soon as
    // the chunk's pointwise passes have written its gates' gradients, which
    // are then still in cache: over all N rows after the loop they went to
    // memory and were read back three times (13 MB for an LSTM at batch 64,
    // hidden 256, 50 steps).
    const std::vector<Step> order(steps.rbegin(), steps.rend());  // the backward's order
    const scalar_t* x_p = x.const_data_ptr<scalar_t>();
    const scalar_t* ws_p = ws.const_data_ptr<scalar_t>();
    const scalar_t* grad_out_p = grad_out.const_data_ptr<scalar_t>();
    scalar_t* grad_x_p = grad_x.mutable_data_ptr<scalar_t>();
    const scalar_t* h_prev = ws_p + (K - 1) * N * H;  // [N, P], row stride H
    bool first_chunk = true;
    // W_ih [G*H, I] in panels, for grad_x = dgates_x W_ih (as the input projection)
    const auto w_gx = Backend::template step_weight<scalar_t>(
        Scratch::kInputWeight, w_ih.const_data_ptr<scalar_t>(), false, G * H, I, 1,
        std::min(N, kChunkRows));
    const auto chunk_gradients = [&](const Chunk& chunk) {
      const int64_t r0 = chunk.row0, rows = chunk.rows;
      const scalar_t beta = first_chunk ? scalar_t(0) : scalar_t(1);
      first_chunk = false;
      const scalar_t* dx = dgates_x + r0 * G * H;
      const scalar_t* x_rows = x_p + r0 * I;
      // grad_x[rows] = dgates_x[rows] W_ih
      Backend::gemm_pointwise(rows, I, 1, G * H, dx, G * H, w_gx, false, grad_x_p + r0 * I, I, 0,
                              NoPointwise{});
      if constexpr (Cell::kDirectDh) {
        // grad_w_ih (+)= dgates_x[rows]^T x[rows]; grad_w_hh (+)= dgates_h[rows]^T h_prev[rows]
        Backend::gemm(true, false, G * H, I, rows, scalar_t(1), dx, G * H, x_rows, I, beta, grad_w,
                      I + P);
        Backend::gemm(true, false, G * H, P, rows, scalar_t(1), dgates_h + r0 * G * H, G * H,
                      h_prev + r0 * H, H, beta, grad_w + I, I + P);
        column_sums(dgates_h + r0 * G * H, rows, G * H, grad_b + G * H);
      } else {
        // [grad_w_ih | grad_w_hh] (+)= dgates[rows]^T [x[rows] | h_prev[rows]]
        for (int64_t r = 0; r < rows; ++r) {
          std::copy(x_rows + r * I, x_rows + (r + 1) * I, inputs + r * (I + P));
          std::copy(h_prev + (r0 + r) * H, h_prev + (r0 + r) * H + P, inputs + r * (I + P) + I);
        }
        Backend::gemm(true, false, G * H, I + P, rows, scalar_t(1), dx, G * H, inputs, I + P, beta,
                      grad_w, I + P);
      }
      column_sums(dx, rows, G * H, grad_b);
    };
    // Steps in reverse order of the forward. Each step's recurrent gradient
    // GEMM, dh[0:batch] (+)= dgates_h[its rows] W_hh, runs fused with the
    // pointwise pass of the step after it, per block of hidden units: that
    // pass reads only its own units' dh. With a projection, the pass needs all
    // of dh (to project it back through W_hr), so that GEMM runs on its own and
    // the projection's GEMM is the one fused with the pass.
    Chunk chunk{0, 0, 0, N};  // the chunk of steps whose pointwise passes are running
    int64_t gemm_rows = 0;  // the previous step's rows; none before the first pass
    scalar_t* dh_p = dh.mutable_data_ptr<scalar_t>();
    bool_switch(relu, [&](auto kRelu) {
      for (size_t t = 0; t < order.size(); ++t) {
        const Step& step = order[t];
        if (t == chunk.end) chunk = next_chunk(order, t, chunk.rows_left);
        const scalar_t* gemm_a = s.dgates_h;  // the previous step's dgates_h rows
        s.grad_out = grad_out_p + step.offset * P;
        s.ws = ws_p + step.offset * H;
        s.dgates_x = dgates_x + step.offset * G * H;
        s.dgates_h = dgates_h + step.offset * G * H;
        const BackwardFn<Cell, scalar_t, kRelu> pointwise{s};
        if constexpr (Cell::kProjected) {
          if (gemm_rows > 0) {
            Backend::gemm(false, false, gemm_rows, P, G * H, scalar_t(1), gemm_a, G * H, w_hh_p, P,
                          scalar_t(0), dh_p, P);
          }
          scalar_t* total = dh_total + step.offset * P;
          for (int64_t e = 0; e < step.batch * P; ++e) total[e] = dh_p[e] + s.grad_out[e];
          // dh_unprojected[0:batch] = total W_hr, then the pass
          Backend::gemm_pointwise(step.batch, H, 1, P, total, P, w_step, false, s.dh, H, step.batch,
                                  pointwise);
        } else {
          Backend::gemm_pointwise(gemm_rows, H, 1, G * H, gemm_a, G * H, w_step, Cell::kDirectDh,
                                  s.dh, H, step.batch, pointwise);
        }
        gemm_rows = step.batch;
        if (t + 1 == chunk.end) chunk_gradients(chunk);
      }
    });
    // the last step's GEMM, into grad_h0, with no pointwise pass after it
    if constexpr (Cell::kProjected) {
      if (gemm_rows > 0) {
        Backend::gemm(false, false, gemm_rows, P, G * H, scalar_t(1), s.dgates_h, G * H, w_hh_p, P,
                      scalar_t(0), dh_p, P);
      }
    } else {
      Backend::gemm_pointwise(gemm_rows, H, 1, G * H, s.dgates_h, G * H, w_step, Cell::kDirectDh,
                              s.dh, H, 0, NoPointwise{});
    }

    if (N == 0) std::fill(grad_w, grad_w + G * H * (I + P), scalar_t(0));  // no chunk wrote it
    at::Tensor grad_w_ih = at::empty({G * H, I}, options);
    at::Tensor grad_w_hh = at::empty({G * H, P}, options);
    scalar_t* gw_ih = grad_w_ih.mutable_data_ptr<scalar_t>();
    scalar_t* gw_hh = grad_w_hh.mutable_data_ptr<scalar_t>();
    for (int64_t r = 0; r < G * H; ++r) {
      std::copy(grad_w + r * (I + P), grad_w + r * (I + P) + I, gw_ih + r * I);
      std::copy(grad_w + r * (I + P) + I, grad_w + (r + 1) * (I + P), gw_hh + r * P);
    }
    at::Tensor grad_b_ih = rounded(grad_b, G * H, options);
    at::Tensor grad_b_hh = Cell::kDirectDh ? rounded(grad_b + G * H, G * H, options) : at::Tensor();
    at::Tensor grad_w_hr;  // [P, H] = sum over rows of (dh + grad_out)^T (o * tanh(c))
    if constexpr (Cell::kProjected) {
      grad_w_hr = at::empty({P, H}, options);
      Backend::gemm(true, false, P, H, N, scalar_t(1), dh_total, P, ws_p + (K - 2) * N * H, H,
                    scalar_t(0), grad_w_hr.mutable_data_ptr<scalar_t>(), H);
    }
    return {grad_x, dh, dc, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, grad_w_hr};
  }

  // sums[j] += sum over r < rows of a[r, j], a: [rows, cols] row-major; the
  // threads take blocks of columns. Groups of kGroup rows are summed in
  // scalar_t, then added to the double sums: one conversion to double per
  // group, not per element (see benchmarks/README.md).
  static void column_sums(const scalar_t* a, int64_t rows, int64_t cols, double* sums) {
    constexpr int64_t kColumns = 64;  // per block: whole cache lines of every row
    constexpr int64_t kGroup = 16;
    const int64_t blocks = (cols + kColumns - 1) / kColumns;
    const int64_t grain =
        std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(rows * kColumns, 1));
    at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
      for (int64_t j0 = begin * kColumns; j0 < std::min(end * kColumns, cols); j0 += kColumns) {
        const int64_t width = std::min(kColumns, cols - j0);
        for (int64_t r0 = 0; r0 < rows; r0 += kGroup) {
          scalar_t group[kColumns] = {};
          for (int64_t r = r0; r < std::min(r0 + kGroup, rows); ++r) {
            const scalar_t* row = a + r * cols + j0;
            for (int64_t j = 0; j < width; ++j) group[j] += row[j];
          }
          for (int64_t j = 0; j < width; ++j) sums[j0 + j] += double(group[j]);
        }
      }
    });
  }

  // A new [n] tensor of values rounded to scalar_t.
  static at::Tensor rounded(const double* values, int64_t n, const at::TensorOptions& options) {
    at::Tensor t = at::empty({n}, options);
    std::copy(values, values + n, t.mutable_data_ptr<scalar_t>());
    return t;
  }
};

}  // namespace fastrnn
