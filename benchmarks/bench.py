"""fastrnn's kernel benchmark, the command line: fastrnn.RNN / LSTM / GRU
against torch.nn, and against the GEMMs that the recurrence cannot avoid
("the limit"). Run from the repository root:

    python -m benchmarks.bench                 # the default cases
    python -m benchmarks.bench --smoke         # seconds, for CI
    python -m benchmarks.bench --full          # every size and sequence length
    python -m benchmarks.bench --device cuda   # modules, inputs and the limit on the GPU
    python -m benchmarks.bench --num-layers 2 --bidirectional --sizes seed
    python -m benchmarks.bench --load 1        # with one busy process beside it
    python -m benchmarks.bench --help

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
with the same weights), called as users call them. The parts live beside
this file, one job each: cases, workloads, agreement, timing, limit, machine
and report; benchmarks/test_bench.py times the same workloads under
pytest-benchmark.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

from .agreement import EXCESS_FLOOR, REL_TOL, REL_TOLS, check_agreement
from .cases import CELLS, DEFAULT_SIZES, MODES, SIZES, grid
from .limit import limit_step, peak_gemm_rate
from .load import busy_processes
from .machine import (
    BUSY_WARN,
    available_cpus,
    call_threads,
    cpu_snapshot,
    loadavg,
    machine_info,
    one_thread_share,
    others_share,
    require_device,
)
from .report import (
    check_failure,
    check_rule,
    format_machine,
    format_peak,
    format_table,
    layers_label,
    legend,
    plot,
)
from .timing import quartiles, time_interleaved
from .workloads import make_input, make_modules, make_step

DEVICES = ("cpu", "cuda")
DTYPES = {str(t).removeprefix("torch."): t for t in [*REL_TOLS, *EXCESS_FLOOR]}


def describe_case(cell, size_name, seq_len, mode, num_layers, device, bidirectional=False):
    """The part of a case's record that names the case."""
    size = SIZES[size_name]
    return {
        "cell": cell,
        "size": size_name,
        "batch": size.batch,
        "input": size.input,
        "hidden": size.hidden,
        "num_layers": num_layers,
        "bidirectional": bidirectional,
        "seq_len": seq_len,
        "mode": mode,
        "device": device,
    }


def run_case(
    cell,
    size_name,
    seq_len,
    mode,
    num_layers=1,
    warmup=3,
    repeats=None,
    target=0.8,
    mm_overhead=0.0,
    keep_samples=True,
    rel_tol=None,
    device="cpu",
    dtype=torch.float32,
    peak=None,
    bidirectional=False,
):
    """Check and time one case on `device` in `dtype`, `num_layers` deep and
    `bidirectional` or not; returns its record (a JSON-able dict). `peak`
    (limit.peak_gemm_rate's dict, for `dtype`) turns the limit's FLOPs into
    the limit at the machine's rate."""
    record = describe_case(cell, size_name, seq_len, mode, num_layers, device, bidirectional)
    record["dtype"] = str(dtype).removeprefix("torch.")
    ref, ours = make_modules(
        cell, size_name, num_layers, device=device, dtype=dtype, bidirectional=bidirectional
    )
    x = make_input(size_name, seq_len, mode, device=device, dtype=dtype)
    record["check"] = check_agreement(ref, ours, x, mode, rel_tol)

    limit, calls, flops = limit_step(
        cell,
        size_name,
        seq_len,
        mode,
        num_layers,
        device=device,
        dtype=dtype,
        bidirectional=bidirectional,
    )
    steps = {"torch": make_step(ref, x, mode), "fastrnn": make_step(ours, x, mode), "limit": limit}
    before, calls_before = cpu_snapshot(), call_threads()
    timing = time_interleaved(steps, warmup=warmup, repeats=repeats, target=target, device=device)
    record["others_cpu"] = others_share(before, cpu_snapshot(), available_cpus())
    record["one_thread"] = one_thread_share(calls_before, call_threads())
    s = timing["seconds"]
    med = {name: statistics.median(v) for name, v in s.items()}
    speedups = [t / f for t, f in zip(s["torch"], s["fastrnn"])]
    over_limit = [f / lim for f, lim in zip(s["fastrnn"], s["limit"])]
    overhead = calls * mm_overhead
    net = med["limit"] - overhead
    over_net = [f / (lim - overhead) for f, lim in zip(s["fastrnn"], s["limit"]) if lim > overhead]
    record.update(
        {
            "torch_ms": med["torch"] * 1e3,
            "fastrnn_ms": med["fastrnn"] * 1e3,
            "fastrnn_ms_q1_q3": [t * 1e3 for t in quartiles(s["fastrnn"])],
            "limit_ms": med["limit"] * 1e3,
            "speedup": statistics.median(speedups),
            "speedup_q1_q3": list(quartiles(speedups)),
            "fastrnn_over_limit": statistics.median(over_limit),
            "fastrnn_over_limit_q1_q3": list(quartiles(over_limit)),
            "limit_calls": calls,
            "limit_flops": flops,
            "limit_gflops": flops / med["limit"] / 1e9,
            "limit_overhead_ms": overhead * 1e3,
            "limit_net_ms": net * 1e3 if net > 0 else None,
            "fastrnn_over_limit_net": statistics.median(over_net) if over_net else None,
            "rounds": timing["rounds"],
            "calls_per_sample": timing["number"],
        }
    )
    if peak is not None:
        add_limit_at_peak(record, peak)
    if keep_samples:
        record["samples_ms"] = {name: [t * 1e3 for t in v] for name, v in s.items()}
    return record


