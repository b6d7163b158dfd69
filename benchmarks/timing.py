"""Timing on the CPU or a CUDA device: per-call times, and several callables
timed interleaved so that a slow phase of a shared machine hits them alike.

On a CUDA device a call only queues kernels, so a time is taken between two
CUDA events around the calls, after the work queued before them is done."""

import gc
import math
import statistics
import time

import torch


def _on_cuda(device):
    return torch.device(device).type == "cuda"


def seconds_per_call(fn, number, device="cpu"):
    """Mean seconds per call of `number` back-to-back calls of fn."""
    if _on_cuda(device):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / number  # elapsed_time is in ms
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def synchronized(fn, device="cpu"):
    """fn, made to return only when its device work is done (for timers that
    read the host clock, such as pytest-benchmark's)."""
    if not _on_cuda(device):
        return fn

    def call():
        fn()
        torch.cuda.synchronize()

    return call


def quartiles(values):
    """(first, third) quartile of `values`; the value itself for one value."""
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def time_interleaved(
    steps,
    warmup=3,
    repeats=None,
    target=0.8,
    sample=0.002,
    min_rounds=5,
    max_rounds=1000,
    device="cpu",
):
    """Time the callables of `steps` (name -> callable) interleaved.

    After `warmup` calls of each, one call of each estimates its cost; each
    gets `number` calls per sample (about `sample` seconds, at least 1). A
    round takes one sample of each, the order rotating by one each round.
    Rounds: `repeats` if given, otherwise enough for about `target` seconds
    per callable, within [min_rounds, max_rounds]. The garbage collector is
    off while timing.

    Returns {"seconds": {name: [per-call time of each round]}, "number":
    {name: calls per sample}, "rounds": n}.
    """
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
    cost = {name: seconds_per_call(steps[name], 1, device) for name in names}
    number = {name: max(1, int(sample / max(cost[name], 1e-9))) for name in names}
    if repeats is None:
        per_round = max(number[n] * cost[n] for n in names)
        rounds = int(min(max_rounds, max(min_rounds, math.ceil(target / max(per_round, 1e-9)))))
    else:
        rounds = max(1, repeats)
    seconds = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                seconds[name].append(seconds_per_call(steps[name], number[name], device))
    finally:
        if gc_was_enabled:
            gc.enable()
    return {"seconds": seconds, "number": number, "rounds": rounds}
