"""float16 and bfloat16: where the device's kernels take them
(fastrnn.ops.native_dtypes: the CUDA backend, which the emulated-device build
runs on the CPU) they run natively, stored in them and computed in float32;
elsewhere fastrnn runs its float32 kernels on them (arguments converted on
entry, results back). Either way outputs, final states and every gradient are
in the input's dtype and as accurate as torch.nn's own run in that dtype: the
project's rule, against torch.nn in float64 on the same rounded weights and
inputs. Mixed dtypes are refused as torch.nn refuses them."""

import os

import pytest
import torch
from test_cells import CELLS as CELL_KINDS
from test_cells import cell_pair, step_and_grads
from test_cells import inputs as cell_inputs
from test_cuda_emulated import emulation
from test_uses_fastrnn_ops import RECURRENCE_MATH, TORCH_RNN_OP
from torch.utils._python_dispatch import TorchDispatchMode

from fastrnn.ops import native_dtypes

from helpers import (
    LENGTHS,
    cast_inputs,
    cast_module,
    forward_backward,
    make_inputs,
    make_pair,
    packed_forward_backward,
    precision_excess,
)

DTYPES = pytest.mark.parametrize(
    "dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"]
)
LAYER_CASES = pytest.mark.parametrize(
    "cell,kwargs",
    [("rnn_tanh", {}), ("rnn_relu", {}), ("lstm", {}), ("lstm", {"proj_size": 3}), ("gru", {})],
    ids=["rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru"],
)
OP = {"rnn_tanh": "rnn", "rnn_relu": "rnn", "lstm": "lstm", "gru": "gru"}
T, B = 9, 4


# (input_size, hidden_size): odd reductions, which the CPU's GEMMs take through
# MKL; and even ones over more than one 64-unit panel of the packed weights,
# with a partial last panel, which run on the matrix units (AMX) where the
# CPU has them (csrc/cpu/backend.h).
SIZES = pytest.mark.parametrize("sizes", [(5, 7), (34, 80)], ids=["odd", "even"])


def _layer_pair(cell, kwargs, dtype, sizes=(5, 7)):
    return make_pair(cell, *sizes, dtype=dtype, num_layers=2, bidirectional=True, **kwargs)


def _layer_run(module, x, hx, upstream, packed):
    if packed:
        return packed_forward_backward(module, x, LENGTHS[B], False, hx, upstream)
    return forward_backward(module, x, hx, upstream)


def _assert_within_twice_torch(ours, theirs, truth, dtype):
    bad = precision_excess(ours, theirs, truth, dtype)
    assert not bad, f"fastrnn {dtype} less accurate than torch.nn:\n  " + "\n  ".join(bad)


@SIZES
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@DTYPES
@LAYER_CASES
def test_layers_within_twice_torch(cell, kwargs, dtype, packed, sizes):
    ref, ours = _layer_pair(cell, kwargs, dtype, sizes)
    x, hx, upstream = make_inputs(ref, T, B, dtype)
    truth = _layer_run(
        cast_module(ref, torch.float64), *cast_inputs(x, hx, upstream, torch.float64), packed
    )
    _assert_within_twice_torch(
        _layer_run(ours, x, hx, upstream, packed),
        _layer_run(ref, x, hx, upstream, packed),
        truth,
        dtype,
    )


@DTYPES
@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_cells_within_twice_torch(cell, dtype):
    ref, ours = cell_pair(cell, dtype=dtype)
    x, hx, upstream = cell_inputs(cell, 17, True, dtype)

    def as64(t):
        return tuple(s.double() for s in t)

    truth = step_and_grads(cast_module(ref, torch.float64), x.double(), as64(hx), as64(upstream))
    _assert_within_twice_torch(
        step_and_grads(ours, x, hx, upstream), step_and_grads(ref, x, hx, upstream), truth, dtype
    )


def _cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="reads /proc/cpuinfo")
def test_cpu_kernels_take_the_types_of_the_cpus_units():
    """The CPU kernels take bfloat16 where the processor multiplies it with
    float sums (AVX512-BF16 or AMX-BF16) and float16 where it has AMX-FP16,
    with the AVX-512 loops chosen (FASTRNN_CPU_ISA=avx2 runs the float path);
    elsewhere those dtypes run the float32 kernels. FASTRNN_CPU_HALF=native
    takes both everywhere, =float32 neither. A build whose kernels are
    registered on the CPU by the emulated device (the CUDA backend's) is not
    asked."""
    if emulation() is not None:
        pytest.skip("the emulated-device build registers the CUDA backend on the CPU")
    flags = _cpu_flags()
    avx512 = (
        os.environ.get("FASTRNN_CPU_ISA", "avx512") == "avx512"
        and {"avx512f", "avx512vl", "avx512dq", "avx512bw"} <= flags
    )
    half = os.environ.get("FASTRNN_CPU_HALF", "")
    expected = {torch.float32, torch.float64}
    if half == "native" or (not half and avx512 and flags & {"avx512_bf16", "amx_bf16"}):
        expected.add(torch.bfloat16)
    if half == "native" or (not half and avx512 and "amx_fp16" in flags):
        expected.add(torch.float16)
    assert set(native_dtypes("cpu")) == expected


