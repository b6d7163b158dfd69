"""What the benchmark times: a torch.nn module and a fastrnn module with the
same weights, their input, and the step that is timed (forward, or a
training step's forward and backward), called as users call them."""

import torch

from .cases import CELLS, MODES, size_of


def make_modules(
    cell, size, num_layers=1, seed=0, device="cpu", dtype=torch.float32, bidirectional=False
):
    """(torch.nn module, fastrnn module) of `cell` at `size` (a name or a
    Size), `num_layers` deep and `bidirectional` or not, in `dtype`, with the
    same state_dict, on `device`. The weights are drawn on the CPU, so every
    device gets the same ones."""
    size = size_of(size)
    torch_cls, fast_cls, _ = CELLS[cell]
    torch.manual_seed(seed)
    shape = {"num_layers": num_layers, "bidirectional": bidirectional}
    ref = torch_cls(size.input, size.hidden, **shape)
    ours = fast_cls(size.input, size.hidden, **shape)
    ours.load_state_dict(ref.state_dict())
    return ref.to(device, dtype), ours.to(device, dtype)


def make_input(size, seq_len, mode, seed=1, device="cpu", dtype=torch.float32):
    """A random [seq_len, batch, input] input in `dtype` on `device` (drawn
    on the CPU); it requires grad in train mode (the step computes the
    gradient of the input too)."""
    size = size_of(size)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(seq_len, size.batch, size.input, generator=gen).to(device, dtype)
    return x.requires_grad_(mode == "train")


def _states(state):
    return state if isinstance(state, tuple) else (state,)


def _loss(output, state):
    """output.sum() + h_n.sum() (+ c_n.sum() for LSTM)."""
    loss = output.sum()
    for s in _states(state):
        loss = loss + s.sum()
    return loss


def make_step(module, x, mode):
    """The callable that is timed: in "forward" mode the module in eval() under
    no_grad; in "train" mode one training step's forward and backward, loss =
    output.sum() + h_n.sum() (+ c_n.sum()), gradients of the parameters and of
    the input, cleared (set to None) before each step."""
    if mode == "forward":
        module.eval()

        def step():
            with torch.no_grad():
                module(x)
    elif mode == "train":
        module.train()
        assert x.requires_grad, "train mode needs an input that requires grad (make_input)"

        def step():
            module.zero_grad(set_to_none=True)
            x.grad = None
            output, state = module(x)
            _loss(output, state).backward()
    else:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    return step


def run_once(module, x, mode):
    """One step as make_step runs it, returning what it computed by name:
    output, h_n (, c_n), and in train mode grad_input and grad_<parameter>."""
    if mode == "forward":
        module.eval()
        with torch.no_grad():
            output, state = module(x)
    else:
        module.train()
        module.zero_grad(set_to_none=True)
        x.grad = None
        output, state = module(x)
        _loss(output, state).backward()
    out = {"output": output.detach()}
    for name, s in zip(("h_n", "c_n"), _states(state)):
        out[name] = s.detach()
    if mode == "train":
        out["grad_input"] = x.grad.detach().clone()
        for name, p in module.named_parameters():
            out[f"grad_{name}"] = p.grad.detach().clone()
    return out
