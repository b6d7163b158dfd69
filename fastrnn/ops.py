"""fastrnn's ops in Python: fake (meta) implementations, autograd, and `layer`,
the one entry point the modules call.

Every op runs one layer in one direction (see csrc/ops.cpp for the schemas).
The forward ops return a workspace with what the backward op needs; it is
empty unless `training` is true. The LSTM ops take an optional projection
w_hr [P, H] (torch.nn.LSTM's proj_size P): then h has P features.
"""

import torch

from . import _C  # noqa: F401  (loading the library registers torch.ops.fastrnn.*)

__all__ = ["GATES", "SAVED", "LOW_PRECISION", "DTYPES", "layer"]

# gates per cell, and workspace planes the forward saves for backward (an LSTM
# with projection saves one more: o * tanh(c), the projection's input)
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
SAVED = {"rnn": 2, "lstm": 7, "gru": 5}
# the kernels are float32 and float64; these run the float32 ones
LOW_PRECISION = (torch.float16, torch.bfloat16)
DTYPES = (torch.float32, torch.float64, *LOW_PRECISION)


def _rows(input):
    return input.shape[0] if input.dim() == 2 else input.shape[0] * input.shape[1]


def _check_devices(cell, input, **tensors):
    """The CPU kernels check that every tensor is on the input's device. A
    meta tensor among CPU ones sends the call to the fake kernel instead,
    which would hand back empty tensors (on the input's device) unchecked."""
    for name, t in tensors.items():
        if t is not None and t.device != input.device:
            raise RuntimeError(f"fastrnn.{cell}_forward: {name}: expected device {input.device} "
                               f"(the input's), got {t.device}")


def _fake_forward(cell, input, hx, w_hh, training, projected=False):
    # w_hh: [G * H, P], P = H without projection
    hidden, features = w_hh.shape[0] // GATES[cell], w_hh.shape[1]
    output = input.new_empty((*input.shape[:-1], features))
    planes = SAVED[cell] + projected if training else 0
    workspace = input.new_empty((planes, _rows(input), hidden))
    return output, hx.new_empty(hx.shape), workspace


