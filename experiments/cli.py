"""Argument types shared by the experiments' command lines."""

import argparse


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
