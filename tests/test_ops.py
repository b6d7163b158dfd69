"""The ops, one layer one direction, padded and packed, forward and reverse:
gradcheck, opcheck, and agreement with the pure-PyTorch reference (and, for
packed input, with torch.nn on a PackedSequence)."""

from unittest import mock

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from fastrnn import ops, reference

from helpers import float32_excess

# cell name -> (ops/reference cell, relu); lstm_proj: lstm with a projection w_hr
CELLS = {
    "rnn_tanh": ("rnn", False),
    "rnn_relu": ("rnn", True),
    "lstm": ("lstm", False),
    "lstm_proj": ("lstm", False),
    "gru": ("gru", False),
}
CELL_IDS = list(CELLS)

packed_param = pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
reverse_param = pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
bias_param = pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
cell_param = pytest.mark.parametrize("cell", CELL_IDS)

# names of the tensor arguments of ops.layer / reference.layer
TENSOR_ARGS = ("input", "hx", "cx", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr")


def random_batch_sizes(T, B):
    """Non-increasing batch sizes of B sequences, the longest T steps long."""
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T
    lengths = lengths.sort(descending=True).values
    return torch.tensor([(lengths > t).sum().item() for t in range(T)], dtype=torch.long)


def proj_size(cell, H):
    """Features of h: about half of H for lstm_proj, else H."""
    return (H + 1) // 2 if cell == "lstm_proj" else H


def make_args(cell, T, B, I, H, packed, bias, dtype=torch.float64, requires_grad=False):
    """Random arguments of ops.layer as a dict (tensors + batch_sizes)."""
    name, _ = CELLS[cell]
    G = ops.GATES[name]
    P = proj_size(cell, H)
    batch_sizes = random_batch_sizes(T, B) if packed else None
    rows = int(batch_sizes.sum()) if packed else None
    args = {
        "input": torch.randn((rows, I) if packed else (T, B, I), dtype=dtype),
        "hx": torch.randn(B, P, dtype=dtype),
        "cx": torch.randn(B, H, dtype=dtype) if name == "lstm" else None,
        "w_ih": torch.randn(G * H, I, dtype=dtype) * 0.5,
        "w_hh": torch.randn(G * H, P, dtype=dtype) * 0.5,
        "b_ih": torch.randn(G * H, dtype=dtype) if bias else None,
        "b_hh": torch.randn(G * H, dtype=dtype) if bias else None,
        "w_hr": torch.randn(P, H, dtype=dtype) * 0.5 if cell == "lstm_proj" else None,
    }
    for t in args.values():
        if t is not None:
            t.requires_grad_(requires_grad)
    args["batch_sizes"] = batch_sizes
    return args


def run_layer(impl, cell, args, reverse):
    name, relu = CELLS[cell]
    return impl(
        name,
        **{k: args[k] for k in TENSOR_ARGS},
        batch_sizes=args["batch_sizes"],
        reverse=reverse,
        relu=relu,
    )


def relu_preactivations(args, reverse):
    """Every pre-activation of a relu RNN layer, through the reference's own
    schedule (a spy on its cell function)."""
    seen = []
    real_cell = reference.rnn_cell

    def spy(x, h, w_ih, w_hh, b_ih, b_hh, relu=False):
        pre = x @ w_ih.t() + h @ w_hh.t()
        seen.append(pre if b_ih is None else pre + b_ih + b_hh)
        return real_cell(x, h, w_ih, w_hh, b_ih, b_hh, relu)

    with mock.patch.object(reference, "rnn_cell", spy), torch.no_grad():
        run_layer(reference.layer, "rnn_relu", args, reverse)
    return torch.cat([p.flatten() for p in seen])


def make_gradcheck_args(cell, packed, bias, reverse, T=4, B=3, I=2, H=3):
    """make_args, redrawn (deterministically, from the seeded RNG) for relu until
    every pre-activation is at least 1e-3 from the kink at 0. gradcheck moves
    one element by eps = 1e-6, which moves a pre-activation by ~1e-6 times a
    coefficient of order one, so no finite difference straddles the kink."""
    for _ in range(50):
        args = make_args(cell, T, B, I, H, packed, bias, requires_grad=True)
        if cell != "rnn_relu" or relu_preactivations(args, reverse).abs().min() > 1e-3:
            return args
    pytest.fail("no relu draw kept its pre-activations away from 0")


def differentiable(args):
    names = [k for k in TENSOR_ARGS if args[k] is not None]
    return names, tuple(args[k] for k in names)


def layer_fn(impl, cell, args, reverse, names):
    """ops.layer / reference.layer as a function of the tensors in `names`."""

    def f(*tensors):
        call = dict(args, **dict(zip(names, tensors)))
        return tuple(t for t in run_layer(impl, cell, call, reverse) if t is not None)

    return f


# --- gradcheck of the forward ops through ops.layer ---------------------------------------


@bias_param
@reverse_param
@packed_param
@cell_param
def test_gradcheck_forward(cell, packed, reverse, bias):
    args = make_gradcheck_args(cell, packed, bias, reverse)
    names, tensors = differentiable(args)
    # central differences with eps 1e-6 in float64 are good to ~1e-9 here;
    # tighter than gradcheck's default rtol (1e-3)
    assert torch.autograd.gradcheck(
        layer_fn(ops.layer, cell, args, reverse, names), tensors, atol=1e-7, rtol=1e-6
    )


# --- the ops called directly ---------------------------------------------------------------


def _forward_op_args(cell, args, reverse, training):
    """(forward op of `cell`, its arguments) from make_args' dict."""
    name, relu = CELLS[cell]
    states = (args["input"], args["hx"]) + ((args["cx"],) if name == "lstm" else ())
    weights = (args["w_ih"], args["w_hh"], args["b_ih"], args["b_hh"])
    weights += (args["w_hr"],) if name == "lstm" else ()
    rest = (*weights, args["batch_sizes"], reverse)
    flags = (relu, training) if name == "rnn" else (training,)
    return getattr(torch.ops.fastrnn, f"{name}_forward").default, (*states, *rest, *flags)


# --- gradcheck of the backward ops ------------------------------------------------------
#
# The backward ops have no autograd formula of their own (double backward
# differentiates the reference recurrence instead), so gradcheck cannot
# differentiate them as they are. They are linear in the incoming gradients g:
# backward(g) = J^T g, J the Jacobian of the forward. So the backward op is
# wrapped in an autograd.Function whose own backward is J v, computed by
# forward-mode AD (torch.func.jvp) of the pure PyTorch reference. gradcheck then
# compares the finite-difference Jacobian of the C++ backward op w.r.t.
# (grad_output, grad_h_n[, grad_c_n]), with input, weights and workspace fixed,
# against the reference's J^T.


class _BackwardOp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, case, *grads):
        ctx.case = case
        return case.backward_op(*grads)

    @staticmethod
    def backward(ctx, *cotangents):
        return (None, *ctx.case.reference_jvp(cotangents))


