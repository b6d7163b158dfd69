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
