"""fastrnn's ops in Python: autograd, and `layer`, the one entry point the
modules call (the fake kernels are in fake.py).

Every op runs one layer in one direction (see csrc/ops.cpp for the schemas).
The forward ops return a workspace with what the backward op needs; it is
empty unless `training` is true. The LSTM ops take an optional projection
w_hr [P, H] (torch.nn.LSTM's proj_size P): then h has P features.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.overrides import handle_torch_function, has_torch_function

from . import (
    _C,  # noqa: F401  (loading the library registers torch.ops.fastrnn.*)
    eager,
    onnx_export,
    reference,
)
from .fake import GATES, SAVED, native_dtypes  # (and registers the ops' fake kernels)

__all__ = [
    "GATES",
    "SAVED",
    "LOW_PRECISION",
    "DTYPES",
    "device_types",
    "native_dtypes",
    "layer",
]

# Every kernel takes float32 and float64; one that does not take these too
# (native_dtypes) runs them as float32.
LOW_PRECISION = (torch.float16, torch.bfloat16)
DTYPES = (torch.float32, torch.float64, *LOW_PRECISION)


def device_types():
    """The device types this build of fastrnn has kernels for: "cpu", and
    "cuda" where it was built with its CUDA backend."""
    return [
        device
        for device in ("cpu", "cuda")
        if torch._C._dispatch_has_kernel_for_dispatch_key("fastrnn::lstm_forward", device.upper())
    ]


# Autograd. setup_context saves every tensor argument of the forward op (the
# caller's tensors themselves, no copies) and the workspace, an output of the
# forward saved rather than recomputed. A first-order backward runs the fused
# backward op, which reads input, weights and workspace; a backward that builds
# a graph of its own (create_graph=True) needs the states and biases too.


def _setup_common(
    ctx,
    cell,
    input,
    hx,
    cx,
    w_ih,
    w_hh,
    b_ih,
    b_hh,
    w_hr,
    batch_sizes,
    reverse,
    workspace,
    relu=False,
):
    # Outputs that got no gradient arrive as None, not as zeros: autograd
    # filled a zero gradient of the whole workspace on every training step (the
    # size of 7 outputs for an LSTM), and the backward op never reads it.
    ctx.set_materialize_grads(False)
    # the same layout for every cell; None where the op has no such argument
    # (cx, w_hr but for "lstm") or the caller passed none
    ctx.save_for_backward(input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, workspace)
    ctx.cell, ctx.reverse, ctx.relu = cell, reverse, relu


def _gradients(ctx, grad_output, grad_h_n, grad_c_n=None):
    """The gradients of (input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr), None
    where an argument is absent. With grad mode on (a backward with
    create_graph=True) they are computed by differentiable operations, so
    that they can be differentiated again; otherwise by the fused backward op."""
    if torch.is_grad_enabled():
        return _differentiable_gradients(ctx, grad_output, grad_h_n, grad_c_n)
    return _FUSED_BACKWARD[ctx.cell](ctx, grad_output, grad_h_n, grad_c_n)


def _differentiable_gradients(ctx, grad_output, grad_h_n, grad_c_n):
    """The fused backward's gradients (equal to rounding) with a graph: the
    reference recurrence re-run on the saved arguments, differentiated with
    create_graph=True. The graph leads back to those arguments and to the
    incoming gradients, as torch.nn's does, so gradient penalties and
    Hessian-vector products are right. The reference loops over time steps in
    small ops: slow, and only run when a graph is asked for."""
    input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, _workspace = ctx.saved_tensors
    arguments = (input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr)
    wrt = [t for t in arguments if t is not None and t.requires_grad]
    # in the saved dtypes, as the fused ops compute: autocast does not reach them
    with torch.autocast(input.device.type, enabled=False):
        results = reference.layer(
            ctx.cell,
            input,
            hx,
            cx,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            batch_sizes,
            ctx.reverse,
            ctx.relu,
            w_hr,
        )
        pairs = [
            (r, g)
            for r, g in zip(results, (grad_output, grad_h_n, grad_c_n))
            if g is not None and r.requires_grad
        ]
        if not pairs or not wrt:
            return (None,) * len(arguments)
        found = iter(
            torch.autograd.grad(
                [r for r, _ in pairs],
                wrt,
                [g for _, g in pairs],
                create_graph=True,
                allow_unused=True,
            )
        )
    return tuple(next(found) if t is not None and t.requires_grad else None for t in arguments)


def _zeros_for_none(grad_output, grad_h_n, input, hx, w_hh):
    if grad_output is None:
        grad_output = input.new_zeros((*input.shape[:-1], w_hh.shape[1]))
    if grad_h_n is None:
        grad_h_n = torch.zeros_like(hx)
    return grad_output, grad_h_n


def _fused_rnn(ctx, grad_output, grad_h_n, _grad_c_n):
    input, hx, _, w_ih, w_hh, b_ih, _, _, batch_sizes, workspace = ctx.saved_tensors
    grad_output, grad_h_n = _zeros_for_none(grad_output, grad_h_n, input, hx, w_hh)
    grad_input, grad_hx, grad_w_ih, grad_w_hh, grad_b = eager.call(
        torch.ops.fastrnn.rnn_backward.default,
        grad_output,
        grad_h_n,
        input,
        w_ih,
        w_hh,
        batch_sizes,
        ctx.reverse,
        ctx.relu,
        workspace,
    )
    grad_b_ih, grad_b_hh = (None, None) if b_ih is None else (grad_b, grad_b.clone())
    return grad_input, grad_hx, None, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, None


def _fused_gru(ctx, grad_output, grad_h_n, _grad_c_n):
    input, hx, _, w_ih, w_hh, b_ih, _, _, batch_sizes, workspace = ctx.saved_tensors
    grad_output, grad_h_n = _zeros_for_none(grad_output, grad_h_n, input, hx, w_hh)
    grad_input, grad_hx, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh = eager.call(
        torch.ops.fastrnn.gru_backward.default,
        grad_output,
        grad_h_n,
        input,
        w_ih,
        w_hh,
        batch_sizes,
        ctx.reverse,
        workspace,
    )
    if b_ih is None:
        grad_b_ih = grad_b_hh = None
    return grad_input, grad_hx, None, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, None


def _fused_lstm(ctx, grad_output, grad_h_n, grad_c_n):
    input, hx, cx, w_ih, w_hh, b_ih, _, w_hr, batch_sizes, workspace = ctx.saved_tensors
    if grad_c_n is None:
        grad_c_n = torch.zeros_like(cx)
    grad_output, grad_h_n = _zeros_for_none(grad_output, grad_h_n, input, hx, w_hh)
    grad_input, grad_hx, grad_cx, grad_w_ih, grad_w_hh, grad_b, grad_w_hr = eager.call(
        torch.ops.fastrnn.lstm_backward.default,
        grad_output,
        grad_h_n,
        grad_c_n,
        input,
        w_ih,
        w_hh,
        w_hr,
        batch_sizes,
        ctx.reverse,
        workspace,
    )
    grad_b_ih, grad_b_hh = (None, None) if b_ih is None else (grad_b, grad_b.clone())
    return (
        grad_input,
        grad_hx,
        grad_cx,
        grad_w_ih,
        grad_w_hh,
        grad_b_ih,
        grad_b_hh,
        None if w_hr is None else grad_w_hr,
    )


_FUSED_BACKWARD = {"rnn": _fused_rnn, "gru": _fused_gru, "lstm": _fused_lstm}


# setup_context and backward of each forward op, in its schema's argument order


def _rnn_setup(ctx, inputs, output):
    input, hx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, relu, training = inputs
    _setup_common(
        ctx,
        "rnn",
        input,
        hx,
        None,
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        None,
        batch_sizes,
        reverse,
        output[2],
        relu,
    )


def _rnn_backward(ctx, grad_output, grad_h_n, _grad_workspace):
    grad_input, grad_hx, _, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, _ = _gradients(
        ctx, grad_output, grad_h_n
    )
    return grad_input, grad_hx, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, None, None, None, None


def _gru_setup(ctx, inputs, output):
    input, hx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, training = inputs
    _setup_common(
        ctx, "gru", input, hx, None, w_ih, w_hh, b_ih, b_hh, None, batch_sizes, reverse, output[2]
    )


def _gru_backward(ctx, grad_output, grad_h_n, _grad_workspace):
    grad_input, grad_hx, _, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, _ = _gradients(
        ctx, grad_output, grad_h_n
    )
    return grad_input, grad_hx, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, None, None, None


def _lstm_setup(ctx, inputs, output):
    input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, training = inputs
    _setup_common(
        ctx, "lstm", input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, output[3]
    )


def _lstm_backward(ctx, grad_output, grad_h_n, grad_c_n, _grad_workspace):
    return (*_gradients(ctx, grad_output, grad_h_n, grad_c_n), None, None, None)


# cell -> (setup_context, backward) of its forward op's autograd
_AUTOGRAD = {
    "rnn": (_rnn_setup, _rnn_backward),
    "gru": (_gru_setup, _gru_backward),
    "lstm": (_lstm_setup, _lstm_backward),
}
for _cell, (_setup, _backward) in _AUTOGRAD.items():
    torch.library.register_autograd(f"fastrnn::{_cell}_forward", _backward, setup_context=_setup)


# cell -> its forward op
_FORWARD_OPS = {cell: getattr(torch.ops.fastrnn, f"{cell}_forward").default for cell in _AUTOGRAD}


def _forward(cell, training, *inputs):
    """cell's forward op on inputs, recorded for autograd when training."""
    # compiled graphs trace the registered autograd; torch.jit.trace records
    # the op itself (an autograd.Function would be an opaque Python node);
    # eager calls take the fast path of eager.py
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return _FORWARD_OPS[cell](*inputs)
    eager.refuse_forward_ad(inputs)
    if training:
        return eager.apply(_FORWARD_OPS[cell], *_AUTOGRAD[cell], *inputs)
    return eager.call_below_autograd(_FORWARD_OPS[cell], *inputs)  # nothing needs a gradient


