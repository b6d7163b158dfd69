"""Fake (meta) implementations of fastrnn's ops: output shapes, dtypes and
devices without computing, for torch.compile, torch.export and meta tensors.

A fake kernel also answers when the arguments are on different devices (CPU
input, meta weights: the dispatcher picks the Meta kernel if any argument is
meta), so each one checks what the real op checks (csrc/ops_impl.h), with the
same messages, before it returns anything: it must never hand uninitialised
tensors back for real data. Values of batch_sizes are checked when they are
real (not fake tensors under torch.compile); the real op checks them again.
"""

import torch
from torch._subclasses.fake_tensor import is_fake

from . import _C  # the ops must exist before their fake kernels are registered

# gates per cell, and workspace planes the forward saves for backward (an LSTM
# with projection saves one more: o * tanh(c), the projection's input), from
# the C++: each Cell::kGates and Cell::kSaved (csrc/cells/), which
# csrc/python_module.cpp puts on the extension module
GATES = dict(_C.GATES)
SAVED = dict(_C.SAVED)

# {device type: the dtypes its kernels take}, from the C++ (csrc/python_module.cpp):
# the backend that this build registers for that device type says (csrc/backend.h)
_NATIVE_DTYPES = {
    device: tuple(getattr(torch, name) for name in names)
    for device, names in _C.NATIVE_DTYPES.items()
}


def native_dtypes(device_type):
    """The dtypes that the kernels for device_type ("cpu", "cuda") take as
    they are. A device type without kernels of its own (meta) answers as the
    CPU, the default device: meta tensors are checked as CPU ones."""
    return _NATIVE_DTYPES.get(device_type, _NATIVE_DTYPES["cpu"])


def _check(op, condition, *message):
    torch._check(condition, lambda: f"{op}: " + "".join(str(m) for m in message))


def _shape(t):
    return list(t.shape)


def _check_shape(op, name, t, expected):
    _check(
        op,
        _shape(t) == list(expected),
        name,
        ": expected shape ",
        list(expected),
        ", got ",
        _shape(t),
    )


def _check_same(op, name, t, ref):
    _check(
        op,
        t.dtype == ref.dtype,
        name,
        ": expected dtype ",
        _dtype(ref.dtype),
        " (the input's), got ",
        _dtype(t.dtype),
    )
    _check(
        op,
        t.device == ref.device,
        name,
        ": expected device ",
        ref.device,
        " (the input's), got ",
        t.device,
    )


def _check_dense(op, tensors):
    """csrc/ops_impl.h's dense(): the kernels read strided tensors only."""
    for name, t in tensors.items():
        if t is not None:
            _check(
                op,
                t.layout == torch.strided and not t.is_nested,
                name,
                ": expected a strided (dense) tensor, got layout ",
                _layout(t.layout),
                " (nested)" if t.is_nested else "",
            )


def _layout(layout):
    return str(layout).removeprefix("torch.").capitalize()  # as C++ prints it: Strided, Sparse


def _check_batch_sizes_argument(op, bs):
    """csrc/ops_impl.h's checked_batch_sizes."""
    if bs is None:
        return
    _check(
        op,
        bs.layout == torch.strided
        and bs.dim() == 1
        and bs.dtype == torch.long
        and bs.device.type == "cpu",
        "batch_sizes: expected a 1-D int64 CPU tensor, got ",
        bs.dim(),
        "-D ",
        _dtype(bs.dtype),
        " on ",
        bs.device,
        " (layout ",
        _layout(bs.layout),
        ")",
    )
    _check(
        op,
        bs.is_contiguous(),
        "batch_sizes: expected a contiguous tensor, got strides ",
        list(bs.stride()),
    )


_SCALAR_TYPE = {
    torch.float32: "Float",
    torch.float64: "Double",
    torch.float16: "Half",
    torch.bfloat16: "BFloat16",
    torch.int64: "Long",
    torch.int32: "Int",
    torch.int16: "Short",
    torch.int8: "Char",
    torch.uint8: "Byte",
    torch.bool: "Bool",
}


def _dtype(dtype):
    """dtype as C++ prints it (c10::ScalarType)."""
    return _SCALAR_TYPE.get(dtype, str(dtype))


