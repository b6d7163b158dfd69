"""Polyphonic music: next-step prediction on piano rolls of Bach chorales.

    python -m experiments.music                   # rnn, lstm, gru of about 20,000 parameters each
    python -m experiments.music --params 60000 --epochs 100

A piano roll is a [steps, 88] 0/1 matrix: which of the piano's 88 keys
sound during each quarter note (the quantum of the JSB Chorales data set).
The model reads step t and predicts step t + 1 with one sigmoid per key
(multi-label): roll -> recurrent layer -> linear over the 88 keys. The loss
and the score are the negative log-likelihood of the next step, summed over
the keys and averaged over every predicted step, in nats: as reported by
Boulanger-Lewandowski et al. (2012) and Chung et al. (2014). The cells are
sized to about the same number of parameters (--params; Chung et al. used
about 20,000 on this task).

Data: the four-part chorales that music21 carries in its corpus (pip install
music21, or all the experiments' dependencies: pip install -r
experiments/requirements.txt), parsed once and cached as piano rolls in
CACHE/bach_chorales_q<quantum>[_n<N>].npz (see experiments.corpora.cache_dir).
Split by chorale, fixed whatever the seed: index % 10 == 8 validation, == 9
test, the rest training. The train, valid and test NLL reported are all of the
model after the epoch with the best validation NLL (train NLL measured then,
like the others, not averaged over that epoch's batches while it learnt).
"""

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_sequence

from .charmodels import RECURRENT
from .corpora import cache_dir

__all__ = [
    "KEYS",
    "Music21Missing",
    "roll_of",
    "load_rolls",
    "split",
    "params_of",
    "hidden_for_params",
    "PianoRollRNN",
    "nll_per_step",
    "frequency_baseline",
    "train_cell",
    "main",
]

KEYS = 88
LOWEST_MIDI = 21  # A0, the piano's lowest key
# music21 is a dependency of the experiments, not of the library: it is in
# experiments/requirements.txt, not in an extra of fastrnn
HOW_TO_GET = (
    "python -m experiments.music needs music21 for its corpus of Bach chorales:\n"
    "    pip install music21\n"
    "or, with the other dependencies of the experiments:\n"
    "    pip install -r experiments/requirements.txt"
)


class Music21Missing(RuntimeError):
    pass


def roll_of(notes, quantum=1.0):
    """Piano roll [steps, 88] (uint8) of (offset, duration, midi pitches)
    triples, times in quarter notes. The roll samples the music at every
    multiple of the quantum, as the JSB Chorales data set does: a key is on at
    step t when one of its notes sounds at time t * quantum. Shorter notes
    between two samples (passing tones) leave no trace."""
    notes = list(notes)
    end = max((o + d for o, d, _ in notes), default=0.0)
    steps = lambda time: math.ceil(time / quantum - 1e-9)  # noqa: E731  first sample at or after
    roll = np.zeros((max(1, steps(end)), KEYS), dtype=np.uint8)
    for offset, duration, pitches in notes:
        for midi in pitches:
            if LOWEST_MIDI <= midi < LOWEST_MIDI + KEYS:
                roll[steps(offset) : steps(offset + duration), midi - LOWEST_MIDI] = 1
    return roll


def _parse_chorales(max_chorales, quantum):
    try:
        from music21 import corpus
    except ImportError:
        raise Music21Missing(HOW_TO_GET) from None
    paths = sorted(
        p
        for p in corpus.getComposer("bach")
        if p.name.startswith("bwv") and p.suffix in (".mxl", ".xml", ".krn")
    )
    names, rolls = [], []
    for path in paths:
        score = corpus.parse(path)
        if len(score.parts) != 4:  # instrumental parts besides S, A, T, B: not a plain chorale
            continue
        notes = (
            (float(n.offset), float(n.quarterLength), [p.midi for p in n.pitches])
            for n in score.flatten().notes
        )
        names.append(path.stem)
        rolls.append(roll_of(notes, quantum))
        if max_chorales and len(rolls) == max_chorales:
            break
    return names, rolls


