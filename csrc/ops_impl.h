#pragma once
// The ops of every cell on one backend: argument checks, shapes, the schedule
// of time steps and dtype dispatch, then the shared recurrence driver, with a
// Backend object (backend.h) made for the call. A backend's .cpp file only
// registers RNNOps<ItsBackend>'s functions.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <algorithm>
#include <string>
#include <vector>

#include "cells/gru.h"
#include "cells/lstm.h"
#include "cells/rnn.h"
#include "recurrence.h"

namespace fastrnn {

using at::Tensor;
using c10::optional;

namespace detail {

inline void check_same(const char* op, const char* name, const Tensor& t, const Tensor& ref) {
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), op, ": ", name, ": expected dtype ",
              ref.scalar_type(), " (the input's), got ", t.scalar_type());
  TORCH_CHECK(t.device() == ref.device(), op, ": ", name, ": expected device ", ref.device(),
              " (the input's), got ", t.device());
}

inline void check_shape(const char* op, const char* name, const Tensor& t,
                        at::IntArrayRef expected) {
  TORCH_CHECK(t.sizes() == expected, op, ": ", name, ": expected shape ", expected, ", got ",
              t.sizes());
}

// The tensor the kernels read for argument `name`: the contiguous form of t,
// made once, here, and from then on the only one that the checks look at and
// the kernels take raw pointers into; undefined when t is. Only strided
// tensors: the kernels read memory, and a sparse, mkldnn or nested tensor
// has none that holds its values in order.
inline Tensor dense(const char* op, const char* name, const Tensor& t) {
  if (!t.defined()) return t;
  TORCH_CHECK(t.layout() == at::kStrided && !t.is_nested(), op, ": ", name,
              ": expected a strided (dense) tensor, got layout ", t.layout(),
              t.is_nested() ? " (nested)" : "");
  return t.contiguous();
}

inline Tensor dense(const char* op, const char* name, const optional<Tensor>& t) {
  return t.has_value() ? dense(op, name, *t) : Tensor();
}

// batch_sizes, which the schedule reads by raw pointer as torch.nn's packed
// layers do. torch.nn reads a non-contiguous one's memory as if it were
// contiguous, other values than the tensor holds (and past its storage when
// expanded), and fails on them or computes with them; here it is refused.
inline Tensor checked_batch_sizes(const char* op, const optional<Tensor>& batch_sizes) {
  if (!batch_sizes.has_value()) return Tensor();
  const Tensor& bs = *batch_sizes;
  TORCH_CHECK(bs.layout() == at::kStrided && bs.dim() == 1 && bs.scalar_type() == at::kLong &&
                  bs.device().is_cpu(),
              op, ": batch_sizes: expected a 1-D int64 CPU tensor, got ", bs.dim(), "-D ",
              bs.scalar_type(), " on ", bs.device(), " (layout ", bs.layout(), ")");
  TORCH_CHECK(bs.is_contiguous(), op, ": batch_sizes: expected a contiguous tensor, got strides ",
              bs.strides());
  return bs;
}

