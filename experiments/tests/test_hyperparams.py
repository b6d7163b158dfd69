"""The hyperparameter study: the fc head (its parameters and FLOPs), and the
command on a sliver of Tiny Shakespeare: every measure in every row, the
runs on fastrnn's kernels, the table and the plots written, a rerun that
skips the finished runs."""

import json
import math
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import fastrnn
from experiments import charmodels, corpora, hyperparams, shakespeare

REPO = Path(__file__).resolve().parents[2]
SHARED_TINYSHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"

MEASURES = (
    "test_accuracy",
    "perplexity",
    "test_loss",
    "val_loss",
    "val_accuracy",
    "train_time_s",
    "steps",
    "ms_per_step",
    "params",
    "flops_per_sequence",
    "model_bytes",
    "test_inference_s",
    "sample",
)


def _model(head, hidden, cell="lstm", num_layers=2):
    return charmodels.build_model(
        cell,
        "torch",
        30,
        7,
        embed_size=12,
        hidden_size=hidden,
        num_layers=num_layers,
        dtype=torch.float64,
        head=head,
    )


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("hidden", [16, 20])
def test_fc_head_adds_one_hidden_layer_and_its_flops(cell, hidden):
    plain, fc = _model("plain", hidden, cell), _model("fc", hidden, cell)
    H = hidden
    assert charmodels.count_params(fc) - charmodels.count_params(plain) == H * H + H
    for last, positions in ((True, 1), (False, 7)):  # forward, and backward's two products
        extra = fc.flops_per_sequence(7, last) - plain.flops_per_sequence(7, last)
        assert extra == 3 * positions * 2 * H * H
    # and the count is what torch's counter sees in a training step
    ids = torch.randint(30, (3, 7))
    for last in (True, False):
        with FlopCounterMode(display=False) as counter:
            logits = fc(ids, last=last)
            targets = ids[:, 0] if last else ids.flatten()
            torch.nn.functional.cross_entropy(logits.reshape(-1, 30), targets).backward()
        assert counter.get_total_flops() == 3 * fc.flops_per_sequence(7, last)
    out, _ = fc.rnn(fc.embed(ids))
    expected = fc.head(torch.relu(fc.fc(out[:, -1])))
    assert torch.equal(fc(ids, last=True), expected)


def test_plain_head_is_the_model_it_was():
    """The option off (its default) builds the same weights, the same
    state_dict keys and the same FLOPs as before it existed."""
    default = charmodels.build_model("lstm", "fastrnn", 30, 7, hidden_size=24, seed=5)
    plain = charmodels.build_model("lstm", "fastrnn", 30, 7, hidden_size=24, seed=5, head="plain")
    a, b = default.state_dict(), plain.state_dict()
    assert list(a) == [
        "embed.weight",
        *(k for k in a if k.startswith("rnn.")),
        "head.weight",
        "head.bias",
    ]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert default.fc is None
    with pytest.raises(ValueError, match="unknown head"):
        charmodels.build_model("lstm", "fastrnn", 30, 7, head="mlp")


@pytest.fixture
def text_args(tmp_path, monkeypatch):
    """A sliver of Tiny Shakespeare where ../shared/data has it, else a text
    of the same kind of size written here."""
    if SHARED_TINYSHAKESPEARE.is_file():
        monkeypatch.setenv("FASTRNN_DATA", str(SHARED_TINYSHAKESPEARE.parent))
        return ["--fraction", "0.01"]
    path = tmp_path / "text.txt"
    path.write_text(corpora.zen_of_python() * 14, encoding="utf-8")
    return ["--text", str(path)]


