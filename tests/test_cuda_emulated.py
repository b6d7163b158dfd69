"""The emulated-device build (tools/emulated.py): there the whole test suite
runs the CUDA backend's code on the CPU, and these tests check that it does.
Elsewhere they skip, unless FASTRNN_EXPECT_EMULATED=1 (which `tools/emulated.py
test` sets) says that this run must be the emulated one: then a fastrnn
imported from anywhere else fails them.

The emulated extension counts its kernel launches and GEMMs (C symbols of
csrc/emulated/emulated.cpp); the C++ test of the backend's primitives
(tests/cpp/test_cuda_emulated.cpp) is built beside the package and run here.
"""

import ctypes
import os
import subprocess

import pytest
import torch

import fastrnn

from helpers import CELLS, make_inputs, make_pair

EXPECTED = os.environ.get("FASTRNN_EXPECT_EMULATED") == "1"


def emulation():
    """The emulated extension's counters, or None in another build."""
    lib = ctypes.CDLL(fastrnn._C.__file__)
    if not hasattr(lib, "fastrnn_emulated_launches"):
        return None
    for name in ("fastrnn_emulated_launches", "fastrnn_emulated_gemms"):
        getattr(lib, name).restype = ctypes.c_int64
    lib.fastrnn_emulated_reversed.restype = ctypes.c_int
    return lib


@pytest.fixture
def lib():
    lib = emulation()
    if lib is None:
        if EXPECTED:
            pytest.fail(f"FASTRNN_EXPECT_EMULATED=1, but fastrnn._C is {fastrnn._C.__file__}")
        pytest.skip("not the emulated-device build")
    return lib


def test_block_order_is_the_one_asked_for(lib):
    order = os.environ.get("FASTRNN_EMULATED_ORDER", "forward")
    assert lib.fastrnn_emulated_reversed() == (order == "reversed")


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_ops_run_on_the_cuda_backend(lib, cell):
    """A layer's forward and backward: at least one pointwise launch and one
    GEMM per step and direction."""
    ref, ours = make_pair(cell, 3, 5, bidirectional=True)
    seq_len = 4
    x, hx, _ = make_inputs(ours, seq_len, 2, torch.float64)
    launches, gemms = lib.fastrnn_emulated_launches(), lib.fastrnn_emulated_gemms()
    out = ours(x, hx)[0]
    assert lib.fastrnn_emulated_launches() - launches >= 2 * seq_len
    assert lib.fastrnn_emulated_gemms() - gemms >= 2 * seq_len
    launches, gemms = lib.fastrnn_emulated_launches(), lib.fastrnn_emulated_gemms()
    out.sum().backward()
    assert lib.fastrnn_emulated_launches() - launches >= 2 * seq_len
    assert lib.fastrnn_emulated_gemms() - gemms >= 2 * seq_len


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_types_run_natively(lib, dtype):
    """The CUDA backend takes float16 and bfloat16 itself (stored in them,
    computed in float32): the extension says so, and the op, called with them,
    returns them (the workspace too) from the emulated device's GEMMs and
    launches, with no conversion to float32 on the way."""
    assert dtype in fastrnn.ops.native_dtypes("cpu")
    seq_len, batch, features, hidden = 4, 2, 3, 5

    def rand(*shape):
        return torch.randn(*shape, dtype=dtype)

    x, h0, c0 = rand(seq_len, batch, features), rand(batch, hidden), rand(batch, hidden)
    w_ih, w_hh, bias = rand(4 * hidden, features), rand(4 * hidden, hidden), rand(4 * hidden)
    launches, gemms = lib.fastrnn_emulated_launches(), lib.fastrnn_emulated_gemms()
    out, h_n, c_n, workspace = torch.ops.fastrnn.lstm_forward(
        x, h0, c0, w_ih, w_hh, bias, bias, None, None, False, True
    )
    assert lib.fastrnn_emulated_gemms() - gemms >= seq_len
    assert lib.fastrnn_emulated_launches() - launches >= seq_len
    assert {t.dtype for t in (out, h_n, c_n, workspace)} == {dtype}
    assert workspace.shape == (fastrnn.ops.SAVED["lstm"], seq_len * batch, hidden)
    gemms = lib.fastrnn_emulated_gemms()
    grads = torch.ops.fastrnn.lstm_backward(
        torch.ones_like(out),
        torch.ones_like(h_n),
        torch.ones_like(c_n),
        x,
        w_ih,
        w_hh,
        None,
        None,
        False,
        workspace,
    )
    assert lib.fastrnn_emulated_gemms() - gemms >= seq_len
    assert {g.dtype for g in grads} == {dtype}
    # the result is the float32 one's, to the precision of dtype
    want = torch.ops.fastrnn.lstm_forward(
        *(t.float() for t in (x, h0, c0, w_ih, w_hh, bias, bias)), None, None, False, False
    )[0]
    torch.testing.assert_close(out.float(), want, atol=8 * torch.finfo(dtype).eps, rtol=0)


def test_primitives(lib):
    """The C++ test of the CUDA backend's primitives, built beside the package."""
    program = os.path.join(os.path.dirname(os.path.dirname(fastrnn.__file__)), "test_cuda_emulated")
    assert os.path.exists(program), f"{program} is not built (tools/emulated.py build)"
    result = subprocess.run([program], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(" 0 failures"), result.stdout