// Shape (recurrence.h): the geometry of one call, checked against every
// argument. Every tensor is one that dense() (or checked_batch_sizes) returned,
// undefined where absent. hx_name: the argument holding the [B, P] state (hx,
// or grad_h_n in backward).
// types: the dtypes the backend takes on this machine (backend.h's taken_dtypes).
inline Shape check_inputs(const char* op, int gates, const std::vector<at::ScalarType>& types,
                          const Tensor& input, const Tensor& hx, const char* hx_name,
                          const Tensor& w_ih, const Tensor& w_hh, const Tensor& w_hr,
                          const Tensor& b_ih, const Tensor& b_hh, const Tensor& batch_sizes) {
  const at::ScalarType type = input.scalar_type();
  if (std::find(types.begin(), types.end(), type) == types.end()) {
    std::string listed;  // "float32 or float64 ...", as torch names them
    for (at::ScalarType t : types) {
      listed += (listed.empty() ? "" : " or ") + std::string(c10::getDtypeNames(t).first);
    }
    TORCH_CHECK(false, op, ": input: expected dtype ", listed, ", got ", type);
  }
  Shape s;
  // w_hh [gates * H, P] defines the hidden size and the features of h and is
  // checked first; the state and the other weights are then checked against
  // it by name. Without projection P = H.
  TORCH_CHECK(w_hh.dim() == 2, op, ": w_hh: expected 2 dimensions, got ", w_hh.dim());
  s.P = w_hh.size(1);
  if (w_hr.defined()) {
    TORCH_CHECK(w_hh.size(0) % gates == 0, op, ": w_hh: expected ", gates,
                " * hidden_size rows, got shape ", w_hh.sizes());
    s.H = w_hh.size(0) / gates;
    TORCH_CHECK(w_hr.dim() == 2, op, ": w_hr: expected 2 dimensions, got ", w_hr.dim());
    check_shape(op, "w_hr", w_hr, {s.P, s.H});
    TORCH_CHECK(0 < s.P && s.P < s.H, op,
                ": w_hr: expected 0 < proj_size < hidden_size, got proj_size ", s.P,
                " and hidden_size ", s.H, " (shape ", w_hr.sizes(), ")");
    check_same(op, "w_hr", w_hr, input);
  } else {
    s.H = s.P;
    check_shape(op, "w_hh", w_hh, {gates * s.H, s.H});
  }
  TORCH_CHECK(w_ih.dim() == 2, op, ": w_ih: expected 2 dimensions, got ", w_ih.dim());
  s.I = w_ih.size(1);
  TORCH_CHECK(hx.dim() == 2, op, ": ", hx_name, ": expected 2 dimensions [batch, hidden], got ",
              hx.dim());
  s.B = hx.size(0);
  if (batch_sizes.defined()) {
    TORCH_CHECK(input.dim() == 2, op,
                ": input: expected 2 dimensions [rows, input_size] with batch_sizes, got ",
                input.dim());
    s.T = batch_sizes.size(0);
    s.N = input.size(0);
    TORCH_CHECK(s.T > 0, "Expected sequence length to be larger than 0 in RNN");
    const int64_t* b = batch_sizes.const_data_ptr<int64_t>();
    TORCH_CHECK(b[0] == s.B, op, ": batch_sizes[0] = ", b[0], " must equal ", hx_name, "'s batch ",
                s.B);
    // Zeros are allowed (steps without sequences), as torch.nn allows them.
    int64_t total = 0;
    for (int64_t t = 0; t < s.T; ++t) {
      TORCH_CHECK(b[t] >= 0, op, ": batch_sizes[", t, "] = ", b[t],
                  ": expected non-negative values");
      TORCH_CHECK(t == 0 || b[t] <= b[t - 1], op, ": batch_sizes[", t, "] = ", b[t],
                  " > batch_sizes[", t - 1, "] = ", b[t - 1],
                  ": expected non-increasing values (sequences sorted by decreasing length)");
      total += b[t];
    }
    TORCH_CHECK(total == s.N, op, ": batch_sizes sum to ", total, " but input has ", s.N, " rows");
  } else {
    TORCH_CHECK(input.dim() == 3, op,
                ": input: expected 3 dimensions [seq_len, batch, input_size], got ", input.dim());
    s.T = input.size(0);
    TORCH_CHECK(s.T > 0, "Expected sequence length to be larger than 0 in RNN");
    TORCH_CHECK(input.size(1) == s.B, op, ": ", hx_name, ": expected batch ", input.size(1),
                " (the input's), got ", s.B);
    s.N = s.T * s.B;
  }
  TORCH_CHECK(input.size(-1) == s.I, op, ": input: expected input_size ", s.I, " (w_ih's), got ",
              input.size(-1));
  check_shape(op, hx_name, hx, {s.B, s.P});
  check_shape(op, "w_ih", w_ih, {gates * s.H, s.I});
  check_same(op, hx_name, hx, input);
  check_same(op, "w_ih", w_ih, input);
  check_same(op, "w_hh", w_hh, input);
  for (const auto& [name, b] : {std::pair{"b_ih", &b_ih}, std::pair{"b_hh", &b_hh}}) {
    if (!b->defined()) continue;
    check_shape(op, name, *b, {gates * s.H});
    check_same(op, name, *b, input);
  }
  return s;
}

inline std::vector<int64_t> output_shape(const Tensor& input, int64_t H) {
  std::vector<int64_t> shape = input.sizes().vec();
  shape.back() = H;
  return shape;
}

// The backward's gradients have the forward's output shapes.
inline void check_grads(const char* op, const Tensor& grad_output, const Tensor& input,
                        const Shape& s, const Tensor& ws, int saved) {
  check_shape(op, "grad_output", grad_output, output_shape(input, s.P));
  check_same(op, "grad_output", grad_output, input);
  TORCH_CHECK(ws.numel() > 0 || s.N * s.H == 0, op,
              ": workspace is empty: the forward ran with training=False");
  check_shape(op, "workspace", ws, {saved, s.N, s.H});
  check_same(op, "workspace", ws, input);
}

