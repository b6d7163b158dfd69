#pragma once
// The recurrence driver of one layer in one direction, written once for every
// cell and every backend. The Backend object of the call (the contract:
// backend.h) supplies what differs between devices: a row-major GEMM on raw
// pointers (gemm), one step's GEMM followed by its pointwise pass over (b, j)
// in [0, rows) x [0, H) (gemm_pointwise, which a backend may fuse), the layout
// of a step's weight (step_weight), the workspace saved for backward
// (workspace), the call's temporaries (temporary), the size of the chunks of
// steps (chunk_rows), and the copies, fills and sums on buffers. The driver
// never reads or writes a buffer's contents itself, so the buffers may live
// on a device; ATen only allocates the outputs.
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

#include <algorithm>
#include <vector>

#include "backend.h"
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
  requires BackendFor<Backend, scalar_t>
struct Recurrence {
  // GEMMs' alpha and beta, and the weight gradients' sums over chunks of
  // steps: float for float16 and bfloat16 (backend.h), else scalar_t itself.
  using acc_t = at::opmath_type<scalar_t>;
  static constexpr int G = Cell::kGates;
  static constexpr int K = Cell::kSaved;

  // bias[G*H]: every bias that can be added to the input projection: b_ih,
  // and b_hh except GRU's b_hn, which the reset gate scales; b_hn[H]: that
  // one (GRU only; other cells leave it unwritten). Zeros where a bias is
  // absent (nullptr).
  static void fold_biases(Backend& be, const scalar_t* b_ih, const scalar_t* b_hh, int64_t H,
                          scalar_t* bias, scalar_t* b_hn) {
    if constexpr (std::is_same_v<Cell, GRUCell>) {
      be.add(2 * H, b_ih, b_hh, bias);
      be.add(H, b_ih ? b_ih + 2 * H : nullptr, nullptr, bias + 2 * H);
      if (b_hh) {
        be.copy_2d(1, H, b_hh + 2 * H, H, b_hn, H);
      } else {
        be.fill_2d(1, H, scalar_t(0), b_hn, H);
      }
    } else {
      be.add(G * H, b_ih, b_hh, bias);
    }
  }

  // A new tensor holding t's values (t contiguous).
  static at::Tensor copy_of(Backend& be, const at::Tensor& t) {
    at::Tensor dst = at::empty(t.sizes(), t.options());
    be.copy_2d(1, t.numel(), t.const_data_ptr<scalar_t>(), t.numel(),
               dst.mutable_data_ptr<scalar_t>(), t.numel());
    return dst;
  }

  // A new [n] tensor of values rounded to scalar_t.
  static at::Tensor rounded(Backend& be, const double* values, int64_t n,
                            const at::TensorOptions& options) {
    at::Tensor t = at::empty({n}, options);
    be.round(n, values, t.mutable_data_ptr<scalar_t>());
    return t;
  }

  // The input projection runs in chunks of consecutive steps, each chunk just
  // before the steps that read it, and the backward's gradients over whole
  // steps (grad_x, the weights') per chunk just after its steps, while the
  // buffers the chunk shares with its steps may still be in cache (the
  // backend's choice: see CPUBackend::chunk_rows). A chunk has at least
  // `chunk_rows` rows, and the last one takes a remainder smaller than that:
  // at most 2 * chunk_rows + B rows. The backend's value is clamped to [1, N]
  // (N = 0: 1), which changes no chunk.
  static int64_t chunk_rows(Backend& be, int64_t N) {
    return std::clamp<int64_t>(be.chunk_rows(), 1, std::max<int64_t>(N, 1));
  }

  // Consecutive steps' rows are contiguous (offsets run monotonically through
  // the steps, up or down), so a chunk's rows are one block of x.
  struct Chunk {
    size_t end = 0;         // one past its last step (in the order the steps run)
    int64_t row0 = 0;       // its first row
    int64_t rows = 0;
    int64_t rows_left = 0;  // rows of the steps after it
  };

  // The chunk that starts at steps[first]; rows_left: the rows of steps[first]
  // and after; min_rows: chunk_rows().
  static Chunk next_chunk(const std::vector<Step>& steps, size_t first, int64_t rows_left,
                          int64_t min_rows) {
    Chunk c;
    c.end = first;
    c.row0 = steps[first].offset;
    while (c.end < steps.size() && (c.rows < min_rows || rows_left - c.rows < min_rows)) {
      const Step& step = steps[c.end++];
      c.row0 = std::min(c.row0, step.offset);
      c.rows += step.batch;
    }
    c.rows_left = rows_left - c.rows;
    return c;
  }

