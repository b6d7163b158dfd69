"""The Tiny Shakespeare study: its two splits, its checkpoints (an
interrupted run resumes to the same result) and its command, on small texts."""

import json

import pytest
import torch

from experiments import charmodels, chartrain, corpora, shakespeare


def _ids(n=3000, vocab=20, seed=0):
    return torch.randint(vocab, (n,), generator=torch.Generator().manual_seed(seed))


def test_assignment_split_shuffles_windows_and_leaks():
    ids, seq_len = _ids(), 10
    parts = shakespeare.make_split(ids, seq_len, "assignment", seed=1)
    starts = torch.cat([parts[k].starts for k in ("train", "val", "test")])
    everyone = chartrain.window_starts(len(ids), seq_len, 1)
    assert torch.equal(starts.sort().values, everyone)  # every window once
    assert [len(parts[k]) for k in ("train", "val", "test")] == [2392, 299, 299]
    assert all(parts[k].ids is ids for k in parts)
    # shuffled: the test windows come from all over the text
    assert parts["test"].starts.min() < 100 and parts["test"].starts.max() > 2800
    assert shakespeare.leaked_fraction(parts, seq_len) > 0.99
    again = shakespeare.make_split(ids, seq_len, "assignment", seed=1)
    assert torch.equal(again["test"].starts, parts["test"].starts)


def test_positional_split_shares_no_character():
    ids, seq_len = _ids(), 10
    parts = shakespeare.make_split(ids, seq_len, "positional")
    assert torch.equal(torch.cat([parts[k].ids for k in ("train", "val", "test")]), ids)
    assert [len(parts[k].ids) for k in ("train", "val", "test")] == [2400, 300, 300]
    for part in parts.values():  # windows, their targets included, stay inside
        assert part.starts.min() == 0 and part.starts.max() + seq_len == len(part.ids) - 1
    assert shakespeare.leaked_fraction(parts, seq_len) == 0.0


def test_leaked_fraction_counts_covered_targets():
    ids = torch.arange(20)
    train = shakespeare.Part(ids, torch.tensor([0]))  # covers positions 0..3
    test = shakespeare.Part(ids, torch.tensor([0, 1, 5]))  # targets at 3, 4, 8
    assert shakespeare.leaked_fraction({"train": train, "test": test}, 3) == pytest.approx(1 / 3)


def _tiny_run(checkpoint, on_step=None, epochs=3, every_s=300.0):
    ids = _ids(600, 12)
    model = charmodels.build_model("lstm", "fastrnn", 12, 6, embed_size=6, hidden_size=8, seed=2)
    config = chartrain.TrainConfig(
        epochs=epochs, batch_size=16, lr=1e-2, steps_per_epoch=5, seed=2, objective="last"
    )
    history = chartrain.train(
        model,
        ids[:500],
        ids[500:],
        6,
        config,
        on_step=on_step,
        checkpoint=checkpoint,
        checkpoint_every_s=every_s,
    )
    return model, history


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    straight, history = _tiny_run(str(tmp_path / "straight.pt"))
    path = str(tmp_path / "interrupted.pt")

    def ctrl_c(epoch, step, steps, loss):
        if epoch == 1 and step == 2:  # mid-way through the second epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _tiny_run(path, on_step=ctrl_c)
    assert len(torch.load(path, weights_only=False)["history"]["train_loss"]) == 1
    resumed, resumed_history = _tiny_run(path)
    for key in ("train_loss", "val_loss", "val_accuracy"):
        assert resumed_history[key] == history[key]
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a finished run's checkpoint trains no more, and more epochs continue it
    steps = []
    _tiny_run(path, on_step=lambda *a: steps.append(a))
    assert steps == []
    _, longer = _tiny_run(path, on_step=lambda *a: steps.append(a), epochs=4)
    assert len(steps) == 5 and longer["train_loss"][:3] == history["train_loss"]


def test_run_interrupted_mid_epoch_resumes_from_the_step_after_its_last_save(tmp_path):
    straight, history = _tiny_run(str(tmp_path / "straight.pt"))
    path = str(tmp_path / "interrupted.pt")
    taken = []

    def ctrl_c(epoch, step, steps, loss):
        taken.append((epoch, step))
        if (epoch, step) == (1, 3):  # saved after steps 0..2 of the second epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _tiny_run(path, on_step=ctrl_c, every_s=0.0)  # a save after every step
    state = torch.load(path, weights_only=False)
    assert state["partial"]["step"] == 3 and len(state["history"]["train_loss"]) == 1
    taken.clear()
    resumed, resumed_history = _tiny_run(path, on_step=lambda e, s, n, l: taken.append((e, s)))
    assert taken[:3] == [(1, 3), (1, 4), (2, 0)]  # the interrupted step again, then on
    for key in ("train_loss", "val_loss", "val_accuracy", "steps"):
        assert resumed_history[key] == history[key]
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.load(path, weights_only=False)["partial"] is None  # the run ended whole


def test_checkpoint_from_before_mid_epoch_saves_resumes(tmp_path):
    path = str(tmp_path / "old.pt")
    _tiny_run(path, epochs=1)
    state = torch.load(path, weights_only=False)
    del state["partial"]  # as saved before mid-epoch saves existed
    torch.save(state, path)
    _, history = _tiny_run(path, epochs=2)
    assert len(history["train_loss"]) == 2


def test_checkpoint_of_another_run_is_refused(tmp_path):
    path = str(tmp_path / "run.pt")
    _tiny_run(path, epochs=1)
    ids = _ids(600, 12)
    model = charmodels.build_model("lstm", "fastrnn", 12, 6, embed_size=6, hidden_size=8, seed=2)
    other = chartrain.TrainConfig(epochs=2, batch_size=16, lr=2e-2, steps_per_epoch=5, seed=2)
    with pytest.raises(ValueError, match="another run"):
        chartrain.train(model, ids[:500], ids[500:], 6, other, checkpoint=path)