class _Record(TorchDispatchMode):
    """The ops called, and the dtypes of fastrnn's ops' tensor arguments."""

    def __init__(self):
        super().__init__()
        self.names = []
        self.fastrnn_dtypes = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        self.names.append(name)
        if name.startswith("fastrnn::"):
            self.fastrnn_dtypes.update(
                a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()
            )
        return func(*args, **(kwargs or {}))


def _assert_ran_the_ops(record, op, calls, dtype):
    """fastrnn's ops ran, in dtype itself where the CPU's kernels take it,
    else in float32, and nothing of torch.nn's recurrence did."""
    assert record.names.count(f"fastrnn::{op}_forward") == calls
    assert record.names.count(f"fastrnn::{op}_backward") == calls
    ran_in = dtype if dtype in native_dtypes("cpu") else torch.float32
    assert record.fastrnn_dtypes == {ran_in}
    assert not [n for n in record.names if TORCH_RNN_OP.match(n) or RECURRENCE_MATH.match(n)]


@DTYPES
@LAYER_CASES
def test_layers_keep_the_dtype_and_run_the_ops(cell, kwargs, dtype):
    _, ours = _layer_pair(cell, kwargs, dtype)
    x, hx, upstream = make_inputs(ours, T, B, dtype)
    with _Record() as record:
        results = forward_backward(ours, x, hx, upstream)
    assert {k: v.dtype for k, v in results.items()} == dict.fromkeys(results, dtype)
    _assert_ran_the_ops(record, OP[cell], calls=4, dtype=dtype)  # 2 layers, 2 directions


@DTYPES
@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_cells_keep_the_dtype_and_run_the_ops(cell, dtype):
    _, ours = cell_pair(cell, dtype=dtype)
    with _Record() as record:
        results = step_and_grads(ours, *cell_inputs(cell, 3, True, dtype))
    assert {k: v.dtype for k, v in results.items()} == dict.fromkeys(results, dtype)
    _assert_ran_the_ops(record, OP[cell], calls=1, dtype=dtype)


def _raises_like_torch(ref, ours, call, match):
    """call(module) raises for both, the same type of exception with the same
    message, which matches `match` (None: any)."""
    with pytest.raises(Exception, match=match) as theirs:
        call(ref)
    with pytest.raises(type(theirs.value)) as got:
        call(ours)
    assert str(got.value) == str(theirs.value)


def _refused(ref, ours, call, own_match):
    """fastrnn refuses call: with torch.nn's exception where torch.nn raises
    one, else with its own, matching own_match. (A bias of another dtype:
    torch.nn's oneDNN LSTM takes it on CPUs with native bfloat16, and refuses
    it elsewhere.)"""
    try:
        call(ref)
    except Exception as theirs:
        with pytest.raises(type(theirs)) as got:
            call(ours)
        assert str(got.value) == str(theirs)
        return
    with pytest.raises(RuntimeError, match=own_match):
        call(ours)


def _with_float32_bias(pair, name):
    for module in pair:
        getattr(module, name).data = getattr(module, name).data.float()
    return pair


@DTYPES
@pytest.mark.parametrize("cell", list(OP))
def test_layers_mixed_dtypes_refused_like_torch(cell, dtype):
    ref, ours = _layer_pair(cell, {}, dtype)
    x, hx, _ = make_inputs(ref, T, B, dtype)

    def as32(t):
        return t.float()

    _raises_like_torch(ref, ours, lambda m: m(as32(x), hx), "input dtype")
    hx32 = tuple(map(as32, hx)) if cell == "lstm" else as32(hx)
    # torch.nn's kernels word these: a matrix product's error, or oneDNN's LSTM's
    _raises_like_torch(ref, ours, lambda m: m(x, hx32), None)
    _refused(
        *_with_float32_bias((ref, ours), "bias_hh_l1_reverse"),
        lambda m: m(x, hx),
        "fastrnn: b_hh: expected dtype",
    )


@DTYPES
@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_cells_mixed_dtypes_refused_like_torch(cell, dtype):
    ref, ours = cell_pair(cell, dtype=dtype)
    x, hx, _ = cell_inputs(cell, 3, True, dtype)

    def arg(states):
        return states if cell == "lstm" else states[0]

    _raises_like_torch(ref, ours, lambda m: m(x.float(), arg(hx)), "dtype")
    _raises_like_torch(ref, ours, lambda m: m(x, arg(tuple(s.float() for s in hx))), "dtype")
    _refused(
        *_with_float32_bias((ref, ours), "bias_hh"),
        lambda m: m(x, arg(hx)),
        "fastrnn: b_hh: expected dtype",
    )
