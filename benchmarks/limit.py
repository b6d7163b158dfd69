"""The limit: the GEMMs a recurrence cannot avoid, run alone as torch.mm
calls, and what such calls cost by themselves (the per-call overhead of the
Python loop, and the device's rate on a large GEMM)."""

import statistics
import time

import torch

from .cases import CELLS, size_of
from .timing import seconds_per_call


def limit_step(cell, size, seq_len, mode, num_layers=1, seed=2, device="cpu", dtype=torch.float32):
    """The GEMMs a recurrence cannot avoid, with the shapes fastrnn runs, as
    torch.mm calls into preallocated out= tensors on `device` in `dtype`, in a Python loop.

    Per layer, forward: one input GEMM [T*B, I] x [I, G*H] and T recurrent
    GEMMs [B, H] x [H, G*H]. Train adds the backward: T GEMMs
    [B, G*H] x [G*H, H] (the gradient of the state), and over all T*B rows
    dW_ih [G*H, T*B] x [T*B, I], dW_hh [G*H, T*B] x [T*B, H] and
    dX [T*B, G*H] x [G*H, I]. (I is H from the second layer on.)

    Returns (step, calls, flops): the callable, the number of torch.mm calls
    it makes, and their floating-point operations.
    """
    size = size_of(size)
    G = CELLS[cell][2]
    T, B, H = seq_len, size.batch, size.hidden
    N, GH = T * B, G * H
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return (torch.randn(*shape, generator=gen) * 0.1).to(device, dtype)

    def empty(*shape):
        return torch.empty(*shape, device=device, dtype=dtype)

    calls = []  # (a, b, out), run in this order
    flops = 0
    for layer in range(num_layers):
        I = size.input if layer == 0 else H  # noqa: E741 (the I of the docstring)
        x = rand(N, I)  # the layer's input, [T*B, I]
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


def gemm_rate(n=1024, seconds=0.5, device="cpu"):
    """Single-precision GEMM rate of an n x n x n torch.mm on `device`,
    GFLOP/s: (median, best) over repeats for about `seconds`."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)

    def step():
        torch.mm(a, b, out=out)

    for _ in range(2):
        step()
    samples = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 3:
        samples.append(seconds_per_call(step, 1, device))
    flops = 2.0 * n**3
    return flops / statistics.median(samples) / 1e9, flops / min(samples) / 1e9
