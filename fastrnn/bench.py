"""fastrnn's benchmark: fastrnn.RNN / LSTM / GRU against torch.nn, and against
the GEMMs that the recurrence cannot avoid ("the limit").

    python -m fastrnn.bench                 # the default cases (about 1-2 minutes)
    python -m fastrnn.bench --smoke         # seconds, for CI
    python -m fastrnn.bench --full          # every size and sequence length
    python -m fastrnn.bench --help

For every case (cell x size x seq_len x mode) it

1. checks that fastrnn agrees with torch.nn (same state_dict, float32): the
   largest difference of the outputs (forward) or of the outputs and of every
   gradient (train), relative to the largest |value| of that tensor, must not
   exceed REL_TOL; a case over it is marked FAIL and the exit status is 1;
2. times torch.nn, fastrnn and the limit interleaved in one process, after a
   warm-up: one sample of each per round, the order rotating from round to
   round, so that a slow phase of a shared machine hits all three alike;
   it reports the median time of each, the median of the per-round ratios
   torch / fastrnn (the speed-up) and fastrnn / limit.

The modules are what is timed (fastrnn.LSTM(...) against torch.nn.LSTM(...)
with the same weights), called as users call them.

The functions here are shared with the pytest-benchmark suite in benchmarks/.
"""

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections import namedtuple

import torch

import fastrnn
from experiments.cli import comma_list

__all__ = [
    "SIZES", "CELLS", "MODES", "ALL_SEQ_LENS", "REL_TOL",
    "full_grid", "make_modules", "make_input", "make_step", "run_once", "check_agreement",
    "limit_step", "machine_info", "gemm_rate", "mm_call_overhead", "run_case", "main",
]

Size = namedtuple("Size", "batch input hidden")

# The sizes of the project's issue.
SIZES = {
    "small": Size(batch=1, input=64, hidden=64),
    "seed": Size(batch=32, input=128, hidden=128),
    "medium": Size(batch=64, input=128, hidden=256),
    "large": Size(batch=128, input=512, hidden=512),
}

# cell -> (torch.nn class, fastrnn class, gates G)
CELLS = {
    "rnn": (torch.nn.RNN, fastrnn.RNN, 1),   # tanh, torch.nn.RNN's default
    "lstm": (torch.nn.LSTM, fastrnn.LSTM, 4),
    "gru": (torch.nn.GRU, fastrnn.GRU, 3),
}

MODES = ("forward", "train")
ALL_SEQ_LENS = (10, 20, 30, 50, 100, 200)

# Sequence lengths of each size in the full grid (--full, and the pytest suite).
FULL_SEQ_LENS = {"small": ALL_SEQ_LENS, "seed": ALL_SEQ_LENS, "medium": ALL_SEQ_LENS,
                 "large": (50,)}
# The default run: the cases the project's note needs.
DEFAULT_SIZES = ("small", "medium")
DEFAULT_SEQ_LENS = {"small": (200,), "medium": (10, 50, 100)}

# A case fails its check when, for some compared tensor,
# max |fastrnn - torch.nn| > REL_TOL * max |torch.nn|.
REL_TOL = 1e-4

# A case is flagged when other processes used more than this share of the
# machine's CPU time while it was timed.
BUSY_WARN = 0.10


# --------------------------------------------------------------------------
# Models, inputs and steps (shared with benchmarks/test_bench.py)

def full_grid(sizes=None, cells=None, modes=None):
    """(cell, size, seq_len, mode) of the full grid: small, seed and medium at
    every length in ALL_SEQ_LENS, large at 50."""
    sizes = list(SIZES) if sizes is None else sizes
    cells = list(CELLS) if cells is None else cells
    modes = list(MODES) if modes is None else modes
    return [(cell, size, seq_len, mode)
            for size in sizes for seq_len in FULL_SEQ_LENS[size]
            for cell in cells for mode in modes]


