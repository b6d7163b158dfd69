"""The experiments (fastrnn.compare, fastrnn.copytask, fastrnn.music) and
what they stand on: corpora, models and their FLOP formulas, the training
loop. Every command runs end to end on tiny settings, in seconds."""

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import fastrnn
from fastrnn import charmodels, chartrain, compare, copytask, corpora, music

REPO = Path(__file__).resolve().parents[1]
URLOPEN = corpora.urllib.request.urlopen      # before the fixture takes the network away
SHARED_TINYSHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
TINY = ["--hidden-size", "16", "--embed-size", "8", "--no-progress"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's cache, or goes online."""
    monkeypatch.setenv("FASTRNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTRNN_DATA", raising=False)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("tests run offline")
    monkeypatch.setattr(corpora.urllib.request, "urlopen", offline)


# --------------------------------------------------------------------------
# Corpora

def test_zen_is_built_in_and_not_printed(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "this", raising=False)
    text = corpora.zen_of_python()
    assert capsys.readouterr().out == ""
    assert text.startswith("The Zen of Python, by Tim Peters")
    assert "Beautiful is better than ugly." in text
    assert 800 <= len(text) <= 900


def test_split_keeps_validation_apart():
    train, val = corpora.split_text("abcdefghij" * 10, 0.2)
    assert train + val == "abcdefghij" * 10 and len(val) == 20
    starts = chartrain.window_starts(len(train), 7, 1)
    # the last training window ends inside the training part
    assert int(starts[-1]) + 7 + 1 == len(train)


def test_text_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("héllo wörld\n" * 3, encoding="utf-8")
    assert corpora.load_text(str(path)) == ("t.txt", "héllo wörld\n" * 3)
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValueError, match="not UTF-8"):
        corpora.load_text(str(path))


@pytest.mark.skipif(not SHARED_TINYSHAKESPEARE.is_file(), reason="no ../shared/data here")
@pytest.mark.parametrize("where", ["folder", "file"])
def test_tinyshakespeare_from_shared_data(monkeypatch, where):
    path = SHARED_TINYSHAKESPEARE
    monkeypatch.setenv("FASTRNN_DATA", str(path.parent if where == "folder" else path))
    name, text = corpora.load_text(corpus="tinyshakespeare")
    assert name == "tinyshakespeare"
    assert len(text.encode("utf-8")) == corpora.TINYSHAKESPEARE_BYTES
    assert text.startswith("First Citizen:")


@pytest.mark.skipif(not SHARED_TINYSHAKESPEARE.is_file(), reason="no ../shared/data here")
def test_tinyshakespeare_download_goes_to_the_cache(monkeypatch):
    """Online, it is fetched once into the cache (here from a file:// URL)."""
    monkeypatch.setattr(corpora.urllib.request, "urlopen", URLOPEN)
    monkeypatch.setattr(corpora, "TINYSHAKESPEARE_URL", SHARED_TINYSHAKESPEARE.as_uri())
    path = corpora.tinyshakespeare()
    assert Path(path) == corpora.cache_dir() / "tinyshakespeare.txt"
    assert os.path.getsize(path) == corpora.TINYSHAKESPEARE_BYTES
    assert list(corpora.cache_dir().iterdir()) == [Path(path)]     # no .part left behind
    monkeypatch.setattr(corpora, "TINYSHAKESPEARE_URL", "file:///nonexistent")
    assert corpora.tinyshakespeare() == path                         # from the cache now


def test_tinyshakespeare_offline_says_how_to_provide_it(tmp_path, capsys):
    with pytest.raises(corpora.CorpusUnavailable) as e:
        corpora.tinyshakespeare()
    message = str(e.value)
    assert "FASTRNN_DATA" in message and "--text" in message and "1,115,394" in message
    rc = compare.main(["--corpus", "tinyshakespeare", "--out", str(tmp_path / "o")])
    assert rc == 2 and "FASTRNN_DATA" in capsys.readouterr().err


