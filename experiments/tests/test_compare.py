"""python -m experiments.compare: the backends agree, the outputs are
complete, each run is on disk as soon as it finishes (Ctrl-C and crashes
included), and the command runs end to end on tiny settings, in seconds."""

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import charmodels, chartrain, compare, corpora

REPO = Path(__file__).resolve().parents[2]
SHARED_TINYSHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
TINY = ["--hidden-size", "16", "--embed-size", "8", "--no-progress"]


def _zen_data():
    text = corpora.zen_of_python()
    train, val = corpora.split_text(text)
    vocab = chartrain.Vocabulary(text)
    return vocab, vocab.encode(train), vocab.encode(val)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-10), ("float32", 1e-5)])
@pytest.mark.parametrize("cell", list(charmodels.RECURRENT))
def test_backends_agree(cell, dtype, rtol):
    """Same seed: fastrnn and torch.nn train to the same losses, epoch by
    epoch, to float rounding (float32: 1e-5 relative, about 100 ulps; a
    wrong gradient anywhere moves the loss by far more within 3 epochs)."""
    vocab, train_ids, val_ids = _zen_data()
    args = compare.parse_args(
        [
            "--epochs",
            "3",
            "--steps-per-epoch",
            "3",
            "--dtype",
            dtype,
            "--hidden-size",
            "24",
            "--embed-size",
            "8",
        ]
    )
    histories = {}
    for backend in ("fastrnn", "torch"):
        row, curves, _ = compare.run_one(cell, 12, backend, vocab, train_ids, val_ids, args)
        histories[backend] = curves
    for key in ("train_loss", "val_loss"):
        fast, ref = histories["fastrnn"][key], histories["torch"][key]
        assert fast[0] > fast[-1], f"{key} did not fall: {fast}"
        np.testing.assert_allclose(fast, ref, rtol=rtol, atol=0)


def test_compare_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    rc = compare.main(
        [
            "--backend",
            "both",
            "--cells",
            "rnn,lstm,gru,cnn,attention",
            "--seq-lens",
            "6,10",
            "--epochs",
            "2",
            "--steps-per-epoch",
            "2",
            "--out",
            str(out),
            "--sample",
            "30",
            "--threads",
            "2",
        ]
        + TINY
    )
    assert rc == 0
    printed = capsys.readouterr().out
    rows = json.loads((out / "results.json").read_text())
    assert all(list(r) == list(compare.ROW_KEYS) for r in rows)
    got = {(r["cell"], r["seq_len"], r["backend"]) for r in rows}
    want = {
        (c, t, b) for c in ("rnn", "lstm", "gru") for t in (6, 10) for b in ("fastrnn", "torch")
    }
    want |= {(c, t, "torch") for c in ("cnn", "attention") for t in (6, 10)}
    assert got == want and len(rows) == len(want)
    for r in rows:
        assert r["train_loss"] > 0 and r["val_loss"] > 0 and 0 <= r["val_accuracy"] <= 1
        assert r["train_time_s"] > 0 and r["params"] > 0 and r["flops"] > 0
        assert r["model_bytes"] == 4 * r["params"]
    with open(out / "results.csv") as f:
        assert [dict(r) for r in csv.DictReader(f)][0].keys() == set(compare.ROW_KEYS)
    for png in ("val_accuracy.png", "train_time.png", "loss_curves.png"):
        assert (out / png).stat().st_size > 1000
    assert "speed-up" in printed and "x  " in printed  # the speed-up column is filled
    assert printed.count("=== ") == len(rows)  # one sample per model
    assert (out / "samples.txt").read_text().count("=== ") == len(rows)


def test_compare_ctrl_c_keeps_finished_rows(tmp_path, monkeypatch):
    calls = []
    real = compare.run_one

    def interrupted_third(*args, **kwargs):
        calls.append(args[:3])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(compare, "run_one", interrupted_third)
    out = tmp_path / "out"
    rc = compare.main(
        [
            "--cells",
            "rnn,gru",
            "--seq-lens",
            "5,8",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "1",
            "--out",
            str(out),
            "--no-plot",
        ]
        + TINY
    )
    assert rc == 130
    rows = json.loads((out / "results.json").read_text())
    assert [(r["cell"], r["seq_len"]) for r in rows] == [("rnn", 5), ("rnn", 8)]
    assert json.loads((out / "run.json").read_text())["interrupted"] is True


class _CtrlCBar:
    """Stands in for tqdm: Ctrl-C as the bar names the second run, between
    two trainings."""

    def __init__(self, *args, **kwargs):
        pass

    def set_description(self, text):
        if "T=8" in text:
            raise KeyboardInterrupt

    def set_postfix(self, **kwargs):
        pass

    def update(self, n):
        pass

    def close(self):
        pass


