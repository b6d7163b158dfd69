"""Double backward: a gradient taken with create_graph=True through fastrnn can
be differentiated again (gradient penalties, Hessian-vector products), for the
modules, the cells and the ops, as through torch.nn. float64: gradgradcheck,
and the second-order quantities equal to torch.nn's to ~1e-10; float32,
float16 and bfloat16 by the project's rule against float64."""

import pytest
import torch
from test_cells import CELLS as CELL_KINDS
from test_cells import cell_pair
from test_uses_fastrnn_ops import TORCH_RNN_OP, OpRecorder
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence

import fastrnn

from helpers import (
    CELLS,
    cast_module,
    compare,
    float32_excess,
    make_inputs,
    make_pair,
    precision_excess,
)

CELL_IDS = list(CELLS)
T, B, I, H = 3, 3, 2, 3
F64_TOL = dict(atol=1e-10, rtol=1e-10)

# module options of each case; "packed_*" and "unbatched" change the input instead
VARIANTS = {
    "layers2_bidirectional": dict(num_layers=2, bidirectional=True),
    "packed_sorted": dict(bidirectional=True),
    "packed_unsorted": dict(num_layers=2, bidirectional=True),
    "batch_first": dict(batch_first=True),
    "no_bias": dict(bias=False),
    "unbatched": dict(),
    "proj_size": dict(proj_size=2, num_layers=2, bidirectional=True),
}
# lengths of the B sequences of the packed cases, and enforce_sorted
PACKED = {"packed_sorted": ([3, 2, 1], True), "packed_unsorted": ([2, 3, 1], False)}
MODULE_CASES = [
    (cell, variant)
    for cell in CELL_IDS
    for variant in VARIANTS
    if variant != "proj_size" or cell == "lstm"
]


class _Case:
    """A torch.nn module, its fastrnn twin, an input and initial states, and
    run(module, x, *states) -> (output, h_n[, c_n]): the output of a packed
    case is its packed data."""

    def __init__(self, cell, variant, dtype=torch.float64, **extra):
        self.ref, self.ours = make_pair(cell, I, H, dtype=dtype, **VARIANTS[variant], **extra)
        self.packed = PACKED.get(variant)
        x, hx, _ = make_inputs(self.ref, T, None if variant == "unbatched" else B, dtype)
        self.x, self.states = x, (hx if isinstance(hx, tuple) else (hx,))

    def run(self, module, x, *states, params=None):
        hx = states if len(states) == 2 else states[0]
        if self.packed:
            lengths, enforce_sorted = self.packed
            x = pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
        args = (x, hx)
        output, final = module(*args) if params is None else functional_call(module, params, args)
        output = output.data if self.packed else output
        return (output, *(final if isinstance(final, tuple) else (final,)))

    def function(self, module):
        """f(x, *states, *parameters) -> run's outputs, and f's float64 leaves."""
        names = [n for n, _ in module.named_parameters()]
        n = len(self.states)

        def f(x, *tensors):
            return self.run(module, x, *tensors[:n], params=dict(zip(names, tensors[n:])))

        leaves = [
            t.detach().clone().requires_grad_()
            for t in (self.x, *self.states, *module.parameters())
        ]
        return f, leaves


def _leaves(x, states):
    return [t.detach().clone().requires_grad_() for t in (x, *states)]