def _needs_grad(*tensors):
    """Whether the forward must keep the workspace for backward. A graph
    recorded by torch.jit.trace is recorded once and may run later with grad
    mode on or off, so there only requires_grad counts."""
    grad_mode = torch.is_grad_enabled() or torch.jit.is_tracing()
    return grad_mode and any(t is not None and t.requires_grad for t in tensors)


def layer(
    cell: str,
    input: Tensor,
    hx: Tensor,
    cx: Optional[Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor] = None,
    b_hh: Optional[Tensor] = None,
    batch_sizes: Optional[Tensor] = None,
    reverse: bool = False,
    relu: bool = False,
    w_hr: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Run one layer in one direction through fastrnn's fused op for `cell`.

    input: [T, B, I], or [N, I] packed with batch_sizes [T]; hx: [B, P], cx:
    [B, H] (cx only for "lstm"); w_hr: [P, H], the projection of an "lstm"
    with proj_size P (without it P = H). Returns (output, h_n, c_n), c_n None
    unless "lstm".

    float16 and bfloat16 run natively where the device's kernels take them
    (native_dtypes: stored in them, computed in float32); elsewhere they run
    the float32 kernels: arguments are converted on entry and the results back.
    """
    arguments = (input, hx, cx, w_ih, w_hh, b_ih, b_hh, batch_sizes, w_hr)
    if has_torch_function(
        arguments
    ):  # tensor-likes (__torch_function__), as torch's own ops take them
        return handle_torch_function(
            layer,
            arguments,
            cell,
            input,
            hx,
            cx,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            batch_sizes,
            reverse,
            relu,
            w_hr,
        )
    if input.dtype in LOW_PRECISION:
        tensors = dict(hx=hx, cx=cx, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, w_hr=w_hr)
        for name, t in tensors.items():
            # the conversion would hide a mismatch that the kernels (and torch.nn)
            # refuse; checked here in either case, so the message is the same
            if t is not None and t.dtype != input.dtype:
                raise RuntimeError(
                    f"fastrnn: {name}: expected dtype {input.dtype} (the input's), got {t.dtype}"
                )
    if input.dtype in LOW_PRECISION and input.dtype not in native_dtypes(input.device.type):
        as_float = {name: None if t is None else t.float() for name, t in tensors.items()}
        results = layer(
            cell, input.float(), batch_sizes=batch_sizes, reverse=reverse, relu=relu, **as_float
        )
        return tuple(None if r is None else r.to(input.dtype) for r in results)
    if input.dtype not in DTYPES:
        raise TypeError(
            f"fastrnn: input: expected dtype float32, float64, float16 or bfloat16, "
            f"got {input.dtype}"
        )
    if w_hr is not None and cell != "lstm":
        raise ValueError(f"fastrnn: w_hr (a projection) is only supported for lstm, not {cell}")
    if torch.onnx.is_in_onnx_export():  # an ONNX graph holds ONNX's operators, not ours
        return onnx_export.layer(
            cell, input, hx, cx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, relu, w_hr
        )
    training = _needs_grad(input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr)
    if cell == "lstm":
        output, h_n, c_n, _ = _forward(
            "lstm",
            training,
            input,
            hx,
            cx,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            w_hr,
            batch_sizes,
            reverse,
            training,
        )
        return output, h_n, c_n
    if cell == "gru":
        output, h_n, _ = _forward(
            "gru", training, input, hx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, training
        )
    else:
        output, h_n, _ = _forward(
            "rnn", training, input, hx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, relu, training
        )
    return output, h_n, None
