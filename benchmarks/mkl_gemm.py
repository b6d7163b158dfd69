"""MKL's 16-bit GEMMs with float32 results (cblas_gemm_bf16bf16f32,
cblas_gemm_f16f16f32), called through ctypes from the libtorch_cpu that
torch's x86 wheels link MKL into. torch.mm in bfloat16 goes to oneDNN
instead, which may reach less of the matrix units' rate on a large GEMM; the
limit wants the hardware's rate, so the benchmark times both."""

import ctypes
import os

import torch

FUNCTIONS = {torch.bfloat16: "cblas_gemm_bf16bf16f32", torch.float16: "cblas_gemm_f16f16f32"}
CBLAS_ROW_MAJOR, CBLAS_NO_TRANS = 101, 111


def _libtorch_cpu():
    path = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        return ctypes.CDLL(path)
    except OSError:
        return None


def mkl_gemm_step(a, b, c):
    """A callable that computes c = a @ b (row-major, contiguous; a and b
    bfloat16 or float16, c float32) with MKL's cblas_gemm_*16*16f32, or None
    where torch has no MKL or its library does not export the function.
    MKL_INT is 32-bit (the LP64 interface torch links)."""
    name = FUNCTIONS.get(a.dtype)
    if name is None or not torch.backends.mkl.is_available() or a.device.type != "cpu":
        return None
    lib = _libtorch_cpu()
    fn = getattr(lib, name, None) if lib is not None else None
    if fn is None:
        return None
    (m, k), (_, n) = a.shape, b.shape
    assert b.dtype == a.dtype and b.shape[0] == k and c.shape == (m, n) and c.dtype == torch.float32
    assert a.is_contiguous() and b.is_contiguous() and c.is_contiguous()
    i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    args = (
        i(CBLAS_ROW_MAJOR),
        i(CBLAS_NO_TRANS),
        i(CBLAS_NO_TRANS),
        i(m),
        i(n),
        i(k),
        f(1.0),
        p(a.data_ptr()),
        i(k),
        p(b.data_ptr()),
        i(n),
        f(0.0),
        p(c.data_ptr()),
        i(n),
    )

    def step():
        fn(*args)

    step.tensors = (a, b, c)  # ctypes holds their addresses, not them
    return step
