"""python -m experiments.copytask end to end on tiny settings, the report's
preset and experiments, padding, the accuracy measures, the optimizer, and
models that learn to copy short sequences."""

import json

import pytest
import torch

import fastrnn
from experiments import copytask
from experiments.rmsprop import RMSPropTF


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
    result = json.loads((out / "results.json").read_text())
    rows = result["rows"]
    assert [(r["cell"], r["test_len"]) for r in rows] == [
        (c, t) for c in ("lstm", "gru") for t in (2, 4, 6)
    ]
    assert all(0 <= r["sequence_accuracy"] <= r["token_accuracy"] <= 1 for r in rows)
    assert [len(r["per_position"]) for r in rows] == [2, 4, 6] * 2
    assert all(r["steps"] == 20 and r["pad_to"] == 0 for r in rows)
    assert result["cpu"]
    assert "OUT" in capsys.readouterr().out  # length 6 is beyond the training lengths


def test_report_experiment_end_to_end_within_a_time_budget(tmp_path, capsys):
    """The report's preset and its padded experiment, shrunk; a budget of 0 s
    stops after one step and the rows say so."""
    out = tmp_path / "out"
    argv = ["--preset", "report", "--experiment", "train20pad10", "--hidden-size", "16"]
    argv += ["--embed-size", "8", "--vocab", "16", "--test-size", "20", "--time-budget", "0"]
    assert copytask.main(argv + ["--out", str(out), "--no-progress"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert [(r["cell"], r["test_len"], r["pad_to"]) for r in result["rows"]] == [
        ("lstm", 10, 30),
        ("lstm", 20, 30),
        ("lstm", 30, 30),
    ]
    assert [r["steps"] for r in result["rows"]] == [1] * 3
    assert [len(r["per_position"]) for r in result["rows"]] == [10, 20, 30]
    assert "padded to 30" in capsys.readouterr().out


def test_presets_are_the_reports_settings_and_todays_defaults():
    report = copytask.parse_args(["--preset", "report"])
    assert (report.hidden_size, report.embed_size, report.batch_size) == (500, 100, 128)
    assert (report.optimizer, report.lr, report.clip) == ("rmsprop", 6e-4, 0.0)
    assert (report.cells, report.vocab, report.steps) == (["lstm"], 256, 15000)
    assert (report.decoder, report.train_lens, report.forget_bias) == ("constant", "fixed", 1.0)
    assert (report.train_len, report.pad_to, report.test_lens) == (20, 0, [10, 20, 30])

    default = copytask.parse_args([])
    assert (default.hidden_size, default.embed_size, default.batch_size) == (128, 32, 64)
    assert (default.optimizer, default.lr, default.clip) == ("adam", 3e-3, 5.0)
    assert (default.cells, default.vocab, default.steps) == (["lstm", "gru"], 8, 10000)
    assert (default.decoder, default.train_lens, default.pad_to) == ("teacher", "uniform", 0)
    assert default.forget_bias is None

    mixed = copytask.parse_args(["--preset", "report", "--hidden-size", "32", "--lr", "1e-3"])
    assert (mixed.hidden_size, mixed.lr, mixed.embed_size) == (32, 1e-3, 100)


@pytest.mark.parametrize(
    "name, train_len, pad_to, test_lens, steps",
    [
        ("train20", 20, 20, [10, 20, 30], 15000),
        ("train20pad10", 20, 30, [10, 20, 30], 15000),
        ("train30pad20", 30, 50, [20, 30, 50], 100000),
    ],
)
def test_experiments_set_the_reports_lengths(name, train_len, pad_to, test_lens, steps):
    args = copytask.parse_args(["--preset", "report", "--experiment", name])
    assert (args.train_len, args.pad_to, args.test_lens, args.steps) == (
        train_len,
        pad_to,
        test_lens,
        steps,
    )
    flags = copytask.parse_args(["--experiment", name, "--steps", "7", "--test-lens", "5"])
    assert (flags.steps, flags.test_lens, flags.train_len) == (7, [5], train_len)


def test_random_batch_pads_up_to_pad_to():
    gen = torch.Generator().manual_seed(0)
    batch = copytask.random_batch(64, 20, 256, gen, pad_to=30)
    assert batch.shape == (64, 30)
    assert (batch[:, 20:] == 256).all() and (batch[:, :20] < 256).all()
    assert batch[:, :20].unique().numel() > 200  # tokens 0..255 drawn
    assert copytask.random_batch(3, 30, 256, gen, pad_to=20).shape == (3, 30)
    assert (copytask.random_batch(3, 30, 256, gen, pad_to=20) < 256).all()


@pytest.mark.parametrize("train_lens", ["fixed", "uniform"])
def test_training_batches_have_the_planned_lengths_and_padding(train_lens):
    model = copytask.Seq2Seq("lstm", 8, 8, embed_size=4, decoder="constant")
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    copytask.train(model, 30, 4, 6, 1e-3, 0, train_lens=train_lens, pad_to=9, optimizer="rmsprop")
    assert len(seen) == 30 and all(src.shape == (4, 9) for src in seen)
    lengths = {int((src[0] < 8).sum()) for src in seen}
    assert all(((src < 8).sum(1) == (src[0] < 8).sum()).all() for src in seen)
    if train_lens == "fixed":
        assert lengths == {6}
    else:
        assert len(lengths) > 2 and max(lengths) <= 6
    for src in seen:  # data first, then padding only
        n = int((src[0] < 8).sum())
        assert (src[:, :n] < 8).all() and (src[:, n:] == 8).all()


def test_forget_bias_starts_the_lstms_forget_gate_open():
    model = copytask.Seq2Seq("lstm", 5, 6, embed_size=4, forget_bias=1.0)
    for rnn in (model.encoder, model.decoder):
        assert torch.equal(rnn.bias_ih_l0, torch.tensor([0.0] * 6 + [1.0] * 6 + [0.0] * 12))
        assert torch.equal(rnn.bias_hh_l0, torch.zeros(24))
    plain = copytask.Seq2Seq("lstm", 5, 6, embed_size=4)
    assert plain.encoder.bias_ih_l0.abs().min() > 0  # torch.nn's uniform initialisation
    with pytest.raises(ValueError):
        copytask.Seq2Seq("gru", 5, 6, forget_bias=1.0)


def test_constant_decoder_reads_the_start_token_at_every_step():
    model = copytask.Seq2Seq("gru", 5, 8, embed_size=4, decoder="constant")
    read = []
    model.decoder.register_forward_pre_hook(lambda module, args: read.append(args[0]))
    src = torch.randint(5, (3, 7))
    logits = model(src)
    assert logits.shape == (3, 7, 6)  # data tokens and padding
    assert torch.equal(read[0], model.embed.weight[model.start].expand(3, 7, 4))
    assert torch.equal(model.copy(src), logits.argmax(-1))


class _Copier(torch.nn.Module):
    """Copies its input but for chosen (sequence, position) pairs."""

    def __init__(self, vocab, wrong):
        super().__init__()
        self.vocab, self.wrong = vocab, wrong

    def copy(self, src):
        out = src.clone()
        for b, t in self.wrong:
            if b < len(out):
                out[b, t] = (out[b, t] + 1) % (self.vocab + 1)
        return out


def test_accuracy_scores_data_tokens_per_token_and_per_sequence():
    """Of 4 sequences of 5 data tokens padded to 8: one with two wrong tokens,
    one with one, and errors in the padding, which are not scored."""
    model = _Copier(10, wrong=[(0, 1), (0, 3), (2, 4), (1, 6), (3, 7)])
    acc = copytask.accuracy(model, 5, 4, seed=0, batch_size=4, pad_to=8)
    assert acc["token"] == pytest.approx(17 / 20)
    assert acc["sequence"] == pytest.approx(2 / 4)
    assert acc["per_position"] == pytest.approx([1, 0.75, 1, 0.75, 0.75])


def test_rmsprop_tf_follows_tensorflows_update():
    p = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = RMSPropTF([p], lr=0.1, decay=0.9, momentum=0.5, eps=0.0)
    ms, mom, want = torch.ones(2), torch.zeros(2), p.detach().clone()
    for g in (torch.tensor([2.0, -1.0]), torch.tensor([0.5, 3.0])):
        p.grad = g.clone()
        opt.step()
        ms = 0.9 * ms + 0.1 * g * g  # the mean square starts at 1
        mom = 0.5 * mom + 0.1 * g / ms.sqrt()
        want -= mom
        assert torch.allclose(p.detach(), want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_linear_lr_decay_steps_the_optimizer_from_lr_to_zero(optimizer):
    model = copytask.Seq2Seq("gru", 4, 8, embed_size=4)
    seen = []
    real = copytask.make_optimizer

    def recording(name, params, lr):
        opt = real(name, params, lr)
        opt.register_step_pre_hook(lambda o, args, kw: seen.append(o.param_groups[0]["lr"]))
        return opt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(copytask, "make_optimizer", recording)
        copytask.train(model, 8, 4, 3, 1e-2, 0, optimizer=optimizer, lr_decay="linear")
        assert seen == pytest.approx([1e-2 * (1 - i / 8) for i in range(8)])
        seen.clear()
        copytask.train(model, 3, 4, 3, 1e-2, 0, optimizer=optimizer)
        assert seen == [1e-2] * 3  # constant: the default


def test_copytask_learns_to_copy_short_sequences():
    """The encoder's state reaches the decoder: chance is 25% per token."""
    torch.manual_seed(0)
    model = copytask.Seq2Seq("gru", 4, 48, backend="fastrnn")
    assert type(model.encoder) is fastrnn.GRU
    copytask.train(model, 250, 32, 3, 1e-2, seed=0)
    acc = copytask.accuracy(model, 3, 300, seed=1)
    assert acc["token"] > 0.9 and acc["sequence"] > 0.75
    assert acc["token"] == pytest.approx(sum(acc["per_position"]) / 3)


def test_report_model_learns_to_copy_padded_sequences():
    """The report's model (LSTM, constant decoder input, RMSProp, fixed
    length, padding in the loss) on a small scale copies 3 tokens padded to 5."""
    torch.manual_seed(0)
    model = copytask.Seq2Seq("lstm", 4, 32, embed_size=16, decoder="constant", forget_bias=1.0)
    assert type(model.encoder) is fastrnn.LSTM
    kw = dict(optimizer="rmsprop", clip=0.0, train_lens="fixed", pad_to=5)
    copytask.train(model, 200, 32, 3, 5e-3, seed=0, **kw)
    acc = copytask.accuracy(model, 3, 300, seed=1, pad_to=5)
    assert acc["token"] > 0.9 and acc["sequence"] > 0.75


def _tiny_train(path, on_step=None, every_s=300.0, run=None):
    torch.manual_seed(0)
    model = copytask.Seq2Seq("lstm", 5, 8, embed_size=4)
    result = copytask.train(
        model,
        6,
        4,
        3,
        1e-2,
        0,
        on_step,
        lr_decay="linear",
        checkpoint=path,
        run=run or {"cell": "lstm"},
        checkpoint_every_s=every_s,
    )
    return model, result


def test_interrupted_training_resumes_at_the_step_after_its_last_save(tmp_path):
    straight, (steps, loss, _) = _tiny_train(tmp_path / "straight.pt")
    path = tmp_path / "interrupted.pt"
    taken = []

    def ctrl_c(step, loss):
        taken.append(step)
        if step == 3:  # saved after steps 0..2
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _tiny_train(path, ctrl_c, every_s=0.0)  # a save after every step
    assert torch.load(path, weights_only=False)["progress"]["done"] == 3
    taken.clear()
    resumed, (resumed_steps, resumed_loss, _) = _tiny_train(path, lambda s, l: taken.append(s))
    assert taken == [3, 4, 5]  # the interrupted step again, then on
    assert (resumed_steps, resumed_loss) == (steps, loss)
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # finished: loaded, not trained again
    taken.clear()
    again, (again_steps, again_loss, _) = _tiny_train(path, lambda s, l: taken.append(s))
    assert taken == [] and (again_steps, again_loss) == (steps, loss)
    assert all(torch.equal(a[k], v) for k, v in again.state_dict().items())


def test_checkpoint_of_other_settings_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    _tiny_train(path, run={"cell": "lstm", "lr": 1e-2})
    with pytest.raises(ValueError, match="another run"):
        _tiny_train(path, run={"cell": "lstm", "lr": 3e-3})


def test_the_command_run_again_only_tests_its_finished_cells(tmp_path, capsys):
    argv = ["--cells", "gru", "--steps", "5", "--train-len", "3", "--test-lens", "3"]
    argv += ["--hidden-size", "8", "--test-size", "20", "--no-progress", "--out", str(tmp_path)]
    assert copytask.main(argv) == 0
    first = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert (tmp_path / "checkpoints" / "gru.pt").exists()
    capsys.readouterr()
    assert copytask.main(argv) == 0
    assert "resuming from" in capsys.readouterr().out
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == first
    with pytest.raises(ValueError, match="another run"):
        copytask.main(argv + ["--lr", "0.1"])