def test_wrong_tinyshakespeare_file_is_refused(tmp_path, monkeypatch):
    (tmp_path / "input.txt").write_text("too short")
    monkeypatch.setenv("FASTRNN_DATA", str(tmp_path))
    with pytest.raises(corpora.CorpusUnavailable, match="1,115,394"):
        corpora.tinyshakespeare()


# --------------------------------------------------------------------------
# Models

@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", charmodels.CELLS)
def test_flops_formula_matches_flop_counter(cell, num_layers):
    """The analytic count equals what torch's FlopCounterMode counts in a
    training step (float64 keeps torch.nn's LSTM off oneDNN, which the
    counter cannot see into)."""
    seq_len, batch = 9, 3
    model = charmodels.build_model(cell, "torch", 30, seq_len, embed_size=12, hidden_size=20,
                                   num_layers=num_layers, dtype=torch.float64)
    ids = torch.randint(30, (batch, seq_len))
    with FlopCounterMode(display=False) as counter:
        logits = model(ids)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
    assert counter.get_total_flops() == batch * model.flops_per_sequence(seq_len)


@pytest.mark.parametrize("cell", list(charmodels.RECURRENT))
def test_backends_build_the_same_model(cell):
    fast = charmodels.build_model(cell, "fastrnn", 20, 8, seed=3)
    ref = charmodels.build_model(cell, "torch", 20, 8, seed=3)
    assert type(fast.rnn) is charmodels.RECURRENT[cell][1]
    assert type(ref.rnn) is charmodels.RECURRENT[cell][0]
    assert not isinstance(fast.rnn, (torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU))
    a, b = fast.state_dict(), ref.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert charmodels.model_bytes(fast) == 4 * charmodels.count_params(fast)


# --------------------------------------------------------------------------
# compare

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
    args = compare.parse_args(["--epochs", "3", "--steps-per-epoch", "3", "--dtype", dtype,
                               "--hidden-size", "24", "--embed-size", "8"])
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
    rc = compare.main(["--backend", "both", "--cells", "rnn,lstm,gru,cnn,attention",
                       "--seq-lens", "6,10", "--epochs", "2", "--steps-per-epoch", "2",
                       "--out", str(out), "--sample", "30", "--threads", "2"] + TINY)
    assert rc == 0
    printed = capsys.readouterr().out
    rows = json.loads((out / "results.json").read_text())
    assert all(list(r) == list(compare.ROW_KEYS) for r in rows)
    got = {(r["cell"], r["seq_len"], r["backend"]) for r in rows}
    want = {(c, t, b) for c in ("rnn", "lstm", "gru") for t in (6, 10)
            for b in ("fastrnn", "torch")}
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
    assert "speed-up" in printed and "x  " in printed      # the speed-up column is filled
    assert printed.count("=== ") == len(rows)               # one sample per model
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
    rc = compare.main(["--cells", "rnn,gru", "--seq-lens", "5,8", "--epochs", "1",
                       "--steps-per-epoch", "1", "--out", str(out), "--no-plot"] + TINY)
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
        monkeypatch.setattr(compare, "_progress", lambda enabled: _CtrlCBar)
    out = tmp_path / "out"
    argv = ["--cells", "gru", "--seq-lens", "5,8", "--epochs", "1", "--steps-per-epoch", "1",
            "--out", str(out), "--no-plot"] + TINY
    if where == "crash":
        with pytest.raises(RuntimeError, match="boom"):
            compare.main(argv)
    else:
        try:
            rc = compare.main(argv)
        except KeyboardInterrupt:       # let through, it would stop pytest itself
            pytest.fail("Ctrl-C escaped fastrnn.compare.main")
        assert rc == 130
        printed = capsys.readouterr()
        assert "val loss" in printed.out and "gru" in printed.out    # the finished runs' table
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
    monkeypatch.setattr(compare, "build_model",
                        lambda cell, backend, *a, **k: real(cell, "torch", *a, **k))
    vocab, train_ids, val_ids = _zen_data()
    args = compare.parse_args(["--epochs", "1"] + TINY)
    with pytest.raises(RuntimeError, match=r"torch\.nn\.modules\.rnn\.LSTM .*not fastrnn"):
        compare.run_one("lstm", 6, "fastrnn", vocab, train_ids, val_ids, args)


