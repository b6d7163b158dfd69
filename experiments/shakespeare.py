"""Tiny Shakespeare as the course assignment: LSTM and GRU at seq_len 20, 30
and 50, on fastrnn, each run reporting what the assignment asks for.

    python -m experiments.shakespeare                      # both splits, the assignment's settings
    python -m experiments.shakespeare --split positional   # the honest split only
    python -m experiments.shakespeare --fraction 0.02 --epochs 1   # a smoke run

The assignment (its course's data loader): every window of seq_len
characters of the text, the target the one character after it; the windows
split at random, 80% to train on and 20% to test; embedding -> one LSTM or
GRU layer of 128 -> linear over the vocabulary at the last position;
cross-entropy, Adam, batch 128, 20 epochs (preset "assignment", PRESETS).

Two splits, each run on both unless --split says otherwise:

    assignment  the windows shuffled and cut 80 / 10 / 10 into train,
                validation and test (the assignment's 80% to train on, its
                20% held out, halved to give a validation set). Windows
                overlap: a test window's characters, its target included,
                are nearly all inside training windows, so test accuracy
                measures recall of the training text, not prediction of new
                text. Each row's "test_targets_in_training_text" says how
                much (nearly 100%).
    positional  the text cut by position 80 / 10 / 10: train, validation and
                test parts share no character, and windows never cross a cut.

Per run: training loss (last epoch), validation loss and accuracy, test loss,
accuracy and perplexity (exp of the test cross-entropy per character),
training time (the steps only), inference time (the whole test set, and per
generated character while sampling), parameters, FLOPs per training
sequence, model size (bytes of the state_dict) and a sample. Accuracy is of
the next character after a window, as the assignment's.

Checkpoints: after every epoch and at least every 5 minutes within one (an
epoch of the assignment's settings is hours here), in --checkpoints
(default OUT/checkpoints), one file per (split, cell, seq_len). Run the same
command again after an interruption and each run resumes from its last
checkpoint, mid-epoch too; finished runs are only evaluated again.
Outputs in --out (default shakespeare-out, which git ignores): per split,
results.json (the rows, each with its curves and sample), results.md (the
table, the machine, the samples) and run.json (options, data, machine, load
average).
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

import fastrnn

from .charmodels import RECURRENT, build_model, check_backend, count_params, model_bytes
from .chartrain import OBJECTIVES, TrainConfig, Vocabulary, evaluate, sample, train, window_starts
from .cli import add_cells_and_seq_lens, add_lr_decay, check_fraction_and_counts
from .corpora import CorpusUnavailable, load_text
from .runio import cpu_name, loadavg, machine, markdown, progress, step_bar, write_atomic

__all__ = [
    "SPLITS",
    "PRESETS",
    "Part",
    "make_split",
    "load_ids",
    "threads_and_text",
    "thin_out",
    "leaked_fraction",
    "run_one",
    "markdown_table",
    "parse_args",
    "main",
]

SPLITS = ("assignment", "positional")
FRACTIONS = (0.8, 0.1, 0.1)  # train, validation, test
ABOUT_SPLIT = {  # for the reports
    "assignment": "windows split at random (the assignment's protocol): test targets "
    "lie inside training windows, so test accuracy is recall of the training text",
    "positional": "the text cut by position: train, validation and test share no character",
}
# The assignment's model and training, from its course's code: embedding as
# wide as the hidden state, one layer of 128, Adam at 5e-3 (the course's
# character-prediction example), batch 128 (its Tiny Shakespeare loader), 20
# epochs (the assignment's logs), no clipping, the loss at the last position.
PRESETS = {
    "assignment": dict(
        hidden_size=128,
        embed_size=128,
        num_layers=1,
        batch_size=128,
        lr=5e-3,
        epochs=20,
        clip=0.0,
        objective="last",
    ),
}
EVAL_BATCH = 1024
# The assignment's published runs: (cell, seq_len) -> (test accuracy, seconds
# of training), beside which every row is reported; --time-budget assignment
# gives each run the assignment's own training time.
ASSIGNMENT = {
    ("lstm", 20): (0.58054, 606.3),
    ("lstm", 30): (0.58844, 749.0),
    ("lstm", 50): (0.59195, 870.8),
    ("gru", 20): (0.56456, 474.6),
    ("gru", 30): (0.56781, 390.2),
    ("gru", 50): (0.56893, 493.3),
}


class Part:
    """One part of a split: the windows of `ids` starting at `starts`."""

    def __init__(self, ids, starts):
        self.ids, self.starts = ids, starts

    def __len__(self):
        return len(self.starts)


def make_split(ids, seq_len, split, seed=0):
    """{"train", "val", "test"} -> Part, cut FRACTIONS of the windows
    (assignment: shuffled by `seed`) or of the text (positional)."""
    if split == "assignment":
        starts = window_starts(len(ids), seq_len, 1)
        gen = torch.Generator().manual_seed(seed)
        starts = starts[torch.randperm(len(starts), generator=gen)]
        n_train = round(len(starts) * FRACTIONS[0])
        n_val = round(len(starts) * FRACTIONS[1])
        train, val, test = starts.split([n_train, n_val, len(starts) - n_train - n_val])
        return {"train": Part(ids, train), "val": Part(ids, val), "test": Part(ids, test)}
    if split == "positional":
        cuts = [round(len(ids) * sum(FRACTIONS[:i])) for i in (1, 2)]
        pieces = ids[: cuts[0]], ids[cuts[0] : cuts[1]], ids[cuts[1] :]
        return {
            name: Part(piece, window_starts(len(piece), seq_len, 1))
            for name, piece in zip(("train", "val", "test"), pieces)
        }
    raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")


def leaked_fraction(parts, seq_len):
    """Share of the test targets whose position in the text lies inside some
    training window (input or target). 0 where the parts are cut apart."""
    train, test = parts["train"], parts["test"]
    if train.ids is not test.ids:
        return 0.0
    # +1 at each training window's first position, -1 past its target
    edges = torch.zeros(len(train.ids) + 1, dtype=torch.long)
    edges.index_add_(0, train.starts, torch.ones_like(train.starts))
    edges.index_add_(0, train.starts + seq_len + 1, -torch.ones_like(train.starts))
    covered = edges.cumsum(0)[:-1] > 0
    return covered[test.starts + seq_len].double().mean().item()


def load_ids(path, fraction, seq_len):
    """(name, text, vocabulary, ids) of the text at `path` (None: Tiny
    Shakespeare), cut to its first `fraction`; the vocabulary is the whole
    text's, as the assignment's loader. Raises ValueError when the
    validation and test parts would hold no window of seq_len (and what
    corpora.load_text raises)."""
    name, text = load_text(path, "tinyshakespeare")
    vocab = Vocabulary(text)
    text = text[: round(len(text) * fraction)]
    ids = vocab.encode(text)
    shortest = len(ids) * min(FRACTIONS)
    if seq_len + 1 >= shortest:
        raise ValueError(
            f"{len(ids)} characters leave {shortest:.0f} per validation or test part, "
            "too few for these --seq-lens; raise --fraction"
        )
    return name, text, vocab, ids


def thin_out(part, n):
    """At most n of the part's windows, evenly spaced over it (all of them
    when n is 0): an evaluation that costs less and still covers the whole
    part."""
    if not n or len(part) <= n:
        return part
    return Part(part.ids, part.starts[torch.linspace(0, len(part) - 1, n).round().long()])


def run_one(split, cell, seq_len, vocab, ids, args, checkpoint, on_step=None):
    """Train (or resume) one run and measure it; returns (row, model).
    args.head and args.eval_windows (thin_out of the validation and test
    parts) are optional: "plain" and all windows without them."""
    parts = make_split(ids, seq_len, split, args.seed)
    eval_windows = getattr(args, "eval_windows", 0)
    parts = {k: p if k == "train" else thin_out(p, eval_windows) for k, p in parts.items()}
    head = getattr(args, "head", "plain")
    model = build_model(
        cell,
        "fastrnn",
        len(vocab),
        seq_len,
        embed_size=args.embed_size,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        seed=args.seed,
        head=head,
    )
    check_backend(model, cell, "fastrnn")
    budget = args.time_budget_s
    if budget == "assignment":
        budget = ASSIGNMENT[(cell, seq_len)][1] if (cell, seq_len) in ASSIGNMENT else 0.0
    config = TrainConfig.from_args(args, evaluate_last=True, time_budget_s=float(budget))
    history = train(
        model,
        parts["train"].ids,
        parts["val"].ids,
        seq_len,
        config,
        on_step=on_step,
        starts=parts["train"].starts,
        val_starts=parts["val"].starts,
        checkpoint=checkpoint,
        checkpoint_meta={
            "split": split,
            "cell": cell,
            "characters": len(ids),
            "vocabulary": len(vocab),
            **{k: getattr(args, k) for k in ("hidden_size", "embed_size", "num_layers")},
            # only where it is not the default: checkpoints saved before the
            # option existed still match their runs
            **({"head": head} if head != "plain" else {}),
        },
    )
    began = time.perf_counter()
    test = parts["test"]
    test_loss, test_acc = evaluate(
        model, test.ids, seq_len, batch_size=EVAL_BATCH, starts=test.starts, last=True
    )
    test_s = time.perf_counter() - began
    began = time.perf_counter()
    text = sample(model, vocab, args.prompt, args.sample, seq_len, args.temperature, args.seed)
    sample_s = time.perf_counter() - began
    row = {
        "split": split,
        "cell": cell,
        "seq_len": seq_len,
        "num_layers": args.num_layers,
        "hidden_size": args.hidden_size,
        "head": head,
        "epochs": len(history["train_loss"]),
        "steps": sum(history["steps"]),
        "train_windows": len(parts["train"]),
        "test_windows": len(test),
        "test_targets_in_training_text": leaked_fraction(parts, seq_len),
        "train_loss": history["train_loss"][-1],
        "val_loss": history["val_loss"][-1],
        "val_accuracy": history["val_accuracy"][-1],
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "perplexity": math.exp(test_loss),
        "train_time_s": history["total_train_time_s"],
        "test_inference_s": test_s,
        "ms_per_generated_char": 1e3 * sample_s / max(args.sample, 1),
        "params": count_params(model),
        "flops_per_sequence": model.flops_per_sequence(seq_len, last=args.objective == "last"),
        "model_bytes": model_bytes(model),
        "sample": args.prompt + text,
        "assignment_test_accuracy": ASSIGNMENT.get((cell, seq_len), (None, None))[0],
        "assignment_train_time_s": ASSIGNMENT.get((cell, seq_len), (None, None))[1],
        "curves": {
            k: history[k] for k in ("train_loss", "val_loss", "val_accuracy", "train_time_s")
        },
    }
    return row, model


TABLE_HEAD = (
    "cell",
    "seq_len",
    "epochs",
    "train loss",
    "val loss",
    "val acc",
    "test acc",
    "assignment's",
    "perplexity",
    "train s",
    "assignment's s",
    "test set s",
    "ms/char",
    "params",
    "MFLOP/seq",
    "model bytes",
)


def _or_blank(value, fmt):
    return "" if value is None else fmt(value)


def markdown_table(rows):
    lines = [
        (
            r["cell"],
            str(r["seq_len"]),
            str(r["epochs"]),
            f"{r['train_loss']:.4f}",
            f"{r['val_loss']:.4f}",
            f"{100 * r['val_accuracy']:.2f}%",
            f"{100 * r['test_accuracy']:.2f}%",
            _or_blank(r["assignment_test_accuracy"], lambda a: f"{100 * a:.2f}%"),
            f"{r['perplexity']:.3f}",
            f"{r['train_time_s']:.1f}",
            _or_blank(r["assignment_train_time_s"], lambda t: f"{t:.1f}"),
            f"{r['test_inference_s']:.2f}",
            f"{r['ms_per_generated_char']:.3f}",
            f"{r['params']:,}",
            f"{r['flops_per_sequence'] / 1e6:.2f}",
            f"{r['model_bytes']:,}",
        )
        for r in rows
    ]
    return markdown(TABLE_HEAD, lines)


def split_report(split, rows, prompt, temperature):
    """results.md of one split: what the split is, the machine, the table,
    the samples."""
    about = ABOUT_SPLIT[split]
    leak = ", ".join(f"{100 * r['test_targets_in_training_text']:.1f}%" for r in rows)
    samples = "\n\n".join(
        f"{r['cell']} seq_len {r['seq_len']}:\n\n```\n{r['sample']}\n```" for r in rows
    )
    return (
        f"## Tiny Shakespeare, {split} split\n\n{about}; test targets inside training "
        f"windows: {leak}. {cpu_name()}, {torch.get_num_threads()} threads, float32, "
        f"fastrnn {fastrnn.__version__}.\n\n{markdown_table(rows)}\n\nSamples (prompt {prompt!r}, "
        f"temperature {temperature:g}):\n\n{samples}\n"
    )


def _budget(text):
    if text == "assignment":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds, or 'assignment'") from None


def parse_args(argv=None):
    preset = PRESETS["assignment"]
    p = argparse.ArgumentParser(
        prog="python -m experiments.shakespeare",
        description="Tiny Shakespeare as the course assignment: LSTM and GRU at several "
        "sequence lengths on the assignment's random split and on a positional one.",
    )
    p.add_argument("--split", choices=(*SPLITS, "both"), default="both", help="(default both)")
    add_cells_and_seq_lens(p, tuple(RECURRENT), ["lstm", "gru"], [20, 30, 50])
    p.add_argument("--text", metavar="PATH", help="another UTF-8 text instead of Tiny Shakespeare")
    p.add_argument(
        "--fraction",
        type=float,
        default=1.0,
        help="train on the first FRACTION of the text (default 1; smaller for smoke runs)",
    )
    for name, kind in (
        ("epochs", int),
        ("hidden_size", int),
        ("embed_size", int),
        ("num_layers", int),
        ("batch_size", int),
        ("lr", float),
        ("clip", float),
    ):
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=preset[name],
            help=f"(default {preset[name]:g}, the assignment's)",
        )
    p.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=preset["objective"],
        help="the training loss: at the last position only (the assignment's model, "
        "default) or at every position (char-rnn's)",
    )
    add_lr_decay(p)
    p.add_argument(
        "--steps-per-epoch", type=int, default=0, help="at most this many batches (default all)"
    )
    p.add_argument(
        "--time-budget",
        dest="time_budget_s",
        type=_budget,
        default=0.0,
        metavar="S",
        help="stop a run's training after S seconds of it, or 'assignment': after "
        "the assignment's training time of that run (default 0: no limit)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0, help="(default 0)")
    p.add_argument("--out", default="shakespeare-out", metavar="DIR")
    p.add_argument("--checkpoints", metavar="DIR", help="(default OUT/checkpoints)")
    p.add_argument("--sample", type=int, default=200, metavar="N", help="(default 200)")
    p.add_argument("--prompt", default="First", help="(default 'First')")
    p.add_argument("--temperature", type=float, default=0.8, help="(default 0.8)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    check_fraction_and_counts(
        p, args, ("epochs", "hidden_size", "embed_size", "num_layers", "batch_size", "sample")
    )
    if min(args.seq_lens) < 1:
        p.error("--seq-lens must be at least 1")
    return args


def threads_and_text(args, prog, seq_len):
    """A study's start: --threads set, then load_ids of --text and --fraction
    for seq_len; None, after saying why on stderr, when the text is
    unavailable or too short."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return load_ids(args.text, args.fraction, seq_len)
    except (CorpusUnavailable, OSError, ValueError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return None


def main(argv=None):
    args = parse_args(argv)
    started, load_start = time.perf_counter(), loadavg()
    loaded = threads_and_text(args, "experiments.shakespeare", max(args.seq_lens))
    if loaded is None:
        return 2
    name, text, vocab, ids = loaded
    splits = list(SPLITS) if args.split == "both" else [args.split]
    runs = [(s, c, t) for s in splits for c in args.cells for t in args.seq_lens]
    out = Path(args.out)
    checkpoints = Path(args.checkpoints) if args.checkpoints else out / "checkpoints"
    print(
        f"{name}: {len(text):,} characters, vocabulary {len(vocab)}; {len(runs)} runs: "
        f"{args.epochs} epochs, hidden {args.hidden_size}, embedding {args.embed_size}, "
        f"{args.num_layers} layer(s), batch {args.batch_size}, lr {args.lr:g}, objective "
        f"{args.objective}, seed {args.seed}, {torch.get_num_threads()} threads; "
        f"checkpoints in {checkpoints}",
        flush=True,
    )
    rows = {s: [] for s in splits}

    def save(interrupted=False):
        info = {
            "options": vars(args),
            "corpus": name,
            "characters": len(text),
            "vocabulary": len(vocab),
            **machine(),
            "runs_planned": len(runs),
            "runs_finished": sum(map(len, rows.values())),
            "interrupted": interrupted,
            "wall_s": time.perf_counter() - started,
            "loadavg_start": load_start,
            "loadavg_end": loadavg(),
        }
        for split, split_rows in rows.items():
            if split_rows:
                (out / split).mkdir(parents=True, exist_ok=True)
                write_atomic(out / split / "results.json", json.dumps(split_rows, indent=1))
                report = split_report(split, split_rows, args.prompt, args.temperature)
                write_atomic(out / split / "results.md", report)
                write_atomic(out / split / "run.json", json.dumps(info, indent=1) + "\n")

    tqdm = progress(not args.no_progress)
    try:
        for split, cell, seq_len in runs:
            bar, on_step = step_bar(tqdm, f"{split} {cell} T={seq_len}")
            path = checkpoints / f"{split}-{cell}-{seq_len}.pt"
            row, _ = run_one(split, cell, seq_len, vocab, ids, args, str(path), on_step)
            if bar is not None:
                bar.close()
            rows[split].append(row)
            save()
            print(f"\n{split} split\n{markdown_table(rows[split])}", flush=True)
    except KeyboardInterrupt:
        save(interrupted=True)
        print(
            f"interrupted: the finished runs are in {out}; the same command resumes the "
            f"others from their checkpoints in {checkpoints}",
            file=sys.stderr,
        )
        return 130
    for split in splits:
        print(f"\n{split_report(split, rows[split], args.prompt, args.temperature)}")
    print(f"wrote {out}; {len(runs)} runs in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
