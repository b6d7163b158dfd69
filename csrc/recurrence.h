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

#include <ATen/ATen.h>

#include <vector>

#include "pointwise.h"
#include "static_switch.h"
#include "temporaries.h"

namespace fastrnn {

struct Step {
  int64_t offset;  // first row of this time step in the packed [N, ...] buffers
  int64_t batch;   // number of sequences alive at this step
};

// The steps in the order the forward pass runs them (reversed for reverse).
// batch_sizes: undefined for a padded input of T steps of B rows, otherwise
// the packed sequence's int64 CPU batch sizes.
std::vector<Step> make_schedule(const at::Tensor& batch_sizes, int64_t T, int64_t B, bool reverse);

// The pointwise pass of a gemm_pointwise call that has none.
struct NoPointwise {
  C10_HOST_DEVICE void operator()(int64_t, int64_t) const {}
};

template <class Cell, class Backend, typename scalar_t>
struct Recurrence {
  static constexpr int G = Cell::kGates;
  static constexpr int K = Cell::kSaved;

  // Every bias that can be added to the input projection: b_ih, and b_hh
  // except GRU's b_hn, which the reset gate scales. [G*H], zeros without bias.
  static at::Tensor folded_bias(const at::Tensor& w_ih, const c10::optional<at::Tensor>& b_ih,
                                const c10::optional<at::Tensor>& b_hh) {
    const int64_t GH = w_ih.size(0), H = GH / G;
    at::Tensor bias = at::zeros({GH}, w_ih.options());
    if (b_ih.has_value()) bias.add_(*b_ih);
    if (b_hh.has_value()) {
      const int64_t folded = std::is_same_v<Cell, GRUCell> ? 2 * H : GH;
      bias.narrow(0, 0, folded).add_(b_hh->narrow(0, 0, folded));
    }
    return bias;
  }

  // Input projection of all steps at once, x W_ih^T: [N, G*H]. The biases are
  // added in the pointwise pass, which saves a pass over this large buffer.
  static at::Tensor input_projection(const at::Tensor& x, const at::Tensor& w_ih) {
    const int64_t N = x.size(0), I = x.size(1), GH = w_ih.size(0);
    at::Tensor x_proj = Backend::temporary(Scratch::kInputProjection, {N, GH}, x.options());
    Backend::gemm(false, true, N, GH, I, scalar_t(1), x.const_data_ptr<scalar_t>(), I,
                  w_ih.const_data_ptr<scalar_t>(), I, scalar_t(0),
                  x_proj.mutable_data_ptr<scalar_t>(), GH);
    return x_proj;
  }

  // x: [N, I]; h0, c0: [B, H] (c0 undefined unless LSTM).
  // Returns output [N, H], h_n [B, H], c_n [B, H] (undefined unless LSTM) and
  // the workspace [K, N, H] (empty when not training).
  static std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> forward(
      const std::vector<Step>& steps, const at::Tensor& x, const at::Tensor& h0,
      const at::Tensor& c0, const at::Tensor& w_ih, const at::Tensor& w_hh,
      const c10::optional<at::Tensor>& b_ih, const c10::optional<at::Tensor>& b_hh,
      bool relu, bool training) {
    const int64_t N = x.size(0);
    const int64_t H = w_hh.size(1);
    const int64_t B = h0.size(0);

    const at::Tensor x_proj = input_projection(x, w_ih);               // [N, G*H]
    const at::Tensor bias = folded_bias(w_ih, b_ih, b_hh);             // [G*H]
    const auto w_step = Backend::template step_weight<scalar_t>(w_hh.t(), H, G, B);  // W_hh^T [H, G*H]
    at::Tensor b_hn = at::zeros({H}, x.options());                     // [H], GRU only
    if (std::is_same_v<Cell, GRUCell> && b_hh.has_value()) b_hn.copy_(b_hh->narrow(0, 2 * H, H));
    // [2, B, H] the hidden state, double-buffered: a step reads one buffer
    // (its GEMM's input) and writes the other. Both start as h0.
    at::Tensor h_buffers = h0.unsqueeze(0).expand({2, B, H}).contiguous();
    at::Tensor c = c0.defined() ? c0.clone(at::MemoryFormat::Contiguous) : c0;  // [B, H]
    at::Tensor out = at::empty({N, H}, x.options());                   // [N, H]
    at::Tensor ws = Backend::workspace({training ? K : 0, N, H}, x.options());  // [K, N, H]
    at::Tensor h_proj =                                                // [B, G*H]
        Backend::temporary(Scratch::kRecurrentProjection, {B, G * H}, x.options());

    ForwardStep<scalar_t> s{};
    s.bias = bias.const_data_ptr<scalar_t>();
    s.b_hn = b_hn.const_data_ptr<scalar_t>();
    s.c = c.defined() ? c.mutable_data_ptr<scalar_t>() : nullptr;
    s.h_proj = h_proj.const_data_ptr<scalar_t>();
    s.plane = N * H;
    s.H = H;
    scalar_t* cur = h_buffers[0].mutable_data_ptr<scalar_t>();
    scalar_t* nxt = h_buffers[1].mutable_data_ptr<scalar_t>();
    int64_t prev_batch = B;
    bool_switch(training, [&](auto kTraining) {
      bool_switch(relu, [&](auto kRelu) {
        for (const Step& step : steps) {
          // Sequences that ended at the previous step keep their final state in
          // both buffers (only when the batch shrinks, as it does going forwards).
          if (step.batch < prev_batch) {
            std::copy(cur + step.batch * H, cur + prev_batch * H, nxt + step.batch * H);
          }
          prev_batch = step.batch;
          s.h_prev = cur;
          s.h = nxt;
          s.x_proj = x_proj.const_data_ptr<scalar_t>() + step.offset * G * H;
          s.out = out.mutable_data_ptr<scalar_t>() + step.offset * H;
          s.ws = ws.mutable_data_ptr<scalar_t>() + (kTraining ? step.offset * H : 0);
          // h_proj[0:batch] = h[0:batch] W_hh^T, then the gates, per block of hidden units
          Backend::gemm_pointwise(step.batch, H, G, H, s.h_prev, H, w_step, false,
                                  h_proj.mutable_data_ptr<scalar_t>(), G * H, step.batch,
                                  ForwardFn<Cell, scalar_t, kTraining, kRelu>{s});
          std::swap(cur, nxt);
        }
      });
    });
    // the buffer the last step wrote (cur after the swap); a copy, not a view of both
    const at::Tensor h_n = h_buffers[cur == h_buffers[0].data_ptr<scalar_t>() ? 0 : 1].clone();
    return {out, h_n, c, ws};
  }

