"""fastrnn's main job: the classic study of RNN, LSTM and GRU across sequence
lengths, on next-character prediction, trained on fastrnn.

    python -m experiments.compare                 # rnn,lstm,gru at 10,20,30 on the Zen of Python
    python -m experiments.compare --backend both  # the same on torch.nn too, with the speed-up
    python -m experiments.compare --corpus tinyshakespeare --cells lstm,gru --seq-lens 20,30,50
    python -m experiments.compare --text my.txt --cells rnn,lstm,gru,cnn,attention --sample 300

Every (cell, seq_len, backend) trains from the same seed with the same
hyperparameters and the same order of batches. Recurrent cells run on
fastrnn.RNN/LSTM/GRU (backend fastrnn) and/or torch.nn.RNN/LSTM/GRU (backend
torch). cnn and attention, the non-recurrent baselines, are torch ops whatever
the backend: they run once, recorded as backend "torch".

Outputs in --out: results.json (one row per run, keys ROW_KEYS), results.csv,
curves.json (per-epoch losses, accuracy and time), run.json (options, data,
machine), val_accuracy.png, train_time.png, loss_curves.png, and with
--sample, samples.txt. The results are rewritten after every finished run, so
a crash keeps the runs before it; Ctrl-C stops, keeps the finished runs, prints
their table and exits with status 130.
"""

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

import torch

from .charmodels import CELLS, RECURRENT, build_model, check_backend, count_params, model_bytes
from .chartrain import TrainConfig, Vocabulary, sample, train
from .cli import add_cells_and_seq_lens
from .compare_plots import plot_all
from .corpora import CORPORA, CorpusUnavailable, load_text, split_text
from .runio import loadavg, machine, markdown, progress, write_atomic

__all__ = [
    "ROW_KEYS",
    "plan_runs",
    "run_one",
    "format_table",
    "markdown_table",
    "parse_args",
    "main",
]

ROW_KEYS = (
    "cell",
    "seq_len",
    "backend",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "train_time_s",
    "params",
    "flops",
    "model_bytes",
)


def plan_runs(cells, seq_lens, backends):
    """(cell, seq_len, backend) in run order: for each cell and length, the
    backends back to back, so that they meet the same state of the machine."""
    runs = []
    for cell in cells:
        for seq_len in seq_lens:
            for backend in backends if cell in RECURRENT else ["torch"]:
                runs.append((cell, seq_len, backend))
    return runs


def run_one(cell, seq_len, backend, vocab, train_ids, val_ids, args, on_step=None):
    """Train one model; returns (row, curves, model)."""
    dtype = getattr(torch, args.dtype)
    model = build_model(
        cell,
        backend,
        len(vocab),
        seq_len,
        embed_size=args.embed_size,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        seed=args.seed,
        dtype=dtype,
    )
    check_backend(model, cell, backend)
    config = TrainConfig.from_args(args)
    history = train(model, train_ids, val_ids, seq_len, config, on_step=on_step)
    row = {
        "cell": cell,
        "seq_len": seq_len,
        "backend": backend,
        "train_loss": history["train_loss"][-1],
        "val_loss": history["val_loss"][-1],
        "val_accuracy": history["val_accuracy"][-1],
        "train_time_s": history["total_train_time_s"],
        "params": count_params(model),
        "flops": model.flops_per_sequence(seq_len),
        "model_bytes": model_bytes(model),
    }
    curves = {
        "cell": cell,
        "seq_len": seq_len,
        "backend": backend,
        **{k: history[k] for k in ("train_loss", "val_loss", "val_accuracy", "train_time_s")},
    }
    return row, curves, model


def speedups(rows):
    """(cell, seq_len) -> torch.nn training time / fastrnn training time."""
    times = {(r["cell"], r["seq_len"], r["backend"]): r["train_time_s"] for r in rows}
    return {
        (c, t): times[(c, t, "torch")] / times[(c, t, "fastrnn")]
        for (c, t, b) in times
        if b == "fastrnn" and (c, t, "torch") in times
    }


def agreement(rows):
    """Largest relative difference between the backends' final losses."""
    by = {(r["cell"], r["seq_len"], r["backend"]): r for r in rows}
    worst = None
    for (c, t, b), r in by.items():
        other = by.get((c, t, "torch"))
        if b == "fastrnn" and other:
            for k in ("train_loss", "val_loss"):
                d = abs(r[k] - other[k]) / abs(other[k])
                worst = d if worst is None else max(worst, d)
    return worst


TABLE_HEAD = (
    "cell",
    "seq_len",
    "backend",
    "train loss",
    "val loss",
    "val acc",
    "train s",
    "speed-up",
    "params",
    "MFLOP/seq",
    "model KiB",
)


