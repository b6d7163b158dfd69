"""The limit: the GEMMs a recurrence cannot avoid, run alone as torch.mm
calls, and what such calls cost by themselves (the per-call overhead of the
Python loop, and the device's rate on a large GEMM in each dtype: the
fastest large GEMM Python reaches, whose rate turns the unavoidable FLOPs
into the limit at the machine's rate)."""

import statistics
import time

import torch

from .cases import CELLS, size_of
from .mkl_gemm import FUNCTIONS, mkl_gemm_step
from .timing import seconds_per_call


def limit_step(
    cell,
    size,
    seq_len,
    mode,
    num_layers=1,
    seed=2,
    device="cpu",
    dtype=torch.float32,
    bidirectional=False,
):
    """The GEMMs a recurrence cannot avoid, with the shapes fastrnn runs, as
    torch.mm calls into preallocated out= tensors on `device` in `dtype`, in a Python loop.

    Per layer and direction (D = 2 directions when `bidirectional`, else 1),
    forward: one input GEMM [T*B, I] x [I, G*H] and T recurrent GEMMs
    [B, H] x [H, G*H]. Train adds the backward: T GEMMs [B, G*H] x [G*H, H]
    (the gradient of the state), and over all T*B rows dW_ih [G*H, T*B] x
    [T*B, I], dW_hh [G*H, T*B] x [T*B, H] and dX [T*B, G*H] x [G*H, I]. I is
    the input size in the first layer and D*H from the second layer on (the
    directions' outputs side by side); both directions of a layer read the
    same input.

    Returns (step, calls, flops): the callable, the number of torch.mm calls
    it makes, and their floating-point operations.
    """
    size = size_of(size)
    G = CELLS[cell][2]
    T, B, H = seq_len, size.batch, size.hidden
    N, GH = T * B, G * H
    directions = 2 if bidirectional else 1
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return (torch.randn(*shape, generator=gen) * 0.1).to(device, dtype)

    def empty(*shape):
        return torch.empty(*shape, device=device, dtype=dtype)

    calls = []  # (a, b, out), run in this order
    flops = 0
    for layer in range(num_layers):
        I = size.input if layer == 0 else directions * H  # noqa: E741 (the I of the docstring)
        x = rand(N, I)  # the layer's input, [T*B, I], read by every direction
        for _ in range(directions):
            w_ih, w_hh = rand(GH, I), rand(GH, H)
            h = rand(B, H)
            calls.append((x, w_ih.t(), empty(N, GH)))
            h_proj = empty(B, GH)
            calls += [(h, w_hh.t(), h_proj)] * T
            flops += 2 * N * I * GH + T * 2 * B * H * GH
            if mode == "train":
                dgates = rand(N, GH)  # gate gradients of every step, [T*B, G*H]
                h_prev = rand(N, H)
                dh = empty(B, H)
                calls += [(dgates[t * B : (t + 1) * B], w_hh, dh) for t in range(T)]
                calls.append((dgates.t(), x, empty(GH, I)))  # dW_ih
                calls.append((dgates.t(), h_prev, empty(GH, H)))  # dW_hh
                calls.append((dgates, w_ih, empty(N, I)))  # dX
                flops += T * 2 * B * GH * H + 2 * GH * N * I + 2 * GH * N * H + 2 * N * GH * I
    mm = torch.mm

    def step():
        for a, b, out in calls:
            mm(a, b, out=out)

    return step, len(calls), flops


def mm_call_overhead(seconds=0.2, device="cpu"):
    """Seconds per call of an (almost) empty torch.mm([1,1] x [1,1], out=) in
    the same Python loop as limit_step's: the overhead each limit GEMM carries."""
    a, b = torch.ones(1, 1, device=device), torch.ones(1, 1, device=device)
    out = torch.empty(1, 1, device=device)
    calls = [(a, b, out)] * 1000
    mm = torch.mm

    def step():
        for a_, b_, o_ in calls:
            mm(a_, b_, out=o_)

    step()
    samples = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 5:
        samples.append(seconds_per_call(step, 1, device) / len(calls))
    return statistics.median(samples)


def _rates(steps, flops, seconds, device):
    """{name: (median, best) GFLOP/s} of the callables `steps` (name ->
    callable), timed interleaved (one sample of each per round, the order
    rotating) for about `seconds` each, after two warm-up calls."""
    names = list(steps)
    for name in names:
        for _ in range(2):
            steps[name]()
    samples = {name: [] for name in names}
    deadline = time.perf_counter() + seconds * len(names)
    r = 0
    while time.perf_counter() < deadline or r < 3:
        k = r % len(names)
        for name in names[k:] + names[:k]:
            samples[name].append(seconds_per_call(steps[name], 1, device))
        r += 1
    return {
        name: (flops[name] / statistics.median(s) / 1e9, flops[name] / min(s) / 1e9)
        for name, s in samples.items()
    }