def make_modules(cell, size, num_layers=1, seed=0):
    """(torch.nn module, fastrnn module) of `cell` at `size` (a name or a
    Size), float32, with the same state_dict."""
    size = SIZES[size] if isinstance(size, str) else size
    torch_cls, fast_cls, _ = CELLS[cell]
    torch.manual_seed(seed)
    ref = torch_cls(size.input, size.hidden, num_layers=num_layers)
    ours = fast_cls(size.input, size.hidden, num_layers=num_layers)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def make_input(size, seq_len, mode, seed=1):
    """A random [seq_len, batch, input] float32 input; it requires grad in
    train mode (the step computes the gradient of the input too)."""
    size = SIZES[size] if isinstance(size, str) else size
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(seq_len, size.batch, size.input, generator=gen)
    return x.requires_grad_(mode == "train")


def _states(state):
    return state if isinstance(state, tuple) else (state,)


def _loss(output, state):
    """output.sum() + h_n.sum() (+ c_n.sum() for LSTM)."""
    loss = output.sum()
    for s in _states(state):
        loss = loss + s.sum()
    return loss


def make_step(module, x, mode):
    """The callable that is timed: in "forward" mode the module in eval() under
    no_grad; in "train" mode one training step's forward and backward, loss =
    output.sum() + h_n.sum() (+ c_n.sum()), gradients of the parameters and of
    the input, cleared (set to None) before each step."""
    if mode == "forward":
        module.eval()

        def step():
            with torch.no_grad():
                module(x)
    elif mode == "train":
        module.train()
        assert x.requires_grad, "train mode needs an input that requires grad (make_input)"

        def step():
            module.zero_grad(set_to_none=True)
            x.grad = None
            output, state = module(x)
            _loss(output, state).backward()
    else:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    return step


def run_once(module, x, mode):
    """One step as make_step runs it, returning what it computed by name:
    output, h_n (, c_n), and in train mode grad_input and grad_<parameter>."""
    if mode == "forward":
        module.eval()
        with torch.no_grad():
            output, state = module(x)
    else:
        module.train()
        module.zero_grad(set_to_none=True)
        x.grad = None
        output, state = module(x)
        _loss(output, state).backward()
    out = {"output": output.detach()}
    for name, s in zip(("h_n", "c_n"), _states(state)):
        out[name] = s.detach()
    if mode == "train":
        out["grad_input"] = x.grad.detach().clone()
        for name, p in module.named_parameters():
            out[f"grad_{name}"] = p.grad.detach().clone()
    return out


def check_agreement(ref, ours, x, mode, rel_tol=None):
    """Run both modules once and compare every tensor run_once returns.

    Returns a dict: max_abs_diff (largest |fastrnn - torch.nn| over all
    tensors), max_rel_diff (largest of max|diff| / max|torch.nn| per tensor),
    worst (the tensor with that relative difference), ok (max_rel_diff <=
    rel_tol, default REL_TOL) and rel_tol.
    """
    rel_tol = REL_TOL if rel_tol is None else rel_tol
    a, b = run_once(ours, x, mode), run_once(ref, x, mode)
    max_abs, max_rel, worst = 0.0, 0.0, None
    for key in b:
        if key not in a or a[key].shape != b[key].shape:
            return {"max_abs_diff": math.inf, "max_rel_diff": math.inf, "worst": key,
                    "ok": False, "rel_tol": rel_tol}
        diff = (a[key].double() - b[key].double()).abs().max().item()
        scale = b[key].abs().max().item()
        rel = diff / scale if scale > 0 else diff
        if not math.isfinite(diff):
            rel = diff = math.inf
        max_abs = max(max_abs, diff)
        if rel >= max_rel:
            max_rel, worst = rel, key
    return {"max_abs_diff": max_abs, "max_rel_diff": max_rel, "worst": worst,
            "ok": max_rel <= rel_tol, "rel_tol": rel_tol}


# --------------------------------------------------------------------------
# The limit: the GEMMs of the recurrence alone