// f(scalar_t{}) for the dtype `type`, one of those Backend takes (checked
// before): only those are instantiated.
template <class Backend, class F>
void dispatch(at::ScalarType type, const F& f) {
  if constexpr (takes_half_types<Backend>()) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, type, "fastrnn",
                                    [&] { f(scalar_t{}); });
  } else {
    AT_DISPATCH_FLOATING_TYPES(type, "fastrnn", [&] { f(scalar_t{}); });
  }
}

}  // namespace detail

template <class Backend>
struct RNNOps {
  // the dtypes this machine's kernels take (backend.h)
  static const std::vector<at::ScalarType>& dtypes() {
    static const std::vector<at::ScalarType> types = taken_dtypes<Backend>();
    return types;
  }

  // w_hr: Cell::kProjected only. Every tensor goes through dense() first:
  // the checks and the kernels see the same contiguous tensors.
  template <class Cell>
  static std::tuple<Tensor, Tensor, Tensor, Tensor> forward(
      const char* op, const Tensor& input_arg, const Tensor& hx_arg, const Tensor& cx_arg,
      const Tensor& w_ih_arg, const Tensor& w_hh_arg, const optional<Tensor>& b_ih_arg,
      const optional<Tensor>& b_hh_arg, const optional<Tensor>& w_hr_arg,
      const optional<Tensor>& batch_sizes_arg, bool reverse, bool relu, bool training) {
    using detail::dense;
    const Tensor input = dense(op, "input", input_arg), hx = dense(op, "hx", hx_arg),
                 cx = dense(op, "cx", cx_arg), w_ih = dense(op, "w_ih", w_ih_arg),
                 w_hh = dense(op, "w_hh", w_hh_arg), b_ih = dense(op, "b_ih", b_ih_arg),
                 b_hh = dense(op, "b_hh", b_hh_arg), w_hr = dense(op, "w_hr", w_hr_arg);
    const Tensor batch_sizes = detail::checked_batch_sizes(op, batch_sizes_arg);
    const auto s = detail::check_inputs(op, Cell::kGates, dtypes(), input, hx, "hx", w_ih, w_hh,
                                        w_hr, b_ih, b_hh, batch_sizes);
    if (cx.defined()) {
      detail::check_shape(op, "cx", cx, {s.B, s.H});
      detail::check_same(op, "cx", cx, input);
    }
    const auto steps = make_schedule(batch_sizes, s.T, s.B, reverse);
    const auto out_shape = detail::output_shape(input, s.P);
    Tensor out, h_n, c_n, ws;
    Backend be(input);  // for this call only
    detail::dispatch<Backend>(input.scalar_type(), [&](auto type) {
      std::tie(out, h_n, c_n, ws) = Recurrence<Cell, Backend, decltype(type)>::forward(
          be, steps, s, input, out_shape, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr, relu, training);
    });
    return {out, h_n, c_n, ws};
  }

  template <class Cell>
  static std::vector<Tensor> backward(const char* op, const Tensor& grad_output_arg,
                                      const Tensor& grad_h_n_arg, const Tensor& grad_c_n_arg,
                                      const Tensor& input_arg, const Tensor& w_ih_arg,
                                      const Tensor& w_hh_arg, const optional<Tensor>& w_hr_arg,
                                      const optional<Tensor>& batch_sizes_arg, bool reverse,
                                      bool relu, const Tensor& workspace_arg) {
    using detail::dense;
    const Tensor grad_output = dense(op, "grad_output", grad_output_arg),
                 grad_h_n = dense(op, "grad_h_n", grad_h_n_arg),
                 grad_c_n = dense(op, "grad_c_n", grad_c_n_arg),
                 input = dense(op, "input", input_arg), w_ih = dense(op, "w_ih", w_ih_arg),
                 w_hh = dense(op, "w_hh", w_hh_arg), w_hr = dense(op, "w_hr", w_hr_arg),
                 workspace = dense(op, "workspace", workspace_arg);
    const Tensor batch_sizes = detail::checked_batch_sizes(op, batch_sizes_arg);
    const auto s = detail::check_inputs(op, Cell::kGates, dtypes(), input, grad_h_n, "grad_h_n",
                                        w_ih, w_hh, w_hr, Tensor(), Tensor(), batch_sizes);
    detail::check_grads(op, grad_output, input, s, workspace, Cell::kSaved);
    if (grad_c_n.defined()) {
      detail::check_shape(op, "grad_c_n", grad_c_n, {s.B, s.H});
      detail::check_same(op, "grad_c_n", grad_c_n, input);
    }
    const auto steps = make_schedule(batch_sizes, s.T, s.B, reverse);
    std::vector<Tensor> grads;
    Backend be(input);  // for this call only
    detail::dispatch<Backend>(input.scalar_type(), [&](auto type) {
      grads = Recurrence<Cell, Backend, decltype(type)>::backward(
          be, steps, s, grad_output, grad_h_n, grad_c_n, input, input.sizes(), w_ih, w_hh, w_hr,
          workspace, relu);
    });
    return grads;
  }