  // x_proj[0:rows] = x[row0:row0 + rows] W_ih^T, x_proj: [rows, G*H] in acc_t, with
  // W_ih^T as step_weight laid it out. The biases are added in the pointwise
  // pass, which saves a pass over x_proj.
  static void input_projection(Backend& be, const scalar_t* x, int64_t I,
                               const typename Backend::StepWeight& w_in, int64_t GH, int64_t row0,
                               int64_t rows, acc_t* x_proj) {
    be.gemm_pointwise(rows, GH, 1, I, x + row0 * I, I, w_in, false, x_proj, GH, 0, NoPointwise{});
  }

  // Every tensor argument contiguous. x: the input, [N, I] rows (any shape
  // of N * I elements); h0: [B, P]; c0: [B, H] (undefined unless LSTM);
  // w_ih: [G*H, I]; w_hh: [G*H, P]; b_ih, b_hh: [G*H] or undefined; w_hr:
  // [P, H] (Cell::kProjected only, else undefined). P = H without projection.
  // Returns the output (out_shape, N * P elements), h_n [B, P], c_n [B, H]
  // (undefined unless LSTM) and the workspace [K, N, H] (empty when not training).
  static std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> forward(
      Backend& be, const std::vector<Step>& steps, const Shape& d, const at::Tensor& x,
      at::IntArrayRef out_shape, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& w_ih,
      const at::Tensor& w_hh, const at::Tensor& b_ih, const at::Tensor& b_hh,
      const at::Tensor& w_hr, bool relu, bool training) {
    const int64_t N = d.N, I = d.I, H = d.H, P = d.P, B = d.B;
    const at::TensorOptions options = x.options();
    const int64_t min_rows = chunk_rows(be, N);

    // [chunk rows, G*H] the input projection of the current chunk of steps
    acc_t* x_proj = be.template temporary<acc_t>(Scratch::kInputProjection,
                                                 std::min(N, 2 * min_rows + B) * G * H);
    // [G*H] the folded biases, then [H] GRU's b_hn
    scalar_t* bias = be.template temporary<scalar_t>(Scratch::kBias, G * H + H);
    fold_biases(be, b_ih.defined() ? b_ih.const_data_ptr<scalar_t>() : nullptr,
                b_hh.defined() ? b_hh.const_data_ptr<scalar_t>() : nullptr, H, bias, bias + G * H);
    // W_hh^T [P, G*H], transposed out of W_hh
    const auto w_step =
        be.step_weight(Scratch::kStepWeight, w_hh.const_data_ptr<scalar_t>(), true, P, H, G, B);
    // W_ih^T [I, G*H] in the steps' layout too: the input projection runs as
    // the steps do (on the CPU, on brgemm over panels, faster than on MKL's
    // sgemm: see benchmarks/README.md)
    const auto w_in = be.step_weight(Scratch::kInputWeight, w_ih.const_data_ptr<scalar_t>(), true,
                                     I, G * H, 1, std::min(N, min_rows));
    // [2, B, P] the hidden state, double-buffered: a step reads one buffer
    // (its GEMM's input) and writes the other. Both start as h0.
    scalar_t* cur = be.template temporary<scalar_t>(Scratch::kStates, 2 * B * P);
    scalar_t* nxt = cur + B * P;
    be.copy_2d(1, B * P, h0.const_data_ptr<scalar_t>(), B * P, cur, B * P);
    be.copy_2d(1, B * P, cur, B * P, nxt, B * P);
    at::Tensor c = c0.defined() ? copy_of(be, c0) : c0;                // [B, H]
    at::Tensor out = at::empty(out_shape, options);                     // [N, P]
    at::Tensor ws = be.workspace({training ? K : 0, N, H}, options);    // [K, N, H]
    acc_t* h_proj =                                                     // [B, G*H]
        be.template temporary<acc_t>(Scratch::kRecurrentProjection, B * G * H);
    // Projection only: W_hr^T [H, P]; o * tanh(c) of one step [B, H] (when
    // training it goes to workspace plane K-2 instead); h_prev is saved in the
    // first P columns of plane K-1, the others are zeroed.
    scalar_t* w_hr_t = nullptr;
    scalar_t* unprojected = nullptr;
    if constexpr (Cell::kProjected) {
      w_hr_t = be.template temporary<scalar_t>(Scratch::kProjectionWeight, H * P);
      be.transpose(P, H, w_hr.const_data_ptr<scalar_t>(), H, w_hr_t, P);
      if (training) {
        scalar_t* saved = ws.mutable_data_ptr<scalar_t>() + (K - 1) * N * H;
        be.fill_2d(N, H - P, scalar_t(0), saved + P, H);
      } else {
        unprojected = be.template temporary<scalar_t>(Scratch::kUnprojected, B * H);
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
            chunk = next_chunk(steps, t, chunk.rows_left, min_rows);
            input_projection(be, x_rows, I, w_in, G * H, chunk.row0, chunk.rows, x_proj);
          }
          // Sequences that ended at the previous step keep their final state in
          // both buffers (only when the batch shrinks, as it does going forwards).
          if (step.batch < prev_batch) {
            const int64_t n = (prev_batch - step.batch) * P;
            be.copy_2d(1, n, cur + step.batch * P, n, nxt + step.batch * P, n);
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
          be.gemm_pointwise(step.batch, H, G, P, s.h_prev, P, w_step, false, h_proj, G * H,
                            step.batch, ForwardFn<Cell, scalar_t, kTraining, kRelu>{s});
          if constexpr (Cell::kProjected) {
            // output rows = (o * tanh(c)) W_hr^T [batch, P], the next step's h
            scalar_t* h = out_rows + step.offset * P;
            be.gemm(false, false, step.batch, P, H, acc_t(1), s.out, H, w_hr_t, P, acc_t(0), h, P);
            be.copy_2d(1, step.batch * P, h, step.batch * P, nxt, step.batch * P);
            if constexpr (kTraining) {  // h_prev into the first P columns of plane K-1
              be.copy_2d(step.batch, P, cur, P, s.ws + (K - 1) * s.plane, H);
            }
          }
          std::swap(cur, nxt);
        }
      });
    });
    // the buffer the last step wrote (cur after the swap)
    at::Tensor h_n = at::empty({B, P}, options);
    be.copy_2d(1, B * P, cur, B * P, h_n.mutable_data_ptr<scalar_t>(), B * P);
    return {out, h_n, c, ws};
  }

  // Every tensor argument contiguous. grad_out: [N, P]; grad_h_n: [B, P];
  // grad_c_n: [B, H] (undefined unless LSTM); x: [N, I] rows, input_shape its
  // shape; w_hr: [P, H] (Cell::kProjected only, else undefined); ws: [K, N, H].
  // Returns grad_x (input_shape), grad_h0 [B, P], grad_c0 [B, H], grad_w_ih,
  // grad_w_hh, grad_b_ih [G*H] (the gradient of either bias unless GRU),
  // grad_b_hh [G*H] (GRU only, else undefined), grad_w_hr [P, H] (undefined
  // without projection).
  static std::vector<at::Tensor> backward(Backend& be, const std::vector<Step>& steps,
                                          const Shape& d, const at::Tensor& grad_out,
                                          const at::Tensor& grad_h_n, const at::Tensor& grad_c_n,
                                          const at::Tensor& x, at::IntArrayRef input_shape,
                                          const at::Tensor& w_ih, const at::Tensor& w_hh,
                                          const at::Tensor& w_hr, const at::Tensor& ws, bool relu) {
    const int64_t N = d.N, I = d.I, H = d.H, P = d.P, B = d.B;
    const at::TensorOptions options = x.options();
    const int64_t min_rows = chunk_rows(be, N);

    at::Tensor dh = copy_of(be, grad_h_n);  // [B, P] becomes grad_h0
    at::Tensor dc = grad_c_n.defined() ? copy_of(be, grad_c_n) : grad_c_n;  // [B, H]
    scalar_t* dgates_x =  // [N, G*H]
        be.template temporary<scalar_t>(Scratch::kGatesGradX, N * G * H);
    scalar_t* dgates_h =  // [N, G*H]
        Cell::kDirectDh ? be.template temporary<scalar_t>(Scratch::kGatesGradH, N * G * H)
                        : dgates_x;
    // Projection only: dh + grad_out of every step [N, P] (grad_w_hr's GEMM
    // input), and one step's (dh + grad_out) W_hr [B, H], the pointwise pass's dh.
    scalar_t* dh_total = nullptr;
    scalar_t* dh_unprojected = nullptr;
    if constexpr (Cell::kProjected) {
      dh_total = be.template temporary<scalar_t>(Scratch::kProjectedGrad, N * P);
      dh_unprojected = be.template temporary<scalar_t>(Scratch::kUnprojectedGrad, B * H);
    }

    BackwardStep<scalar_t> s{};
    s.dh = Cell::kProjected ? dh_unprojected : dh.mutable_data_ptr<scalar_t>();
    s.dc = dc.defined() ? dc.mutable_data_ptr<scalar_t>() : nullptr;
    s.plane = N * H;
    s.H = H;
    // The weight of the GEMM fused with each step's pointwise pass: W_hh
    // [G*H, H], or with a projection W_hr [P, H] (and W_hh [G*H, P] apart).
    const at::Tensor& w_fused = Cell::kProjected ? w_hr : w_hh;
    const auto w_step = be.step_weight(Scratch::kStepWeight, w_fused.const_data_ptr<scalar_t>(),
                                       false, w_fused.size(0), H, 1, B);
    const scalar_t* w_hh_p = w_hh.const_data_ptr<scalar_t>();
    at::Tensor grad_x = at::empty(input_shape, options);  // [N, I]
    // [G*H, I + P]: grad_w_ih, then grad_w_hh, in one GEMM where both take the
    // same gate gradients (every cell but GRU): two GEMMs would each pack the
    // gate gradients, one of I + P columns packs them once (see benchmarks/README.md).
    // In acc_t: each chunk's GEMM adds onto it, and float16 would round the
    // sum at every chunk; rounded to scalar_t once, into the outputs.
    acc_t* grad_w = be.template temporary<acc_t>(Scratch::kWeightGrad, G * H * (I + P));
    // [2, G*H] the biases' gradients, b_ih's then (GRU) b_hh's, summed in
    // double: rounding the sum over N rows to scalar_t once
    double* grad_b = be.template temporary<double>(Scratch::kBiasGrad, 2 * G * H);
    be.fill_2d(1, 2 * G * H, 0.0, grad_b, 2 * G * H);
    // [chunk rows, I + P] a chunk's x and h_prev side by side, the merged GEMM's input
    scalar_t* inputs =
        Cell::kDirectDh ? nullptr
                        : be.template temporary<scalar_t>(Scratch::kInputsAndStates,
                                                          std::min(N, 2 * min_rows + B) * (I + P));
    // The gradients that need whole steps run per chunk of steps, as soon as
    // the chunk's pointwise passes have written its gates' gradients.
    const std::vector<Step> order(steps.rbegin(), steps.rend());  // the backward's order
    const scalar_t* x_p = x.const_data_ptr<scalar_t>();
    const scalar_t* ws_p = ws.const_data_ptr<scalar_t>();
    const scalar_t* grad_out_p = grad_out.const_data_ptr<scalar_t>();
    scalar_t* grad_x_p = grad_x.mutable_data_ptr<scalar_t>();
    const scalar_t* h_prev = ws_p + (K - 1) * N * H;  // [N, P], row stride H
    bool first_chunk = true;
    // W_ih [G*H, I] in panels, for grad_x = dgates_x W_ih (as the input projection)
    const auto w_gx = be.step_weight(Scratch::kInputWeight, w_ih.const_data_ptr<scalar_t>(), false,
                                     G * H, I, 1, std::min(N, min_rows));
    const auto chunk_gradients = [&](const Chunk& chunk) {
      const int64_t r0 = chunk.row0, rows = chunk.rows;
      const acc_t beta = first_chunk ? acc_t(0) : acc_t(1);
      first_chunk = false;
      const scalar_t* dx = dgates_x + r0 * G * H;
      const scalar_t* x_rows = x_p + r0 * I;
      // grad_x[rows] = dgates_x[rows] W_ih
      be.gemm_pointwise(rows, I, 1, G * H, dx, G * H, w_gx, false, grad_x_p + r0 * I, I, 0,
                        NoPointwise{});
      if constexpr (Cell::kDirectDh) {
        // grad_w_ih (+)= dgates_x[rows]^T x[rows]; grad_w_hh (+)= dgates_h[rows]^T h_prev[rows]
        be.gemm(true, false, G * H, I, rows, acc_t(1), dx, G * H, x_rows, I, beta, grad_w, I + P);
        be.gemm(true, false, G * H, P, rows, acc_t(1), dgates_h + r0 * G * H, G * H,
                h_prev + r0 * H, H, beta, grad_w + I, I + P);
        be.column_sums(dgates_h + r0 * G * H, rows, G * H, grad_b + G * H);
      } else {
        // [grad_w_ih | grad_w_hh] (+)= dgates[rows]^T [x[rows] | h_prev[rows]]
        be.copy_2d(rows, I, x_rows, I, inputs, I + P);
        be.copy_2d(rows, P, h_prev + r0 * H, H, inputs + I, I + P);
        be.gemm(true, false, G * H, I + P, rows, acc_t(1), dx, G * H, inputs, I + P, beta, grad_w,
                I + P);
      }
      be.column_sums(dx, rows, G * H, grad_b);
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
        if (t == chunk.end) chunk = next_chunk(order, t, chunk.rows_left, min_rows);
        const scalar_t* gemm_a = s.dgates_h;  // the previous step's dgates_h rows
        s.grad_out = grad_out_p + step.offset * P;
        s.ws = ws_p + step.offset * H;
        s.dgates_x = dgates_x + step.offset * G * H;
        s.dgates_h = dgates_h + step.offset * G * H;
        const BackwardFn<Cell, scalar_t, kRelu> pointwise{s};
        if constexpr (Cell::kProjected) {
          if (gemm_rows > 0) {
            be.gemm(false, false, gemm_rows, P, G * H, acc_t(1), gemm_a, G * H, w_hh_p, P, acc_t(0),
                    dh_p, P);
          }
          scalar_t* total = dh_total + step.offset * P;
          be.add(step.batch * P, dh_p, s.grad_out, total);
          // dh_unprojected[0:batch] = total W_hr, then the pass
          be.gemm_pointwise(step.batch, H, 1, P, total, P, w_step, false, s.dh, H, step.batch,
                            pointwise);
        } else {
          be.gemm_pointwise(gemm_rows, H, 1, G * H, gemm_a, G * H, w_step, Cell::kDirectDh, s.dh, H,
                            step.batch, pointwise);
        }
        gemm_rows = step.batch;
        if (t + 1 == chunk.end) chunk_gradients(chunk);
      }
    });
    // the last step's GEMM, into grad_h0, with no pointwise pass after it
    if constexpr (Cell::kProjected) {
      if (gemm_rows > 0) {
        be.gemm(false, false, gemm_rows, P, G * H, acc_t(1), s.dgates_h, G * H, w_hh_p, P, acc_t(0),
                dh_p, P);
      }
    } else {
      be.gemm_pointwise(gemm_rows, H, 1, G * H, s.dgates_h, G * H, w_step, Cell::kDirectDh, s.dh, H,
                        0, NoPointwise{});
    }

    if (N == 0) be.fill_2d(G * H, I + P, acc_t(0), grad_w, I + P);  // no chunk wrote it
    at::Tensor grad_w_ih = at::empty({G * H, I}, options);
    at::Tensor grad_w_hh = at::empty({G * H, P}, options);
    // (rounded from acc_t where it is wider)
    be.copy_2d(G * H, I, grad_w, I + P, grad_w_ih.mutable_data_ptr<scalar_t>(), I);
    be.copy_2d(G * H, P, grad_w + I, I + P, grad_w_hh.mutable_data_ptr<scalar_t>(), P);
    at::Tensor grad_b_ih = rounded(be, grad_b, G * H, options);
    at::Tensor grad_b_hh =
        Cell::kDirectDh ? rounded(be, grad_b + G * H, G * H, options) : at::Tensor();
    at::Tensor grad_w_hr;  // [P, H] = sum over rows of (dh + grad_out)^T (o * tanh(c))
    if constexpr (Cell::kProjected) {
      grad_w_hr = at::empty({P, H}, options);
      be.gemm(true, false, P, H, N, acc_t(1), dh_total, P, ws_p + (K - 2) * N * H, H, acc_t(0),
              grad_w_hr.mutable_data_ptr<scalar_t>(), H);
    }
    return {grad_x, dh, dc, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, grad_w_hr};
  }
};

}  // namespace fastrnn
