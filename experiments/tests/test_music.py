"""python -m experiments.music: piano rolls, cells sized alike, the training
pipeline on synthetic rolls, and, where music21 is installed, end to end on
Bach chorales."""

import json
import sys

import numpy as np
import pytest

from experiments import charmodels, music


def test_roll_of():
    roll = music.roll_of(
        [(0.0, 2.0, [60, 64]), (2.0, 0.5, [21]), (2.5, 0.5, [30]), (3.0, 1.0, [108, 109])]
    )
    assert roll.shape == (4, 88)
    assert roll[:2, 60 - 21].all() and roll[:2, 64 - 21].all() and not roll[2:, 60 - 21].any()
    assert roll[2, 0] == 1 and roll[3, 87] == 1  # A0 and C8; 109 is off the piano
    assert not roll[:, 30 - 21].any()  # between two samples: no trace
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
    row = music.train_cell(
        "lstm", train, valid, test, hidden_size=32, epochs=30, batch_size=8, lr=3e-2
    )
    assert row["test_nll"] < 0.5 * baseline, (row, baseline)
    assert row["params"] == music.params_of("lstm", 32)


def test_music_row_is_from_the_best_epoch():
    """train, valid and test NLL all of the best epoch's model: validated on
    the training rolls, its train and valid NLL are the same number."""
    train, _, test = music.split(_synthetic_rolls(20))
    row = music.train_cell("gru", train, train, test, hidden_size=8, epochs=3, batch_size=8)
    assert row["train_nll"] == pytest.approx(row["valid_nll"], rel=1e-6)


def test_music_without_music21_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "music21", None)  # import music21 -> ImportError
    rc = music.main(["--cache", str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "pip install music21" in err
    assert "pip install -r experiments/requirements.txt" in err  # from a checkout
    assert "fastrnn[music]" not in err


def _has_music21():
    try:
        import music21  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_music21(), reason="music21 is not installed")
def test_music_end_to_end_on_bach(tmp_path, capsys):
    args = [
        "--max-chorales",
        "10",
        "--epochs",
        "2",
        "--cache",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "out"),
        "--threads",
        "2",
    ]
    assert music.main(args) == 0
    assert list((tmp_path / "cache").glob("bach_chorales_q1_n10.npz"))
    assert music.main(args) == 0  # the second time from the cache
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["chorales"] == 10
    assert [r["cell"] for r in result["rows"]] == ["rnn", "lstm", "gru"]
    assert all(0 < r["test_nll"] < 88 for r in result["rows"])