def _check_batch_sizes(op, bs, hx_name, B, N):
    torch._check(bs.shape[0] > 0, lambda: "Expected sequence length to be larger than 0 in RNN")
    if is_fake(bs):
        return
    b = bs.tolist()
    _check(op, b[0] == B, "batch_sizes[0] = ", b[0], " must equal ", hx_name, "'s batch ", B)
    for t in range(len(b)):
        _check(op, b[t] >= 0, f"batch_sizes[{t}] = {b[t]}: expected non-negative values")
        _check(
            op,
            t == 0 or b[t] <= b[t - 1],
            f"batch_sizes[{t}] = {b[t]} > batch_sizes[{t - 1}] = {b[t - 1]}: expected "
            "non-increasing values (sequences sorted by decreasing length)",
        )
    _check(op, sum(b) == N, "batch_sizes sum to ", sum(b), " but input has ", N, " rows")


def _listed(dtypes):
    """The dtypes' names as csrc/ops_impl.h lists them: "float32 or float64"."""
    return " or ".join(str(t).removeprefix("torch.") for t in dtypes)


def check_inputs(op, cell, input, hx, hx_name, w_ih, w_hh, w_hr, b_ih, b_hh, batch_sizes):
    """csrc/ops_impl.h's check_inputs, in the same order. Returns (H, P)."""
    gates = GATES[cell]
    native = native_dtypes(input.device.type)
    _check(
        op,
        input.dtype in native,
        "input: expected dtype ",
        _listed(native),
        ", got ",
        _dtype(input.dtype),
    )
    _check(op, w_hh.dim() == 2, "w_hh: expected 2 dimensions, got ", w_hh.dim())
    P = w_hh.shape[1]
    if w_hr is not None:
        _check(
            op,
            w_hh.shape[0] % gates == 0,
            "w_hh: expected ",
            gates,
            " * hidden_size rows, got shape ",
            _shape(w_hh),
        )
        H = w_hh.shape[0] // gates
        _check(op, w_hr.dim() == 2, "w_hr: expected 2 dimensions, got ", w_hr.dim())
        _check_shape(op, "w_hr", w_hr, (P, H))
        _check(
            op,
            0 < P < H,
            "w_hr: expected 0 < proj_size < hidden_size, got proj_size ",
            P,
            " and hidden_size ",
            H,
            " (shape ",
            _shape(w_hr),
            ")",
        )
        _check_same(op, "w_hr", w_hr, input)
    else:
        H = P
        _check_shape(op, "w_hh", w_hh, (gates * H, H))
    _check(op, w_ih.dim() == 2, "w_ih: expected 2 dimensions, got ", w_ih.dim())
    _check(op, hx.dim() == 2, hx_name, ": expected 2 dimensions [batch, hidden], got ", hx.dim())
    B = hx.shape[0]
    if batch_sizes is not None:
        _check(
            op,
            input.dim() == 2,
            "input: expected 2 dimensions [rows, input_size] with batch_sizes, got ",
            input.dim(),
        )
        _check_batch_sizes(op, batch_sizes, hx_name, B, input.shape[0])
    else:
        _check(
            op,
            input.dim() == 3,
            "input: expected 3 dimensions [seq_len, batch, input_size], got ",
            input.dim(),
        )
        torch._check(
            input.shape[0] > 0, lambda: "Expected sequence length to be larger than 0 in RNN"
        )
        _check(
            op,
            input.shape[1] == B,
            hx_name,
            ": expected batch ",
            input.shape[1],
            " (the input's), got ",
            B,
        )
    _check(
        op,
        input.shape[-1] == w_ih.shape[1],
        "input: expected input_size ",
        w_ih.shape[1],
        " (w_ih's), got ",
        input.shape[-1],
    )
    _check_shape(op, hx_name, hx, (B, P))
    _check_shape(op, "w_ih", w_ih, (gates * H, w_ih.shape[1]))
    _check_same(op, hx_name, hx, input)
    _check_same(op, "w_ih", w_ih, input)
    _check_same(op, "w_hh", w_hh, input)
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            _check_shape(op, name, b, (gates * H,))
            _check_same(op, name, b, input)
    return H, P


def _rows(input):
    return input.shape[0] if input.dim() == 2 else input.shape[0] * input.shape[1]


def _forward(cell, input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, training):
    op = f"fastrnn.{cell}_forward"
    _check_dense(
        op, dict(input=input, hx=hx, cx=cx, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, w_hr=w_hr)
    )
    _check_batch_sizes_argument(op, batch_sizes)
    H, P = check_inputs(op, cell, input, hx, "hx", w_ih, w_hh, w_hr, b_ih, b_hh, batch_sizes)
    if cell == "lstm":
        _check(op, cx is not None, "cx: expected a tensor")
        _check_shape(op, "cx", cx, (hx.shape[0], H))
        _check_same(op, "cx", cx, input)
    output = input.new_empty((*input.shape[:-1], P))
    planes = SAVED[cell] + (w_hr is not None) if training else 0
    workspace = input.new_empty((planes, _rows(input), H))
    return output, hx.new_empty(hx.shape), workspace


