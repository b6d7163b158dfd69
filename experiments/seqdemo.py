"""GRU vs CNN vs attention learning a text, as the sequence-learning demo runs
them (chunk 200, hidden 64, 1000 iterations, Adam at 1e-3; attention also at
hidden 32, "about the same computation"), the GRU on fastrnn.GRU.

    python -m experiments.seqdemo                            # the Zen of Python
    python -m experiments.seqdemo --corpus tinyshakespeare --threads 1

The protocol, as the demo's run writes it:

  * an iteration draws one chunk of chunk_len + 1 consecutive characters at a
    random place in the whole text (no validation part: the demo measures how
    well each model learns, memorises, the text it is shown) and takes one
    Adam step on it, batch 1, no gradient clipping;
  * gru: embedding (hidden wide) -> one GRU layer -> linear over the
    vocabulary, run over the chunk from a zero state; the loss sums the
    cross-entropy of the next character at all chunk_len positions;
  * cnn and attention see a window of `window` (the demo's pint, 16) characters
    and predict the one after it: every window of the chunk, chunk_len - window
    of them, each with its place in the chunk, c / chunk_len - 0.5, added to
    every feature of its embeddings; the loss sums over the windows. The
    models are WindowCNN and WindowAttention below;
  * the loss an iteration reports is that sum over the number of predictions;
    the run reports the minimum of the 1000 (the demo's "minimum loss during
    training"), the last one, and the mean of the last 100 (one chunk's loss
    is noisy, and the minimum picks the luckiest chunk);
  * elapsed time is the training loop's wall time;
  * the sample: 100 characters drawn at temperature 0.8 after a prompt from a
    random place of the text (the gru reads window + 1 characters first, the
    window models a window; their position runs p / 100 - 0.5 over the
    generated characters, as the demo's generator sets it).

Differences from the demo's run, all on purpose: the vocabulary is the text's
own characters (the demo's is string.printable, 100 characters, which changes
the embedding and the output layer's sizes only); windows are batched (the
same sum of losses and gradient as the demo's loop over them); a chunk always
has chunk_len + 1 characters (the demo's last possible start gave one fewer);
no samples are generated during training (the demo's elapsed time includes 40
of them). Its texts (test_easy, tailor_swift_lyrics) are not available: this
runs on the built-in text (short: memorisation, as test_easy) and on Tiny
Shakespeare (as the lyrics, far more text than 1000 chunks can memorise).

Outputs in --out/<text name>: results.json (one row per model), losses.json
(every iteration's loss), run.json (options, text, machine), results.md (the
table, the demo's published figures and whether the ranking holds).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .charmodels import CharRNN, check_backend, count_params
from .chartrain import Vocabulary, sample
from .cli import comma_list
from .corpora import CORPORA, CorpusUnavailable, load_text
from .runio import loadavg, machine, markdown, write_atomic

__all__ = [
    "KINDS",
    "DEMO",
    "WindowCNN",
    "WindowAttention",
    "build",
    "flops_per_char",
    "chunk_loss",
    "train_model",
    "generate",
    "ranking",
    "markdown_table",
    "parse_args",
    "main",
]

KINDS = ("gru", "cnn", "attention")
DEFAULT_MODELS = (("gru", 64), ("cnn", 64), ("attention", 64), ("attention", 32))

# The demo's published runs: (kind, hidden) -> {its text: (minimum loss, elapsed s)}
DEMO = {
    ("gru", 64): {"test_easy": (0.057, 90), "tailor_swift_lyrics": (1.56, 95)},
    ("cnn", 64): {"test_easy": (0.00030, 100), "tailor_swift_lyrics": (1.17, 94)},
    ("attention", 64): {"test_easy": (0.00026, 165), "tailor_swift_lyrics": (0.89, 154)},
    ("attention", 32): {"test_easy": (0.00077, 117), "tailor_swift_lyrics": (1.64, 121)},
}


def label(kind, hidden):
    return f"{kind}-{hidden}"


class WindowCNN(nn.Module):
    """The demo's CNN: the window's embeddings plus its position, one
    convolution as wide and as long as the window (window x hidden inputs ->
    hidden channels), ReLU, linear, ReLU, linear over the vocabulary. A
    convolution that spans its whole input is a linear map of the flattened
    window, and is written as one: the same weights (and the same
    initialisation) at a fraction of a float64 Conv2d's time.
    ids [B, window], position [B] -> logits [B, vocab] of the character
    after the window."""

    def __init__(self, vocab_size, hidden_size, window):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden_size)
        self.conv = nn.Linear(window * hidden_size, hidden_size)
        self.fc = nn.Linear(hidden_size, hidden_size)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids, position):
        x = self.embed(ids) + position[:, None, None]  # [B, window, hidden]
        x = F.relu(self.conv(x.flatten(1)))  # [B, hidden]
        return self.head(F.relu(self.fc(x)))

    def flops_per_char(self):
        """Forward FLOPs (2 per multiply-add) of one prediction."""
        H, V = self.fc.in_features, self.head.out_features
        W = self.conv.in_features // H
        return 2 * (W * H * H + H * H + H * V)


class WindowAttention(nn.Module):
    """The demo's attention model: a convolution over the whole window (as
    the CNN's, a linear map of the flattened window) makes one context
    vector; every position of the window
    attends to it with dot-product attention and is combined with what it
    reads, tanh(W [read; x_i] + b) (the seq2seq attention layer); a second
    whole-window convolution and the linear over the vocabulary give the
    next character. With a single context vector to attend to, every
    attention weight is 1: each position is mixed with the window's summary.
    ids [B, window], position [B] -> logits [B, vocab]."""

    def __init__(self, vocab_size, hidden_size, window):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden_size)
        self.context = nn.Linear(window * hidden_size, hidden_size)
        self.combine = nn.Linear(2 * hidden_size, hidden_size)
        self.read = nn.Linear(window * hidden_size, hidden_size)
        self.head = nn.Linear(hidden_size, vocab_size)

    def attention_weights(self, x):
        """x [B, window, hidden] -> (weights [B, window, 1], context [B, 1, hidden])."""
        context = F.relu(self.context(x.flatten(1)))[:, None]
        return (x @ context.transpose(1, 2)).softmax(-1), context

    def forward(self, ids, position):
        x = self.embed(ids) + position[:, None, None]  # [B, window, hidden]
        weights, context = self.attention_weights(x)
        mixed = torch.tanh(self.combine(torch.cat([weights @ context, x], -1)))
        return self.head(F.relu(self.read(mixed.flatten(1))))

    def flops_per_char(self):
        H, V = self.combine.out_features, self.head.out_features
        W = self.context.in_features // H
        # two whole-window convolutions, scores and their use (W x 1 x H
        # each), the combining linear at every position, the output layer
        return 2 * (2 * W * H * H + 2 * W * H + W * 2 * H * H + H * V)


def build(kind, vocab_size, hidden_size, window, seed=0):
    """The model of `kind`, its weights from `seed` alone. The gru is
    charmodels' CharRNN on fastrnn.GRU with the embedding as wide as the
    hidden state (the demo's shape), checked to be fastrnn's."""
    torch.manual_seed(seed)
    if kind == "gru":
        model = CharRNN("gru", "fastrnn", vocab_size, hidden_size, hidden_size, 1)
        check_backend(model, "gru", "fastrnn")
    elif kind == "cnn":
        model = WindowCNN(vocab_size, hidden_size, window)
    elif kind == "attention":
        model = WindowAttention(vocab_size, hidden_size, window)
    else:
        raise ValueError(f"unknown model {kind!r}; choose from {', '.join(KINDS)}")
    return model


def flops_per_char(model):
    """Forward FLOPs of one predicted character (the embedding is a lookup)."""
    if isinstance(model, CharRNN):
        H, V = model.rnn.hidden_size, model.head.out_features
        return 2 * (3 * H * (model.embed.embedding_dim + H) + H * V)
    return model.flops_per_char()


def window_batch(chunk, window, dtype=torch.float32):
    """The windows of one chunk (chunk_len + 1 ids) as the demo forms them:
    (ids [n, window], position [n], target [n]) with n = chunk_len - window;
    window c is chunk[c : c + window], its target chunk[c + window], its
    position c / chunk_len - 0.5."""
    chunk_len = len(chunk) - 1
    n = chunk_len - window
    ids = chunk[:chunk_len].unfold(0, window, 1)[:n]
    position = torch.arange(n, dtype=dtype) / chunk_len - 0.5
    return ids, position, chunk[window : window + n]


def chunk_loss(model, chunk, window):
    """(summed cross-entropy, number of predictions) of one chunk."""
    if isinstance(model, CharRNN):
        logits = model(chunk[None, :-1])[0]
        return F.cross_entropy(logits, chunk[1:], reduction="sum"), len(chunk) - 1
    ids, position, target = window_batch(chunk, window, model.embed.weight.dtype)
    return F.cross_entropy(model(ids, position), target, reduction="sum"), len(target)


def random_chunk(ids, chunk_len, gen):
    start = int(torch.randint(len(ids) - chunk_len, (1,), generator=gen))
    return ids[start : start + chunk_len + 1]


def train_model(model, ids, iterations, chunk_len, window, lr, seed=0, on_step=None):
    """The demo's loop: one random chunk and one Adam step per iteration.
    Returns (losses per iteration, training wall time in s)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    began = time.perf_counter()
    for it in range(iterations):
        total, n = chunk_loss(model, random_chunk(ids, chunk_len, gen), window)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        losses.append(total.item() / n)
        if on_step is not None:
            on_step(it, losses[-1], time.perf_counter() - began)
    return losses, time.perf_counter() - began


@torch.no_grad()
def generate(model, vocab, prompt_ids, length, temperature=0.8, seed=0):
    """`length` characters after prompt_ids. The gru reads the whole prompt
    (chartrain.sample: from a zero state over everything so far, which is the
    state the demo carries from step to step); the window models slide their
    window over it, the position p / length - 0.5 at generated character p."""
    if isinstance(model, CharRNN):
        prompt = vocab.decode(prompt_ids)
        return sample(model, vocab, prompt, length, len(prompt) + length, temperature, seed)
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    win, out = prompt_ids.clone(), []
    for p in range(length):
        logits = model(win[None], torch.tensor([p / length - 0.5]))[0].double()
        nxt = torch.multinomial((logits / temperature).softmax(-1), 1, generator=gen)
        win = torch.cat([win[1:], nxt])
        out.append(int(nxt))
    model.train(was_training)
    return vocab.decode(torch.tensor(out))


def run_one(kind, hidden, vocab, ids, prompt_start, args, on_step=None):
    """Train one model; returns (row, losses)."""
    model = build(kind, len(vocab), hidden, args.window, args.seed)
    losses, elapsed = train_model(
        model, ids, args.iterations, args.chunk_len, args.window, args.lr, args.seed, on_step
    )
    prompt_len = args.window + 1 if kind == "gru" else args.window
    prompt = ids[prompt_start : prompt_start + prompt_len]
    tail = losses[-100:]
    row = {
        "model": label(kind, hidden),
        "kind": kind,
        "hidden": hidden,
        "min_loss": min(losses),
        "final_loss": losses[-1],
        "last100_mean_loss": sum(tail) / len(tail),
        "elapsed_s": elapsed,
        "params": count_params(model),
        "flops_per_char": flops_per_char(model),
        "recurrent_layer": f"{type(model.rnn).__module__}.{type(model.rnn).__qualname__}"
        if kind == "gru"
        else None,
        "prompt": vocab.decode(prompt),
        "sample": generate(model, vocab, prompt, args.sample, args.temperature, args.seed)
        if args.sample
        else "",
    }
    return row, losses


def _by_model(rows):
    return {(r["kind"], r["hidden"]): r for r in rows}


def ranking(rows, hidden=64, small=32):
    """Whether the runs show the demo's ranking: the CNN reaches a lower
    minimum loss than the GRU; the attention model at `hidden` the lowest of
    all; its parameters about twice the CNN's (1.5x to 2.5x). Each is None
    where a model it needs did not run. Also the order of the minimum
    losses, best first."""
    by = _by_model(rows)
    gru, cnn = by.get(("gru", hidden)), by.get(("cnn", hidden))
    att = by.get(("attention", hidden))
    others = [r for r in rows if r is not att]
    checks = {
        "cnn_below_gru": cnn["min_loss"] < gru["min_loss"] if gru and cnn else None,
        "attention_lowest": all(att["min_loss"] < r["min_loss"] for r in others)
        if att and others
        else None,
        "attention_params_over_cnn": att["params"] / cnn["params"] if att and cnn else None,
    }
    ratio = checks["attention_params_over_cnn"]
    checks["attention_about_twice_cnn"] = None if ratio is None else 1.5 <= ratio <= 2.5
    checks["order"] = [r["model"] for r in sorted(rows, key=lambda r: r["min_loss"])]
    shown = [checks[k] for k in ("cnn_below_gru", "attention_lowest", "attention_about_twice_cnn")]
    checks["demo_ranking"] = None if None in shown else all(shown)
    return checks


def demo_order(text):
    """The demo's own order of minimum losses on its text, best first."""
    return [label(*m) for m in sorted(DEMO, key=lambda m: DEMO[m][text][0])]


TABLE_HEAD = (
    "model",
    "min loss",
    "last-100 mean",
    "final loss",
    "elapsed s",
    "params",
    "kFLOP/char",
    "demo min loss (test_easy / lyrics)",
    "demo elapsed s",
)


def _loss(x):
    return f"{x:.5f}" if x < 0.01 else f"{x:.4f}"


def markdown_table(rows):
    lines = []
    for r in rows:
        demo = DEMO.get((r["kind"], r["hidden"]))
        lines.append(
            (
                r["model"],
                _loss(r["min_loss"]),
                _loss(r["last100_mean_loss"]),
                _loss(r["final_loss"]),
                f"{r['elapsed_s']:.1f}",
                f"{r['params']:,}",
                f"{r['flops_per_char'] / 1e3:.1f}",
                f"{demo['test_easy'][0]:g} / {demo['tailor_swift_lyrics'][0]:g}" if demo else "",
                f"{demo['test_easy'][1]} / {demo['tailor_swift_lyrics'][1]}" if demo else "",
            )
        )
    return markdown(TABLE_HEAD, lines)


def _yes(value):
    return {True: "yes", False: "no", None: "not run"}[value]


def report(name, rows, checks, info):
    """results.md: the text, the machine, the table, the ranking, samples."""
    o = info["options"]
    ratio = checks["attention_params_over_cnn"]
    lines = [
        f"# GRU vs CNN vs attention on {name} (experiments.seqdemo)",
        "",
        f"{info['characters']:,} characters, vocabulary {info['vocabulary']}; {o['iterations']} "
        f"iterations of one random chunk of {o['chunk_len']}, window {o['window']}, Adam lr "
        f"{o['lr']:g}, seed {o['seed']}; {info['threads']} thread(s) on {info['cpu']}; "
        f"torch {info['torch']}, fastrnn {info['fastrnn']}.",
        "",
        markdown_table(rows),
        "",
        "Losses are the mean cross-entropy (nats) of one chunk's predictions; min loss the "
        "lowest of the iterations (the demo's measure), last-100 mean the mean of the last 100. "
        "kFLOP/char: forward FLOPs of one prediction. The demo's figures are from its own texts "
        "(test_easy, a short song; tailor_swift_lyrics) and machine.",
        "",
        "The demo's ranking (CNN memorises better than GRU; attention best at about twice the "
        "CNN's size):",
        "",
        f"- CNN's minimum loss below the GRU's: {_yes(checks['cnn_below_gru'])}",
        f"- attention-64 lowest of all: {_yes(checks['attention_lowest'])}",
        "- attention-64's parameters about twice the CNN's: "
        + _yes(checks["attention_about_twice_cnn"])
        + ("" if ratio is None else f" ({ratio:.2f}x)"),
        f"- the demo's ranking shown: {_yes(checks['demo_ranking'])}",
        "",
        "Order of minimum loss, best first: "
        + " < ".join(checks["order"])
        + "; the demo's: "
        + " < ".join(demo_order("test_easy"))
        + " (test_easy), "
        + " < ".join(demo_order("tailor_swift_lyrics"))
        + " (lyrics).",
    ]
    for r in rows:
        if r["sample"]:
            lines += ["", f"{r['model']}, after {r['prompt']!r}:", "", "```", r["sample"], "```"]
    return "\n".join(lines) + "\n"


def _model_spec(text):
    kind, _, hidden = text.partition(":")
    if kind not in KINDS or not hidden.isdigit() or int(hidden) < 1:
        raise argparse.ArgumentTypeError(
            f"model {text!r}: KIND:HIDDEN with KIND from {', '.join(KINDS)}"
        )
    return kind, int(hidden)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m experiments.seqdemo",
        description="The sequence-learning demo: GRU (fastrnn), CNN and attention models "
        "learning a text from random chunks; minimum loss, time, parameters, samples.",
    )
    p.add_argument(
        "--models",
        type=comma_list("model", cast=_model_spec),
        default=list(DEFAULT_MODELS),
        help="comma-separated KIND:HIDDEN, KIND from gru,cnn,attention (default "
        + ",".join(f"{k}:{h}" for k, h in DEFAULT_MODELS)
        + ")",
    )
    p.add_argument("--text", metavar="PATH", help="learn this UTF-8 file")
    p.add_argument(
        "--corpus",
        choices=CORPORA,
        default="zen",
        help="built-in text when --text is not given (default zen; tinyshakespeare: "
        "FASTRNN_DATA, the cache, or a download)",
    )
    p.add_argument("--iterations", type=int, default=1000, help="(default 1000)")
    p.add_argument("--chunk-len", type=int, default=200, help="(default 200)")
    p.add_argument(
        "--window",
        type=int,
        default=16,
        help="characters the cnn and attention models see (the demo's pint; default 16)",
    )
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="(default 0)")
    p.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)"
    )
    p.add_argument(
        "--sample", type=int, default=100, metavar="N", help="characters to generate (default 100)"
    )
    p.add_argument("--temperature", type=float, default=0.8, help="(default 0.8)")
    p.add_argument(
        "--print-every", type=int, default=100, help="a progress line every N iterations"
    )
    p.add_argument(
        "--out",
        default="seqdemo-out",
        metavar="DIR",
        help="outputs go to DIR/<text name> (default seqdemo-out)",
    )
    args = p.parse_args(argv)
    for name in ("iterations", "chunk_len", "window", "print_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.window >= args.chunk_len:
        p.error("--window must be shorter than --chunk-len")
    if args.temperature <= 0 or (args.threads is not None and args.threads < 1):
        p.error("--temperature must be positive and --threads at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        name, text = load_text(args.text, args.corpus)
    except (CorpusUnavailable, OSError, ValueError) as e:
        print(f"experiments.seqdemo: {e}", file=sys.stderr)
        return 2
    if len(text) <= args.chunk_len + args.window + 1:
        print(f"experiments.seqdemo: {name} is shorter than a chunk", file=sys.stderr)
        return 2
    vocab = Vocabulary(text)
    ids = vocab.encode(text)
    gen = torch.Generator().manual_seed(args.seed)
    prompt_start = int(torch.randint(len(ids) - args.window - 1, (1,), generator=gen))
    out = Path(args.out) / Path(name).stem
    out.mkdir(parents=True, exist_ok=True)
    info = {
        "options": {k: v for k, v in vars(args).items() if k != "models"}
        | {"models": [label(*m) for m in args.models]},
        "text": name,
        "characters": len(text),
        "vocabulary": len(vocab),
        **machine(),
        "loadavg_start": loadavg(),
    }
    print(
        f"{name}: {len(text):,} characters, vocabulary {len(vocab)}; {len(args.models)} models, "
        f"{args.iterations} iterations, chunk {args.chunk_len}, window {args.window}, lr "
        f"{args.lr:g}, {info['threads']} thread(s)",
        flush=True,
    )
    rows, curves = [], {}
    for kind, hidden in args.models:
        name_of_model = label(kind, hidden)

        def on_step(it, loss, elapsed, model=name_of_model):
            if (it + 1) % args.print_every == 0:
                print(
                    f"  {model}: iteration {it + 1}, loss {loss:.4f}, {elapsed:.1f} s", flush=True
                )

        row, losses = run_one(kind, hidden, vocab, ids, prompt_start, args, on_step)
        rows.append(row)
        curves[row["model"]] = losses
        print(
            f"{row['model']}: minimum loss {row['min_loss']:.5f}, {row['elapsed_s']:.1f} s, "
            f"{row['params']:,} parameters",
            flush=True,
        )
        # after every model: a crash later keeps the finished ones
        write_atomic(out / "results.json", json.dumps(rows, indent=1) + "\n")
        write_atomic(out / "losses.json", json.dumps(curves) + "\n")
    info["loadavg_end"] = loadavg()
    checks = ranking(rows)
    info["ranking"] = checks
    write_atomic(out / "run.json", json.dumps(info, indent=1) + "\n")
    md = report(name, rows, checks, info)
    write_atomic(out / "results.md", md)
    print()
    print(md)
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'run.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