def _second_order(module, run, x, states, seed=0):
    """By name: the gradients (create_graph=True) of a loss sum(u * outputs)
    w.r.t. input, states and every parameter; the gradients of a gradient
    penalty, the squared norm of those; and a Hessian-vector product, the
    gradient of sum(v * gradients). u and v are fixed random tensors."""
    generator = torch.Generator().manual_seed(seed)

    def randn_like(t):
        return torch.randn(t.shape, generator=generator, dtype=t.dtype)

    module.zero_grad(set_to_none=True)
    leaves = _leaves(x, states)
    names = [
        "input",
        *(f"state{i}" for i in range(len(states))),
        *(n for n, _ in module.named_parameters()),
    ]
    wrt = leaves + list(module.parameters())
    outputs = run(module, *leaves)
    loss = sum((o * randn_like(o)).sum() for o in outputs)
    grads = torch.autograd.grad(loss, wrt, create_graph=True)
    penalty = sum(g.pow(2).sum() for g in grads)
    penalty_grads = torch.autograd.grad(penalty, wrt, retain_graph=True)
    hvp = torch.autograd.grad(grads, wrt, [randn_like(g) for g in grads])
    result = {f"grad_{n}": g.detach() for n, g in zip(names, grads)}
    result.update((f"penalty_grad_{n}", g) for n, g in zip(names, penalty_grads))
    result.update((f"hvp_{n}", g) for n, g in zip(names, hvp))
    return result


# --- the modules -------------------------------------------------------------------------


@pytest.mark.parametrize("cell,variant", MODULE_CASES)
def test_gradgradcheck_modules(cell, variant):
    case = _Case(cell, variant)
    f, leaves = case.function(case.ours)
    assert torch.autograd.gradgradcheck(f, leaves, fast_mode=True)


@pytest.mark.parametrize("cell,variant", MODULE_CASES)
def test_second_order_matches_torch(cell, variant):
    """A gradient penalty's gradients and a Hessian-vector product, w.r.t.
    input, states and every parameter, are torch.nn's; so are the first-order
    gradients taken with create_graph=True."""
    case = _Case(cell, variant)
    compare(
        _second_order(case.ours, case.run, case.x, case.states),
        _second_order(case.ref, case.run, case.x, case.states),
        **F64_TOL,
    )


@pytest.mark.parametrize("cell", CELL_IDS)
def test_second_order_with_dropout_matches_torch(cell):
    """Dropout between layers draws torch.nn's masks (same seed); double
    backward goes through them as torch.nn's does."""
    case = _Case(cell, "layers2_bidirectional", dropout=0.5)
    torch.manual_seed(7)
    expected = _second_order(case.ref, case.run, case.x, case.states)
    torch.manual_seed(7)
    got = _second_order(case.ours, case.run, case.x, case.states)
    compare(got, expected, **F64_TOL)
    case.ours.eval()  # and dropout did act
    assert not torch.allclose(
        _second_order(case.ours, case.run, case.x, case.states)["grad_input"],
        got["grad_input"],
        atol=1e-3,
    )