  // grad_out: [N, H]; grad_h_n, grad_c_n: [B, H] (grad_c_n undefined unless LSTM).
  // Returns grad_x [N, I], grad_h0 [B, H], grad_c0 [B, H], grad_w_ih, grad_w_hh,
  // grad_b_ih [G*H], grad_b_hh [G*H].
  static std::vector<at::Tensor> backward(
      const std::vector<Step>& steps, const at::Tensor& grad_out, const at::Tensor& grad_h_n,
      const at::Tensor& grad_c_n, const at::Tensor& x, const at::Tensor& w_ih,
      const at::Tensor& w_hh, const at::Tensor& ws, bool relu) {
    const int64_t N = x.size(0);
    const int64_t H = w_hh.size(1);

    at::Tensor dh = grad_h_n.clone(at::MemoryFormat::Contiguous);  // [B, H] becomes grad_h0
    at::Tensor dc = grad_c_n.defined() ? grad_c_n.clone(at::MemoryFormat::Contiguous)
                                       : grad_c_n;                    // [B, H]
    at::Tensor dgates_x =                                             // [N, G*H]
        Backend::temporary(Scratch::kGatesGradX, {N, G * H}, x.options());
    at::Tensor dgates_h = Cell::kDirectDh                             // [N, G*H]
        ? Backend::temporary(Scratch::kGatesGradH, {N, G * H}, x.options())
        : dgates_x;

    BackwardStep<scalar_t> s{};
    s.dh = dh.mutable_data_ptr<scalar_t>();
    s.dc = dc.defined() ? dc.mutable_data_ptr<scalar_t>() : nullptr;
    s.plane = N * H;
    s.H = H;
    const auto w_step = Backend::template step_weight<scalar_t>(w_hh, H, 1, grad_h_n.size(0));  // W_hh [G*H, H]
    // Steps in reverse order of the forward. Each step's recurrent gradient
    // GEMM, dh[0:batch] (+)= dgates_h[its rows] W_hh, runs fused with the
    // pointwise pass of the step after it, per block of hidden units: that
    // pass reads only its own units' dh.
    int64_t gemm_rows = 0;  // the previous step's rows; none before the first pass
    bool_switch(relu, [&](auto kRelu) {
      for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
        const Step& step = *it;
        const scalar_t* gemm_a = s.dgates_h;  // the previous step's dgates_h rows
        s.grad_out = grad_out.const_data_ptr<scalar_t>() + step.offset * H;
        s.ws = ws.const_data_ptr<scalar_t>() + step.offset * H;
        s.dgates_x = dgates_x.mutable_data_ptr<scalar_t>() + step.offset * G * H;
        s.dgates_h = dgates_h.mutable_data_ptr<scalar_t>() + step.offset * G * H;
        Backend::gemm_pointwise(gemm_rows, H, 1, G * H, gemm_a, G * H, w_step,
                                Cell::kDirectDh, s.dh, H, step.batch,
                                BackwardFn<Cell, scalar_t, kRelu>{s});
        gemm_rows = step.batch;
      }
    });
    // the last step's GEMM, into grad_h0, with no pointwise pass after it
    Backend::gemm_pointwise(gemm_rows, H, 1, G * H, s.dgates_h, G * H, w_step, Cell::kDirectDh,
                            s.dh, H, 0, NoPointwise{});

    const int64_t I = x.size(1);
    at::Tensor grad_x = at::empty({N, I}, x.options());  // [N, I] = dgates_x W_ih
    Backend::gemm(false, false, N, I, G * H, scalar_t(1), dgates_x.const_data_ptr<scalar_t>(),
                  G * H, w_ih.const_data_ptr<scalar_t>(), I, scalar_t(0),
                  grad_x.mutable_data_ptr<scalar_t>(), I);
    const at::Tensor h_prev = ws.select(0, K - 1);  // [N, H]
    return {grad_x,                                 // grad_x     [N, I]
            dh,                                     // grad_h0    [B, H]
            dc,                                     // grad_c0    [B, H]
            at::mm(dgates_x.t(), x),                // grad_w_ih  [G*H, I]
            at::mm(dgates_h.t(), h_prev),           // grad_w_hh  [G*H, H]
            dgates_x.sum(0),                        // grad_b_ih  [G*H]
            dgates_h.sum(0)};                       // grad_b_hh  [G*H]
  }
};

}  // namespace fastrnn