def load_rolls(max_chorales=0, quantum=1.0, cache=None):
    """(names, rolls) of the chorales, from the cache or parsed (then cached).
    max_chorales > 0 takes the first N (tests)."""
    cache = Path(cache) if cache else cache_dir()
    suffix = f"_n{max_chorales}" if max_chorales else ""
    path = cache / f"bach_chorales_q{quantum:g}{suffix}.npz"
    if path.is_file():
        with np.load(path) as f:
            lengths = f["lengths"]
            rolls = np.split(f["rolls"], np.cumsum(lengths)[:-1])
            return list(f["names"]), rolls
    names, rolls = _parse_chorales(max_chorales, quantum)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        names=np.array(names),
        rolls=np.concatenate(rolls),
        lengths=np.array([len(r) for r in rolls]),
    )
    return names, rolls


def split(rolls):
    """(train, valid, test) by chorale index: % 10 == 8 valid, == 9 test."""
    parts = ([], [], [])
    for i, r in enumerate(rolls):
        parts[{8: 1, 9: 2}.get(i % 10, 0)].append(r)
    return parts


def params_of(cell, hidden, keys=KEYS):
    G = RECURRENT[cell][2]
    return G * (hidden * keys + hidden * hidden + 2 * hidden) + hidden * keys + keys


def hidden_for_params(cell, target, keys=KEYS):
    """The hidden size whose parameter count is closest to `target`."""
    return min(range(1, 4096), key=lambda h: abs(params_of(cell, h, keys) - target))


class PianoRollRNN(nn.Module):
    def __init__(self, cell, hidden_size, backend="fastrnn", keys=KEYS):
        super().__init__()
        torch_cls, fast_cls, _ = RECURRENT[cell]
        cls = fast_cls if backend == "fastrnn" else torch_cls
        self.rnn = cls(keys, hidden_size)
        self.head = nn.Linear(hidden_size, keys)

    def forward(self, packed):
        """Packed rolls -> logits of the next step, [sum of lengths, keys],
        in the packed order."""
        return self.head(self.rnn(packed)[0].data)


def _packed_pair(rolls):
    """(inputs, targets) packed the same way: step t and step t + 1."""
    inputs = pack_sequence(
        [torch.as_tensor(r[:-1], dtype=torch.float32) for r in rolls], enforce_sorted=False
    )
    targets = pack_sequence(
        [torch.as_tensor(r[1:], dtype=torch.float32) for r in rolls], enforce_sorted=False
    )
    return inputs, targets.data


def _nll_sum(logits, targets):
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")


@torch.no_grad()
def nll_per_step(model, rolls, batch_size=64):
    model.eval()
    total, steps = 0.0, 0
    for i in range(0, len(rolls), batch_size):
        inputs, targets = _packed_pair(rolls[i : i + batch_size])
        total += _nll_sum(model(inputs), targets).item()
        steps += len(targets)
    model.train()
    return total / steps


def frequency_baseline(train, test):
    """NLL per step of independent keys, each on with its training frequency:
    the score of a model that has learnt no music at all."""
    on = np.concatenate([r[1:] for r in train]).mean(0).clip(1e-4, 1 - 1e-4)
    y = np.concatenate([r[1:] for r in test])
    return float(-(y * np.log(on) + (1 - y) * np.log(1 - on)).sum(1).mean())


def train_cell(
    cell,
    train,
    valid,
    test,
    hidden_size,
    epochs=50,
    batch_size=16,
    lr=3e-3,
    seed=0,
    backend="fastrnn",
    on_epoch=None,
):
    torch.manual_seed(seed)
    model = PianoRollRNN(cell, hidden_size, backend)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    best = (float("inf"), None, -1)
    train_time = 0.0
    for epoch in range(epochs):
        began = time.perf_counter()
        total, steps = 0.0, 0
        for batch in torch.randperm(len(train), generator=gen).split(batch_size):
            inputs, targets = _packed_pair([train[i] for i in batch.tolist()])
            loss_sum = _nll_sum(model(inputs), targets)
            opt.zero_grad(set_to_none=True)
            (loss_sum / len(targets)).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total += loss_sum.item()
            steps += len(targets)
        train_time += time.perf_counter() - began
        valid_nll = nll_per_step(model, valid)
        if valid_nll < best[0]:
            best = (valid_nll, copy.deepcopy(model.state_dict()), epoch)
        if on_epoch is not None:
            on_epoch(epoch, total / steps, valid_nll)
    # every NLL of the row from the model of the best epoch: the gap between
    # train and valid is then that model's overfitting
    model.load_state_dict(best[1])
    return {
        "cell": cell,
        "backend": backend,
        "hidden_size": hidden_size,
        "params": sum(p.numel() for p in model.parameters()),
        "train_nll": nll_per_step(model, train),
        "valid_nll": best[0],
        "best_epoch": best[2] + 1,
        "test_nll": nll_per_step(model, test),
        "train_time_s": train_time,
    }


