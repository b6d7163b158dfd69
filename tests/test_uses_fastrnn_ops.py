"""The modules compute with fastrnn's C++ ops: not with torch's RNN ops, not
with torch's cell math, not with the Python reference."""

import re
from collections import Counter

import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

import fastrnn

from helpers import CELLS, compare, forward_backward, make_inputs, make_pair

CELL_IDS = list(CELLS)
OP_OF_CELL = {"rnn_tanh": "rnn", "rnn_relu": "rnn", "lstm": "lstm", "gru": "gru"}
LAYERS = 3

# torch's RNN ops (fused or composite) by name, on any backend
TORCH_RNN_OP = re.compile(
    r"^aten::(lstm|gru|rnn_tanh|rnn_relu|\w*_cell\w*|mkldnn_rnn\w*|_thnn_fused_\w+|"
    r"_cudnn_rnn\w*|miopen_rnn\w*|_rnn_impl\w*)$"
)
# the math of a recurrence, done op by op at the Python dispatch level; inside
# fastrnn's ops it is below the dispatcher, so none of it may show there
RECURRENCE_MATH = re.compile(
    r"^aten::(mm|addmm|bmm|matmul|linear|sigmoid\w*|tanh\w*|relu\w*|threshold_backward|"
    r"unsafe_chunk|unsafe_split|chunk)$"
)


class OpRecorder(TorchDispatchMode):
    """Counts every op that reaches the Python dispatch key."""

    def __init__(self):
        super().__init__()
        self.ops = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func._schema.name] += 1
        return func(*args, **(kwargs or {}))


def _train_step(module, dtype):
    x, hx, upstream = make_inputs(module, 6, 2, dtype)
    return forward_backward(module, x, hx, upstream)


def _dispatched(module, dtype):
    with OpRecorder() as rec:
        _train_step(module, dtype)
    return rec.ops


def _profiled(module, dtype):
    """Op names the profiler sees; unlike the dispatch mode, it also sees the
    composite ops (aten::gru, aten::lstm, ...) before they decompose."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _train_step(module, dtype)
    return Counter(e.name for e in prof.events())


def _torch_rnn_ops(names):
    return sorted(n for n in names if TORCH_RNN_OP.match(n))


dtype_param = pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64], ids=["float32", "float64"]
)
# every cell, and an LSTM with proj_size (its projection is in the op too)
MODULE_CASES = pytest.mark.parametrize(
    "cell,kwargs",
    [(c, {}) for c in CELL_IDS] + [("lstm", {"proj_size": 2})],
    ids=CELL_IDS + ["lstm_proj"],
)


@dtype_param
@MODULE_CASES
def test_dispatches_fastrnn_ops_once_per_layer(cell, kwargs, dtype):
    _, ours = make_pair(cell, 3, 4, dtype=dtype, num_layers=LAYERS, **kwargs)
    ops = _dispatched(ours, dtype)
    name = OP_OF_CELL[cell]
    assert ops[f"fastrnn::{name}_forward"] == LAYERS
    assert ops[f"fastrnn::{name}_backward"] == LAYERS
    assert not [op for op in ops if op.startswith("fastrnn::") and name not in op]
    assert _torch_rnn_ops(ops) == []
    assert sorted(op for op in ops if RECURRENCE_MATH.match(op)) == []


@dtype_param
@MODULE_CASES
def test_profiler_sees_no_torch_rnn_op(cell, kwargs, dtype):
    _, ours = make_pair(cell, 3, 4, dtype=dtype, num_layers=LAYERS, **kwargs)
    names = _profiled(ours, dtype)
    name = OP_OF_CELL[cell]
    assert names[f"fastrnn::{name}_forward"] == LAYERS
    assert names[f"fastrnn::{name}_backward"] == LAYERS
    assert _torch_rnn_ops(names) == []


@dtype_param
@pytest.mark.parametrize("cell", CELL_IDS)
def test_the_detectors_see_torch_nn(cell, dtype):
    """The checks above are not vacuous: on torch.nn's module they fire."""
    ref, _ = make_pair(cell, 3, 4, dtype=dtype, num_layers=LAYERS)
    ops = _dispatched(ref, dtype)
    assert not [op for op in ops if op.startswith("fastrnn::")]
    assert _torch_rnn_ops(ops) or [op for op in ops if RECURRENCE_MATH.match(op)]
    assert _torch_rnn_ops(_profiled(ref, dtype))


def _refuse(*args, **kwargs):
    raise AssertionError("called the Python reference or torch's RNN functions")


@pytest.mark.parametrize("cell", CELL_IDS)
def test_works_without_the_reference_and_torch_rnn_functions(cell, monkeypatch):
    ref, ours = make_pair(cell, 3, 4, num_layers=LAYERS)
    x, hx, upstream = make_inputs(ref, 6, 2, torch.float64)
    expected = forward_backward(ref, x, hx, upstream)

    for name in ("layer", "rnn_cell", "lstm_cell", "gru_cell"):
        monkeypatch.setattr(fastrnn.reference, name, _refuse)
    # what torch.nn's modules call
    for name in (
        "rnn_tanh",
        "rnn_relu",
        "lstm",
        "gru",
        "rnn_tanh_cell",
        "rnn_relu_cell",
        "lstm_cell",
        "gru_cell",
    ):
        monkeypatch.setattr(torch._VF, name, _refuse)
    with pytest.raises(AssertionError, match="called the Python reference"):
        ref(x, hx)  # the patch does bite torch.nn

    compare(forward_backward(ours, x, hx, upstream), expected, atol=1e-10, rtol=1e-10)