def add_limit_at_peak(record, peak):
    """Add to a case's record its limit at the machine's GEMM rate `peak`
    (limit.peak_gemm_rate's dict): the limit's FLOPs at that rate, and the
    fastrnn time over it (median and quartiles: the rate is one number, so
    the per-round ratios are the fastrnn times scaled)."""
    at_peak = record["limit_flops"] / (peak["gflops"] * 1e9) * 1e3
    record.update(
        {
            "peak_dtype": peak["dtype"],
            "peak_call": f"{peak['call']} {peak['n']}^3",
            "peak_gflops": peak["gflops"],
            "limit_at_peak_ms": at_peak,
            "fastrnn_over_peak": record["fastrnn_ms"] / at_peak,
            "fastrnn_over_peak_q1_q3": [t / at_peak for t in record["fastrnn_ms_q1_q3"]],
        }
    )


# --------------------------------------------------------------------------
# Command line


def comma_separated(cast=str):
    """An argparse type: "rnn, lstm" -> ["rnn", "lstm"], each item cast; an
    item that cast refuses is an argparse error that names it. Which items
    are allowed is checked after parsing (_check_lists)."""

    def items(text):
        values = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            try:
                values.append(cast(item))
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"invalid {cast.__name__} value: {item!r}"
                ) from None
        return values

    return items


# list option -> (what one item is, the allowed items or None for any)
LIST_OPTIONS = {
    "--cells": ("cell", list(CELLS)),
    "--sizes": ("size", list(SIZES)),
    "--seq-lens": ("seq_len", None),
    "--modes": ("mode", list(MODES)),
}