class _BackwardCase:
    def __init__(self, cell, args, reverse):
        self.cell, self.reverse = cell, reverse
        self.name, self.relu = CELLS[cell]
        self.fixed = {
            k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in args.items()
        }
        op, op_args = _forward_op_args(cell, self.fixed, reverse, training=True)
        out = op(*op_args)
        self.outputs, self.workspace = out[:-1], out[-1]
        assert self.workspace.numel() > 0

    def backward_op_args(self, *grads):
        """(backward op, its arguments) for these incoming gradients."""
        a = self.fixed
        weights = (a["w_ih"], a["w_hh"]) + ((a["w_hr"],) if self.name == "lstm" else ())
        rest = (a["input"], *weights, a["batch_sizes"], self.reverse)
        op = getattr(torch.ops.fastrnn, f"{self.name}_backward").default
        relu = (self.relu,) if self.name == "rnn" else ()
        return op, (*grads, *rest, *relu, self.workspace)

    def backward_op(self, *grads):
        op, op_args = self.backward_op_args(*grads)
        return op(*op_args)

    def reference_jvp(self, v):
        """J v: the tangent of the reference's outputs for tangent v on the
        quantities the backward op returns gradients of."""
        a = self.fixed
        v_whr = None
        if self.name == "lstm":  # grad_w_hr: empty without a projection
            v_in, v_hx, v_cx, v_wih, v_whh, v_b, v_whr = v
            v_bih, v_bhh = v_b, torch.zeros_like(v_b)  # grad_b is d/db_ih = d/db_hh
            v_whr = v_whr if a["w_hr"] is not None else None
        elif self.name == "gru":
            v_in, v_hx, v_wih, v_whh, v_bih, v_bhh = v
            v_cx = None
        else:
            v_in, v_hx, v_wih, v_whh, v_b = v
            v_bih, v_bhh, v_cx = v_b, torch.zeros_like(v_b), None
        primals = {k: a[k] for k in TENSOR_ARGS}
        tangents = dict(
            input=v_in, hx=v_hx, cx=v_cx, w_ih=v_wih, w_hh=v_whh, b_ih=v_bih, b_hh=v_bhh, w_hr=v_whr
        )
        names = [k for k in TENSOR_ARGS if primals[k] is not None]
        f = layer_fn(reference.layer, self.cell, self.fixed, self.reverse, names)
        _, jv = torch.func.jvp(
            f, tuple(primals[k] for k in names), tuple(tangents[k] for k in names)
        )
        return jv


