"""fastrnn's cells against torch.nn's: output, state and every gradient, float64
to 1e-10 and float32 by the project's rule; and that they run fastrnn's op."""

import copy
import io

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import fastrnn

from helpers import compare, devices, float32_excess

CELLS = {
    "rnn_tanh": (torch.nn.RNNCell, fastrnn.RNNCell, {"nonlinearity": "tanh"}, "rnn"),
    "rnn_relu": (torch.nn.RNNCell, fastrnn.RNNCell, {"nonlinearity": "relu"}, "rnn"),
    "lstm": (torch.nn.LSTMCell, fastrnn.LSTMCell, {}, "lstm"),
    "gru": (torch.nn.GRUCell, fastrnn.GRUCell, {}, "gru"),
}
I, H = 5, 7


def cell_pair(cell, dtype=torch.float64, bias=True, device="cpu"):
    torch_cls, fast_cls, extra, _ = CELLS[cell]
    ref = torch_cls(I, H, bias=bias, **extra).to(device, dtype)
    ours = fast_cls(I, H, bias=bias, **extra).to(device, dtype)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def step_and_grads(module, x, hx, upstream):
    """One call, then backward of sum(upstream * outputs): outputs and grads."""
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    states = None if hx is None else tuple(s.detach().clone().requires_grad_(True) for s in hx)
    arg = None if states is None else (states if len(states) == 2 else states[0])
    out = module(x, arg)
    outs = out if isinstance(out, tuple) else (out,)
    sum((o * u).sum() for o, u in zip(outs, upstream)).backward()
    result = {f"out{i}": o.detach() for i, o in enumerate(outs)}
    result["grad_input"] = x.grad
    result.update((f"grad_state{i}", s.grad) for i, s in enumerate(states or ()))
    result.update((f"grad_{n}", p.grad) for n, p in module.named_parameters())
    return result


def inputs(cell, batch, given, dtype, device="cpu"):
    shape = (batch, H) if batch else (H,)

    def randn(shape):
        return torch.randn(shape, dtype=dtype, device=device)

    x = randn((batch, I) if batch else (I,))
    n = 2 if cell == "lstm" else 1
    hx = tuple(randn(shape) for _ in range(n)) if given else None
    upstream = tuple(randn(shape) for _ in range(n))
    return x, hx, upstream


@pytest.mark.parametrize("batch", [1, 4, 0, None], ids=["B1", "B4", "B0", "unbatched"])
@pytest.mark.parametrize("given", [True, False], ids=["state", "nostate"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("device", devices())
def test_cell_matches_torch(device, cell, batch, given, bias):
    ref, ours = cell_pair(cell, bias=bias, device=device)
    x, hx, upstream = inputs(cell, batch, given, torch.float64, device)
    compare(
        step_and_grads(ours, x, hx, upstream),
        step_and_grads(ref, x, hx, upstream),
        atol=1e-10,
        rtol=1e-10,
    )


@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_float32_within_twice_torch(cell):
    ref, ours = cell_pair(cell, dtype=torch.float32)
    x, hx, upstream = inputs(cell, 17, True, torch.float32)

    def as64(t):
        return None if t is None else tuple(s.double() for s in t)

    truth = step_and_grads(ref.double(), x.double(), as64(hx), as64(upstream))
    ref.float()
    bad = float32_excess(
        step_and_grads(ours, x, hx, upstream), step_and_grads(ref, x, hx, upstream), truth
    )
    assert not bad, "fastrnn float32 less accurate than torch.nn:\n  " + "\n  ".join(bad)


class _Record(TorchDispatchMode):
    """Names of the ops called, and fastrnn's op calls with their arguments."""

    def __init__(self):
        super().__init__()
        self.names = []
        self.fastrnn_calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func._schema.name)
        if func._schema.name.startswith("fastrnn::"):
            assert not kwargs
            self.fastrnn_calls.append((func, args))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_runs_one_fastrnn_op_each_way(cell):
    _, ours = cell_pair(cell)
    x, hx, upstream = inputs(cell, 3, True, torch.float64)
    with _Record() as record:
        step_and_grads(ours, x, hx, upstream)
    op = CELLS[cell][3]
    assert record.names.count(f"fastrnn::{op}_forward") == 1
    assert record.names.count(f"fastrnn::{op}_backward") == 1
    assert not [
        n
        for n in record.names
        if "cell" in n
        or n.startswith("aten::gru")
        or n.startswith("aten::lstm")
        or n.startswith("aten::rnn")
    ]


@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_bad_dims_like_torch(cell):
    ref, ours = cell_pair(cell)
    for module in (ref, ours):
        with pytest.raises(ValueError, match="Expected input to be 1D or 2D, got 3D instead"):
            module(torch.randn(2, 3, I, dtype=torch.float64))


@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_wrong_feature_size_like_torch(cell):
    ref, ours = cell_pair(cell)
    x = torch.randn(3, I + 1, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="input has inconsistent input_size") as theirs:
        ref(x)
    with pytest.raises(RuntimeError) as got:
        ours(x)
    assert str(got.value) == str(theirs.value)


@pytest.mark.parametrize("dtype", [torch.int64, torch.float32, torch.float16])
@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_input_dtype_not_weight_dtype_like_torch(cell, dtype):
    ref, ours = cell_pair(cell)  # float64
    x = torch.ones(3, I, dtype=dtype)
    with pytest.raises(RuntimeError, match="must have the same dtype") as theirs:
        ref(x)
    with pytest.raises(RuntimeError) as got:
        ours(x)
    assert str(got.value) == str(theirs.value)


def test_cells_are_torch_cell_bases_with_torch_repr():
    for cell in CELLS:
        ref, ours = cell_pair(cell)
        assert isinstance(ours, torch.nn.RNNCellBase)
        assert repr(ours) == repr(ref)


@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_deepcopy_save_load_and_double(cell):
    _, ours = cell_pair(cell, dtype=torch.float32)
    x, hx, _ = inputs(cell, 3, True, torch.float32)

    def arg(states):
        return states if cell == "lstm" else states[0]

    expected = ours(x, arg(hx))
    torch.testing.assert_close(copy.deepcopy(ours)(x, arg(hx)), expected, atol=0, rtol=0)
    buffer = io.BytesIO()
    torch.save(ours, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded) is type(ours) and repr(loaded) == repr(ours)
    torch.testing.assert_close(loaded(x, arg(hx)), expected, atol=0, rtol=0)
    assert ours.double() is ours and ours.weight_hh.dtype == torch.float64
    got = ours(x.double(), arg(tuple(s.double() for s in hx)))
    assert all(g.dtype == torch.float64 for g in (got if cell == "lstm" else (got,)))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5, check_dtype=False)


