"""The copy task: can an encoder-decoder copy a sequence longer than any it
was trained on?

    python -m experiments.copytask                    # lstm and gru, train up to 20, test 10,20,30
    python -m experiments.copytask --cells lstm --train-len 10 --test-lens 5,10,15,20

An encoder (fastrnn.LSTM or fastrnn.GRU) reads a sequence of random tokens;
its final state starts a decoder of the same cell, which must write the
sequence back, one token per step. Training: teacher forcing (the decoder
reads the start token, then the true previous token), each batch of one
length drawn uniformly from 1..--train-len. Test: greedy decoding (the
decoder reads its own previous output) of exactly as many tokens as the
input had, on fresh random sequences of each --test-lens. Reported: the
share of tokens copied right (per-token accuracy) and of sequences copied
without a single error (whole-sequence accuracy). Beyond the training
lengths the whole state has to hold more than it ever held: that is where
length generalisation breaks.
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

__all__ = ["Seq2Seq", "random_batch", "train", "accuracy", "main"]


class Seq2Seq(nn.Module):
    """Tokens 0..vocab-1 are data; token `vocab` starts the decoder."""

    def __init__(self, cell, vocab, hidden_size, num_layers=1, embed_size=32, backend="fastrnn"):
        super().__init__()
        torch_cls, fast_cls, _ = RECURRENT[cell]
        cls = fast_cls if backend == "fastrnn" else torch_cls
        self.vocab = vocab
        self.embed = nn.Embedding(vocab + 1, embed_size)
        self.encoder = cls(embed_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.decoder = cls(embed_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab)

    def _start(self, batch):
        return torch.full((batch, 1), self.vocab, dtype=torch.long)

    def forward(self, src):
        """Teacher-forced logits [B, T, vocab] of copying src [B, T]."""
        _, state = self.encoder(self.embed(src))
        dec_in = torch.cat([self._start(len(src)), src[:, :-1]], 1)
        out, _ = self.decoder(self.embed(dec_in), state)
        return self.head(out)

    @torch.no_grad()
    def copy(self, src):
        """Greedy decoding of len(src[0]) tokens."""
        _, state = self.encoder(self.embed(src))
        token, outputs = self._start(len(src)), []
        for _ in range(src.size(1)):
            out, state = self.decoder(self.embed(token), state)
            token = self.head(out).argmax(-1)
            outputs.append(token)
        return torch.cat(outputs, 1)


def random_batch(batch, length, vocab, gen):
    return torch.randint(vocab, (batch, length), generator=gen)


def train(model, steps, batch_size, train_len, lr, seed, on_step=None):
    """Returns the mean training loss per token over the last tenth of the
    steps (one batch's loss says little: its length is random)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    tail_loss, tail_tokens = 0.0, 0
    for step in range(steps):
        length = int(torch.randint(1, train_len + 1, (1,), generator=gen))
        src = random_batch(batch_size, length, model.vocab, gen)
        loss = F.cross_entropy(model(src).flatten(0, 1), src.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if step >= steps - max(1, steps // 10):
            tail_loss += loss.item() * src.numel()
            tail_tokens += src.numel()
        if on_step is not None:
            on_step(step, loss.item())
    return tail_loss / tail_tokens


def accuracy(model, length, samples, seed, batch_size=500):
    """Greedy copies of `samples` random sequences of `length` tokens:
    {"token": share of tokens right, "sequence": share of sequences right
    throughout, "per_position": share right at each position}."""
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    right_at = torch.zeros(length)
    right_seqs = 0
    for start in range(0, samples, batch_size):
        src = random_batch(min(batch_size, samples - start), length, model.vocab, gen)
        hit = model.copy(src) == src
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


def _ints(text):
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m experiments.copytask",
        description="Encoder-decoder copy task on fastrnn: train on lengths up to --train-len, "
        "test per-token and whole-sequence accuracy at each of --test-lens.",
    )
    p.add_argument(
        "--cells", default="lstm,gru", help="comma-separated: rnn, lstm, gru (default lstm,gru)"
    )
    p.add_argument("--train-len", type=int, default=20, help="(default 20)")
    p.add_argument("--test-lens", type=_ints, default=[10, 20, 30], help="(default 10,20,30)")
    p.add_argument("--vocab", type=int, default=8, help="distinct tokens (default 8)")
    p.add_argument("--hidden-size", type=int, default=128, help="(default 128)")
    p.add_argument("--num-layers", type=int, default=1, help="(default 1)")
    p.add_argument(
        "--steps",
        type=int,
        default=10000,
        help="training batches (default 10000: a few minutes on 2 cores)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="(default 64)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate (default 3e-3)")
    p.add_argument(
        "--test-size",
        type=int,
        default=1000,
        help="random sequences per test length (default 1000)",
    )
    p.add_argument("--backend", choices=("fastrnn", "torch"), default="fastrnn")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        default="copytask-out",
        metavar="DIR",
        help="results.json goes here (default copytask-out)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    args.cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    bad = [c for c in args.cells if c not in RECURRENT]
    if bad or not args.cells:
        p.error(f"unknown cell(s) {bad}; choose from {', '.join(RECURRENT)}")
    if min([args.train_len, args.vocab, args.steps, args.test_size] + args.test_lens) < 1:
        p.error("lengths, --vocab, --steps and --test-size must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    print(
        f"copy task: {args.vocab} tokens, trained on lengths 1..{args.train_len} for "
        f"{args.steps} steps of {args.batch_size}, hidden {args.hidden_size}, "
        f"{args.backend}, {torch.get_num_threads()} threads",
        flush=True,
    )
    rows, times = [], {}
    for cell in args.cells:
        torch.manual_seed(args.seed)
        model = Seq2Seq(cell, args.vocab, args.hidden_size, args.num_layers, backend=args.backend)
        bar = (
            None
            if tqdm is None or args.no_progress
            else tqdm(total=args.steps, desc=cell, unit="step", file=sys.stderr, leave=False)
        )

        def on_step(step, loss, bar=bar):
            if bar is not None:
                bar.update(1)
                if step % 50 == 0:
                    bar.set_postfix(loss=f"{loss:.3f}")

        began = time.perf_counter()
        loss = train(
            model, args.steps, args.batch_size, args.train_len, args.lr, args.seed, on_step
        )
        times[cell] = time.perf_counter() - began
        if bar is not None:
            bar.close()
        print(
            f"  {cell}: training loss {loss:.4f} (last tenth of the steps), {times[cell]:.1f} s",
            flush=True,
        )
        for length in args.test_lens:
            acc = accuracy(model, length, args.test_size, args.seed + 1)
            rows.append(
                {
                    "cell": cell,
                    "test_len": length,
                    "token_accuracy": acc["token"],
                    "sequence_accuracy": acc["sequence"],
                    "per_position": acc["per_position"],
                    "train_len": args.train_len,
                    "train_time_s": times[cell],
                    "train_loss": loss,
                }
            )
    print()
    print(format_table(rows, args.train_len))
    print(
        f"(in: a length seen in training, 1..{args.train_len}; OUT: longer; chance per token "
        f"{100 / args.vocab:.1f}%)"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({"options": vars(args), "rows": rows}, indent=1) + "\n"
    )
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