@reverse_param
@packed_param
@cell_param
def test_gradcheck_backward_op(cell, packed, reverse):
    args = make_args(cell, 4, 3, 2, 3, packed, bias=True)
    case = _BackwardCase(cell, args, reverse)
    grads = tuple(torch.randn_like(t).requires_grad_(True) for t in case.outputs)
    # the op is linear in grads: finite differences are exact up to rounding
    assert torch.autograd.gradcheck(
        lambda *g: _BackwardOp.apply(case, *g), grads, atol=1e-8, rtol=1e-7
    )


# --- opcheck -------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@packed_param
@cell_param
def test_opcheck_forward(cell, packed, training):
    # training=False keeps no workspace, so there is no backward: inputs that
    # require grad only make sense with training=True (as ops.layer does).
    args = make_args(cell, 4, 3, 2, 3, packed, bias=True, requires_grad=training)
    op, op_args = _forward_op_args(cell, args, reverse=packed, training=training)
    torch.library.opcheck(op, op_args)


@packed_param
@cell_param
def test_opcheck_backward(cell, packed):
    case = _BackwardCase(cell, make_args(cell, 4, 3, 2, 3, packed, bias=True), reverse=packed)
    op, op_args = case.backward_op_args(*(torch.randn_like(t) for t in case.outputs))
    torch.library.opcheck(op, op_args)


# --- ops.layer against reference.layer -----------------------------------------------------


def _forward_and_grads(impl, cell, args, reverse, upstream):
    names, tensors = differentiable(args)
    outs = layer_fn(impl, cell, args, reverse, names)(*tensors)
    grads = torch.autograd.grad(outs, tensors, upstream)
    return dict(zip(("output", "h_n", "c_n"), outs)) | {
        f"grad_{n}": g for n, g in zip(names, grads)
    }


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@bias_param
@reverse_param
@packed_param
@cell_param
def test_layer_matches_reference(cell, packed, reverse, bias, dtype):
    args = make_args(cell, 9, 5, 4, 6, packed, bias, dtype=dtype, requires_grad=True)
    expected_outs = run_layer(reference.layer, cell, args, reverse)
    upstream = tuple(torch.randn_like(t) for t in expected_outs if t is not None)
    expected = _forward_and_grads(reference.layer, cell, args, reverse, upstream)
    got = _forward_and_grads(ops.layer, cell, args, reverse, upstream)
    assert got.keys() == expected.keys()
    if dtype == torch.float64:
        for k in expected:
            torch.testing.assert_close(
                got[k], expected[k], atol=1e-12, rtol=1e-12, msg=lambda m, k=k: f"{k}: {m}"
            )
        return
    # float32: both against the reference run in float64 on the same values.
    args64 = {
        k: (
            v.detach().double().requires_grad_()
            if torch.is_tensor(v) and v.is_floating_point()
            else v
        )
        for k, v in args.items()
    }
    truth = _forward_and_grads(
        reference.layer, cell, args64, reverse, tuple(u.double() for u in upstream)
    )
    bad = float32_excess(got, expected, truth)
    assert not bad, "ops.layer float32 less accurate than the reference:\n  " + "\n  ".join(bad)