  static std::tuple<Tensor, Tensor, Tensor> rnn_forward(const Tensor& input, const Tensor& hx,
                                                        const Tensor& w_ih, const Tensor& w_hh,
                                                        const optional<Tensor>& b_ih,
                                                        const optional<Tensor>& b_hh,
                                                        const optional<Tensor>& batch_sizes,
                                                        bool reverse, bool relu, bool training) {
    auto [out, h_n, c_n, ws] =
        forward<RNNCell>("fastrnn.rnn_forward", input, hx, Tensor(), w_ih, w_hh, b_ih, b_hh,
                         c10::nullopt, batch_sizes, reverse, relu, training);
    return {out, h_n, ws};
  }

  static std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> rnn_backward(
      const Tensor& grad_output, const Tensor& grad_h_n, const Tensor& input, const Tensor& w_ih,
      const Tensor& w_hh, const optional<Tensor>& batch_sizes, bool reverse, bool relu,
      const Tensor& workspace) {
    auto g = backward<RNNCell>("fastrnn.rnn_backward", grad_output, grad_h_n, Tensor(), input, w_ih,
                               w_hh, c10::nullopt, batch_sizes, reverse, relu, workspace);
    return {g[0], g[1], g[3], g[4], g[5]};
  }

  // w_hr given: LSTM with projection (torch.nn's proj_size).
  static std::tuple<Tensor, Tensor, Tensor, Tensor> lstm_forward(
      const Tensor& input, const Tensor& hx, const Tensor& cx, const Tensor& w_ih,
      const Tensor& w_hh, const optional<Tensor>& b_ih, const optional<Tensor>& b_hh,
      const optional<Tensor>& w_hr, const optional<Tensor>& batch_sizes, bool reverse,
      bool training) {
    constexpr const char* op = "fastrnn.lstm_forward";
    TORCH_CHECK(cx.defined(), op, ": cx: expected a tensor");
    const auto run = w_hr.has_value() ? &forward<LSTMProjCell> : &forward<LSTMCell>;
    return run(op, input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, false,
               training);
  }

  // grad_w_hr: empty ([0]) without w_hr.
  static std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> lstm_backward(
      const Tensor& grad_output, const Tensor& grad_h_n, const Tensor& grad_c_n,
      const Tensor& input, const Tensor& w_ih, const Tensor& w_hh, const optional<Tensor>& w_hr,
      const optional<Tensor>& batch_sizes, bool reverse, const Tensor& workspace) {
    constexpr const char* op = "fastrnn.lstm_backward";
    TORCH_CHECK(grad_c_n.defined(), op, ": grad_c_n: expected a tensor");
    const auto run = w_hr.has_value() ? &backward<LSTMProjCell> : &backward<LSTMCell>;
    auto g = run(op, grad_output, grad_h_n, grad_c_n, input, w_ih, w_hh, w_hr, batch_sizes, reverse,
                 false, workspace);
    const Tensor grad_w_hr = g[7].defined() ? g[7] : at::empty({0}, input.options());
    return {g[0], g[1], g[2], g[3], g[4], g[5], grad_w_hr};
  }

  static std::tuple<Tensor, Tensor, Tensor> gru_forward(const Tensor& input, const Tensor& hx,
                                                        const Tensor& w_ih, const Tensor& w_hh,
                                                        const optional<Tensor>& b_ih,
                                                        const optional<Tensor>& b_hh,
                                                        const optional<Tensor>& batch_sizes,
                                                        bool reverse, bool training) {
    auto [out, h_n, c_n, ws] =
        forward<GRUCell>("fastrnn.gru_forward", input, hx, Tensor(), w_ih, w_hh, b_ih, b_hh,
                         c10::nullopt, batch_sizes, reverse, false, training);
    return {out, h_n, ws};
  }

  static std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> gru_backward(
      const Tensor& grad_output, const Tensor& grad_h_n, const Tensor& input, const Tensor& w_ih,
      const Tensor& w_hh, const optional<Tensor>& batch_sizes, bool reverse,
      const Tensor& workspace) {
    auto g = backward<GRUCell>("fastrnn.gru_backward", grad_output, grad_h_n, Tensor(), input, w_ih,
                               w_hh, c10::nullopt, batch_sizes, reverse, false, workspace);
    return {g[0], g[1], g[3], g[4], g[5], g[6]};
  }
};

}  // namespace fastrnn
