"""python -m experiments.seqdemo: the demo's models have its shapes, the
batched windows are its loop over windows, the GRU runs on fastrnn, training
learns, the ranking is read right, and the command runs end to end."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import fastrnn
from experiments import seqdemo
from experiments.chartrain import Vocabulary
from experiments.corpora import zen_of_python


@pytest.fixture(autouse=True)
def _one_thread():
    """Models this small run fastest on one thread, and far slower on a
    busy machine's every core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "kind, hidden, params",
    # the demo's models over its 100-character vocabulary (string.printable),
    # counted by hand from its layers: embedding, GRU and output layer;
    # embedding, 16 x 64 convolution, 64 x 64 and output layers; and the
    # attention model's two convolutions and 128 -> 64 combining layer
    [
        ("gru", 64, 37_860),
        ("cnn", 64, 82_660),
        ("attention", 64, 152_356),
        ("attention", 32, 41_412),
    ],
)
def test_parameters_are_the_demos(kind, hidden, params):
    assert seqdemo.count_params(seqdemo.build(kind, 100, hidden, 16)) == params


def test_gru_is_fastrnn():
    model = seqdemo.build("gru", 30, 8, 16)
    assert type(model.rnn) is fastrnn.GRU


def test_windows_are_the_demos_loop():
    """One batch of windows gives the demo's loss and gradient: its loop
    over c = 0 .. chunk_len - window - 1, window chunk[c : c + window],
    target chunk[c + window], position c / chunk_len - 0.5, losses summed."""
    torch.manual_seed(1)
    chunk_len, window = 24, 6
    chunk = torch.randint(20, (chunk_len + 1,))
    for kind in ("cnn", "attention"):
        model = seqdemo.build(kind, 20, 8, window).double()
        batched, n = seqdemo.chunk_loss(model, chunk, window)
        grads = torch.autograd.grad(batched, list(model.parameters()))
        looped = sum(
            F.cross_entropy(
                model(
                    chunk[c : c + window][None],
                    torch.tensor([c / chunk_len - 0.5], dtype=torch.float64),
                ),
                chunk[c + window][None],
            )
            for c in range(chunk_len - window)
        )
        assert n == chunk_len - window
        torch.testing.assert_close(batched, looped, rtol=1e-12, atol=0)
        for g, ref in zip(grads, torch.autograd.grad(looped, list(model.parameters()))):
            torch.testing.assert_close(g, ref, rtol=1e-10, atol=1e-14)


def test_gru_loss_is_every_position():
    torch.manual_seed(2)
    model = seqdemo.build("gru", 12, 8, 16)
    chunk = torch.randint(12, (31,))
    total, n = seqdemo.chunk_loss(model, chunk, 16)
    ref = F.cross_entropy(model(chunk[None, :-1])[0], chunk[1:], reduction="sum")
    assert n == 30
    torch.testing.assert_close(total, ref)


def test_attention_weights_are_one():
    """The demo's attention has one context vector to attend to."""
    model = seqdemo.build("attention", 20, 8, 5)
    x = model.embed(torch.randint(20, (3, 5)))
    weights, context = model.attention_weights(x)
    assert weights.shape == (3, 5, 1) and context.shape == (3, 1, 8)
    torch.testing.assert_close(weights, torch.ones_like(weights))


@pytest.mark.parametrize("kind, hidden", [("cnn", 16), ("attention", 16), ("attention", 8)])
def test_flops_match_the_counter(kind, hidden):
    model = seqdemo.build(kind, 30, hidden, 7)
    with FlopCounterMode(display=False) as counter:
        model(torch.randint(30, (1, 7)), torch.zeros(1))
    # the counter leaves out what is not a matrix product or convolution
    assert seqdemo.flops_per_char(model) == counter.get_total_flops()


def test_training_learns_and_is_repeatable():
    text = "the working man works and the working man rests. " * 12
    vocab = Vocabulary(text)
    ids = vocab.encode(text)
    for kind in seqdemo.KINDS:
        runs = [
            seqdemo.train_model(seqdemo.build(kind, len(vocab), 16, 8), ids, 40, 40, 8, 1e-2)[0]
            for _ in range(2)
        ]
        assert runs[0] == runs[1], kind
        losses = runs[0]
        assert len(losses) == 40
        assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, (kind, losses)


def test_generate_slides_the_window():
    text = zen_of_python()
    vocab = Vocabulary(text)
    ids = vocab.encode(text)
    for kind in seqdemo.KINDS:
        model = seqdemo.build(kind, len(vocab), 8, 6)
        out = seqdemo.generate(model, vocab, ids[:6], 25, seed=3)
        assert len(out) == 25 and set(out) <= set(vocab.chars)
        assert out == seqdemo.generate(model, vocab, ids[:6], 25, seed=3)


def _row(kind, hidden, loss, params):
    return {
        "model": f"{kind}-{hidden}",
        "kind": kind,
        "hidden": hidden,
        "min_loss": loss,
        "params": params,
    }


def test_ranking():
    rows = [
        _row("gru", 64, 1.5, 100),
        _row("cnn", 64, 1.2, 200),
        _row("attention", 64, 0.9, 400),
        _row("attention", 32, 1.6, 110),
    ]
    checks = seqdemo.ranking(rows)
    assert checks["demo_ranking"] is True
    assert checks["order"] == ["attention-64", "cnn-64", "gru-64", "attention-32"]
    assert checks["attention_params_over_cnn"] == 2.0
    rows[1]["min_loss"] = 1.6  # the GRU now beats the CNN
    assert seqdemo.ranking(rows)["cnn_below_gru"] is False
    assert seqdemo.ranking(rows)["demo_ranking"] is False
    rows[1]["min_loss"], rows[3]["min_loss"] = 1.2, 0.5  # attention-32 lowest
    assert seqdemo.ranking(rows)["attention_lowest"] is False
    assert seqdemo.ranking(rows[:2])["demo_ranking"] is None  # no attention run


def test_demo_order_is_its_published_one():
    assert seqdemo.demo_order("tailor_swift_lyrics") == [
        "attention-64",
        "cnn-64",
        "gru-64",
        "attention-32",
    ]


def test_end_to_end(tmp_path, capsys):
    args = ["--iterations", "6", "--chunk-len", "40", "--window", "6", "--sample", "12"]
    args += ["--models", "gru:8,cnn:8,attention:8,attention:4", "--out", str(tmp_path)]
    assert seqdemo.main(args) == 0
    out = tmp_path / "zen"
    rows = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in rows] == ["gru-8", "cnn-8", "attention-8", "attention-4"]
    assert rows[0]["recurrent_layer"] == "fastrnn.modules.GRU"
    for r in rows:
        assert r["min_loss"] <= r["final_loss"] and r["elapsed_s"] > 0 and len(r["sample"]) == 12
    assert list(json.loads((out / "losses.json").read_text())) == [r["model"] for r in rows]
    run = json.loads((out / "run.json").read_text())
    assert run["characters"] == len(zen_of_python()) and run["cpu"]
    md = (out / "results.md").read_text()
    assert md.count("\n| ") == 6 and "the demo's ranking shown" in md
    assert "| gru-8 |" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [["--models", "lstm:64"], ["--models", "gru"], ["--window", "200"], ["--iterations", "0"]],
)
def test_bad_options(argv):
    with pytest.raises(SystemExit):
        seqdemo.parse_args(argv)
