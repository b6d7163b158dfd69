"""The benchmark's report: the table of cases, the header of the machine,
the legend of the columns, and the speed-up plot."""

import os

from .agreement import REL_TOL
from .cases import CELLS, MODES, SIZES
from .machine import BUSY_WARN

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
    ("peak ms", 9, lambda r: _ms(r.get("limit_at_peak_ms"))),
    ("fast/peak", 9, lambda r: _x(r.get("fastrnn_over_peak"))),
    ("max diff", 8, lambda r: _e(r.get("check", {}).get("max_abs_diff"))),
    ("rel diff", 8, lambda r: _e(r.get("check", {}).get("max_rel_diff"))),
    ("excess", 6, lambda r: _f(r.get("check", {}).get("max_excess"))),
    ("busy", 4, lambda r: "-" if r.get("others_cpu") is None else f"{100 * r['others_cpu']:.0f}%"),
    ("1 thr", 5, lambda r: "-" if r.get("one_thread") is None else f"{100 * r['one_thread']:.0f}%"),
    ("check", 5, lambda r: "ERROR" if "error" in r else ("ok" if r["check"]["ok"] else "FAIL")),
]


# Shown only when some case is not one unidirectional layer.
LAYERS_COLUMN = ("layers", 6, lambda r: _layers(r))


def layers_label(num_layers, bidirectional):
    """ "1 layer", "2 layers, bidirectional": a run's or a case's layers in words."""
    words = f"{num_layers} layer{'s' if num_layers != 1 else ''}"
    return words + (", bidirectional" if bidirectional else "")


def _layers(r):
    """A case's layers and directions for the table: "2 bi", "1 uni"."""
    return f"{r.get('num_layers', 1)} {'bi' if r.get('bidirectional') else 'uni'}"


def _plain(r):
    return r.get("num_layers", 1) == 1 and not r.get("bidirectional")


def _ms(v):
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 10 else f"{v:.2f}" if v < 100 else f"{v:.1f}"


def _x(v):
    return "-" if v is None else f"{v:.2f}x"


def _e(v):
    return "-" if v is None else f"{v:.1e}"


def _f(v):
    return "-" if v is None else f"{v:.2f}"


def check_rule(rel_tol):
    """The check of a run in words: `rel_tol`, or None for the project's rule
    (float16, bfloat16)."""
    if rel_tol is None:
        return (
            "fastrnn's error against float64 at most twice torch.nn's plus one epsilon "
            "of max |value|, every tensor"
        )
    return f"tolerance {rel_tol:g} relative to max |value|"


def check_failure(check):
    """Why a case's check failed, in a line."""
    if "max_excess" in check:
        return f"error {check['max_excess']:.2f} x the allowed in {check['worst']}"
    return f"max rel diff {check['max_rel_diff']:.2e} in {check['worst']} > {check['rel_tol']:g}"


def format_peak(peak):
    """The line of the header with the machine's GEMM rate in the run's dtype."""
    others = ", ".join(
        f"{c['call']} {c['n']}^3 {c['gflops_best']:.0f}"
        for c in peak["candidates"]
        if (c["call"], c["n"]) != (peak["call"], peak["n"])
    )
    return (
        f"{peak['dtype']} GEMM peak (the limit's rate): {peak['call']} {peak['n']}^3, "
        f"{peak['gflops']:.1f} GFLOP/s (best sample; median {peak['gflops_median']:.1f}); "
        f"other calls, best GFLOP/s: {others or 'none'}"
    )


def format_table(records):
    """One row per case record; "-" where a record lacks the value. A
    "layers" column ("2 bi") follows "size" when some case is not one
    unidirectional layer."""
    columns = COLUMNS
    if not all(_plain(r) for r in records):
        columns = [*COLUMNS[:2], LAYERS_COLUMN, *COLUMNS[2:]]
    named = len(columns) - len(COLUMNS) + 4  # the left-aligned columns that name the case
    head = "  ".join(
        h.rjust(w) if i >= named else h.ljust(w) for i, (h, w, _) in enumerate(columns)
    )
    lines = [head, "-" * len(head)]
    for r in records:
        cells = []
        for i, (_, w, f) in enumerate(columns):
            try:
                v = f(r)
            except (KeyError, TypeError):
                v = "-"
            cells.append(v.rjust(w) if i >= named else v.ljust(w))
        lines.append("  ".join(cells))
    return "\n".join(lines)


