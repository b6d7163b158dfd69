"""fastrnn on a CUDA GPU, every test marked `cuda` (skipped where torch has no
GPU): the contract of the CPU tests, against torch.nn on the GPU (cuDNN) and
against fastrnn on the CPU, outputs, final states and every gradient, in every
dtype torch.nn takes there. float64 agrees to 1e-10; float32, float16 and
bfloat16 by the project's rule (error against a float64 truth at most twice
the other implementation's, plus a floor), the truth being torch.nn in float64
on the CPU on the same rounded weights and inputs."""

import pytest
import torch
from test_cells import CELLS as CELL_KINDS
from test_cells import cell_pair, step_and_grads
from test_cells import inputs as cell_inputs

import fastrnn

from helpers import (
    CELLS,
    LENGTHS,
    cast_inputs,
    cast_module,
    compare,
    forward_backward,
    make_inputs,
    make_pair,
    packed_forward_backward,
    precision_excess,
)

pytestmark = pytest.mark.cuda

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
# (cell, constructor arguments, packed input)
CASES = [
    (cell, kwargs, packed)
    for cell in CELLS
    for kwargs, packed in [
        ({}, False),
        ({"num_layers": 2, "bidirectional": True}, False),
        ({"num_layers": 2, "bidirectional": True}, True),
        ({"batch_first": True}, False),
    ]
] + [("lstm", {"proj_size": 3}, False), ("lstm", {"proj_size": 3, "bidirectional": True}, True)]


@pytest.fixture(autouse=True)
def _no_tf32():
    """The rule compares float32 errors: with TF32 (cuDNN's default for RNNs)
    torch.nn's GEMMs would round their inputs to 10 bits."""
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        matmul = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = matmul


def _to(value, device):
    """value (a tensor, or a tuple or dict of them, or None) on device."""
    if isinstance(value, tuple):
        return tuple(_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return None if value is None else value.to(device)


def _run(module, x, hx, upstream, packed):
    if packed:
        lengths = [min(n, x.shape[0]) for n in LENGTHS[x.shape[1]]]
        return packed_forward_backward(module, x, lengths, False, hx, upstream)
    return forward_backward(module, x, hx, upstream)


def _assert_rule(ours, theirs, truth, dtype, whose):
    bad = precision_excess(_to(ours, "cpu"), _to(theirs, "cpu"), truth, dtype)
    assert not bad, f"fastrnn on CUDA less accurate than {whose}:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("cell,kwargs,packed", CASES)
def test_layers_on_cuda(cell, kwargs, packed, dtype):
    ref_cpu, ours_cpu = make_pair(cell, 5, 7, dtype=dtype, **kwargs)
    x, hx, upstream = make_inputs(ref_cpu, 6, 4, dtype)
    ref, ours = cast_module(ref_cpu, dtype).cuda(), cast_module(ours_cpu, dtype).cuda()
    x_g, hx_g, up_g = _to((x, hx, upstream), "cuda")
    got = _run(ours, x_g, hx_g, up_g, packed)
    assert all(v.is_cuda for v in got.values())
    theirs = _run(ref, x_g, hx_g, up_g, packed)
    ours_on_cpu = _run(ours_cpu, x, hx, upstream, packed)
    if dtype == torch.float64:
        compare(_to(got, "cpu"), _to(theirs, "cpu"), atol=1e-10, rtol=1e-10)
        compare(_to(got, "cpu"), ours_on_cpu, atol=1e-10, rtol=1e-10)
        return
    truth = _run(
        cast_module(ref_cpu, torch.float64), *cast_inputs(x, hx, upstream, torch.float64), packed
    )
    _assert_rule(got, theirs, truth, dtype, "torch.nn on CUDA")
    if _cpu_converts(dtype):
        # The CPU runs the float32 kernels on it and rounds once at the end,
        # while CUDA stores it natively, rounded at every step as torch.nn's
        # own run is: the contract is torch.nn's accuracy, checked above.
        return
    _assert_rule(got, ours_on_cpu, truth, dtype, "fastrnn on the CPU")


def _cpu_converts(dtype):
    """Whether dtype runs natively on CUDA but as float32 on the CPU."""
    native = fastrnn.ops.native_dtypes
    return dtype in native("cuda") and dtype not in native("cpu")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_cells_on_cuda(cell, dtype):
    ref, ours = cell_pair(cell, dtype=dtype, device="cuda")
    x, hx, upstream = cell_inputs(cell, 5, True, dtype, "cuda")
    got = step_and_grads(ours, x, hx, upstream)
    theirs = step_and_grads(ref, x, hx, upstream)
    if dtype == torch.float64:
        compare(got, theirs, atol=1e-10, rtol=1e-10)
        return

    def as64(states):
        return None if states is None else tuple(s.double().cpu() for s in states)

    truth = step_and_grads(ref.double().cpu(), x.double().cpu(), as64(hx), as64(upstream))
    ref.to("cuda", dtype)
    _assert_rule(got, theirs, truth, dtype, "torch.nn on CUDA")


def test_compiled_training_step_on_cuda():
    ref, ours = make_pair("lstm", 5, 7, dtype=torch.float32, device="cuda", num_layers=2)
    x, hx, upstream = make_inputs(ref, 6, 4, torch.float32)
    compiled = torch.compile(ours, fullgraph=True)
    got = forward_backward(compiled, x, hx, upstream)
    expected = forward_backward(ours, x, hx, upstream)
    compare(got, expected, atol=1e-6, rtol=1e-6)


def test_convert_keeps_a_cuda_model_on_cuda():
    model = torch.nn.Sequential(torch.nn.GRU(5, 7)).cuda()
    converted = fastrnn.convert(model)
    assert isinstance(converted[0], fastrnn.GRU)
    assert all(p.is_cuda for p in converted.parameters())


def test_weights_on_another_device_raise_like_torch():
    ref, ours = make_pair("gru", 5, 7, dtype=torch.float32)
    x = torch.randn(6, 4, 5, device="cuda")
    with pytest.raises(RuntimeError) as theirs:
        ref(x)
    with pytest.raises(type(theirs.value)):
        ours(x)
