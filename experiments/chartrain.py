"""Training, evaluation and sampling of a next-character model.

Data: the text is encoded once into ids; a window is seq_len + 1 consecutive
ids (input: the first seq_len, target: the last seq_len). Training windows
start every `stride` characters of the training part (default 1: every
position, the sliding window of the classic study, so the number of windows
hardly depends on seq_len and an epoch's work grows with it). Validation
windows tile the validation part without overlap, so every validation
character is predicted once per evaluation.

Objectives: "all" (char-rnn's) trains on the next character at every
position of a window; "last" (the course's many-to-one model) on the one
character after the window's seq_len inputs. evaluate measures either.

Determinism: the model's initial weights come from the seed (build_model),
the order of the windows from a generator seeded with the same seed, so two
backends given the same seed see the same weights and the same batches.

Checkpoints: given a path, train saves the model, the optimizer, the
generator and the history after every epoch and, within an epoch, after the
first step that ends checkpoint_every_s seconds after the last save (an
epoch of the assignment's settings is thousands of steps, longer than many
a run's whole time budget). It starts from that file when it exists, so an
interrupted run ends as the same run uninterrupted would: the epoch's order
of windows is drawn again from the generator saved with it, and the steps
already taken are skipped. (A time budget or a time-decayed learning rate
depend on the clock, so such runs are the same up to where the clock falls.)
"""

import copy
import dataclasses
import os
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .runio import atomic_path

__all__ = [
    "OBJECTIVES",
    "LR_DECAYS",
    "Vocabulary",
    "TrainConfig",
    "window_starts",
    "windows",
    "decayed_lr",
    "train",
    "evaluate",
    "sample",
]

OBJECTIVES = ("all", "last")
# The learning rate over a run: "constant", or "linear" from config.lr down to
# 0 at the run's end, the end being the last step of its epochs or, with a
# time budget, the budget's last second, whichever comes first. Linear decay
# to 0 is the schedule that did best for a fixed budget of training in Li,
# Yumer and Ramanan, "Budgeted Training" (ICLR 2020).
LR_DECAYS = ("constant", "linear")


class Vocabulary:
    """The sorted characters of the whole text: the validation part may hold
    a character the training part lacks, and the model must have a logit
    for it."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        missing = sorted(set(text) - self.index.keys())
        if missing:
            raise ValueError(f"characters not in the vocabulary: {''.join(missing)!r}")
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids.tolist())


@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-3
    clip: float = 5.0  # gradient norm clipping, as char-rnn
    stride: int = 1
    steps_per_epoch: int = 0  # 0: every window once per epoch
    seed: int = 0
    objective: str = "all"  # the training loss: OBJECTIVES
    evaluate_last: bool = False  # validation on the last position only
    time_budget_s: float = 0  # stop training once this much is spent (0: no limit)
    lr_decay: str = "constant"  # the learning rate over the run: LR_DECAYS

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"unknown objective {self.objective!r}; choose from {', '.join(OBJECTIVES)}"
            )
        if self.lr_decay not in LR_DECAYS:
            raise ValueError(
                f"unknown lr_decay {self.lr_decay!r}; choose from {', '.join(LR_DECAYS)}"
            )

    @classmethod
    def from_args(cls, args, **overrides):
        """The config of a command line's options: the fields `args` has."""
        given = {
            f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)
        }
        return cls(**{**given, **overrides})


def window_starts(n_ids, seq_len, stride):
    """First positions of the windows of seq_len + 1 ids that fit in n_ids."""
    if n_ids < seq_len + 1:
        raise ValueError(
            f"{n_ids} characters hold no window of seq_len {seq_len} "
            f"(needs {seq_len + 1}); use a longer text or a shorter seq_len"
        )
    return torch.arange(0, n_ids - seq_len, stride)


def windows(ids, starts, seq_len):
    """(input, target) ids, each [len(starts), seq_len]."""
    w = ids[starts[:, None] + torch.arange(seq_len + 1)]
    return w[:, :-1], w[:, 1:]