def limit_step(cell, size, seq_len, mode, num_layers=1, seed=2):
    """The GEMMs a recurrence cannot avoid, with the shapes fastrnn runs, as
    torch.mm calls into preallocated out= tensors in a Python loop.

    Per layer, forward: one input GEMM [T*B, I] x [I, G*H] and T recurrent
    GEMMs [B, H] x [H, G*H]. Train adds the backward: T GEMMs
    [B, G*H] x [G*H, H] (the gradient of the state), and over all T*B rows
    dW_ih [G*H, T*B] x [T*B, I], dW_hh [G*H, T*B] x [T*B, H] and
    dX [T*B, G*H] x [G*H, I]. (I is H from the second layer on.)

    Returns (step, calls, flops): the callable, the number of torch.mm calls
    it makes, and their floating-point operations.
    """
    size = SIZES[size] if isinstance(size, str) else size
    G = CELLS[cell][2]
    T, B, H = seq_len, size.batch, size.hidden
    N, GH = T * B, G * H
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen) * 0.1

    calls = []  # (a, b, out), run in this order
    flops = 0
    for layer in range(num_layers):
        I = size.input if layer == 0 else H
        x = rand(N, I)
        w_ih, w_hh = rand(GH, I), rand(GH, H)
        h = rand(B, H)
        calls.append((x, w_ih.t(), torch.empty(N, GH)))
        h_proj = torch.empty(B, GH)
        calls += [(h, w_hh.t(), h_proj)] * T
        flops += 2 * N * I * GH + T * 2 * B * H * GH
        if mode == "train":
            dgates = rand(N, GH)
            h_prev = rand(N, H)
            dh = torch.empty(B, H)
            calls += [(dgates[t * B:(t + 1) * B], w_hh, dh) for t in range(T)]
            calls.append((dgates.t(), x, torch.empty(GH, I)))        # dW_ih
            calls.append((dgates.t(), h_prev, torch.empty(GH, H)))   # dW_hh
            calls.append((dgates, w_ih, torch.empty(N, I)))          # dX
            flops += T * 2 * B * GH * H + 2 * GH * N * I + 2 * GH * N * H + 2 * N * GH * I
    mm = torch.mm

    def step():
        for a, b, out in calls:
            mm(a, b, out=out)

    return step, len(calls), flops


def mm_call_overhead(seconds=0.2):
    """Seconds per call of an (almost) empty torch.mm([1,1] x [1,1], out=) in
    the same Python loop as limit_step's: the overhead each limit GEMM carries."""
    a, b, out = torch.ones(1, 1), torch.ones(1, 1), torch.empty(1, 1)
    calls = [(a, b, out)] * 1000
    mm = torch.mm

    def step():
        for a_, b_, o_ in calls:
            mm(a_, b_, out=o_)

    step()
    samples = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 5:
        t0 = time.perf_counter()
        step()
        samples.append((time.perf_counter() - t0) / len(calls))
    return statistics.median(samples)


def gemm_rate(n=1024, seconds=0.5):
    """Single-precision GEMM rate of an n x n x n torch.mm, GFLOP/s:
    (median, best) over repeats for about `seconds`."""
    a, b, out = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    for _ in range(2):
        torch.mm(a, b, out=out)
    samples = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 3:
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        samples.append(time.perf_counter() - t0)
    flops = 2.0 * n ** 3
    return flops / statistics.median(samples) / 1e9, flops / min(samples) / 1e9


# --------------------------------------------------------------------------
# Machine

def _cpuinfo():
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def cpu_snapshot():
    """(wall s, machine busy CPU s from /proc/stat, this process's CPU s); the
    busy time is None where /proc/stat is missing."""
    busy = None
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        if fields and fields[0] == "cpu":
            v = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
            hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
            busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz
    except (OSError, ValueError):
        pass
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system


def others_share(before, after, cpus):
    """Share of the machine's CPU time (0..1) that other processes (and the
    hypervisor, as steal) used between two cpu_snapshot()s: the noise
    indicator of a shared machine. None where it cannot be told."""
    wall = after[0] - before[0]
    if before[1] is None or after[1] is None or wall <= 0:
        return None
    # less two clock ticks: both counters advance in ticks (10 ms, usually)
    tick = 1.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)
    others = (after[1] - before[1]) - (after[2] - before[2]) - 2 * tick
    return min(1.0, max(0.0, others / (wall * cpus)))


