"""The course assignment's hyperparameter study on Tiny Shakespeare: the
number of layers, the hidden size and a hidden fully connected layer in the
head, each configuration trained for the same time on fastrnn.

    python -m experiments.hyperparams                     # lstm, 1-3 layers, 128-512, both heads
    python -m experiments.hyperparams --cells lstm,gru --time-budget 120 --threads 1
    python -m experiments.hyperparams --layers 1 --hidden 64 --time-budget 2 --fraction 0.02

Every run is the Tiny Shakespeare study's (experiments.shakespeare: its
splits, its model, its training and its measures), with the assignment's
settings (embedding 128, batch 128, Adam at 5e-3, the loss at the last
position; --objective all trains on every position) but for what the study
varies:

    --layers   recurrent layers (default 1,2,3)
    --hidden   hidden size (default 128,256,512; the embedding stays 128
               wide, so the hidden size is the only width that changes)
    --head     plain: the last output -> linear over the vocabulary;
               fc: Linear(H, H) + ReLU before it (charmodels.CharRNN)

Equal time, not equal epochs: every run trains for --time-budget seconds
(the steps only; warm-up and evaluation are not counted), so that a larger
model pays for its cost in fewer steps, as it would on a fixed budget. One
seq_len (default 50) and one split (default positional: train, validation
and test share no character). Validation and test are measured on
--eval-windows windows each, evenly spaced over their parts (the whole
parts cost minutes per large model on one core).

Per run: test accuracy and perplexity (exp of the test cross-entropy),
validation loss and accuracy, training time and steps (and the time per
step), parameters, FLOPs per training sequence, model size, the test set's
inference time and a sample. Outputs in --out (default hyperparams-out,
which git ignores): results.json (the rows), results.md (the table, the
machine, the samples) and run.json (the settings, the machine, its load),
each rewritten after every run; at the end test_accuracy.png and
perplexity.png, each against training time, parameters and time per step,
every point labelled with its configuration.

Resumable: the rows are written after every run, and the same command run
again skips the configurations results.json already holds for the same
settings (another budget, seq_len, split, ... is refused: use another
--out). --checkpoints DIR also saves each run's model after every epoch and
at least every 5 minutes within one, and resumes an interrupted one from it.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import fastrnn

from .charmodels import HEADS, RECURRENT
from .chartrain import OBJECTIVES
from .cli import add_lr_decay, check_fraction_and_counts, comma_list
from .compare_plots import COLOURS, pyplot
from .runio import (
    atomic_path,
    cpu_name,
    loadavg,
    machine,
    markdown,
    progress,
    step_bar,
    write_atomic,
)
from .shakespeare import ABOUT_SPLIT, PRESETS, SPLITS, run_one, threads_and_text

__all__ = [
    "SETTINGS",
    "plan_runs",
    "label",
    "finished_rows",
    "markdown_table",
    "report",
    "plot_study",
    "parse_args",
    "main",
]

# The options that define the study: rows measured under others do not
# compare with these, and a rerun refuses to mix them.
SETTINGS = (
    "split",
    "seq_len",
    "time_budget_s",
    "epochs",
    "text",
    "fraction",
    "embed_size",
    "batch_size",
    "lr",
    "clip",
    "objective",
    "lr_decay",
    "seed",
    "eval_windows",
)  # and the number of threads


def plan_runs(cells, layers, hiddens, heads):
    """The configurations, each a dict of cell, num_layers, hidden_size and
    head, in run order."""
    return [
        dict(cell=c, num_layers=n, hidden_size=h, head=head)
        for c in cells
        for n in layers
        for h in hiddens
        for head in heads
    ]


def label(config):
    """A configuration's name: cell, layers x hidden size, head ("lstm 2x256 fc")."""
    return f"{config['cell']} {config['num_layers']}x{config['hidden_size']} {config['head']}"


def _order(row):
    cell, head = list(RECURRENT).index(row["cell"]), HEADS.index(row["head"])
    return cell, row["num_layers"], row["hidden_size"], head


def finished_rows(path, settings):
    """The rows of an earlier run of the study in `path` (none when there is
    no such file). Raises ValueError when any was measured under other
    settings."""
    if not path.exists():
        return []
    rows = json.loads(path.read_text(encoding="utf-8"))
    for r in rows:  # rows from before the option
        r["settings"].setdefault("lr_decay", "constant")
    other = [r for r in rows if r["settings"] != settings]
    if other:
        raise ValueError(
            f"{path} holds {len(other)} run(s) of other settings ({other[0]['settings']}, "
            f"now {settings}); give another --out or remove it"
        )
    return rows


TABLE_HEAD = (
    "cell",
    "layers",
    "hidden",
    "head",
    "test acc",
    "perplexity",
    "val loss",
    "train s",
    "steps",
    "ms/step",
    "params",
    "MFLOP/seq",
    "test set s",
)