def _logits_targets(model, x, y, last):
    """Logits [N, vocab] and targets [N] of the objective: every position,
    or only the character after the window."""
    if last:
        return model(x, last=True), y[:, -1]
    return model(x).flatten(0, 1), y.flatten()


@torch.no_grad()
def evaluate(model, ids, seq_len, batch_size=256, starts=None, last=False):
    """(mean cross-entropy in nats, top-1 accuracy) of the next character in
    the windows of `ids` at `starts` (default: non-overlapping windows), at
    every position, or with `last` at the last one only."""
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    if starts is None:
        starts = window_starts(len(ids), seq_len, seq_len)
    for batch in starts.split(batch_size):
        logits, y = _logits_targets(model, *windows(ids, batch, seq_len), last)
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
        count += y.numel()
    model.train(was_training)
    return total_loss / count, correct / count


def _warm_up(model, x, y, last):
    """One untimed forward + backward on a copy, so the first timed run is
    not charged for one-time work (oneDNN's JIT kernels, fastrnn's scratch
    buffers, first-touch page faults)."""
    twin = copy.deepcopy(model)
    F.cross_entropy(*_logits_targets(twin, x, y, last)).backward()


def _save_checkpoint(path, state):
    """Through atomic_path: an interruption mid-write leaves the previous
    checkpoint whole."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _resume(path, model, opt, gen, config, meta):
    """(history, partial) saved in `path`, its model, optimizer and
    generator loaded into these; (None, None) when there is no checkpoint
    yet. partial: the unfinished epoch's progress (see save in train), or
    None after a whole epoch. Refuses the checkpoint of another run: one
    whose config (but for epochs and the time budget, which may grow) or
    meta differ."""
    if path is None or not os.path.exists(path):
        return None, None
    state = torch.load(path, weights_only=False)
    saved = {
        "lr_decay": "constant",  # checkpoints from before the option
        **state["config"],
        "epochs": config.epochs,
        "time_budget_s": config.time_budget_s,
    }
    if saved != dataclasses.asdict(config) or state["meta"] != meta:
        raise ValueError(
            f"{path} is a checkpoint of another run ({state['meta']}, {state['config']}); "
            "remove it or give another checkpoint path"
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    gen.set_state(state["generator"])
    return state["history"], state.get("partial")  # no "partial": saved before mid-epoch saves


def decayed_lr(lr, decay, steps_done, total_steps, spent_s=0.0, budget_s=0.0):
    """The learning rate of the next step under `decay` (LR_DECAYS), after
    steps_done of the run's total_steps and spent_s seconds of its budget_s
    seconds of training (0: no budget)."""
    if decay == "constant":
        return lr
    done = steps_done / total_steps
    if budget_s:
        done = max(done, spent_s / budget_s)
    return lr * max(0.0, 1.0 - done)


def train(
    model,
    train_ids,
    val_ids,
    seq_len,
    config,
    on_step=None,
    starts=None,
    val_starts=None,
    checkpoint=None,
    checkpoint_meta=None,
    checkpoint_every_s=300.0,
):
    """Adam on mean cross-entropy over a batch of windows (config.objective).

    starts: the training windows' first positions in train_ids (default:
    every config.stride-th); val_starts: the validation windows' in val_ids
    (default: evaluate's). checkpoint: a path to save after every epoch and
    to resume from (module docstring); a finished run's checkpoint returns
    its history without training. checkpoint_meta: what else identifies the
    run (data, model sizes), saved with it and checked on resuming.
    checkpoint_every_s: the longest wall time between saves within an epoch
    (0: after every step).

    Returns a dict of per-epoch lists: train_loss (mean over the epoch's
    windows), val_loss, val_accuracy, train_time_s (wall time of the training
    steps only: evaluation is not counted), steps (the optimizer steps taken),
    and total_train_time_s.
    on_step(epoch, step, steps, loss) is called after every step (progress).
    """
    dtype = next(model.parameters()).dtype
    last = config.objective == "last"
    gen = torch.Generator().manual_seed(config.seed)
    if starts is None:
        starts = window_starts(len(train_ids), seq_len, config.stride)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    meta = {"seq_len": seq_len, **(checkpoint_meta or {})}
    history, partial = _resume(checkpoint, model, opt, gen, config, meta)
    history = history or {
        "train_loss": [],
        "val_loss": [],
        "val_accuracy": [],
        "train_time_s": [],
        "steps": [],
    }

    def save(**progress):
        """progress: none after a whole epoch, else the unfinished epoch's
        step (steps taken), loss_sum (their summed loss per window), windows
        (their windows) and train_time_s (their time); the generator saved
        is then the one the epoch's order was drawn from."""
        _save_checkpoint(
            checkpoint,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "generator": epoch_gen if progress else gen.get_state(),
                "history": history,
                "partial": progress or None,
                "config": dataclasses.asdict(config),
                "meta": meta,
            },
        )

    model.train()
    _warm_up(model, *windows(train_ids, starts[: config.batch_size], seq_len), last)
    steps_per_epoch = -(-len(starts) // config.batch_size)
    if config.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
    total_steps = config.epochs * steps_per_epoch
    for epoch in range(len(history["train_loss"]), config.epochs):
        spent = sum(history["train_time_s"])
        resumed, partial = partial or {}, None
        if config.time_budget_s and spent >= config.time_budget_s and not resumed:
            break
        epoch_gen = gen.get_state()
        batches = starts[torch.randperm(len(starts), generator=gen)].split(config.batch_size)
        batches = batches[:steps_per_epoch]
        steps_before = sum(history["steps"])
        total, seen = resumed.get("loss_sum", 0.0), resumed.get("windows", 0)
        # the epoch's clock: time.perf_counter() - began includes the time of
        # the steps taken before an interruption
        began = time.perf_counter() - resumed.get("train_time_s", 0.0)
        saved_at = time.perf_counter()
        for step in range(resumed.get("step", 0), len(batches)):
            batch = batches[step]
            lr = decayed_lr(
                config.lr,
                config.lr_decay,
                steps_before + step,
                total_steps,
                spent + time.perf_counter() - began,
                config.time_budget_s,
            )
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = windows(train_ids, batch, seq_len)
            loss = F.cross_entropy(*_logits_targets(model, x, y, last))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            opt.step()
            total += loss.item() * len(batch)
            seen += len(batch)
            if on_step is not None:
                on_step(epoch, step, len(batches), loss.item())
            if config.time_budget_s and spent + time.perf_counter() - began >= config.time_budget_s:
                break
            due = time.perf_counter() - saved_at >= checkpoint_every_s
            if checkpoint is not None and due and step + 1 < len(batches):
                paused = time.perf_counter()
                save(step=step + 1, loss_sum=total, windows=seen, train_time_s=paused - began)
                saved_at = time.perf_counter()
                began += saved_at - paused  # saving is not training time
        history["train_time_s"].append(time.perf_counter() - began)
        history["steps"].append(step + 1)
        history["train_loss"].append(total / seen)
        val_loss, val_acc = evaluate(
            model, val_ids, seq_len, starts=val_starts, last=config.evaluate_last
        )
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_acc)
        if checkpoint is not None:
            save()
    history["total_train_time_s"] = sum(history["train_time_s"])
    history["dtype"] = str(dtype).replace("torch.", "")
    return history


@torch.no_grad()
def sample(model, vocab, prompt, length, seq_len, temperature=0.8, seed=0):
    """`length` characters generated after `prompt`, char-rnn style: each
    next character drawn from softmax(logits / temperature) given the last
    seq_len characters (the context the model was trained on; temperature 0
    takes the most likely one)."""
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    ids = vocab.encode(prompt) if prompt else torch.randint(len(vocab), (1,), generator=gen)
    start = len(ids)
    for _ in range(length):
        logits = model(ids[-seq_len:][None])[0, -1].double()
        if temperature > 0:
            nxt = torch.multinomial((logits / temperature).softmax(-1), 1, generator=gen)
        else:
            nxt = logits.argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt])
    model.train(was_training)
    return vocab.decode(ids[start:])