class _OpNames(TorchDispatchMode):
    """The names of the ops dispatched while it is active."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.name())
        return func(*args, **(kwargs or {}))


def test_command_measures_every_run_on_fastrnn_and_resumes(tmp_path, text_args, monkeypatch):
    out = tmp_path / "out"
    argv = text_args + ["--layers", "1", "--hidden", "16", "--head", "plain,fc"]
    argv += ["--time-budget", "1", "--threads", "1", "--eval-windows", "100", "--embed-size", "8"]
    argv += ["--sample", "10", "--out", str(out), "--no-progress"]
    models = []

    def spy(model, cell, backend):
        models.append(model)
        return charmodels.check_backend(model, cell, backend)

    monkeypatch.setattr(shakespeare, "check_backend", spy)
    with _OpNames() as ops:
        assert hyperparams.main(argv) == 0
    # the runs trained on fastrnn's LSTM kernels, not on torch.nn's
    assert len(models) == 2 and all(type(m.rnn) is fastrnn.LSTM for m in models)
    assert {"fastrnn::lstm_forward", "fastrnn::lstm_backward"} <= ops.names
    assert not any("lstm" in n and not n.startswith("fastrnn::") for n in ops.names)

    rows = json.loads((out / "results.json").read_text())
    assert [(r["cell"], r["num_layers"], r["hidden_size"], r["head"]) for r in rows] == [
        ("lstm", 1, 16, "plain"),
        ("lstm", 1, 16, "fc"),
    ]
    for r, model in zip(rows, models):
        assert all(r[k] is not None for k in MEASURES), r
        assert 0 < r["test_accuracy"] < 1 and r["test_windows"] == 100
        assert r["perplexity"] == pytest.approx(math.exp(r["test_loss"]))
        assert r["train_time_s"] >= 1.0 and r["steps"] > 0 and r["test_inference_s"] > 0
        assert r["ms_per_step"] == pytest.approx(1e3 * r["train_time_s"] / r["steps"])
        assert r["params"] == charmodels.count_params(model)
        assert r["flops_per_sequence"] == model.flops_per_sequence(50, last=True)
        assert r["test_targets_in_training_text"] == 0.0  # the positional split
        assert r["settings"]["time_budget_s"] == 1.0 and r["settings"]["seq_len"] == 50
        assert r["settings"]["objective"] == "last"
    plain, fc = rows
    assert fc["params"] - plain["params"] == 16 * 16 + 16
    assert fc["flops_per_sequence"] - plain["flops_per_sequence"] == 3 * 2 * 16 * 16

    table = (out / "results.md").read_text()
    assert "| lstm | 1 | 16 | plain |" in table and "| lstm | 1 | 16 | fc |" in table
    assert "test acc" in table and "perplexity" in table and "100 windows" in table
    for name in ("test_accuracy.png", "perplexity.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "run.json").read_text())["runs_finished"] == 2

    # a rerun trains only what results.json lacks
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[1:2])
        return shakespeare.run_one(*args, **kwargs)

    monkeypatch.setattr(hyperparams, "run_one", counted)
    assert hyperparams.main(argv) == 0
    assert calls == [] and json.loads((out / "results.json").read_text()) == rows
    more = [{"16": "16,24", "plain,fc": "plain"}.get(a, a) for a in argv]
    assert hyperparams.main(more) == 0
    assert len(calls) == 1  # 24 plain; 16 plain was skipped
    again = json.loads((out / "results.json").read_text())
    assert [(r["hidden_size"], r["head"]) for r in again] == [
        (16, "plain"),
        (16, "fc"),
        (24, "plain"),
    ]
    assert again[:2] == rows
    # rows of other settings are not mixed in
    other = [
        a if a != "1" or i != argv.index("--time-budget") + 1 else "2" for i, a in enumerate(argv)
    ]
    assert hyperparams.main(other) == 2 and len(calls) == 1


def test_arguments():
    args = hyperparams.parse_args([])
    assert (args.cells, args.layers, args.hidden, args.head) == (
        ["lstm"],
        [1, 2, 3],
        [128, 256, 512],
        ["plain", "fc"],
    )
    assert (args.seq_len, args.split, args.time_budget_s) == (50, "positional", 60.0)
    assert (
        args.objective == "last"
        and hyperparams.parse_args(["--objective", "all"]).objective == "all"
    )
    assert len(hyperparams.plan_runs(args.cells, args.layers, args.hidden, args.head)) == 18
    for bad in (["--head", "mlp"], ["--time-budget", "0"], ["--layers", "0"], ["--cells", "cnn"]):
        with pytest.raises(SystemExit):
            hyperparams.parse_args(bad)