@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_state_dict_both_ways(cell):
    """A torch.nn cell's state_dict loads into fastrnn's and back (strict),
    giving the same outputs."""
    torch_cls, fast_cls, extra, _ = CELLS[cell]
    x, hx, upstream = inputs(cell, 4, True, torch.float64)
    for source_cls, target_cls in ((torch_cls, fast_cls), (fast_cls, torch_cls)):
        source = source_cls(I, H, **extra).double()
        target = target_cls(I, H, **extra).double()
        target.load_state_dict(source.state_dict())
        assert target.state_dict().keys() == source.state_dict().keys()
        compare(
            step_and_grads(target, x, hx, upstream),
            step_and_grads(source, x, hx, upstream),
            atol=1e-10,
            rtol=1e-10,
        )


# --- the ops as the cells call them ------------------------------------------------------


def cell_op_calls(cell, bias):
    """The forward and the backward op call of one training step of the cell
    (batch 4, a T = 1 sequence), as (op, arguments) pairs recorded at dispatch."""
    _, ours = cell_pair(cell, bias=bias)
    x, hx, upstream = inputs(cell, 4, True, torch.float64)
    with _Record() as record:
        step_and_grads(ours, x, hx, upstream)
    (forward, forward_args), (backward, backward_args) = record.fastrnn_calls
    op = CELLS[cell][3]
    assert forward._schema.name == f"fastrnn::{op}_forward"
    assert backward._schema.name == f"fastrnn::{op}_backward"
    assert forward_args[0].shape == (1, 4, I)  # one time step
    return forward, forward_args, backward, backward_args


def fresh(args, requires_grad):
    """The recorded arguments as new leaf tensors (the same values)."""
    return tuple(
        a.detach().clone().requires_grad_(requires_grad and a.is_floating_point())
        if isinstance(a, torch.Tensor)
        else a
        for a in args
    )


bias_param = pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])


@bias_param
@pytest.mark.parametrize("cell", list(CELLS))
def test_gradcheck_cell_forward_op(cell, bias):
    """gradcheck of the forward op on the cell's own call, through its autograd
    registration (so of the backward op the cell's backward calls)."""
    forward, args, _, _ = cell_op_calls(cell, bias)
    args = fresh(args, requires_grad=True)
    where = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]
    assert len(where) == (7 if cell == "lstm" else 6) - (0 if bias else 2)

    def op(*tensors):
        call = list(args)
        for i, t in zip(where, tensors):
            call[i] = t
        return forward(*call)[:-1]  # not the workspace

    # central differences with eps 1e-6 in float64 are good to ~1e-9 here
    assert torch.autograd.gradcheck(op, [args[i] for i in where], atol=1e-7, rtol=1e-6)


@bias_param
@pytest.mark.parametrize("cell", list(CELLS))
def test_opcheck_cell_ops(cell, bias):
    forward, forward_args, backward, backward_args = cell_op_calls(cell, bias)
    torch.library.opcheck(forward, fresh(forward_args, requires_grad=True))
    torch.library.opcheck(backward, fresh(backward_args, requires_grad=False))