def _table_lines(rows):
    speed = speedups(rows)
    lines = []
    for r in rows:
        s = speed.get((r["cell"], r["seq_len"])) if r["backend"] == "fastrnn" else None
        lines.append(
            (
                r["cell"],
                str(r["seq_len"]),
                r["backend"],
                f"{r['train_loss']:.4f}",
                f"{r['val_loss']:.4f}",
                f"{100 * r['val_accuracy']:.1f}%",
                f"{r['train_time_s']:.2f}",
                "" if s is None else f"{s:.2f}x",
                f"{r['params']:,}",
                f"{r['flops'] / 1e6:.2f}",
                f"{r['model_bytes'] / 1024:.1f}",
            )
        )
    return lines


def format_table(rows):
    lines = _table_lines(rows)
    widths = [max(len(x) for x in col) for col in zip(TABLE_HEAD, *lines)]

    def fmt(cols):  # names left, numbers right
        return "  ".join(
            c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths))
        )

    return "\n".join([fmt(TABLE_HEAD), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines])


def markdown_table(rows):
    """The same table in Markdown, for READMEs and notes."""
    lines = [
        [c.replace("x", "×") if i == 7 else c for i, c in enumerate(l)] for l in _table_lines(rows)
    ]
    return markdown(TABLE_HEAD, lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m experiments.compare",
        description="Train RNN, LSTM and GRU (and cnn / attention baselines) on next-character "
        "prediction at several sequence lengths; compare loss, accuracy, time and "
        "size.",
    )
    add_cells_and_seq_lens(p, CELLS, ["rnn", "lstm", "gru"], [10, 20, 30])
    p.add_argument("--text", metavar="PATH", help="train on this UTF-8 file")
    p.add_argument(
        "--corpus",
        choices=CORPORA,
        default="zen",
        help="built-in text when --text is not given (default zen: the Zen of "
        "Python; tinyshakespeare: FASTRNN_DATA, the cache, or a download)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="last part of the text kept for validation (default 0.2)",
    )
    p.add_argument("--epochs", type=int, default=60, help="(default 60)")
    p.add_argument(
        "--steps-per-epoch",
        type=int,
        default=0,
        help="at most this many batches per epoch, drawn from the shuffled windows "
        "(default 0: all; for large texts)",
    )
    p.add_argument(
        "--stride",
        type=int,
        default=1,
        help="a training window starts every STRIDE characters (default 1)",
    )
    p.add_argument("--hidden-size", type=int, default=128, help="(default 128)")
    p.add_argument(
        "--embed-size",
        type=int,
        default=32,
        help="character embedding width (default 32; attention embeds to --hidden-size)",
    )
    p.add_argument("--num-layers", type=int, default=1, help="(default 1)")
    p.add_argument("--batch-size", type=int, default=64, help="(default 64)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate (default 3e-3)")
    p.add_argument(
        "--clip", type=float, default=5.0, help="gradient norm clipping, 0 for none (default 5)"
    )
    p.add_argument(
        "--backend",
        choices=("fastrnn", "torch", "both"),
        default="fastrnn",
        help="recurrent layers from fastrnn, torch.nn, or both (default fastrnn)",
    )
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)"
    )
    p.add_argument("--seed", type=int, default=0, help="(default 0)")
    p.add_argument(
        "--out", default="compare-out", metavar="DIR", help="output directory (default compare-out)"
    )
    p.add_argument(
        "--sample",
        type=int,
        default=0,
        metavar="N",
        help="after training, print N characters generated by each model",
    )
    p.add_argument(
        "--prompt",
        default=None,
        help="text the samples start from (default: the text's first word)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="sampling temperature; 0 takes the likeliest character (default 0.8)",
    )
    p.add_argument("--no-plot", action="store_true", help="write no PNGs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if not 0 < args.val_fraction < 1:
        p.error("--val-fraction must be between 0 and 1")
    for name in ("epochs", "hidden_size", "embed_size", "num_layers", "batch_size", "stride"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.seq_lens) < 1 or (args.threads is not None and args.threads < 1):
        p.error("--seq-lens and --threads must be at least 1")
    return args


def write_outputs(out, rows, curves, run_info, samples):
    out.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=ROW_KEYS)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / "results.json", json.dumps(rows, indent=1) + "\n")
    write_atomic(out / "results.csv", table.getvalue())
    write_atomic(out / "curves.json", json.dumps(curves, indent=1) + "\n")
    write_atomic(out / "run.json", json.dumps(run_info, indent=1) + "\n")
    if samples:
        write_atomic(
            out / "samples.txt",
            "".join(f"=== {c} seq_len={t} {b}\n{s}\n\n" for (c, t, b), s in samples.items()),
        )


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    load_start = loadavg()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        name, text = load_text(args.text, args.corpus)
    except (CorpusUnavailable, OSError, ValueError) as e:
        print(f"experiments.compare: {e}", file=sys.stderr)
        return 2
    train_text, val_text = split_text(text, args.val_fraction)
    vocab = Vocabulary(text)
    train_ids, val_ids = vocab.encode(train_text), vocab.encode(val_text)
    too_long = [t for t in args.seq_lens if t >= min(len(train_ids), len(val_ids))]
    if too_long:
        print(
            f"experiments.compare: seq_len {too_long} too long for {len(val_ids)} validation "
            "characters; use a longer text or shorter --seq-lens",
            file=sys.stderr,
        )
        return 2
    backends = ["fastrnn", "torch"] if args.backend == "both" else [args.backend]
    runs = plan_runs(args.cells, args.seq_lens, backends)
    prompt = args.prompt if args.prompt is not None else (text.split() or [""])[0]
    print(
        f"{name}: {len(text):,} characters ({len(train_text):,} train, {len(val_text):,} "
        f"validation), vocabulary {len(vocab)}; {len(runs)} runs, {args.epochs} epochs, "
        f"hidden {args.hidden_size}, {args.num_layers} layer(s), batch {args.batch_size}, "
        f"lr {args.lr:g}, seed {args.seed}, {args.dtype}, {torch.get_num_threads()} threads",
        flush=True,
    )

    out = Path(args.out)
    rows, curves, samples, interrupted = [], [], {}, False

    def save():  # after every run: a crash or Ctrl-C later keeps the finished ones
        run_info = {
            "options": vars(args),
            "corpus": name,
            "characters": len(text),
            "train_characters": len(train_text),
            "val_characters": len(val_text),
            "vocabulary": len(vocab),
            **machine(),
            "runs_planned": len(runs),
            "runs_finished": len(rows),
            "interrupted": interrupted,
            "wall_s": time.perf_counter() - started,
            # other work on a shared machine slows every run: say how busy it was
            "loadavg_start": load_start,
            "loadavg_end": loadavg(),
        }
        write_outputs(out, rows, curves, run_info, samples)

    tqdm = progress(not args.no_progress)
    bar = epochs = None
    # Ctrl-C anywhere in the loop, the progress bars and the writes included,
    # stops it; the finished rows are on disk already and reported below
    try:
        if tqdm:
            bar = tqdm(total=len(runs), unit="run", file=sys.stderr, dynamic_ncols=True)
        for cell, seq_len, backend in runs:
            if bar is not None:
                bar.set_description(f"{cell} T={seq_len} {backend}")
            epochs = (
                tqdm(
                    total=args.epochs,
                    unit="epoch",
                    leave=False,
                    file=sys.stderr,
                    dynamic_ncols=True,
                )
                if tqdm
                else None
            )

            def on_step(epoch, step, steps, loss, epochs=epochs):
                if epochs is not None and step == steps - 1:
                    epochs.set_postfix(loss=f"{loss:.3f}")
                    epochs.update(1)

            row, curve, model = run_one(
                cell, seq_len, backend, vocab, train_ids, val_ids, args, on_step
            )
            rows.append(row)
            curves.append(curve)
            save()
            if args.sample:
                samples[(cell, seq_len, backend)] = sample(
                    model, vocab, prompt, args.sample, seq_len, args.temperature, args.seed
                )
                save()
            if epochs is not None:
                epochs.close()
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
        save()  # run.json says so
    finally:
        for b in (epochs, bar):  # closing twice is harmless
            if b is not None:
                b.close()

    print()
    print(format_table(rows) if rows else "no run finished")
    worst = agreement(rows)
    if worst is not None:
        print(
            f"\nbackends agree: largest relative difference of final losses "
            f"fastrnn vs torch.nn {worst:.1e}"
        )
    print(
        "speed-up = torch.nn training time / fastrnn training time; MFLOP/seq = forward + "
        "backward of one training sequence (charmodels.py)"
    )
    for (cell, seq_len, backend), text_out in samples.items():
        print(
            f"\n=== {cell} seq_len={seq_len} {backend}, prompt {prompt!r}, "
            f"temperature {args.temperature:g}\n{prompt}{text_out}"
        )
    if rows and not args.no_plot:
        try:
            for path in plot_all(rows, curves, out):
                print(f"wrote {path}")
        except ImportError:
            print("matplotlib is not installed: no plots (pip install matplotlib)")
        except KeyboardInterrupt:  # the results are on disk; only some plots are missing
            print("plotting interrupted", file=sys.stderr)
            interrupted = True
    print(
        f"wrote {out / 'results.json'}, {out / 'results.csv'}; {len(rows)} of {len(runs)} "
        f"runs in {time.perf_counter() - started:.1f} s"
    )
    if interrupted:
        print(
            f"interrupted: kept the {len(rows)} finished run(s) of {len(runs)} in {out}",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
