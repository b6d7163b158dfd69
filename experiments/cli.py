"""Argument types shared by the experiments' command lines."""

import argparse

from .chartrain import LR_DECAYS


def comma_list(kind, choices=None, cast=str):
    """An argparse type for a comma-separated list of `kind` values, each
    cast, and one of `choices` when given: "rnn,lstm" -> ["rnn", "lstm"]."""

    def parse(text):
        values = [cast(v.strip()) for v in text.split(",") if v.strip()]
        bad = [v for v in values if choices is not None and v not in choices]
        if bad:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {', '.join(map(str, bad))}; choose from {', '.join(choices)}"
            )
        if not values:
            raise argparse.ArgumentTypeError(f"no {kind} given")
        return values

    return parse


def add_cells_and_seq_lens(parser, cells, default_cells, default_seq_lens):
    """--cells (comma-separated, from `cells`) and --seq-lens (comma-separated
    integers), the two lists a study runs over."""
    parser.add_argument(
        "--cells",
        type=comma_list("cell", cells),
        default=list(default_cells),
        help=f"comma-separated, from {','.join(cells)} (default {','.join(default_cells)})",
    )
    parser.add_argument(
        "--seq-lens",
        type=comma_list("seq_len", cast=int),
        default=list(default_seq_lens),
        help=f"comma-separated sequence lengths (default {','.join(map(str, default_seq_lens))})",
    )


def add_lr_decay(parser):
    """--lr-decay: the learning rate over a run (chartrain.LR_DECAYS)."""
    parser.add_argument(
        "--lr-decay",
        choices=LR_DECAYS,
        default="constant",
        help="the learning rate over a run: constant (default), or linear from --lr down "
        "to 0 at the run's end (its last step or the end of its --time-budget, whichever "
        "comes first)",
    )


def check_fraction_and_counts(parser, args, counts):
    """parser.error unless 0 < args.fraction <= 1 and each of the `counts`
    (names of args' integer options) is at least 1."""
    if not 0 < args.fraction <= 1:
        parser.error("--fraction must be in (0, 1]")
    for name in counts:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