@reverse_param
@cell_param
def test_packed_layer_matches_torch_nn_packed_sequence(cell, reverse):
    """The oracle of the packed semantics (h_n per sequence after its own last
    step; reverse starts each sequence at its own end): torch.nn on a
    PackedSequence, whose reverse direction is the bidirectional module's
    second half."""
    name, relu = CELLS[cell]
    T, B, I, H = 6, 4, 3, 5
    P = proj_size(cell, H)
    module_cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[name]
    extra = {"nonlinearity": "relu" if relu else "tanh"} if name == "rnn" else {}
    if cell == "lstm_proj":
        extra["proj_size"] = P
    module = module_cls(I, H, bidirectional=True, **extra).double()
    sfx = "_reverse" if reverse else ""
    params = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}
    if cell == "lstm_proj":
        params["w_hr"] = "weight_hr"
    w = {k: getattr(module, f"{p}_l0{sfx}") for k, p in params.items()}
    names = list(w)

    lengths = torch.tensor([6, 4, 4, 1])
    padded = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    packed = pack_padded_sequence(padded, lengths)
    h0 = torch.randn(2, B, P, dtype=torch.float64)
    c0 = torch.randn(2, B, H, dtype=torch.float64)
    d = 1 if reverse else 0
    hx = (h0, c0) if name == "lstm" else h0
    out, final = module(packed, hx)
    h_n = final[0] if name == "lstm" else final
    ours = ops.layer(
        name,
        packed.data,
        h0[d],
        c0[d] if name == "lstm" else None,
        **w,
        batch_sizes=packed.batch_sizes,
        reverse=reverse,
        relu=relu,
    )
    torch.testing.assert_close(ours[0], out.data[:, d * P : (d + 1) * P], atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(ours[1], h_n[d], atol=1e-12, rtol=1e-12)
    if name == "lstm":
        torch.testing.assert_close(ours[2], final[1][d], atol=1e-12, rtol=1e-12)

    g = torch.randn_like(ours[0])
    expected = torch.autograd.grad(
        out.data[:, d * P : (d + 1) * P], [padded, *w.values()], g, retain_graph=True
    )
    got = torch.autograd.grad(ours[0], [padded, *w.values()], g)
    for k, a, b in zip(["input", *names], got, expected):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("cell", ["lstm", "lstm_proj"])
def test_workspace_only_when_training(cell):
    args = make_args(cell, 3, 2, 4, 5, packed=False, bias=True)
    op, op_args = _forward_op_args(cell, args, reverse=False, training=False)
    assert op(*op_args)[-1].numel() == 0
    op, op_args = _forward_op_args(cell, args, reverse=False, training=True)
    planes = ops.SAVED["lstm"] + (cell == "lstm_proj")  # + o * tanh(c), the projection's input
    assert op(*op_args)[-1].shape == (planes, 3 * 2, 5)


def test_w_hr_only_for_lstm():
    args = make_args("gru", 3, 2, 4, 5, packed=False, bias=True)
    args["w_hr"] = torch.randn(2, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="w_hr .* only supported for lstm, not gru"):
        run_layer(ops.layer, "gru", args, reverse=False)