def markdown_table(rows):
    return markdown(
        TABLE_HEAD,
        [
            (
                r["cell"],
                str(r["num_layers"]),
                str(r["hidden_size"]),
                r["head"],
                f"{100 * r['test_accuracy']:.2f}%",
                f"{r['perplexity']:.3f}",
                f"{r['val_loss']:.4f}",
                f"{r['train_time_s']:.1f}",
                f"{r['steps']:,}",
                f"{r['ms_per_step']:.1f}",
                f"{r['params']:,}",
                f"{r['flops_per_sequence'] / 1e6:.2f}",
                f"{r['test_inference_s']:.2f}",
            )
            for r in rows
        ],
    )


def report(rows, settings, threads, prompt, temperature):
    """results.md: the settings, the machine, the table, the samples."""
    s = settings
    samples = "\n\n".join(f"{label(r)}:\n\n```\n{r['sample']}\n```" for r in rows)
    return (
        f"## Tiny Shakespeare: layers, hidden size and head at equal training time\n\n"
        f"{s['split']} split ({ABOUT_SPLIT[s['split']]}); seq_len {s['seq_len']}, "
        f"{s['time_budget_s']:g} s of training per run (the steps only), batch "
        f"{s['batch_size']}, Adam at {s['lr']:g}, embedding {s['embed_size']}, the loss at "
        f"{'the last position' if s['objective'] == 'last' else 'every position'}; validation and "
        f"test on {rows[0]['test_windows']:,} windows each, evenly spaced over their parts. "
        f"{cpu_name()}, {threads} thread(s), float32, fastrnn {fastrnn.__version__}.\n\n"
        f"{markdown_table(rows)}\n\nSamples (prompt {prompt!r}, temperature "
        f"{temperature:g}):\n\n{samples}\n"
    )


HEAD_MARKERS = {"plain": "o", "fc": "^"}
X_AXES = (
    ("train_time_s", "training time (s)", "linear"),
    ("params", "parameters", "log"),
    ("ms_per_step", "training time per step (ms)", "log"),
)