def test_command_reports_both_splits_and_resumes(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(corpora.zen_of_python() * 2, encoding="utf-8")
    out = tmp_path / "out"
    argv = ["--text", str(text), "--cells", "lstm,gru", "--seq-lens", "8", "--epochs", "2"]
    argv += ["--hidden-size", "16", "--embed-size", "8", "--steps-per-epoch", "4"]
    argv += ["--out", str(out), "--sample", "20", "--prompt", "The", "--no-progress"]
    assert shakespeare.main(argv) == 0
    for split, leaks in (("assignment", True), ("positional", False)):
        rows = json.loads((out / split / "results.json").read_text())
        assert [(r["cell"], r["seq_len"], r["epochs"]) for r in rows] == [
            ("lstm", 8, 2),
            ("gru", 8, 2),
        ]
        for r in rows:
            assert (r["test_targets_in_training_text"] > 0.9) == leaks
            assert r["perplexity"] == pytest.approx(torch.tensor(r["test_loss"]).exp().item())
            assert 0 <= r["test_accuracy"] <= 1 and r["train_time_s"] > 0
            assert r["test_inference_s"] > 0 and r["ms_per_generated_char"] > 0
            assert r["sample"].startswith("The") and len(r["sample"]) == 23
            assert r["model_bytes"] == 4 * r["params"]
            assert len(r["curves"]["val_loss"]) == 2 and r["steps"] == 8
            assert r["assignment_test_accuracy"] is None  # it published no seq_len 8
        table = (out / split / "results.md").read_text()
        assert "| lstm | 8 | 2 |" in table and "test acc" in table
        assert json.loads((out / split / "run.json").read_text())["runs_finished"] == 4
    assert (out / "checkpoints" / "positional-gru-8.pt").is_file()
    first = json.loads((out / "positional" / "results.json").read_text())
    capsys.readouterr()
    assert shakespeare.main(argv) == 0  # every run resumes finished: nothing retrained
    again = json.loads((out / "positional" / "results.json").read_text())
    for r, s in zip(first, again):
        assert r["curves"] == s["curves"] and r["test_loss"] == s["test_loss"]


def test_time_budget_stops_training():
    ids = _ids(600, 12)
    model = charmodels.build_model("gru", "fastrnn", 12, 6, embed_size=6, hidden_size=8)
    config = chartrain.TrainConfig(epochs=5, batch_size=16, time_budget_s=1e-9, objective="last")
    steps = []
    history = chartrain.train(
        model, ids[:500], ids[500:], 6, config, on_step=lambda *a: steps.append(a)
    )
    assert len(steps) == 1 and len(history["val_loss"]) == 1  # one step, then evaluated


def _lr(config, steps_done, total_steps, spent_s):
    return chartrain.decayed_lr(
        config.lr, config.lr_decay, steps_done, total_steps, spent_s, config.time_budget_s
    )


def test_linear_lr_decay_reaches_zero_at_the_runs_end():
    config = chartrain.TrainConfig(lr=1e-2, lr_decay="linear")
    assert _lr(config, 0, 40, 0.0) == 1e-2
    assert _lr(config, 10, 40, 99.0) == pytest.approx(7.5e-3)  # no budget: steps
    assert _lr(config, 40, 40, 0.0) == 0.0
    budgeted = chartrain.TrainConfig(lr=1e-2, lr_decay="linear", time_budget_s=100.0)
    assert _lr(budgeted, 10, 40, 50.0) == pytest.approx(5e-3)  # the budget first
    assert _lr(budgeted, 30, 40, 50.0) == pytest.approx(2.5e-3)  # the steps first
    assert _lr(budgeted, 1, 40, 250.0) == 0.0
    constant = chartrain.TrainConfig(lr=1e-2, time_budget_s=100.0)
    assert _lr(constant, 30, 40, 50.0) == 1e-2
    with pytest.raises(ValueError, match="unknown lr_decay 'cosine'"):
        chartrain.TrainConfig(lr_decay="cosine")


def test_linear_lr_decay_steps_the_optimizer_at_the_schedule(monkeypatch):
    seen = []
    step = torch.optim.Adam.step

    def record(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", record)
    ids = _ids(600, 12)
    model = charmodels.build_model("gru", "fastrnn", 12, 6, embed_size=6, hidden_size=8)
    config = chartrain.TrainConfig(
        epochs=2, batch_size=16, lr=1e-2, steps_per_epoch=5, lr_decay="linear"
    )
    chartrain.train(model, ids[:500], ids[500:], 6, config)
    assert seen == pytest.approx([1e-2 * (1 - i / 10) for i in range(10)])


def test_checkpoint_from_before_lr_decay_resumes(tmp_path):
    path = str(tmp_path / "old.pt")
    _tiny_run(path, epochs=1)
    state = torch.load(path, weights_only=False)
    del state["config"]["lr_decay"]  # as saved before the option existed
    torch.save(state, path)
    _, history = _tiny_run(path, epochs=2)
    assert len(history["train_loss"]) == 2


def test_assignment_budget_and_published_numbers():
    args = shakespeare.parse_args(["--time-budget", "assignment"])
    assert args.time_budget_s == "assignment" and args.hidden_size == 128
    assert shakespeare.parse_args(["--time-budget", "90"]).time_budget_s == 90.0
    with pytest.raises(SystemExit):
        shakespeare.parse_args(["--time-budget", "soon"])
    assert shakespeare.ASSIGNMENT[("lstm", 50)] == (0.59195, 870.8)