def format_machine(info):
    """The run's header: CPU (and GPU), versions, GEMM rate, load."""
    lines = [
        f"CPU: {info['cpu_model']} ({', '.join(info['cpu_flags']) or 'no AVX flags'}); "
        f"{info['cpus_available']} CPUs available, torch threads {info['torch_threads']}",
        f"torch {info['torch']} (MKL {'yes' if info['mkl'] else 'no'}), fastrnn {info['fastrnn']}, "
        f"Python {info['python']}",
        f"SGEMM 1024^3 (torch.mm, {info['torch_threads']} threads): "
        f"{info['sgemm_1024_gflops_median']:.1f} GFLOP/s median, "
        f"{info['sgemm_1024_gflops_best']:.1f} best",
        format_peak(info["gemm_peak"]),
        f"empty torch.mm call in a Python loop: {info['mm_call_overhead_us']:.2f} us",
        "load average at start: "
        + (" ".join(f"{v:.2f}" for v in info["loadavg_start"]) if info["loadavg_start"] else "n/a"),
    ]
    if "gpu" in info:
        lines.insert(
            1,
            f"GPU: {info['gpu']} (CUDA {info['cuda']}); times from CUDA events; "
            "SGEMM and the empty torch.mm call below ran on the GPU",
        )
    return "\n".join(lines)


def legend(rel_tol=REL_TOL, peak=None):
    """What each column means, with the check's tolerance `rel_tol` (None:
    the project's rule, float16 and bfloat16) and the run's GEMM peak
    (limit.peak_gemm_rate's dict)."""
    rate = "the machine's GEMM rate in the run's dtype"
    if peak is not None:
        rate = (
            f"the machine's {peak['dtype']} GEMM rate, {peak['gflops']:.0f} GFLOP/s "
            f"({peak['call']} {peak['n']}^3, best sample)"
        )
    rows = [
        (
            "speed-up",
            "median over interleaved rounds of (torch.nn time / fastrnn time); "
            "> 1: fastrnn is faster",
        ),
        (
            "limit",
            "the GEMMs the recurrence cannot avoid, same shapes, as torch.mm(out=) calls "
            "in a Python loop",
        ),
        (
            "(mm oh)",
            'calls x the cost of an empty torch.mm call: the Python/dispatch part of "limit"',
        ),
        (
            "fast/limit",
            "median of (fastrnn time / limit time) per round; fast/net: the same "
            "with (limit - mm oh)",
        ),
        (
            "peak ms",
            f"the limit's FLOPs at {rate}:\nthe time of the unavoidable GEMMs at the "
            "hardware's rate; fast/peak: fastrnn time / peak ms",
        ),
        (
            "max diff",
            "max |fastrnn - torch.nn| over output, states (and in train every gradient)",
        ),
        (
            "rel diff",
            "the same relative to max |torch.nn| of each tensor"
            + ("" if rel_tol is None else f"; FAIL if > {rel_tol:g}"),
        ),
        (
            "excess",
            "float16, bfloat16: max over tensors of fastrnn's error against float64 / "
            "(2 x torch.nn's + one epsilon\nof max |value|); FAIL if > 1 (the project's rule)",
        ),
        (
            "busy",
            "share of the machine's CPU time other processes used while the case was "
            "timed\n"
            f"(from /proc/stat); over {int(BUSY_WARN * 100)}% the case's times are suspect",
        ),
        (
            "1 thr",
            "share of fastrnn's op calls that ran on one thread while the case was timed,\n"
            "because other processes shared the cores (FASTRNN_CPU_THREADS=adaptive)",
        ),
    ]
    indent = "\n" + " " * len(f"{'':<10} = ")
    return "\n".join(f"{name:<10} = {meaning.replace(chr(10), indent)}" for name, meaning in rows)


def plot(records, path):
    """Speed-up against seq_len, a line per cell, a panel per size x mode, to
    `path` (PNG); False when no record has a speed-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in records if r.get("speedup") is not None]
    sizes = [s for s in SIZES if any(r["size"] == s for r in records)]
    modes = [m for m in MODES if any(r["mode"] == m for r in records)]
    if not records:
        return False
    fig, axes = plt.subplots(
        len(sizes), len(modes), squeeze=False, figsize=(5.2 * len(modes), 3.4 * len(sizes))
    )
    for i, size in enumerate(sizes):
        for j, mode in enumerate(modes):
            ax = axes[i][j]
            for cell in CELLS:
                pts = sorted(
                    (r["seq_len"], r["speedup"])
                    for r in records
                    if r["size"] == size and r["mode"] == mode and r["cell"] == cell
                )
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=cell)
            ax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
            ax.set_xscale("log")
            s = SIZES[size]
            layers = sorted({_layers(r) for r in records if r["size"] == size})
            shape = "" if layers == ["1 uni"] else f", layers {'/'.join(layers)}"
            ax.set_title(
                f"{size} (B={s.batch}, I={s.input}, H={s.hidden}){shape}, {mode}", fontsize=10
            )
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