def format_table(rows, baseline):
    lines = [
        f"{'cell':<10}{'hidden':>7}{'params':>9}{'train NLL':>11}{'valid NLL':>11}"
        f"{'test NLL':>10}{'best epoch':>12}{'train s':>9}"
    ]
    for r in rows:
        lines.append(
            f"{r['cell']:<10}{r['hidden_size']:>7}{r['params']:>9,}"
            f"{r['train_nll']:>11.3f}{r['valid_nll']:>11.3f}{r['test_nll']:>10.3f}"
            f"{r['best_epoch']:>12}{r['train_time_s']:>9.1f}"
        )
    lines.append(f"{'frequency baseline (independent keys)':<48}{baseline:>10.3f}")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m experiments.music",
        description="Next-step prediction on piano rolls of Bach chorales (music21's corpus) "
        "with tanh RNN, LSTM and GRU of about the same size; NLL per time step.",
    )
    p.add_argument("--cells", default="rnn,lstm,gru", help="comma-separated (default rnn,lstm,gru)")
    p.add_argument(
        "--params",
        type=int,
        default=20000,
        help="parameter count each cell is sized to (default 20000)",
    )
    p.add_argument(
        "--epochs", type=int, default=300, help="(default 300: about a minute on 2 cores)"
    )
    p.add_argument("--batch-size", type=int, default=16, help="chorales per batch (default 16)")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam's learning rate (default 1e-2)")
    p.add_argument("--backend", choices=("fastrnn", "torch"), default="fastrnn")
    p.add_argument(
        "--quantum",
        type=float,
        default=1.0,
        help="length of a time step in quarter notes (default 1)",
    )
    p.add_argument(
        "--max-chorales", type=int, default=0, help="use only the first N chorales (default 0: all)"
    )
    p.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="where the parsed piano rolls are kept (default: fastrnn's cache dir)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        default="music-out",
        metavar="DIR",
        help="results.json goes here (default music-out)",
    )
    args = p.parse_args(argv)
    args.cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    bad = [c for c in args.cells if c not in RECURRENT]
    if bad or not args.cells:
        p.error(f"unknown cell(s) {bad}; choose from {', '.join(RECURRENT)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    try:
        names, rolls = load_rolls(args.max_chorales, args.quantum, args.cache)
    except Music21Missing as e:
        print(f"experiments.music: {e}", file=sys.stderr)
        return 2
    train, valid, test = split(rolls)
    if not (train and valid and test):
        print(
            f"experiments.music: {len(rolls)} chorales are too few for a train / valid / test "
            "split (at least 10)",
            file=sys.stderr,
        )
        return 2
    print(
        f"{len(rolls)} chorales ({len(train)} train, {len(valid)} valid, {len(test)} test), "
        f"{sum(len(r) for r in rolls):,} steps of {args.quantum:g} quarter note; "
        f"{args.epochs} epochs, about {args.params:,} parameters per cell, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    rows = []
    for cell in args.cells:
        hidden = hidden_for_params(cell, args.params)
        rows.append(
            train_cell(
                cell,
                train,
                valid,
                test,
                hidden,
                args.epochs,
                args.batch_size,
                args.lr,
                args.seed,
                args.backend,
            )
        )
        print(
            f"  {cell}: test NLL {rows[-1]['test_nll']:.3f} ({rows[-1]['train_time_s']:.1f} s)",
            flush=True,
        )
    baseline = frequency_baseline(train, test)
    print()
    print(format_table(rows, baseline))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps(
            {
                "options": vars(args),
                "chorales": len(rolls),
                "frequency_baseline_nll": baseline,
                "rows": rows,
            },
            indent=1,
        )
        + "\n"
    )
    print(
        f"\nNLL: nats per time step, summed over the 88 keys; train, valid and test NLL of "
        f"the model after its best epoch (best valid NLL)\nwrote {out / 'results.json'} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
