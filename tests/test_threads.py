"""The CPU kernels on two threads, at shapes whose steps are split across
them: a step's GEMM of at least 2^19 multiply-adds (csrc/cpu/backend.h,
kMinWorkPerThread), which the other tests' small shapes are not. Outputs,
states and every gradient against torch.nn, padded, packed (the batch
shrinking step by step), bidirectional over two layers, projected and in
bfloat16; and calls from several Python threads at once."""

import threading

import pytest
import torch

from helpers import (
    LENGTHS,
    cast_inputs,
    cast_module,
    compare,
    float32_excess,
    forward_backward,
    make_inputs,
    make_pair,
    packed_forward_backward,
    precision_excess,
)

F64_TOL = dict(atol=1e-10, rtol=1e-10)
CELL_IDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
# B * gates * H * H >= 2^19 for every cell (the RNN's one gate included)
T, B, I, H = 6, 32, 48, 128


@pytest.fixture(autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _case(cell, dtype, num_layers=1, bidirectional=False, proj_size=0, batch=B):
    kwargs = dict(num_layers=num_layers, bidirectional=bidirectional)
    if proj_size:
        kwargs["proj_size"] = proj_size
    ref, ours = make_pair(cell, I, H, dtype=dtype, **kwargs)
    x, hx, upstream = make_inputs(ref, T, batch, dtype)
    return ref, ours, x, hx, upstream


LAYOUTS = [
    pytest.param({}, id="one-layer"),
    pytest.param(dict(num_layers=2, bidirectional=True), id="2-layers-bi"),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cell", CELL_IDS)
def test_float64_matches_torch(cell, layout):
    ref, ours, x, hx, upstream = _case(cell, torch.float64, **layout)
    compare(
        forward_backward(ours, x, hx, upstream), forward_backward(ref, x, hx, upstream), **F64_TOL
    )


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cell", CELL_IDS)
def test_float32_error_within_twice_torch(cell, layout):
    ref, ours, x, hx, upstream = _case(cell, torch.float32, **layout)
    truth = forward_backward(
        cast_module(ref, torch.float64), *cast_inputs(x, hx, upstream, torch.float64)
    )
    bad = float32_excess(
        forward_backward(ours, x, hx, upstream), forward_backward(ref, x, hx, upstream), truth
    )
    assert not bad, "\n  ".join(bad)


@pytest.mark.parametrize("cell", CELL_IDS)
def test_packed_matches_torch(cell):
    # batch 4's lengths, repeated: the batch shrinks step by step
    lengths = LENGTHS[4] * (B // 4)
    ref, ours, x, hx, upstream = _case(cell, torch.float64)
    x = x.repeat(max(lengths) // T + 1, 1, 1)[: max(lengths)]
    upstream["output"] = upstream["output"].repeat(max(lengths) // T + 1, 1, 1)[: max(lengths)]
    expected = packed_forward_backward(ref, x, lengths, False, hx, upstream)
    got = packed_forward_backward(ours, x, lengths, False, hx, upstream)
    compare(got, expected, **F64_TOL)


def test_projection_matches_torch():
    ref, ours, x, hx, upstream = _case("lstm", torch.float64, proj_size=H - 1)
    compare(
        forward_backward(ours, x, hx, upstream), forward_backward(ref, x, hx, upstream), **F64_TOL
    )


@pytest.mark.parametrize("cell", CELL_IDS)
def test_bfloat16_within_the_rule(cell):
    ref, ours, x, hx, upstream = _case(cell, torch.bfloat16)
    truth = forward_backward(
        cast_module(ref, torch.float64), *cast_inputs(x, hx, upstream, torch.float64)
    )
    theirs = forward_backward(ref, x, hx, upstream)
    bad = precision_excess(forward_backward(ours, x, hx, upstream), theirs, truth, torch.bfloat16)
    assert not bad, "\n  ".join(bad)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_python_threads_at_once(cell):
    """Four Python threads, each calling the same model on its own input
    over and over, get what the calls give one at a time."""
    ref, ours, *_ = _case(cell, torch.float64)
    inputs = [make_inputs(ref, T, B, torch.float64) for _ in range(4)]
    expected = [forward_backward(ours, x, hx, up)["output"] for x, hx, up in inputs]
    results, errors = [None] * 4, []

    def work(i):
        try:
            x, hx, _ = inputs[i]
            with torch.no_grad():
                for _ in range(5):
                    results[i] = ours(x, hx)[0]
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for got, want in zip(results, expected):
        assert torch.equal(got, want)