def _cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info(quick=False):
    model, flags = _cpuinfo()
    isa = [f for f in ("avx512f", "avx512_bf16", "avx2", "fma") if f in flags]
    affinity = _cpus()
    rate_median, rate_best = gemm_rate(1024, 0.25 if quick else 0.6)
    overhead = mm_call_overhead(0.1 if quick else 0.3)
    return {
        "cpu_model": model,
        "cpu_flags": isa,
        "logical_cpus": os.cpu_count(),
        "cpus_available": affinity,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "sgemm_1024_gflops_median": rate_median,
        "sgemm_1024_gflops_best": rate_best,
        "mm_call_overhead_us": overhead * 1e6,
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "mkl": torch.backends.mkl.is_available(),
        "fastrnn": getattr(fastrnn, "__version__", None),
        "FASTRNN_CPU_ISA": os.environ.get("FASTRNN_CPU_ISA"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
    }


# --------------------------------------------------------------------------
# Timing

def _time(fn, number):
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def _quantiles(values):
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def time_interleaved(steps, warmup=3, repeats=None, target=0.8, sample=0.002,
                     min_rounds=5, max_rounds=1000):
    """Time the callables of `steps` (name -> callable) interleaved.

    After `warmup` calls of each, one call of each estimates its cost; each
    gets `number` calls per sample (about `sample` seconds, at least 1). A
    round takes one sample of each, the order rotating by one each round.
    Rounds: `repeats` if given, otherwise enough for about `target` seconds
    per callable, within [min_rounds, max_rounds].

    Returns {"seconds": {name: [per-call time of each round]}, "number":
    {name: calls per sample}, "rounds": n}.
    """
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
    cost = {name: _time(steps[name], 1) for name in names}
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
                seconds[name].append(_time(steps[name], number[name]))
    finally:
        if gc_was_enabled:
            gc.enable()
    return {"seconds": seconds, "number": number, "rounds": rounds}


def run_case(cell, size_name, seq_len, mode, num_layers=1, warmup=3, repeats=None,
             target=0.8, mm_overhead=0.0, keep_samples=True, rel_tol=None):
    """Check and time one case; returns its record (a JSON-able dict)."""
    size = SIZES[size_name]
    record = {"cell": cell, "size": size_name, "batch": size.batch, "input": size.input,
              "hidden": size.hidden, "num_layers": num_layers, "seq_len": seq_len,
              "mode": mode}
    ref, ours = make_modules(cell, size, num_layers)
    x = make_input(size, seq_len, mode)
    record["check"] = check_agreement(ref, ours, x, mode, rel_tol)

    limit, calls, flops = limit_step(cell, size, seq_len, mode, num_layers)
    steps = {"torch": make_step(ref, x, mode), "fastrnn": make_step(ours, x, mode),
             "limit": limit}
    before = cpu_snapshot()
    timing = time_interleaved(steps, warmup=warmup, repeats=repeats, target=target)
    record["others_cpu"] = others_share(before, cpu_snapshot(), _cpus())
    s = timing["seconds"]
    med = {name: statistics.median(v) for name, v in s.items()}
    speedups = [t / f for t, f in zip(s["torch"], s["fastrnn"])]
    over_limit = [f / lim for f, lim in zip(s["fastrnn"], s["limit"])]
    overhead = calls * mm_overhead
    net = med["limit"] - overhead
    over_net = [f / (lim - overhead) for f, lim in zip(s["fastrnn"], s["limit"]) if lim > overhead]
    record.update({
        "torch_ms": med["torch"] * 1e3,
        "fastrnn_ms": med["fastrnn"] * 1e3,
        "limit_ms": med["limit"] * 1e3,
        "speedup": statistics.median(speedups),
        "speedup_q1_q3": list(_quantiles(speedups)),
        "fastrnn_over_limit": statistics.median(over_limit),
        "fastrnn_over_limit_q1_q3": list(_quantiles(over_limit)),
        "limit_calls": calls,
        "limit_flops": flops,
        "limit_gflops": flops / med["limit"] / 1e9,
        "limit_overhead_ms": overhead * 1e3,
        "limit_net_ms": net * 1e3 if net > 0 else None,
        "fastrnn_over_limit_net": statistics.median(over_net) if over_net else None,
        "rounds": timing["rounds"],
        "calls_per_sample": timing["number"],
    })
    if keep_samples:
        record["samples_ms"] = {name: [t * 1e3 for t in v] for name, v in s.items()}
    return record


# --------------------------------------------------------------------------
# Report

COLUMNS = [  # header, width, format of a record
    ("cell", 4, lambda r: r["cell"]),
    ("size", 6, lambda r: r["size"]),
    ("T", 4, lambda r: str(r["seq_len"])),
    ("mode", 7, lambda r: r["mode"]),
    ("torch ms", 9, lambda r: _ms(r.get("torch_ms"))),
    ("fastrnn ms", 10, lambda r: _ms(r.get("fastrnn_ms"))),
    ("speed-up", 8, lambda r: _x(r.get("speedup"))),
    ("limit ms", 9, lambda r: _ms(r.get("limit_ms"))),
    ("(mm oh)", 8, lambda r: _ms(r.get("limit_overhead_ms"))),
    ("fast/limit", 10, lambda r: _x(r.get("fastrnn_over_limit"))),
    ("fast/net", 8, lambda r: _x(r.get("fastrnn_over_limit_net"))),
    ("max diff", 8, lambda r: _e(r.get("check", {}).get("max_abs_diff"))),
    ("rel diff", 8, lambda r: _e(r.get("check", {}).get("max_rel_diff"))),
    ("busy", 4, lambda r: "-" if r.get("others_cpu") is None else f"{100 * r['others_cpu']:.0f}%"),
    ("check", 5, lambda r: "ERROR" if "error" in r else ("ok" if r["check"]["ok"] else "FAIL")),
]


def _ms(v):
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 10 else f"{v:.2f}" if v < 100 else f"{v:.1f}"


def _x(v):
    return "-" if v is None else f"{v:.2f}x"


def _e(v):
    return "-" if v is None else f"{v:.1e}"


def format_table(records):
    head = "  ".join(h.rjust(w) if i > 3 else h.ljust(w) for i, (h, w, _) in enumerate(COLUMNS))
    lines = [head, "-" * len(head)]
    for r in records:
        cells = []
        for i, (_, w, f) in enumerate(COLUMNS):
            try:
                v = f(r)
            except (KeyError, TypeError):
                v = "-"
            cells.append(v.rjust(w) if i > 3 else v.ljust(w))
        lines.append("  ".join(cells))
    return "\n".join(lines)


def format_machine(info):
    return "\n".join([
        f"CPU: {info['cpu_model']} ({', '.join(info['cpu_flags']) or 'no AVX flags'}); "
        f"{info['cpus_available']} CPUs available, torch threads {info['torch_threads']}",
        f"torch {info['torch']} (MKL {'yes' if info['mkl'] else 'no'}), fastrnn {info['fastrnn']}, "
        f"Python {info['python']}",
        f"SGEMM 1024^3 (torch.mm, {info['torch_threads']} threads): "
        f"{info['sgemm_1024_gflops_median']:.1f} GFLOP/s median, "
        f"{info['sgemm_1024_gflops_best']:.1f} best",
        f"empty torch.mm call in a Python loop: {info['mm_call_overhead_us']:.2f} us",
        "load average at start: " + (" ".join(f"{v:.2f}" for v in info["loadavg_start"])
                                     if info["loadavg_start"] else "n/a"),
    ])


LEGEND = f"""\
speed-up   = median over interleaved rounds of (torch.nn time / fastrnn time); > 1: fastrnn is faster
limit      = the GEMMs the recurrence cannot avoid, same shapes, as torch.mm(out=) calls in a Python loop
(mm oh)    = calls x the cost of an empty torch.mm call: the Python/dispatch part of "limit"
fast/limit = median of (fastrnn time / limit time) per round; fast/net: the same with (limit - mm oh)
max diff   = max |fastrnn - torch.nn| over output, states (and in train every gradient), float32
rel diff   = the same relative to max |torch.nn| of each tensor; FAIL if > {REL_TOL:g}
busy       = share of the machine's CPU time other processes used while the case was timed
             (from /proc/stat); over {int(BUSY_WARN * 100)}% the case's times are suspect"""


def plot(records, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in records if r.get("speedup") is not None]
    sizes = [s for s in SIZES if any(r["size"] == s for r in records)]
    modes = [m for m in MODES if any(r["mode"] == m for r in records)]
    if not records:
        return False
    fig, axes = plt.subplots(len(sizes), len(modes), squeeze=False,
                             figsize=(5.2 * len(modes), 3.4 * len(sizes)))
    for i, size in enumerate(sizes):
        for j, mode in enumerate(modes):
            ax = axes[i][j]
            for cell in CELLS:
                pts = sorted((r["seq_len"], r["speedup"]) for r in records
                             if r["size"] == size and r["mode"] == mode and r["cell"] == cell)
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=cell)
            ax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
            ax.set_xscale("log")
            s = SIZES[size]
            ax.set_title(f"{size} (B={s.batch}, I={s.input}, H={s.hidden}), {mode}", fontsize=10)
            ax.set_xlabel("seq_len")
            ax.set_ylabel("speed-up vs torch.nn")
            ax.legend(fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
            seq_lens = sorted({r["seq_len"] for r in records if r["size"] == size})
            ax.set_xticks(seq_lens)
            ax.set_xticklabels([str(t) for t in seq_lens])
            ax.minorticks_off()
    fig.suptitle("fastrnn speed-up over torch.nn (median of interleaved ratios)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------
# Command line

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m fastrnn.bench",
        description="Benchmark fastrnn.RNN/LSTM/GRU against torch.nn and against the "
                    "GEMM limit, after checking that they agree.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Default cases (the project's note): medium (B=64, I=128, H=256) at seq_len "
               "10, 50, 100 and small (B=1, I=64, H=64) at seq_len 200; every cell, both "
               "modes.\nWithout --seq-lens a size gets its default lengths: small 200, medium "
               "10,50,100, seed 10..200, large 50 (--full: every size at 10..200, large at 50).\n"
               f"Sizes: " + "; ".join(f"{k} B={s.batch} I={s.input} H={s.hidden}"
                                      for k, s in SIZES.items()))
    p.add_argument("--cells", type=comma_list("cell", list(CELLS)), default=list(CELLS),
                   help="comma-separated cells: rnn (tanh), lstm, gru (default: all)")
    p.add_argument("--sizes", type=comma_list("size", list(SIZES)), default=None,
                   help="comma-separated sizes: small, seed, medium, large "
                        "(default: small,medium; --full: all)")
    p.add_argument("--seq-lens", type=comma_list("seq_len", cast=int), default=None,
                   help="comma-separated sequence lengths for every size (default: per size)")
    p.add_argument("--modes", type=comma_list("mode", list(MODES)), default=list(MODES),
                   help="forward (eval, no grad) and/or train (forward + backward) "
                        "(default: both)")
    p.add_argument("--full", action="store_true",
                   help="the whole grid: all sizes, seq_len 10,20,30,50,100,200 (large: 50)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny run for CI (seconds): size small, seq_len 10, few repeats")
    p.add_argument("--rel-tol", type=float, default=REL_TOL,
                   help="check: largest allowed max|fastrnn - torch.nn| / max|torch.nn| of any "
                        f"compared tensor (default {REL_TOL:g})")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--num-layers", type=int, default=1, help="layers (default 1)")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved rounds per case (default: adapted to the case's cost, "
                        "about --target-time seconds per implementation, at least 5)")
    p.add_argument("--target-time", type=float, default=None,
                   help="seconds per implementation per case when adapting repeats "
                        "(default 0.8; --smoke 0.03)")
    p.add_argument("--warmup", type=int, default=None,
                   help="warm-up calls of each implementation per case (default 3; --smoke 1)")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="write machine info, options and every case here "
                        "(default bench-out/bench.json, --smoke bench-out/bench-smoke.json; "
                        "'' to skip)")
    p.add_argument("--plot", default=None, metavar="PATH",
                   help="speed-up vs seq_len plot (default bench-out/speedup.png, "
                        "--smoke bench-out/speedup-smoke.png)")
    p.add_argument("--no-plot", action="store_true", help="do not write the plot")
    p.add_argument("--no-samples", action="store_true",
                   help="leave the per-round samples out of the JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.threads < 1 or args.num_layers < 1:
        p.error("--threads and --num-layers must be at least 1")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.smoke:
        args.sizes = args.sizes or ["small"]
        args.seq_lens = args.seq_lens or [10]
        args.target_time = 0.03 if args.target_time is None else args.target_time
        args.warmup = 1 if args.warmup is None else args.warmup
    suffix = "-smoke" if args.smoke else ""
    args.json = f"bench-out/bench{suffix}.json" if args.json is None else args.json
    args.plot = f"bench-out/speedup{suffix}.png" if args.plot is None else args.plot
    args.sizes = args.sizes or (list(SIZES) if args.full else list(DEFAULT_SIZES))
    args.target_time = 0.8 if args.target_time is None else args.target_time
    args.warmup = 3 if args.warmup is None else args.warmup
    return args


def cases_of(args):
    cases = []
    for size in args.sizes:
        if args.seq_lens is not None:
            seq_lens = args.seq_lens
        elif args.full or size not in DEFAULT_SEQ_LENS:
            seq_lens = FULL_SEQ_LENS[size]
        else:
            seq_lens = DEFAULT_SEQ_LENS[size]
        for seq_len in seq_lens:
            for cell in args.cells:
                for mode in args.modes:
                    cases.append((cell, size, seq_len, mode))
    return cases


def main(argv=None):
    args = parse_args(argv)
    try:
        from tqdm import tqdm
    except ImportError:  # the progress bar is optional
        tqdm = None

    started = time.perf_counter()
    run_before = cpu_snapshot()
    torch.set_num_threads(args.threads)
    cases = cases_of(args)
    info = machine_info(quick=args.smoke)
    print(format_machine(info))
    print(f"{len(cases)} cases, {args.num_layers} layer(s), float32; check tolerance "
          f"{args.rel_tol:g} relative to max |value|", flush=True)

    records = []
    bar = None
    if tqdm is not None and not args.no_progress:
        bar = tqdm(total=len(cases), file=sys.stderr, unit="case", dynamic_ncols=True)
    for cell, size, seq_len, mode in cases:
        if bar is not None:
            bar.set_description(f"{cell} {size} T={seq_len} {mode}")
        try:
            record = run_case(cell, size, seq_len, mode, args.num_layers, args.warmup,
                              args.repeats, args.target_time,
                              info["mm_call_overhead_us"] * 1e-6, not args.no_samples,
                              args.rel_tol)
        except Exception as e:  # report it in the table and carry on
            s = SIZES[size]
            record = {"cell": cell, "size": size, "batch": s.batch, "input": s.input,
                      "hidden": s.hidden, "num_layers": args.num_layers, "seq_len": seq_len,
                      "mode": mode, "error": f"{type(e).__name__}: {e}"}
        records.append(record)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    info["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    info["others_cpu_during_run"] = others_share(run_before, cpu_snapshot(), _cpus())
    wall = time.perf_counter() - started
    print()
    print(format_table(records))
    print()
    print(LEGEND.replace(f"FAIL if > {REL_TOL:g}", f"FAIL if > {args.rel_tol:g}"))

    failed = [r for r in records if "error" in r or not r["check"]["ok"]]
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        options = {k: v for k, v in vars(args).items()}
        with open(args.json, "w") as f:
            json.dump({"machine": info, "options": options, "rel_tol": args.rel_tol,
                       "wall_s": wall, "cases": records}, f, indent=1)
        print(f"\nwrote {args.json}")
    if not args.no_plot and records:
        try:
            if plot(records, args.plot):
                print(f"wrote {args.plot}")
        except ImportError:
            print("matplotlib is not installed: no plot (pip install matplotlib)")
    print(f"{len(records)} cases in {wall:.1f} s")
    busy = [r for r in records if (r.get("others_cpu") or 0) > BUSY_WARN]
    share = info["others_cpu_during_run"]
    if share is not None:
        print(f"other processes used {100 * share:.0f}% of the machine's CPU time during the run")
    if busy:
        print(f"WARNING: the machine was busy during {len(busy)} of {len(records)} cases "
              f"(busy > {int(BUSY_WARN * 100)}%): their timings are unreliable. With more torch "
              "threads than idle cores, each OpenMP region waits for the scheduler and times "
              "can grow by orders of magnitude; rerun on a quiet machine (or with --threads 1).")
    if failed:
        print(f"\n{len(failed)} case(s) FAILED:")
        for r in failed:
            what = r.get("error") or (
                f"max rel diff {r['check']['max_rel_diff']:.2e} in {r['check']['worst']} "
                f"> {args.rel_tol:g}")
            print(f"  {r['cell']} {r['size']} T={r['seq_len']} {r['mode']}: {what}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