@pytest.mark.parametrize("cell", CELL_IDS)
def test_create_graph_first_order_unchanged(cell):
    """Gradients taken with create_graph=True (computed by differentiable
    operations) equal those of a plain backward (the fused backward op)."""
    case = _Case(cell, "packed_unsorted")

    def wrt(leaves):
        return leaves + list(case.ours.parameters())

    grads = {}
    for create_graph in (False, True):
        leaves = _leaves(case.x, case.states)
        outputs = case.run(case.ours, *leaves)
        loss = sum(
            (o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() for o in outputs
        )
        grads[create_graph] = torch.autograd.grad(loss, wrt(leaves), create_graph=create_graph)
    for plain, graphed in zip(grads[False], grads[True]):
        assert graphed.requires_grad and not plain.requires_grad
        torch.testing.assert_close(graphed, plain, atol=1e-12, rtol=1e-12)


def _grads_under_autocast(module, x, create_graph):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = module(x)
        return torch.autograd.grad(
            output.float().pow(2).sum(), [x, *module.parameters()], create_graph=create_graph
        )


def test_create_graph_under_autocast_matches_plain_backward():
    """Under CPU autocast a GRU runs in float32, as torch.nn's does
    (fastrnn/autocast.py), and so do the gradients computed with
    create_graph=True (bfloat16 matmuls would round them): they equal a plain
    backward's to float32 rounding."""
    ours = fastrnn.GRU(5, 7, num_layers=2)
    x = torch.randn(6, 4, 5, requires_grad=True)
    plain = _grads_under_autocast(ours, x, False)
    graphed = _grads_under_autocast(ours, x, True)
    for p, g in zip(plain, graphed):
        assert g.dtype == p.dtype == torch.float32
        torch.testing.assert_close(g, p, atol=1e-6, rtol=1e-5)


def test_create_graph_under_autocast_bfloat16_lstm():
    """An LSTM on padded input runs in bfloat16 under CPU autocast, as
    torch.nn's oneDNN LSTM does: a backward with create_graph=True
    differentiates the reference recurrence in bfloat16, the plain one the
    fused op. Both give the parameters' dtype, and they agree to bfloat16's
    accuracy: the reference rounds every op to bfloat16, which put them up to
    5.4 units of its epsilon (2^-8) times the largest value apart over 40
    seeds; a wrong gradient is hundreds of units off."""
    ours = fastrnn.LSTM(5, 7, num_layers=2)
    x = torch.randn(6, 4, 5, requires_grad=True)
    plain = _grads_under_autocast(ours, x, False)
    graphed = _grads_under_autocast(ours, x, True)
    for p, g in zip(plain, graphed):
        assert g.dtype == p.dtype == torch.float32
        assert (g - p).abs().max() <= 16 * 2**-8 * p.abs().max()


def test_lstm_float32_loss_of_gradients_backward_within_twice_torch():
    """A loss built from create_graph=True gradients, then .backward(), in
    float32 (torch.nn's test_LSTM_differentiable_backward_using_oneDNN): every
    resulting .grad within the project's float32 rule against float64."""
    ref, ours = make_pair("lstm", 5, 7, dtype=torch.float32, num_layers=2, bidirectional=True)
    x, hx, _ = make_inputs(ref, 6, 4, torch.float32)

    def step(module, x, hx):
        module.zero_grad(set_to_none=True)
        x = x.detach().clone().requires_grad_()
        output, _ = module(x, hx)
        params = list(module.parameters())
        grads = torch.autograd.grad(output.pow(2).sum(), [x, *params], create_graph=True)
        sum(g.pow(2).sum() for g in grads).backward()
        result = {"grad_input": x.grad}
        result.update((f"grad_{n}", p.grad) for n, p in module.named_parameters())
        return result

    truth = step(cast_module(ref, torch.float64), x.double(), tuple(s.double() for s in hx))
    bad = float32_excess(step(ours, x, hx), step(ref, x, hx), truth)
    assert not bad, "fastrnn float32 less accurate than torch.nn:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_low_precision_second_order_within_twice_torch(cell, dtype):
    """float16 and bfloat16 run the float32 kernels through conversions, which
    are differentiable: the second-order quantities are in the input's dtype
    and within the project's rule against float64."""
    case = _Case(cell, "layers2_bidirectional", dtype=dtype)
    as64 = [t.double() for t in (case.x, *case.states)]
    truth = _second_order(cast_module(case.ref, torch.float64), case.run, as64[0], as64[1:])
    bad = precision_excess(
        _second_order(case.ours, case.run, case.x, case.states),
        _second_order(case.ref, case.run, case.x, case.states),
        truth,
        dtype,
    )
    assert not bad, f"fastrnn {dtype} less accurate than torch.nn:\n  " + "\n  ".join(bad)


def test_create_graph_step_runs_fastrnn_forward():
    """Under double backward the forward is still fastrnn's op, and nothing
    runs torch's RNN ops."""
    case = _Case("lstm", "layers2_bidirectional")
    with OpRecorder() as rec:
        _second_order(case.ours, case.run, case.x, case.states)
    assert rec.ops["fastrnn::lstm_forward"] == 4
    assert not [name for name in rec.ops if TORCH_RNN_OP.match(name)]


# --- the cells ---------------------------------------------------------------------------


def _cell_run(module, x, *states):
    out = module(x, states if len(states) == 2 else states[0])
    return out if isinstance(out, tuple) else (out,)


def _cell_inputs(cell, batch):
    """x [batch, 5] and the states [batch, 7]; batch None: unbatched."""
    shape = () if batch is None else (batch,)
    x = torch.randn(*shape, 5, dtype=torch.float64)
    states = tuple(
        torch.randn(*shape, 7, dtype=torch.float64) for _ in range(2 if cell == "lstm" else 1)
    )
    return x, states


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_gradgradcheck_cells(cell, batched):
    _, ours = cell_pair(cell)
    x, states = _cell_inputs(cell, B if batched else None)
    names = [n for n, _ in ours.named_parameters()]
    n = len(states)

    def f(x, *t):
        return _cell_run(lambda *a: functional_call(ours, dict(zip(names, t[n:])), a), x, *t[:n])

    leaves = [t.detach().clone().requires_grad_() for t in (x, *states, *ours.parameters())]
    assert torch.autograd.gradgradcheck(f, leaves)


@pytest.mark.parametrize("batch", [B, 0], ids=["B3", "B0"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_cells_second_order_matches_torch(cell, bias, batch):
    ref, ours = cell_pair(cell, bias=bias)
    x, states = _cell_inputs(cell, batch)
    compare(
        _second_order(ours, _cell_run, x, states),
        _second_order(ref, _cell_run, x, states),
        **F64_TOL,
    )


# --- the ops, called directly (their torch.library autograd registration) --------------


def _op_function(cell, reverse, packed):
    """f(input, hx[, cx], w_ih, w_hh, b_ih, b_hh[, w_hr]) -> the forward op's
    outputs (the workspace left out), and its float64 leaves."""
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    P = 2 if cell == "lstm" else H  # the lstm one with a projection
    batch_sizes = torch.tensor([3, 2, 2, 1]) if packed else None
    x = torch.randn((8, I) if packed else (4, B, I), dtype=torch.float64)
    tensors = [x, torch.randn(B, P, dtype=torch.float64)]
    tensors += [torch.randn(B, H, dtype=torch.float64)] if cell == "lstm" else []
    tensors += [
        torch.randn(gates * H, I, dtype=torch.float64),
        torch.randn(gates * H, P, dtype=torch.float64),
        torch.randn(gates * H, dtype=torch.float64),
        torch.randn(gates * H, dtype=torch.float64),
    ]
    tensors += [torch.randn(P, H, dtype=torch.float64)] if cell == "lstm" else []
    op = getattr(torch.ops.fastrnn, f"{cell}_forward")
    flags = {"rnn": (reverse, False, True), "gru": (reverse, True), "lstm": (reverse, True)}[cell]

    def f(*t):
        return op(*t, batch_sizes, *flags)[:-1]

    return f, [t.requires_grad_() for t in tensors]


@pytest.mark.parametrize(
    "packed,reverse", [(False, False), (True, True)], ids=["padded", "packed_reverse"]
)
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_gradgradcheck_ops_called_directly(cell, packed, reverse):
    f, leaves = _op_function(cell, reverse, packed)
    assert torch.autograd.gradgradcheck(f, leaves, fast_mode=True)


# --- torch.compile -----------------------------------------------------------------------


def test_compiled_double_backward_raises():
    """AOTAutograd has no double backward; through a compiled fastrnn module it
    raises, as for any compiled model, rather than give a wrong answer."""
    torch._dynamo.reset()
    try:
        case = _Case("lstm", "layers2_bidirectional")
        compiled = torch.compile(case.ours, fullgraph=True, backend="aot_eager")
        x = case.x.detach().clone().requires_grad_()
        output, _ = compiled(x, case.states)
        with pytest.raises(RuntimeError, match="does not currently support double backward"):
            (grad,) = torch.autograd.grad(output.pow(2).sum(), x, create_graph=True)
            torch.autograd.grad(grad.pow(2).sum(), x)
    finally:
        torch._dynamo.reset()
