"""python -m experiments.copytask end to end on tiny settings, and a model
that learns to copy short sequences."""

import json

import pytest
import torch

import fastrnn
from experiments import copytask


def test_copytask_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    rc = copytask.main(
        [
            "--steps",
            "20",
            "--train-len",
            "4",
            "--test-lens",
            "2,4,6",
            "--hidden-size",
            "16",
            "--test-size",
            "40",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["cell"], r["test_len"]) for r in rows] == [
        (c, t) for c in ("lstm", "gru") for t in (2, 4, 6)
    ]
    assert all(0 <= r["sequence_accuracy"] <= r["token_accuracy"] <= 1 for r in rows)
    assert [len(r["per_position"]) for r in rows] == [2, 4, 6] * 2
    assert "OUT" in capsys.readouterr().out  # length 6 is beyond the training lengths


def test_copytask_learns_to_copy_short_sequences():
    """The encoder's state reaches the decoder: chance is 25% per token."""
    torch.manual_seed(0)
    model = copytask.Seq2Seq("gru", 4, 48, backend="fastrnn")
    assert type(model.encoder) is fastrnn.GRU
    copytask.train(model, 250, 32, 3, 1e-2, seed=0)
    acc = copytask.accuracy(model, 3, 300, seed=1)
    assert acc["token"] > 0.9 and acc["sequence"] > 0.75
    assert acc["token"] == pytest.approx(sum(acc["per_position"]) / 3)