def test_compare_as_a_command_with_its_progress_bar(tmp_path):
    """python -m fastrnn.compare in a process of its own (from this checkout),
    the progress bar on, as people run it."""
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "fastrnn.compare", "--cells", "gru", "--seq-lens", "6",
         "--epochs", "2", "--steps-per-epoch", "2", "--hidden-size", "16", "--embed-size", "8",
         "--threads", "1", "--no-plot", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert [(r["cell"], r["backend"]) for r in json.loads((out / "results.json").read_text())] \
        == [("gru", "fastrnn")]
    if importlib.util.find_spec("tqdm"):
        assert "1/1" in done.stderr                       # the bar of runs reached its end


def test_compare_console_script(tmp_path):
    """The fastrnn-compare that pip installed next to this python."""
    script = shutil.which("fastrnn-compare", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("no fastrnn-compare next to this python: fastrnn is not installed "
                    "(pip install --no-build-isolation .)")
    out = tmp_path / "out"
    done = subprocess.run(
        [script, "--cells", "rnn", "--seq-lens", "5", "--epochs", "1", "--steps-per-epoch", "1",
         "--threads", "1", "--no-plot", "--out", str(out)] + TINY,
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "speed-up" in done.stdout
    assert [r["cell"] for r in json.loads((out / "results.json").read_text())] == ["rnn"]


@pytest.mark.skipif(not SHARED_TINYSHAKESPEARE.is_file(), reason="no ../shared/data here")
def test_compare_on_tinyshakespeare(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTRNN_DATA", str(SHARED_TINYSHAKESPEARE.parent))
    out = tmp_path / "out"
    rc = compare.main(["--corpus", "tinyshakespeare", "--cells", "gru", "--seq-lens", "8",
                       "--epochs", "1", "--steps-per-epoch", "2", "--out", str(out),
                       "--no-plot"] + TINY)
    assert rc == 0
    info = json.loads((out / "run.json").read_text())
    assert info["characters"] == corpora.TINYSHAKESPEARE_BYTES
    assert info["val_characters"] == pytest.approx(0.2 * info["characters"], abs=1)


def test_console_script_declared():
    assert "fastrnn-compare=fastrnn.compare:main" in (REPO / "setup.py").read_text()
    assert callable(compare.main)


def test_sample_from_prompt():
    vocab = chartrain.Vocabulary("abc ")
    model = charmodels.build_model("gru", "fastrnn", len(vocab), 4, hidden_size=8)
    text = chartrain.sample(model, vocab, "ab", 25, 4, temperature=1.0)
    assert len(text) == 25 and set(text) <= set("abc ")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        chartrain.sample(model, vocab, "xyz", 5, 4)


# --------------------------------------------------------------------------
# copy task

def test_copytask_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    rc = copytask.main(["--steps", "20", "--train-len", "4", "--test-lens", "2,4,6",
                        "--hidden-size", "16", "--test-size", "40", "--out", str(out),
                        "--no-progress"])
    assert rc == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["cell"], r["test_len"]) for r in rows] == [
        (c, t) for c in ("lstm", "gru") for t in (2, 4, 6)]
    assert all(0 <= r["sequence_accuracy"] <= r["token_accuracy"] <= 1 for r in rows)
    assert [len(r["per_position"]) for r in rows] == [2, 4, 6] * 2
    assert "OUT" in capsys.readouterr().out       # length 6 is beyond the training lengths


def test_copytask_learns_to_copy_short_sequences():
    """The encoder's state reaches the decoder: chance is 25% per token."""
    torch.manual_seed(0)
    model = copytask.Seq2Seq("gru", 4, 48, backend="fastrnn")
    assert type(model.encoder) is fastrnn.GRU
    copytask.train(model, 250, 32, 3, 1e-2, seed=0)
    acc = copytask.accuracy(model, 3, 300, seed=1)
    assert acc["token"] > 0.9 and acc["sequence"] > 0.75
    assert acc["token"] == pytest.approx(sum(acc["per_position"]) / 3)


# --------------------------------------------------------------------------
# music

def test_roll_of():
    roll = music.roll_of([(0.0, 2.0, [60, 64]), (2.0, 0.5, [21]), (2.5, 0.5, [30]),
                          (3.0, 1.0, [108, 109])])
    assert roll.shape == (4, 88)
    assert roll[:2, 60 - 21].all() and roll[:2, 64 - 21].all() and not roll[2:, 60 - 21].any()
    assert roll[2, 0] == 1 and roll[3, 87] == 1          # A0 and C8; 109 is off the piano
    assert not roll[:, 30 - 21].any()                     # between two samples: no trace
    assert roll.sum() == 2 * 2 + 1 + 1


@pytest.mark.parametrize("cell", list(charmodels.RECURRENT))
def test_cells_sized_alike(cell):
    hidden = music.hidden_for_params(cell, 20000)
    model = music.PianoRollRNN(cell, hidden)
    params = sum(p.numel() for p in model.parameters())
    assert params == music.params_of(cell, hidden)
    assert abs(params - 20000) < 0.03 * 20000


def _synthetic_rolls(n, seed=0):
    """Chords that move up a step at a time: predictable from the last step."""
    rng = np.random.default_rng(seed)
    rolls = []
    for _ in range(n):
        length, base = int(rng.integers(12, 24)), int(rng.integers(20, 50))
        roll = np.zeros((length, 88), dtype=np.uint8)
        for t in range(length):
            roll[t, [base + t % 8, base + 4 + t % 8, base + 7 + t % 8]] = 1
        rolls.append(roll)
    return rolls


def test_music_pipeline_on_synthetic_rolls():
    train, valid, test = music.split(_synthetic_rolls(40))
    baseline = music.frequency_baseline(train, test)
    row = music.train_cell("lstm", train, valid, test, hidden_size=32, epochs=30,
                           batch_size=8, lr=3e-2)
    assert row["test_nll"] < 0.5 * baseline, (row, baseline)
    assert row["params"] == music.params_of("lstm", 32)


def test_music_row_is_from_the_best_epoch():
    """train, valid and test NLL all of the best epoch's model: validated on
    the training rolls, its train and valid NLL are the same number."""
    train, _, test = music.split(_synthetic_rolls(20))
    row = music.train_cell("gru", train, train, test, hidden_size=8, epochs=3, batch_size=8)
    assert row["train_nll"] == pytest.approx(row["valid_nll"], rel=1e-6)


def test_music_without_music21_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "music21", None)      # import music21 -> ImportError
    rc = music.main(["--cache", str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "pip install music21" in err
    assert "pip install --no-build-isolation '.[music]'" in err     # fastrnn is not on PyPI
    assert "fastrnn[music]" not in err


def _has_music21():
    try:
        import music21  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_music21(), reason="music21 is not installed")
def test_music_end_to_end_on_bach(tmp_path, capsys):
    args = ["--max-chorales", "10", "--epochs", "2", "--cache", str(tmp_path / "cache"),
            "--out", str(tmp_path / "out"), "--threads", "2"]
    assert music.main(args) == 0
    assert list((tmp_path / "cache").glob("bach_chorales_q1_n10.npz"))
    assert music.main(args) == 0                          # the second time from the cache
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["chorales"] == 10
    assert [r["cell"] for r in result["rows"]] == ["rnn", "lstm", "gru"]
    assert all(0 < r["test_nll"] < 88 for r in result["rows"])