def plot_study(rows, out):
    """test_accuracy.png and perplexity.png in the folder `out`, each
    against X_AXES, every point labelled; returns their paths. Raises
    ImportError without matplotlib."""
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter

    paths = []
    for key, ylabel, scale in (
        ("test_accuracy", "test accuracy (%)", 100.0),
        ("perplexity", "test perplexity", 1.0),
    ):
        fig, axes = plt.subplots(1, len(X_AXES), figsize=(5.2 * len(X_AXES), 4.2), sharey=True)
        for ax, (x_key, x_label, x_scale) in zip(axes, X_AXES):
            for r in rows:
                x, y = r[x_key], scale * r[key]
                ax.plot(
                    x,
                    y,
                    linestyle="none",
                    marker=HEAD_MARKERS[r["head"]],
                    markersize=3 + 2 * r["num_layers"],
                    color=COLOURS[r["cell"]],
                )
                ax.annotate(label(r), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=6)
            ax.set_xscale(x_scale)
            ax.xaxis.set_minor_formatter(NullFormatter())  # narrow log ranges label every tick
            ax.set_xlabel(x_label)
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel(ylabel)
        cells = sorted({r["cell"] for r in rows}, key=list(RECURRENT).index)
        handles = [Line2D([], [], color=COLOURS[c], marker="o", linestyle="none") for c in cells]
        handles += [
            Line2D([], [], color="grey", marker=HEAD_MARKERS[h], linestyle="none") for h in HEADS
        ]
        axes[-1].legend(handles, cells + [f"head {h}" for h in HEADS], fontsize=8)
        fig.suptitle(
            f"{ylabel} at {rows[0]['settings']['time_budget_s']:g} s of training per run "
            "(marker size: layers)",
            fontsize=10,
        )
        fig.tight_layout()
        path = out / f"{key}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def parse_args(argv=None):
    preset = PRESETS["assignment"]
    p = argparse.ArgumentParser(
        prog="python -m experiments.hyperparams",
        description="Tiny Shakespeare at equal training time over layers, hidden sizes and "
        "the head, on fastrnn: test accuracy, perplexity, cost.",
    )
    p.add_argument(
        "--cells",
        type=comma_list("cell", tuple(RECURRENT)),
        default=["lstm"],
        help=f"comma-separated, from {','.join(RECURRENT)} (default lstm)",
    )
    p.add_argument(
        "--layers",
        type=comma_list("layer count", cast=int),
        default=[1, 2, 3],
        help="comma-separated numbers of layers (default 1,2,3)",
    )
    p.add_argument(
        "--hidden",
        type=comma_list("hidden size", cast=int),
        default=[128, 256, 512],
        help="comma-separated hidden sizes (default 128,256,512)",
    )
    p.add_argument(
        "--head",
        type=comma_list("head", HEADS),
        default=list(HEADS),
        help="comma-separated, from plain,fc (default both)",
    )
    p.add_argument(
        "--time-budget",
        dest="time_budget_s",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds of training per run (default 60)",
    )
    p.add_argument("--seq-len", type=int, default=50, help="(default 50)")
    p.add_argument("--split", choices=SPLITS, default="positional", help="(default positional)")
    p.add_argument(
        "--eval-windows",
        type=int,
        default=1250,
        metavar="N",
        help="validation and test windows each, evenly spaced (default 1250; 0: all)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=preset["epochs"],
        help="at most (default 20; the budget ends runs first)",
    )
    for name in ("embed_size", "batch_size", "lr", "clip"):
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=type(preset[name]),
            default=preset[name],
            help=f"(default {preset[name]:g}, the assignment's)",
        )
    p.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=preset["objective"],
        help="the training loss: at the last position only (the assignment's model, "
        "default) or at every position (char-rnn's); scored at the last position either way",
    )
    add_lr_decay(p)
    p.add_argument("--text", metavar="PATH", help="another UTF-8 text instead of Tiny Shakespeare")
    p.add_argument(
        "--fraction", type=float, default=1.0, help="the first FRACTION of the text (default 1)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0, help="(default 0)")
    p.add_argument("--out", default="hyperparams-out", metavar="DIR")
    p.add_argument("--checkpoints", metavar="DIR", help="save and resume runs here (default: none)")
    p.add_argument("--sample", type=int, default=100, metavar="N", help="(default 100)")
    p.add_argument("--prompt", default="First", help="(default 'First')")
    p.add_argument("--temperature", type=float, default=0.8, help="(default 0.8)")
    p.add_argument("--no-plot", action="store_true", help="write no PNGs")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    check_fraction_and_counts(p, args, ("seq_len", "epochs", "embed_size", "batch_size", "sample"))
    if args.time_budget_s <= 0:
        p.error("--time-budget must be positive: the study compares at equal time")
    if min(args.layers + args.hidden) < 1 or args.eval_windows < 0:
        p.error("--layers and --hidden must be at least 1, --eval-windows at least 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    started, load_start = time.perf_counter(), loadavg()
    loaded = threads_and_text(args, "experiments.hyperparams", args.seq_len)
    if loaded is None:
        return 2
    name, text, vocab, ids = loaded
    out = Path(args.out)
    settings = {k: getattr(args, k) for k in SETTINGS}
    settings["threads"] = torch.get_num_threads()  # the time a run gets depends on them
    try:
        rows = finished_rows(out / "results.json", settings)
    except ValueError as e:
        print(f"experiments.hyperparams: {e}", file=sys.stderr)
        return 2
    plan = plan_runs(args.cells, args.layers, args.hidden, args.head)
    done = {label(r) for r in rows}
    todo = [c for c in plan if label(c) not in done]
    print(
        f"{name}: {len(text):,} characters, vocabulary {len(vocab)}; {len(plan)} runs "
        f"({len(plan) - len(todo)} finished before), {args.split} split, seq_len "
        f"{args.seq_len}, {args.time_budget_s:g} s each, {torch.get_num_threads()} threads",
        flush=True,
    )

    def save(interrupted=False, plots=False):
        rows.sort(key=_order)
        info = {
            "options": vars(args),
            "settings": settings,
            "corpus": name,
            "characters": len(text),
            "vocabulary": len(vocab),
            **machine(),
            "runs_planned": len(plan),
            "runs_finished": len(rows),
            "interrupted": interrupted,
            "wall_s": time.perf_counter() - started,
            "loadavg_start": load_start,
            "loadavg_end": loadavg(),
        }
        write_atomic(out / "results.json", json.dumps(rows, indent=1) + "\n")
        write_atomic(out / "run.json", json.dumps(info, indent=1) + "\n")
        if rows:
            md = report(rows, settings, torch.get_num_threads(), args.prompt, args.temperature)
            write_atomic(out / "results.md", md)
            if plots and not args.no_plot:
                try:
                    plot_study(rows, out)
                except ImportError:
                    print("matplotlib is not installed: no plots", file=sys.stderr)

    tqdm = progress(not args.no_progress)
    try:
        for config in todo:
            run_args = argparse.Namespace(**{**vars(args), **config}, steps_per_epoch=0)
            checkpoint = None
            if args.checkpoints:
                checkpoint = str(Path(args.checkpoints) / (label(config).replace(" ", "-") + ".pt"))
            bar, on_step = step_bar(tqdm, label(config))
            row, _ = run_one(
                args.split, config["cell"], args.seq_len, vocab, ids, run_args, checkpoint, on_step
            )
            if bar is not None:
                bar.close()
            row["ms_per_step"] = 1e3 * row["train_time_s"] / max(row["steps"], 1)
            row["settings"] = settings
            rows.append(row)
            save()
            print(
                f"{label(config)}: test accuracy {100 * row['test_accuracy']:.2f}%, perplexity "
                f"{row['perplexity']:.3f}, {row['steps']:,} steps in {row['train_time_s']:.1f} s",
                flush=True,
            )
    except KeyboardInterrupt:
        save(interrupted=True, plots=True)
        print(
            f"interrupted: {len(rows)} finished run(s) in {out}; the same command runs the others",
            file=sys.stderr,
        )
        return 130
    save(plots=True)
    print(f"\n{markdown_table(rows)}\n\nwrote {out}: results.json, results.md, run.json", end="")
    print("" if args.no_plot else ", test_accuracy.png, perplexity.png")
    print(f"{len(todo)} run(s) in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
