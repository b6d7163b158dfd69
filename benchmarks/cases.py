"""The benchmark's cases: cell x size x seq_len x mode, and the grids of them
that `python -m benchmarks.bench` and the pytest-benchmark suite run."""

from collections import namedtuple

import torch

import fastrnn

Size = namedtuple("Size", "batch input hidden")

# The sizes of the project's issue.
SIZES = {
    "small": Size(batch=1, input=64, hidden=64),
    "seed": Size(batch=32, input=128, hidden=128),
    "medium": Size(batch=64, input=128, hidden=256),
    "large": Size(batch=128, input=512, hidden=512),
    # the top of the GPU grid (batch 256, hidden 1024): not in the CPU's full grid
    "huge": Size(batch=256, input=1024, hidden=1024),
}

# cell -> (torch.nn class, fastrnn class, gates G)
CELLS = {
    "rnn": (torch.nn.RNN, fastrnn.RNN, 1),  # tanh, torch.nn.RNN's default
    "lstm": (torch.nn.LSTM, fastrnn.LSTM, 4),
    "gru": (torch.nn.GRU, fastrnn.GRU, 3),
}

MODES = ("forward", "train")
ALL_SEQ_LENS = (10, 20, 30, 50, 100, 200)

# Sequence lengths of each size in the full grid (--full, and the pytest suite).
FULL_SEQ_LENS = {
    "small": ALL_SEQ_LENS,
    "seed": ALL_SEQ_LENS,
    "medium": ALL_SEQ_LENS,
    "large": (50,),
    "huge": (50,),
}
# The default run: the cases the project's note needs.
DEFAULT_SIZES = ("small", "medium")
DEFAULT_SEQ_LENS = {"small": (200,), "medium": (10, 50, 100)}


def size_of(size):
    """The Size of `size`, a name of SIZES or a Size."""
    return SIZES[size] if isinstance(size, str) else size


def grid(sizes, cells, modes, seq_lens=None, full=False):
    """(cell, size, seq_len, mode) of every combination, size outermost.

    A size runs at `seq_lens` when given, otherwise at its lengths of the
    full grid (`full`, or a size without default lengths) or its default ones.
    """
    cases = []
    for size in sizes:
        if seq_lens is not None:
            lengths = seq_lens
        elif full or size not in DEFAULT_SEQ_LENS:
            lengths = FULL_SEQ_LENS[size]
        else:
            lengths = DEFAULT_SEQ_LENS[size]
        cases += [
            (cell, size, seq_len, mode) for seq_len in lengths for cell in cells for mode in modes
        ]
    return cases


def full_grid(sizes=None, cells=None, modes=None):
    """(cell, size, seq_len, mode) of the full grid: small, seed and medium at
    every length in ALL_SEQ_LENS, large at 50."""
    return grid(
        [s for s in SIZES if s != "huge"] if sizes is None else sizes,
        list(CELLS) if cells is None else cells,
        list(MODES) if modes is None else modes,
        full=True,
    )