def _check_lists(parser, args):
    for option, (kind, choices) in LIST_OPTIONS.items():
        values = getattr(args, option[2:].replace("-", "_"))
        if values is None:  # not given, and no default list
            continue
        if not values:
            parser.error(f"argument {option}: no {kind} given")
        unknown = [str(v) for v in values if choices is not None and v not in choices]
        if unknown:
            parser.error(
                f"argument {option}: unknown {kind} {', '.join(unknown)}; "
                f"choose from {', '.join(choices)}"
            )


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description="Benchmark fastrnn.RNN/LSTM/GRU against torch.nn and against the "
        "GEMM limit, after checking that they agree.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Default cases (the project's note): medium (B=64, I=128, H=256) at seq_len "
        "10, 50, 100 and small (B=1, I=64, H=64) at seq_len 200; every cell, both "
        "modes.\nWithout --seq-lens a size gets its default lengths: small 200, medium "
        "10,50,100, seed 10..200, large 50 (--full: every size at 10..200, large at 50).\n"
        "Sizes: "
        + "; ".join(f"{k} B={s.batch} I={s.input} H={s.hidden}" for k, s in SIZES.items()),
    )
    p.add_argument(
        "--cells",
        type=comma_separated(),
        default=list(CELLS),
        help="comma-separated cells: rnn (tanh), lstm, gru (default: all)",
    )
    p.add_argument(
        "--sizes",
        type=comma_separated(),
        default=None,
        help="comma-separated sizes: small, seed, medium, large "
        "(default: small,medium; --full: all)",
    )
    p.add_argument(
        "--seq-lens",
        type=comma_separated(int),
        default=None,
        help="comma-separated sequence lengths for every size (default: per size)",
    )
    p.add_argument(
        "--modes",
        type=comma_separated(),
        default=list(MODES),
        help="forward (eval, no grad) and/or train (forward + backward) (default: both)",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="the whole grid: all sizes, seq_len 10,20,30,50,100,200 (large: 50)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run for CI (seconds): size small, seq_len 10, few repeats",
    )
    p.add_argument(
        "--device",
        choices=DEVICES,
        default="cpu",
        help="where the modules, inputs and the limit's GEMMs run (default cpu); "
        "on cuda the times come from CUDA events",
    )
    p.add_argument(
        "--dtype",
        choices=list(DTYPES),
        default="float32",
        help="the modules', inputs' and limit GEMMs' dtype (default float32)",
    )
    p.add_argument(
        "--rel-tol",
        type=float,
        default=None,
        help="check: largest allowed max|fastrnn - torch.nn| / max|torch.nn| of any "
        f"compared tensor (default {REL_TOL:g} for float32; per dtype: "
        + ", ".join(f"{str(k).removeprefix('torch.')} {v:g}" for k, v in REL_TOLS.items())
        + "; float16 and bfloat16 by default by the project's rule: fastrnn's error "
        "against float64 at most twice torch.nn's plus one epsilon of max |value|)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--num-layers", type=int, default=1, help="layers (default 1)")
    p.add_argument(
        "--bidirectional",
        action="store_true",
        help="bidirectional modules (and the limit's GEMMs of both directions)",
    )
    p.add_argument(
        "--load",
        type=int,
        default=0,
        metavar="N",
        help="run N busy processes (one CPU-bound loop each) beside the benchmark for the "
        "whole run: fastrnn and torch.nn on a shared machine (default 0)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="interleaved rounds per case (default: adapted to the case's cost, "
        "about --target-time seconds per implementation, at least 5)",
    )
    p.add_argument(
        "--target-time",
        type=float,
        default=None,
        help="seconds per implementation per case when adapting repeats "
        "(default 0.8; --smoke 0.03)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="warm-up calls of each implementation per case (default 3; --smoke 1)",
    )
    p.add_argument(
        "--json",
        default=None,
        metavar="PATH",
        help="write machine info, options and every case here "
        "(default bench-out/bench.json, --smoke bench-out/bench-smoke.json; "
        "'' to skip)",
    )
    p.add_argument(
        "--plot",
        default=None,
        metavar="PATH",
        help="speed-up vs seq_len plot (default bench-out/speedup.png, "
        "--smoke bench-out/speedup-smoke.png)",
    )
    p.add_argument("--no-plot", action="store_true", help="do not write the plot")
    p.add_argument(
        "--no-samples", action="store_true", help="leave the per-round samples out of the JSON"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    _check_lists(p, args)
    try:
        require_device(args.device)
    except RuntimeError as e:
        p.error(f"argument --device: {e}")
    args.dtype = DTYPES[args.dtype]
    if args.rel_tol is None and args.dtype in REL_TOLS:
        args.rel_tol = REL_TOLS[args.dtype]
    if args.threads < 1 or args.num_layers < 1:
        p.error("--threads and --num-layers must be at least 1")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.load < 0:
        p.error("--load must be at least 0")
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


def run_cases(cases, args, info):
    """The records of `cases` (cell, size, seq_len, mode) run with the
    options `args`; a case that raises is recorded with its error."""
    try:
        from tqdm import tqdm
    except ImportError:  # the progress bar is optional
        tqdm = None
    records = []
    bar = None
    if tqdm is not None and not args.no_progress:
        bar = tqdm(total=len(cases), file=sys.stderr, unit="case", dynamic_ncols=True)
    for cell, size, seq_len, mode in cases:
        if bar is not None:
            bar.set_description(f"{cell} {size} T={seq_len} {mode}")
        try:
            record = run_case(
                cell,
                size,
                seq_len,
                mode,
                args.num_layers,
                args.warmup,
                args.repeats,
                args.target_time,
                info["mm_call_overhead_us"] * 1e-6,
                not args.no_samples,
                args.rel_tol,
                args.device,
                args.dtype,
                info["gemm_peak"],
                args.bidirectional,
            )
        except Exception as e:  # report it in the table and carry on
            record = describe_case(
                cell, size, seq_len, mode, args.num_layers, args.device, args.bidirectional
            )
            record["error"] = f"{type(e).__name__}: {e}"
        records.append(record)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return records


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    run_before = cpu_snapshot()
    torch.set_num_threads(args.threads)
    cases = grid(args.sizes, args.cells, args.modes, args.seq_lens, args.full)
    info = machine_info(quick=args.smoke, device=args.device, dtype=args.dtype)
    print(format_machine(info))
    print(
        f"{len(cases)} cases, {layers_label(args.num_layers, args.bidirectional)}, "
        f"{str(args.dtype).removeprefix('torch.')}; check: {check_rule(args.rel_tol)}",
        flush=True,
    )
    if args.load:
        print(
            f"load: {args.load} busy process(es) beside the cases (--load; the GEMM peak "
            "above and at the end is measured without them)",
            flush=True,
        )
    # The busy processes run from the first case to the last: the cases see
    # a shared machine, the peak rate (the hardware's) is measured without them.
    with busy_processes(args.load):
        records = run_cases(cases, args, info)

    # The peak again: a busy phase at the start only slows the rate down, so
    # the limit takes the higher of the two.
    end_peak = peak_gemm_rate(args.dtype, 0.1 if args.smoke else 0.4, args.device)
    info["gemm_peak_start"], info["gemm_peak_end"] = info["gemm_peak"], end_peak
    if end_peak["gflops"] > info["gemm_peak"]["gflops"]:
        info["gemm_peak"] = end_peak
        for record in records:
            if "limit_flops" in record:
                add_limit_at_peak(record, end_peak)
    print(f"\nat the end: {format_peak(end_peak)}")
    info["loadavg_end"] = loadavg()
    info["others_cpu_during_run"] = others_share(run_before, cpu_snapshot(), available_cpus())
    wall = time.perf_counter() - started
    print()
    print(format_table(records))
    print()
    print(legend(args.rel_tol, info["gemm_peak"]))

    failed = [r for r in records if "error" in r or not r["check"]["ok"]]
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        # the dtype as its name: JSON has no torch.dtype
        options = {
            k: str(v).removeprefix("torch.") if k == "dtype" else v for k, v in vars(args).items()
        }
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": info,
                    "options": options,
                    "rel_tol": args.rel_tol,
                    "wall_s": wall,
                    "cases": records,
                },
                f,
                indent=1,
            )
        print(f"\nwrote {args.json}")
    if not args.no_plot and records:
        try:
            if plot(records, args.plot):
                print(f"wrote {args.plot}")
        except ImportError:
            print("matplotlib is not installed: no plot (pip install matplotlib)")
    print(f"{len(records)} cases in {wall:.1f} s")
    # --load's processes are expected to take about load / cpus of the machine
    expected = min(1.0, args.load / available_cpus())
    busy = [r for r in records if (r.get("others_cpu") or 0) > expected + BUSY_WARN]
    share = info["others_cpu_during_run"]
    if share is not None:
        print(f"other processes used {100 * share:.0f}% of the machine's CPU time during the run")
    if args.load:
        print(
            f"(--load {args.load}: its processes take up to {100 * expected:.0f}% of it "
            "while the cases run, less where the benchmark's threads share their cores)"
        )
    if busy:
        beyond = f" beyond --load's {100 * expected:.0f}%" if args.load else ""
        print(
            f"WARNING: the machine was busy during {len(busy)} of {len(records)} cases "
            f"(busy > {int(BUSY_WARN * 100)}%{beyond}): their timings are unreliable. "
            "With more torch threads than idle cores, each OpenMP region waits for the "
            "scheduler and times can grow by orders of magnitude; rerun on a quiet machine "
            "(or with --threads 1)."
        )
    if failed:
        print(f"\n{len(failed)} case(s) FAILED:")
        for r in failed:
            what = r.get("error") or check_failure(r["check"])
            print(f"  {r['cell']} {r['size']} T={r['seq_len']} {r['mode']}: {what}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
