"""The copy task: can an encoder-decoder copy a sequence longer than any it
was trained on?

    python -m experiments.copytask                    # lstm and gru, train up to 20, test 10,20,30
    python -m experiments.copytask --cells lstm --train-len 10 --test-lens 5,10,15,20
    python -m experiments.copytask --preset report --experiment train20pad10

An encoder (fastrnn.LSTM or fastrnn.GRU) reads a sequence of random tokens;
its final state starts a decoder of the same cell, which must write the
sequence back, one token per step.

Today's defaults (--preset default): teacher forcing in training (the
decoder reads the start token, then the true previous token), each batch of
one length drawn uniformly from 1..--train-len; at test, greedy decoding (the
decoder reads its own previous output).

--preset report: the lab report's settings (LSTM, 256 tokens, hidden 500,
embedding 100, batches of 128, RMSProp in TensorFlow's form with momentum
0.9 and lr 6e-4, no gradient clipping, 15,000 steps). As the report's code,
every training sequence is exactly --train-len tokens, the decoder reads a
constant start token at every step (in training and at test alike, so the
state alone carries the sequence), and the loss counts the padding.

Padding (--pad-to N): a sequence shorter than N tokens is followed by
padding tokens up to N, in training and at test; the decoder writes N tokens
and must write the padding too. --experiment names the report's three
studies (EXPERIMENTS): trained on 20 and tested at 10, 20, 30 (a fixed
length-20 graph: the test at 10 is padded to 20); trained on 20 padded to 30
and tested at 10, 20, 30; trained on 30 padded to 50 and tested at 20, 30, 50.

Reported per test length: the share of data tokens copied right (token
accuracy: the report's test_acc) and of sequences with every data token
right (sequence accuracy); the padding is not scored. Beyond the training
lengths the whole state has to hold more than it ever held: that is where
length generalisation breaks.

Checkpoints (--checkpoints, default OUT/checkpoints): one file per cell,
saved at least every 5 minutes and when its training ends. The same command
run again goes on at the step after the last save (the report's 15,000 steps
are hours here) and ends as the run uninterrupted would; a finished cell is
only tested again. A checkpoint of other settings is refused.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .charmodels import RECURRENT
from .chartrain import decayed_lr
from .cli import add_lr_decay, comma_list
from .rmsprop import RMSPropTF
from .runio import atomic_path, cpu_name, progress

__all__ = [
    "PRESETS",
    "EXPERIMENTS",
    "Seq2Seq",
    "random_batch",
    "make_optimizer",
    "train",
    "accuracy",
    "main",
]

# Hyperparameters; command-line flags override them.
PRESETS = {
    "default": dict(
        cells=["lstm", "gru"],
        vocab=8,
        hidden_size=128,
        embed_size=32,
        batch_size=64,
        optimizer="adam",
        lr=3e-3,
        clip=5.0,
        steps=10000,
        decoder="teacher",
        train_lens="uniform",
        forget_bias=None,
    ),
    # The lab report: BasicLSTMCell(500), embedding 100, batch 128,
    # RMSPropOptimizer(learning_rate=0.0006, momentum=0.9), about 15,000
    # iterations; its code: tokens 1..256 (0 pads), a constant decoder input,
    # fixed training length, loss weights 1 at every position, no clipping,
    # and BasicLSTMCell's forget bias of 1 (its other biases start at 0).
    "report": dict(
        cells=["lstm"],
        vocab=256,
        hidden_size=500,
        embed_size=100,
        batch_size=128,
        optimizer="rmsprop",
        lr=6e-4,
        clip=0.0,
        steps=15000,
        decoder="constant",
        train_lens="fixed",
        forget_bias=1.0,
    ),
}

# The report's studies: lengths, padding and, where the report trained
# longer, steps. They override the preset and are overridden by flags.
EXPERIMENTS = {
    "train20": dict(train_len=20, pad_to=20, test_lens=[10, 20, 30]),
    "train20pad10": dict(train_len=20, pad_to=30, test_lens=[10, 20, 30]),
    "train30pad20": dict(train_len=30, pad_to=50, test_lens=[20, 30, 50], steps=100000),
}

BUILT_IN = dict(train_len=20, pad_to=0, test_lens=[10, 20, 30])


class Seq2Seq(nn.Module):
    """Tokens 0..vocab-1 are data, `vocab` pads, `vocab + 1` starts the
    decoder. decoder="teacher": the decoder reads the start token, then the
    previous token (the true one in training, its own at test);
    decoder="constant": it reads the start token at every step. forget_bias
    (LSTM only): every bias starts at 0 but the forget gate's, which starts
    at forget_bias (TensorFlow's BasicLSTMCell adds 1 there); None keeps
    torch.nn's initialisation."""

    def __init__(
        self,
        cell,
        vocab,
        hidden_size,
        num_layers=1,
        embed_size=32,
        backend="fastrnn",
        decoder="teacher",
        forget_bias=None,
    ):
        super().__init__()
        if decoder not in ("teacher", "constant"):
            raise ValueError(f"unknown decoder input {decoder!r}")
        torch_cls, fast_cls, _ = RECURRENT[cell]
        cls = fast_cls if backend == "fastrnn" else torch_cls
        self.vocab, self.pad, self.start = vocab, vocab, vocab + 1
        self.decoder_input = decoder
        self.embed = nn.Embedding(vocab + 2, embed_size)
        self.encoder = cls(embed_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.decoder = cls(embed_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab + 1)  # data tokens and padding
        if forget_bias is not None:
            if cell != "lstm":
                raise ValueError("forget_bias is an LSTM's")
            for rnn in (self.encoder, self.decoder):
                for name, bias in rnn.named_parameters():
                    if name.startswith("bias_"):
                        nn.init.zeros_(bias)
                    if name.startswith("bias_ih"):  # gates i, f, g, o: f is the second
                        nn.init.constant_(bias[hidden_size : 2 * hidden_size], forget_bias)

    def _starts(self, batch, steps):
        return torch.full((batch, steps), self.start, dtype=torch.long)

    def forward(self, src):
        """Logits [B, T, vocab + 1] of copying src [B, T], teacher-forced when
        the decoder reads previous tokens."""
        _, state = self.encoder(self.embed(src))
        if self.decoder_input == "constant":
            dec_in = self._starts(len(src), src.size(1))
        else:
            dec_in = torch.cat([self._starts(len(src), 1), src[:, :-1]], 1)
        out, _ = self.decoder(self.embed(dec_in), state)
        return self.head(out)

    @torch.no_grad()
    def copy(self, src):
        """The model's copy of src [B, T]: greedy decoding of T tokens."""
        if self.decoder_input == "constant":
            return self(src).argmax(-1)
        _, state = self.encoder(self.embed(src))
        token, outputs = self._starts(len(src), 1), []
        for _ in range(src.size(1)):
            out, state = self.decoder(self.embed(token), state)
            token = self.head(out).argmax(-1)
            outputs.append(token)
        return torch.cat(outputs, 1)


def random_batch(batch, length, vocab, gen, pad_to=0):
    """[batch, max(length, pad_to)]: `length` random data tokens, then the
    padding token `vocab` up to pad_to."""
    data = torch.randint(vocab, (batch, length), generator=gen)
    if pad_to <= length:
        return data
    return torch.cat([data, torch.full((batch, pad_to - length), vocab, dtype=torch.long)], 1)


def make_optimizer(name, params, lr):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "rmsprop":
        return RMSPropTF(params, lr=lr, decay=0.9, momentum=0.9)
    raise ValueError(f"unknown optimizer {name!r}")


def _resume(path, model, opt, gen, run):
    """The progress saved in `path` (see save in train), its model,
    optimizer and generator loaded into these; None when there is no
    checkpoint yet. Refuses the checkpoint of another run (`run` differs)."""
    if path is None or not Path(path).exists():
        return None
    state = torch.load(path, weights_only=False)
    if state["run"] != run:
        raise ValueError(
            f"{path} is a checkpoint of another run ({state['run']}); "
            "remove it or give another --checkpoints folder"
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    gen.set_state(state["generator"])
    return state["progress"]


def train(
    model,
    steps,
    batch_size,
    train_len,
    lr,
    seed,
    on_step=None,
    *,
    optimizer="adam",
    clip=5.0,
    train_lens="uniform",
    pad_to=0,
    time_budget=None,
    lr_decay="constant",
    checkpoint=None,
    run=None,
    checkpoint_every_s=300.0,
):
    """train_lens="uniform": each batch's length drawn from 1..train_len;
    "fixed": every batch train_len. Training stops after `steps` steps or,
    given time_budget, after the step that spends it. lr_decay: "constant",
    or "linear" from lr to 0 at that end (chartrain.decayed_lr).

    checkpoint: a path where the model, the optimizer, the generator and the
    progress are saved after the first step that ends checkpoint_every_s
    seconds after the last save (0: after every step) and at the end, and
    resumed from when it exists: an interrupted run goes on at the step
    after its last save and ends as the same run uninterrupted would (but
    for where the clock falls, under a time budget or a time-decayed rate).
    A finished run's checkpoint is only loaded. run: what identifies the run
    (its settings), saved with it and checked on resuming.

    Returns (steps taken, the mean training loss per token, padding
    included, over the last tenth of the planned steps, at most the last 100
    under a time budget: one batch's loss says little when its length is
    random, the training time in seconds, saves excluded)."""
    gen = torch.Generator().manual_seed(seed)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    # done: steps taken; losses: (summed loss, tokens) of the last `tail` steps
    progress = _resume(checkpoint, model, opt, gen, run) or {
        "done": 0,
        "losses": [],
        "train_time_s": 0.0,
        "finished": False,
    }
    done, losses = progress["done"], progress["losses"]
    if progress["finished"]:
        return done, _mean_loss(losses), progress["train_time_s"]
    model.train()
    tail = min(max(1, steps // 10), 100) if time_budget is not None else max(1, steps // 10)

    def save(train_time, finished):
        with atomic_path(checkpoint) as tmp:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "generator": gen.get_state(),
                    "progress": {
                        "done": done,
                        "losses": losses,
                        "train_time_s": train_time,
                        "finished": finished,
                    },
                    "run": run,
                },
                tmp,
            )

    # the run's clock: time.perf_counter() - began includes the time of the
    # steps taken before an interruption
    began = time.perf_counter() - progress["train_time_s"]
    saved_at = time.perf_counter()
    while done < steps:
        spent = time.perf_counter() - began
        for group in opt.param_groups:
            group["lr"] = decayed_lr(lr, lr_decay, done, steps, spent, time_budget or 0.0)
        if train_lens == "fixed":
            length = train_len
        else:
            length = int(torch.randint(1, train_len + 1, (1,), generator=gen))
        src = random_batch(batch_size, length, model.vocab, gen, pad_to)
        loss = F.cross_entropy(model(src).flatten(0, 1), src.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        losses = (losses + [(loss.item() * src.numel(), src.numel())])[-tail:]
        done += 1
        if on_step is not None:
            on_step(done - 1, loss.item())
        if time_budget is not None and time.perf_counter() - began >= time_budget:
            break
        due = time.perf_counter() - saved_at >= checkpoint_every_s
        if checkpoint is not None and due and done < steps:
            paused = time.perf_counter()
            save(paused - began, finished=False)
            saved_at = time.perf_counter()
            began += saved_at - paused  # saving is not training time
    train_time = time.perf_counter() - began
    if checkpoint is not None:
        save(train_time, finished=True)
    return done, _mean_loss(losses), train_time


def _mean_loss(losses):
    """Per token, over (summed loss, tokens) pairs."""
    return sum(v for v, _ in losses) / sum(n for _, n in losses)


def score(copied, src, length):
    """Hits [B, length] of the data tokens: the padding is not scored."""
    return copied[:, :length] == src[:, :length]


def accuracy(model, length, samples, seed, batch_size=500, pad_to=0):
    """The model's copies of `samples` random sequences of `length` data
    tokens (padded to pad_to): {"token": share of data tokens right,
    "sequence": share of sequences with every data token right,
    "per_position": share right at each data position}."""
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    right_at = torch.zeros(length)
    right_seqs = 0
    for start in range(0, samples, batch_size):
        src = random_batch(min(batch_size, samples - start), length, model.vocab, gen, pad_to)
        hit = score(model.copy(src), src, length)
        right_at += hit.sum(0)
        right_seqs += hit.all(1).sum().item()
    model.train()
    per_position = (right_at / samples).tolist()
    return {
        "token": sum(per_position) / length,
        "sequence": right_seqs / samples,
        "per_position": per_position,
    }


def format_table(rows, train_len):
    lines = [
        f"{'cell':<6}{'test len':>9}{'':>4}{'token acc':>11}{'sequence acc':>14}"
        f"{'token acc at positions':>24}",
        f"{'':<44}{f'1..{train_len}':>12}{f'{train_len + 1}..':>12}",
    ]
    for r in rows:
        seen = "in" if r["test_len"] <= train_len else "OUT"
        pos = r["per_position"]
        within = 100 * sum(pos[:train_len]) / len(pos[:train_len])
        beyond = (
            f"{100 * sum(pos[train_len:]) / len(pos[train_len:]):>11.1f}%"
            if len(pos) > train_len
            else f"{'':>12}"
        )
        lines.append(
            f"{r['cell']:<6}{r['test_len']:>9}{seen:>4}{100 * r['token_accuracy']:>10.1f}%"
            f"{100 * r['sequence_accuracy']:>13.1f}%{within:>11.1f}%{beyond}"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m experiments.copytask",
        description="Encoder-decoder copy task on fastrnn: train on lengths up to --train-len, "
        "test per-token and whole-sequence accuracy at each of --test-lens. Settings come from "
        "--preset, then --experiment, then the flags given.",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="hyperparameters: default (today's), report (the lab report's)",
    )
    p.add_argument(
        "--experiment",
        choices=sorted(EXPERIMENTS),
        default=None,
        help="the report's lengths: train20 (test 10,20,30), train20pad10 (train 20 padded to "
        "30, test 10,20,30), train30pad20 (train 30 padded to 50, test 20,30,50; 100000 steps)",
    )
    p.add_argument("--cells", type=comma_list("cell", tuple(RECURRENT)), default=None)
    p.add_argument("--train-len", type=int, default=None, help="(default 20)")
    p.add_argument(
        "--pad-to",
        type=int,
        default=None,
        help="pad sequences shorter than this, in training and test (default 0: none)",
    )
    p.add_argument(
        "--test-lens", type=comma_list("length", cast=int), default=None, help="(default 10,20,30)"
    )
    p.add_argument(
        "--train-lens",
        choices=("uniform", "fixed"),
        default=None,
        help="uniform: each batch 1..--train-len long; fixed: --train-len",
    )
    p.add_argument(
        "--decoder",
        choices=("teacher", "constant"),
        default=None,
        help="decoder input: teacher (previous token) or constant (the start token)",
    )
    p.add_argument("--vocab", type=int, default=None, help="distinct data tokens")
    p.add_argument("--hidden-size", type=int, default=None)
    p.add_argument("--embed-size", type=int, default=None)
    p.add_argument("--num-layers", type=int, default=1, help="(default 1)")
    p.add_argument(
        "--forget-bias",
        type=float,
        default=None,
        help="LSTM: biases start at 0, the forget gate's at this (report preset: 1)",
    )
    p.add_argument("--steps", type=int, default=None, help="training batches")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--optimizer", choices=("adam", "rmsprop"), default=None)
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--clip", type=float, default=None, help="gradient norm clip (0: none)")
    add_lr_decay(p)
    p.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="S",
        help="stop each cell's training after S seconds (the steps taken are reported)",
    )
    p.add_argument("--test-size", type=int, default=1000, help="random sequences per test length")
    p.add_argument("--backend", choices=("fastrnn", "torch"), default="fastrnn")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        default="copytask-out",
        metavar="DIR",
        help="results.json goes here (default copytask-out)",
    )
    p.add_argument(
        "--checkpoints",
        metavar="DIR",
        help="one checkpoint per cell, saved at least every 5 minutes and at the end; the same "
        "command run again resumes from them (default OUT/checkpoints)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    settings = {**PRESETS[args.preset], **BUILT_IN}
    if args.experiment:
        settings.update(EXPERIMENTS[args.experiment])
    for key, value in settings.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    sizes = [args.train_len, args.vocab, args.steps, args.test_size, args.batch_size]
    if min(sizes + args.test_lens) < 1 or args.pad_to < 0:
        p.error("lengths, --vocab, --steps, --batch-size and --test-size must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tqdm = progress(not args.no_progress)
    lengths = f"exactly {args.train_len}" if args.train_lens == "fixed" else f"1..{args.train_len}"
    padding = f", padded to {args.pad_to}" if args.pad_to > args.train_len else ""
    print(
        f"copy task ({args.preset} preset{', ' + args.experiment if args.experiment else ''}): "
        f"{args.vocab} tokens, trained on lengths {lengths}{padding} for {args.steps} steps of "
        f"{args.batch_size}, hidden {args.hidden_size}, embedding {args.embed_size}, "
        f"{args.optimizer} lr {args.lr} ({args.lr_decay}), decoder input {args.decoder}, "
        f"forget bias {args.forget_bias}, {args.backend}, "
        f"{torch.get_num_threads()} threads, {cpu_name()}",
        flush=True,
    )
    checkpoints = Path(args.checkpoints) if args.checkpoints else Path(args.out) / "checkpoints"
    # what a cell's checkpoint must agree on: the settings that shape its
    # training (not the tests, the threads or where files go)
    not_run = ("cells", "test_lens", "test_size", "threads", "out", "checkpoints", "no_progress")
    settings = {k: v for k, v in vars(args).items() if k not in not_run}
    rows = []
    for cell in args.cells:
        torch.manual_seed(args.seed)
        model = Seq2Seq(
            cell,
            args.vocab,
            args.hidden_size,
            args.num_layers,
            embed_size=args.embed_size,
            backend=args.backend,
            decoder=args.decoder,
            forget_bias=args.forget_bias if cell == "lstm" else None,
        )
        bar = (
            None
            if tqdm is None
            else tqdm(total=args.steps, desc=cell, unit="step", file=sys.stderr, leave=False)
        )

        def on_step(step, loss, bar=bar):
            if bar is not None:
                bar.n = step + 1  # a resumed run starts past 0
                if step % 50 == 0:
                    bar.set_postfix(loss=f"{loss:.3f}")

        path = checkpoints / f"{cell}.pt"
        if path.exists():
            print(f"  {cell}: resuming from {path}", flush=True)
        steps, loss, train_time = train(
            model,
            args.steps,
            args.batch_size,
            args.train_len,
            args.lr,
            args.seed,
            on_step,
            optimizer=args.optimizer,
            clip=args.clip,
            train_lens=args.train_lens,
            pad_to=args.pad_to,
            time_budget=args.time_budget,
            lr_decay=args.lr_decay,
            checkpoint=path,
            run={"cell": cell, **settings},
        )
        if bar is not None:
            bar.close()
        print(
            f"  {cell}: {steps} steps, training loss {loss:.4f} (the last steps), "
            f"{train_time:.1f} s, {1000 * train_time / steps:.0f} ms per step",
            flush=True,
        )
        for length in args.test_lens:
            acc = accuracy(model, length, args.test_size, args.seed + 1, pad_to=args.pad_to)
            rows.append(
                {
                    "cell": cell,
                    "test_len": length,
                    "token_accuracy": acc["token"],
                    "sequence_accuracy": acc["sequence"],
                    "per_position": acc["per_position"],
                    "train_len": args.train_len,
                    "pad_to": args.pad_to,
                    "steps": steps,
                    "train_time_s": train_time,
                    "train_loss": loss,
                }
            )
    print()
    print(format_table(rows, args.train_len))
    print(f"(in: a length seen in training; OUT: longer; chance per token {100 / args.vocab:.1f}%)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({"options": vars(args), "cpu": cpu_name(), "rows": rows}, indent=1) + "\n"
    )
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