def _mm_step(n, device, dtype):
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)

    def step():
        torch.mm(a, b, out=out)

    return step


def gemm_rate(n=1024, seconds=0.5, device="cpu", dtype=torch.float32):
    """GEMM rate of an n x n x n torch.mm in `dtype` on `device`, GFLOP/s:
    (median, best) over repeats for about `seconds`."""
    return _rates({"mm": _mm_step(n, device, dtype)}, {"mm": 2.0 * n**3}, seconds, device)["mm"]


ONEDNN = "oneDNN matmul"


def onednn_step(a, b):
    """A callable computing a @ b^T with oneDNN's matmul (torch's
    mkldnn_linear on oneDNN tensors, the result one too), or None where torch
    or the CPU lacks it for that dtype (bfloat16 without AVX-512 BW/VL/DQ
    or AVX-NE-CONVERT, float16 without AVX512-FP16 or AVX-NE-CONVERT). On
    AMD processors MKL's sgemm, behind torch.mm, takes a generic path:
    oneDNN's reached 201-220 GFLOP/s at 2048^3 on 2 Zen 4 cores where
    torch.mm reached 129-189 (benchmarks/README.md)."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        a_onednn, b_onednn = a.to_mkldnn(), b.to_mkldnn()
        torch._C._nn.mkldnn_linear(a_onednn, b_onednn)
    except RuntimeError:
        return None

    def step():
        return torch._C._nn.mkldnn_linear(a_onednn, b_onednn)

    return step


def gemm_candidates(dtype, device="cpu", sizes=(1024, 2048)):
    """The large GEMMs in `dtype` that Python can reach: {(call, n): callable}.
    torch.mm at every n; on the CPU also oneDNN's matmul where it takes the
    dtype, and for bfloat16 and float16 MKL's cblas_gemm_*16*16f32 (float32
    result), where torch exports it."""
    steps = {}
    for n in sizes:
        steps["torch.mm", n] = _mm_step(n, device, dtype)
    if torch.device(device).type != "cpu":
        return steps
    for n in sizes:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        step = onednn_step(a, b)
        if step is None:
            break
        expected = torch.mm(a.float(), b.float().t())
        got = step().to_dense().float()
        if not torch.allclose(got, expected, rtol=1e-2, atol=1e-2 * expected.abs().max().item()):
            raise RuntimeError("oneDNN's matmul computed a wrong product")
        steps[ONEDNN, n] = step
    if dtype not in FUNCTIONS:
        return steps
    for n in sizes:
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        c = torch.empty(n, n)
        step = mkl_gemm_step(a, b, c)
        if step is None:  # no MKL, or it lacks the function
            break
        step()
        expected = torch.mm(a.float(), b.float())
        if not torch.allclose(c, expected, rtol=1e-3, atol=1e-3 * expected.abs().max().item()):
            raise RuntimeError(f"{FUNCTIONS[dtype]} through ctypes computed a wrong product")
        steps[FUNCTIONS[dtype], n] = step
    return steps


def peak_gemm_rate(dtype=torch.float32, seconds=0.4, device="cpu", sizes=(1024, 2048)):
    """The machine's GEMM rate in `dtype`: every gemm_candidates call timed
    interleaved for about `seconds` each; the peak is the highest rate any
    sample of any of them reached (noise on a shared machine only slows a
    sample down, so the best sample is the closest to the hardware's rate).

    Returns a JSON-able dict: dtype, call and n of the fastest, gflops (its
    best sample), gflops_median (its median), and every candidate's.
    """
    steps = gemm_candidates(dtype, device, sizes)
    names = {f"{call} {n}^3": (call, n) for call, n in steps}
    rates = _rates(
        {name: steps[key] for name, key in names.items()},
        {name: 2.0 * key[1] ** 3 for name, key in names.items()},
        seconds,
        device,
    )
    fastest = max(rates, key=lambda name: rates[name][1])
    call, n = names[fastest]
    return {
        "dtype": str(dtype).removeprefix("torch."),
        "call": call,
        "n": n,
        "gflops": rates[fastest][1],
        "gflops_median": rates[fastest][0],
        "candidates": [
            {"call": names[name][0], "n": names[name][1], "gflops_median": m, "gflops_best": b}
            for name, (m, b) in rates.items()
        ],
    }