@torch.library.register_fake("fastrnn::rnn_forward")
def _(input, hx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, relu, training):
    return _forward("rnn", input, hx, None, w_ih, w_hh, b_ih, b_hh, None, batch_sizes, training)


@torch.library.register_fake("fastrnn::gru_forward")
def _(input, hx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, training):
    return _forward("gru", input, hx, None, w_ih, w_hh, b_ih, b_hh, None, batch_sizes, training)


@torch.library.register_fake("fastrnn::lstm_forward")
def _(input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, training):
    output, h_n, workspace = _forward(
        "lstm", input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, training
    )
    return output, h_n, cx.new_empty(cx.shape), workspace


def _backward(
    cell, grad_output, grad_h_n, grad_c_n, input, w_ih, w_hh, w_hr, batch_sizes, workspace
):
    """The checks of csrc/ops_impl.h's backward; returns the gradients' fakes
    common to every cell: grad_input, grad_hx, grad_w_ih, grad_w_hh, grad_b."""
    op = f"fastrnn.{cell}_backward"
    _check_dense(
        op,
        dict(
            grad_output=grad_output,
            grad_h_n=grad_h_n,
            grad_c_n=grad_c_n,
            input=input,
            w_ih=w_ih,
            w_hh=w_hh,
            w_hr=w_hr,
            workspace=workspace,
        ),
    )
    _check_batch_sizes_argument(op, batch_sizes)
    H, P = check_inputs(
        op, cell, input, grad_h_n, "grad_h_n", w_ih, w_hh, w_hr, None, None, batch_sizes
    )
    _check_shape(op, "grad_output", grad_output, (*input.shape[:-1], P))
    _check_same(op, "grad_output", grad_output, input)
    rows = _rows(input)
    _check(
        op,
        workspace.numel() > 0 or rows * H == 0,
        "workspace is empty: the forward ran with training=False",
    )
    _check_shape(op, "workspace", workspace, (SAVED[cell] + (w_hr is not None), rows, H))
    _check_same(op, "workspace", workspace, input)
    if cell == "lstm":
        _check(op, grad_c_n is not None, "grad_c_n: expected a tensor")
        _check_shape(op, "grad_c_n", grad_c_n, (grad_h_n.shape[0], H))
        _check_same(op, "grad_c_n", grad_c_n, input)
    return (
        input.new_empty(input.shape),
        grad_h_n.new_empty(grad_h_n.shape),
        w_ih.new_empty(w_ih.shape),
        w_hh.new_empty(w_hh.shape),
        w_hh.new_empty(w_hh.shape[0]),
    )


@torch.library.register_fake("fastrnn::rnn_backward")
def _(grad_output, grad_h_n, input, w_ih, w_hh, batch_sizes, reverse, relu, workspace):
    return _backward(
        "rnn", grad_output, grad_h_n, None, input, w_ih, w_hh, None, batch_sizes, workspace
    )


@torch.library.register_fake("fastrnn::gru_backward")
def _(grad_output, grad_h_n, input, w_ih, w_hh, batch_sizes, reverse, workspace):
    grads = _backward(
        "gru", grad_output, grad_h_n, None, input, w_ih, w_hh, None, batch_sizes, workspace
    )
    return (*grads, grads[-1].new_empty(grads[-1].shape))  # grad_b_ih, grad_b_hh


@torch.library.register_fake("fastrnn::lstm_backward")
def _(grad_output, grad_h_n, grad_c_n, input, w_ih, w_hh, w_hr, batch_sizes, reverse, workspace):
    grad_input, grad_hx, grad_w_ih, grad_w_hh, grad_b = _backward(
        "lstm", grad_output, grad_h_n, grad_c_n, input, w_ih, w_hh, w_hr, batch_sizes, workspace
    )
    grad_w_hr = input.new_empty(0 if w_hr is None else w_hr.shape)
    return (
        grad_input,
        grad_hx,
        grad_c_n.new_empty(grad_c_n.shape),
        grad_w_ih,
        grad_w_hh,
        grad_b,
        grad_w_hr,
    )