@torch.library.register_fake("fastrnn::rnn_forward")
def _(input, hx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, relu, training):
    _check_devices("rnn", input, hx=hx, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
    return _fake_forward("rnn", input, hx, w_hh, training)


@torch.library.register_fake("fastrnn::gru_forward")
def _(input, hx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, training):
    _check_devices("gru", input, hx=hx, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh)
    return _fake_forward("gru", input, hx, w_hh, training)


@torch.library.register_fake("fastrnn::lstm_forward")
def _(input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, training):
    _check_devices("lstm", input, hx=hx, cx=cx, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh,
                   w_hr=w_hr)
    output, h_n, workspace = _fake_forward("lstm", input, hx, w_hh, training, w_hr is not None)
    return output, h_n, cx.new_empty(cx.shape), workspace


def _fake_param_grads(w_ih, w_hh):
    return w_ih.new_empty(w_ih.shape), w_hh.new_empty(w_hh.shape), w_hh.new_empty(w_hh.shape[0])


@torch.library.register_fake("fastrnn::rnn_backward")
def _(grad_output, grad_h_n, input, w_ih, w_hh, batch_sizes, reverse, relu, workspace):
    return (input.new_empty(input.shape), grad_h_n.new_empty(grad_h_n.shape),
            *_fake_param_grads(w_ih, w_hh))


@torch.library.register_fake("fastrnn::gru_backward")
def _(grad_output, grad_h_n, input, w_ih, w_hh, batch_sizes, reverse, workspace):
    grad_w_ih, grad_w_hh, grad_b_ih = _fake_param_grads(w_ih, w_hh)
    return (input.new_empty(input.shape), grad_h_n.new_empty(grad_h_n.shape),
            grad_w_ih, grad_w_hh, grad_b_ih, grad_b_ih.new_empty(grad_b_ih.shape))


@torch.library.register_fake("fastrnn::lstm_backward")
def _(grad_output, grad_h_n, grad_c_n, input, w_ih, w_hh, w_hr, batch_sizes, reverse, workspace):
    grad_w_hr = input.new_empty(0 if w_hr is None else w_hr.shape)
    return (input.new_empty(input.shape), grad_h_n.new_empty(grad_h_n.shape),
            grad_c_n.new_empty(grad_c_n.shape), *_fake_param_grads(w_ih, w_hh), grad_w_hr)


# Autograd. setup_context keeps what the backward op takes; the workspace is an
# output of the forward, saved rather than recomputed.

def _call(op, *args):
    """op(*args), below the autograd dispatch key where nothing can need a
    gradient (grad mode off) in eager code: the key's kernel is Python
    (torch.library's wrapper, or the not-implemented fallback of the backward
    ops), and cost more than a one-step op at batch 1; after other work had
    evicted it from the caches, several times more."""
    if torch.is_grad_enabled() or torch.compiler.is_compiling():
        return op(*args)
    with torch._C._AutoDispatchBelowAutograd():
        return op(*args)


def _setup_common(ctx, input, hx, w_ih, w_hh, b_ih, batch_sizes, reverse, workspace, w_hr=None):
    # Outputs that got no gradient arrive as None, not as zeros: autograd
    # filled a zero gradient of the whole workspace on every training step (the
    # size of 7 outputs for an LSTM), and the backward op never reads it.
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(input, w_ih, w_hh, batch_sizes, workspace, w_hr)
    ctx.state_shape = hx.shape
    ctx.reverse = reverse
    ctx.has_bias = b_ih is not None


def _grads_in(ctx, grad_output, grad_h_n):
    """The saved tensors, with zeros for outputs that got no gradient."""
    input, w_ih, w_hh, batch_sizes, workspace, _w_hr = ctx.saved_tensors
    if grad_output is None:
        grad_output = input.new_zeros((*input.shape[:-1], w_hh.shape[1]))
    if grad_h_n is None:
        grad_h_n = input.new_zeros(ctx.state_shape)
    return grad_output, grad_h_n, input, w_ih, w_hh, batch_sizes, workspace


def _bias(ctx, grad_b_ih, grad_b_hh):
    return (grad_b_ih, grad_b_hh) if ctx.has_bias else (None, None)


def _rnn_setup(ctx, inputs, output):
    input, hx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, relu, training = inputs
    _setup_common(ctx, input, hx, w_ih, w_hh, b_ih, batch_sizes, reverse, output[2])
    ctx.relu = relu


def _rnn_backward(ctx, grad_output, grad_h_n, _grad_workspace):
    grad_output, grad_h_n, input, w_ih, w_hh, batch_sizes, workspace = _grads_in(
        ctx, grad_output, grad_h_n)
    grad_input, grad_hx, grad_w_ih, grad_w_hh, grad_b = _call(
        torch.ops.fastrnn.rnn_backward.default, grad_output, grad_h_n, input, w_ih, w_hh,
        batch_sizes, ctx.reverse, ctx.relu, workspace)
    return (grad_input, grad_hx, grad_w_ih, grad_w_hh, *_bias(ctx, grad_b, grad_b.clone()),
            None, None, None, None)


def _gru_setup(ctx, inputs, output):
    input, hx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, training = inputs
    _setup_common(ctx, input, hx, w_ih, w_hh, b_ih, batch_sizes, reverse, output[2])


def _gru_backward(ctx, grad_output, grad_h_n, _grad_workspace):
    grad_output, grad_h_n, input, w_ih, w_hh, batch_sizes, workspace = _grads_in(
        ctx, grad_output, grad_h_n)
    grad_input, grad_hx, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh = _call(
        torch.ops.fastrnn.gru_backward.default, grad_output, grad_h_n, input, w_ih, w_hh,
        batch_sizes, ctx.reverse, workspace)
    return (grad_input, grad_hx, grad_w_ih, grad_w_hh, *_bias(ctx, grad_b_ih, grad_b_hh),
            None, None, None)


def _lstm_setup(ctx, inputs, output):
    input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, training = inputs
    _setup_common(ctx, input, hx, w_ih, w_hh, b_ih, batch_sizes, reverse, output[3], w_hr)
    ctx.cell_shape = cx.shape


def _lstm_backward(ctx, grad_output, grad_h_n, grad_c_n, _grad_workspace):
    grad_output, grad_h_n, input, w_ih, w_hh, batch_sizes, workspace = _grads_in(
        ctx, grad_output, grad_h_n)
    w_hr = ctx.saved_tensors[-1]
    if grad_c_n is None:
        grad_c_n = input.new_zeros(ctx.cell_shape)
    grad_input, grad_hx, grad_cx, grad_w_ih, grad_w_hh, grad_b, grad_w_hr = _call(
        torch.ops.fastrnn.lstm_backward.default, grad_output, grad_h_n, grad_c_n, input, w_ih,
        w_hh, w_hr, batch_sizes, ctx.reverse, workspace)
    return (grad_input, grad_hx, grad_cx, grad_w_ih, grad_w_hh,
            *_bias(ctx, grad_b, grad_b.clone()), None if w_hr is None else grad_w_hr,
            None, None, None)


# cell -> (setup_context, backward) of its forward op's autograd
_AUTOGRAD = {"rnn": (_rnn_setup, _rnn_backward), "gru": (_gru_setup, _gru_backward),
             "lstm": (_lstm_setup, _lstm_backward)}
for _cell, (_setup, _backward) in _AUTOGRAD.items():
    torch.library.register_autograd(f"fastrnn::{_cell}_forward", _backward, setup_context=_setup)


# cell -> its forward op
_FORWARD_OPS = {cell: getattr(torch.ops.fastrnn, f"{cell}_forward").default for cell in _AUTOGRAD}


class _Eager(torch.autograd.Function):
    """The same autograd as registered above (the same setup_context and
    backward functions), for eager calls: torch.library's wrapper re-reads the
    op's schema on every call (torch._library.utils.fill_defaults, ~90 us),
    longer than a whole one-step LSTM op at batch 1. Compiled graphs trace the
    registered autograd instead, and pay nothing per call."""

    @staticmethod
    def forward(ctx, cell, *inputs):
        # grad mode is off here: the op runs below autograd
        output = _call(_FORWARD_OPS[cell], *inputs)
        ctx.cell = cell
        _AUTOGRAD[cell][0](ctx, inputs, output)
        return output

    @staticmethod
    def backward(ctx, *grads):
        with torch.no_grad():
            result = _AUTOGRAD[ctx.cell][1](ctx, *grads)
        if torch.is_grad_enabled():  # create_graph=True
            result = _not_differentiable(result)
        return (None, *result)


def _not_differentiable(grads):
    """grads, through a node that raises if they are differentiated: the
    backward ops have no derivative of their own, and PyTorch's fallback
    treated them as constants (a wrong second derivative, with a warning)."""
    present = [g for g in grads if g is not None]
    error = torch._C._functions.DelayedError(
        b"fastrnn: double backward (differentiating a gradient computed with create_graph=True "
        b"through fastrnn's RNN, LSTM or GRU) is not supported", len(present))
    marked = error(*[g.detach().requires_grad_() for g in present])
    marked = iter((marked,) if isinstance(marked, torch.Tensor) else marked)  # one: not a tuple
    return tuple(None if g is None else next(marked) for g in grads)


def _forward(cell, training, *inputs):
    """cell's forward op on inputs, recorded for autograd when training."""
    if torch.compiler.is_compiling():  # compiled graphs trace the registered autograd
        return _FORWARD_OPS[cell](*inputs)
    if training:
        return _Eager.apply(cell, *inputs)
    with torch._C._AutoDispatchBelowAutograd():  # nothing needs a gradient
        return _FORWARD_OPS[cell](*inputs)


def _needs_grad(*tensors):
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def layer(cell, input, hx, cx, w_ih, w_hh, b_ih=None, b_hh=None, batch_sizes=None,
          reverse=False, relu=False, w_hr=None):
    """Run one layer in one direction through fastrnn's fused op for `cell`.

    input: [T, B, I], or [N, I] packed with batch_sizes [T]; hx: [B, P], cx:
    [B, H] (cx only for "lstm"); w_hr: [P, H], the projection of an "lstm"
    with proj_size P (without it P = H). Returns (output, h_n, c_n), c_n None
    unless "lstm".

    float16 and bfloat16 run the float32 kernels: arguments are converted on
    entry and the results back, so they are at least as accurate as torch.nn's.
    """
    if input.dtype in LOW_PRECISION:
        tensors = dict(hx=hx, cx=cx, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, w_hr=w_hr)
        for name, t in tensors.items():
            # the conversion would hide a mismatch that the kernels (and torch.nn) refuse
            if t is not None and t.dtype != input.dtype:
                raise RuntimeError(
                    f"fastrnn: {name}: expected dtype {input.dtype} (the input's), got {t.dtype}")
        as_float = {name: None if t is None else t.float() for name, t in tensors.items()}
        results = layer(cell, input.float(), batch_sizes=batch_sizes, reverse=reverse, relu=relu,
                        **as_float)
        return tuple(None if r is None else r.to(input.dtype) for r in results)
    if input.dtype not in DTYPES:
        raise TypeError(f"fastrnn: input: expected dtype float32, float64, float16 or bfloat16, "
                        f"got {input.dtype}")
    if w_hr is not None and cell != "lstm":
        raise ValueError(f"fastrnn: w_hr (a projection) is only supported for lstm, not {cell}")
    training = _needs_grad(input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr)
    if cell == "lstm":
        output, h_n, c_n, _ = _forward("lstm", training, input, hx, cx, w_ih, w_hh, b_ih, b_hh,
                                       w_hr, batch_sizes, reverse, training)
        return output, h_n, c_n
    if cell == "gru":
        output, h_n, _ = _forward("gru", training, input, hx, w_ih, w_hh, b_ih, b_hh,
                                  batch_sizes, reverse, training)
    else:
        output, h_n, _ = _forward("rnn", training, input, hx, w_ih, w_hh, b_ih, b_hh,
                                  batch_sizes, reverse, relu, training)
    return output, h_n, None