@pytest.mark.parametrize("where", ["training", "progress bar", "crash"])
def test_compare_writes_each_run_as_it_finishes(tmp_path, monkeypatch, capsys, where):
    """The first run's row is on disk, complete JSON and CSV, whether Ctrl-C
    or a crash stops the second run, in training or outside it."""
    real, calls = compare.train, []

    def second_fails(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2 and where == "training":
            raise KeyboardInterrupt
        if len(calls) == 2 and where == "crash":
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(compare, "train", second_fails)
    if where == "progress bar":
        monkeypatch.setattr(compare, "progress", lambda enabled: _CtrlCBar)
    out = tmp_path / "out"
    argv = [
        "--cells",
        "gru",
        "--seq-lens",
        "5,8",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "1",
        "--out",
        str(out),
        "--no-plot",
    ] + TINY
    if where == "crash":
        with pytest.raises(RuntimeError, match="boom"):
            compare.main(argv)
    else:
        try:
            rc = compare.main(argv)
        except KeyboardInterrupt:  # let through, it would stop pytest itself
            pytest.fail("Ctrl-C escaped experiments.compare.main")
        assert rc == 130
        printed = capsys.readouterr()
        assert "val loss" in printed.out and "gru" in printed.out  # the finished runs' table
        assert "interrupted: kept the 1 finished run(s) of 2" in printed.err
    rows = json.loads((out / "results.json").read_text())
    assert [(r["cell"], r["seq_len"]) for r in rows] == [("gru", 5)]
    with open(out / "results.csv") as f:
        assert [(r["cell"], r["seq_len"]) for r in csv.DictReader(f)] == [("gru", "5")]
    assert len(json.loads((out / "curves.json").read_text())) == 1
    assert json.loads((out / "run.json").read_text())["runs_finished"] == 1
    assert not list(out.glob("*.part"))


def test_fastrnn_backend_never_trains_torch_nn(monkeypatch):
    """A real check, not an assert, which python -O would drop."""
    real = compare.build_model
    monkeypatch.setattr(
        compare, "build_model", lambda cell, backend, *a, **k: real(cell, "torch", *a, **k)
    )
    vocab, train_ids, val_ids = _zen_data()
    args = compare.parse_args(["--epochs", "1"] + TINY)
    with pytest.raises(RuntimeError, match=r"torch\.nn\.modules\.rnn\.LSTM .*not fastrnn"):
        compare.run_one("lstm", 6, "fastrnn", vocab, train_ids, val_ids, args)


def test_compare_as_a_command_with_its_progress_bar(tmp_path):
    """python -m experiments.compare in a process of its own (from this checkout),
    the progress bar on, as people run it."""
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.compare",
            "--cells",
            "gru",
            "--seq-lens",
            "6",
            "--epochs",
            "2",
            "--steps-per-epoch",
            "2",
            "--hidden-size",
            "16",
            "--embed-size",
            "8",
            "--threads",
            "1",
            "--no-plot",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert [(r["cell"], r["backend"]) for r in json.loads((out / "results.json").read_text())] == [
        ("gru", "fastrnn")
    ]
    if importlib.util.find_spec("tqdm"):
        assert "1/1" in done.stderr  # the bar of runs reached its end


@pytest.mark.skipif(not SHARED_TINYSHAKESPEARE.is_file(), reason="no ../shared/data here")
def test_compare_on_tinyshakespeare(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTRNN_DATA", str(SHARED_TINYSHAKESPEARE.parent))
    out = tmp_path / "out"
    rc = compare.main(
        [
            "--corpus",
            "tinyshakespeare",
            "--cells",
            "gru",
            "--seq-lens",
            "8",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "2",
            "--out",
            str(out),
            "--no-plot",
        ]
        + TINY
    )
    assert rc == 0
    info = json.loads((out / "run.json").read_text())
    assert info["characters"] == corpora.TINYSHAKESPEARE_BYTES
    assert info["val_characters"] == pytest.approx(0.2 * info["characters"], abs=1)


def test_sample_from_prompt():
    vocab = chartrain.Vocabulary("abc ")
    model = charmodels.build_model("gru", "fastrnn", len(vocab), 4, hidden_size=8)
    text = chartrain.sample(model, vocab, "ab", 25, 4, temperature=1.0)
    assert len(text) == 25 and set(text) <= set("abc ")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        chartrain.sample(model, vocab, "xyz", 5, 4)
