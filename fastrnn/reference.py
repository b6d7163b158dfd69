"""Pure-PyTorch reference of each recurrence: one layer, one direction, a
Python loop over time steps. Slow and short on purpose: the second oracle of
the tests (besides torch.nn), with the same arguments as fastrnn.ops.layer.
fastrnn.ops also differentiates it when a backward must build a graph
(create_graph=True, for double backward): every step is differentiable ATen
operations, twice differentiable as torch.nn's are.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ["rnn_cell", "lstm_cell", "gru_cell", "layer"]


def rnn_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    relu: bool = False,
) -> Tensor:
    pre = x @ w_ih.t() + h @ w_hh.t()
    if b_ih is not None:
        pre = pre + b_ih + b_hh
    return torch.relu(pre) if relu else torch.tanh(pre)


def lstm_cell(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    w_hr: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    gates = x @ w_ih.t() + h @ w_hh.t()
    if b_ih is not None:
        gates = gates + b_ih + b_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return (h if w_hr is None else h @ w_hr.t()), c


def gru_cell(
    x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor]
) -> Tensor:
    x_r, x_z, x_n = (x @ w_ih.t() + (0 if b_ih is None else b_ih)).chunk(3, dim=-1)
    h_r, h_z, h_n = (h @ w_hh.t() + (0 if b_hh is None else b_hh)).chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


def layer(
    cell: str,
    input: Tensor,
    hx: Tensor,
    cx: Optional[Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor] = None,
    b_hh: Optional[Tensor] = None,
    batch_sizes: Optional[Tensor] = None,
    reverse: bool = False,
    relu: bool = False,
    w_hr: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """input: [T, B, I], or [N, I] packed with batch_sizes [T]; w_hr: an lstm's
    projection [P, H] or None. Returns (output, h_n, c_n) as fastrnn.ops.layer
    does."""
    if batch_sizes is None:
        batch_sizes = torch.full((input.shape[0],), input.shape[1], dtype=torch.long)
        padded_shape = input.shape
        input = input.reshape(input.shape[0] * input.shape[1], input.shape[-1])
    else:
        padded_shape = None
    sizes = batch_sizes.tolist()
    offsets = [sum(sizes[:t]) for t in range(len(sizes))]
    steps = list(zip(offsets, sizes))
    h, c = hx, cx
    outputs = [None] * len(steps)
    for t in reversed(range(len(steps))) if reverse else range(len(steps)):
        offset, batch = steps[t]
        x = input[offset : offset + batch]
        if cell == "lstm":
            h_new, c_new = lstm_cell(x, h[:batch], c[:batch], w_ih, w_hh, b_ih, b_hh, w_hr)
            c = torch.cat([c_new, c[batch:]])
        elif cell == "gru":
            h_new = gru_cell(x, h[:batch], w_ih, w_hh, b_ih, b_hh)
        else:
            h_new = rnn_cell(x, h[:batch], w_ih, w_hh, b_ih, b_hh, relu)
        h = torch.cat([h_new, h[batch:]])
        outputs[t] = h_new
    output = torch.cat(outputs)
    if padded_shape is not None:
        output = output.view(*padded_shape[:-1], output.shape[-1])  # -1: ambiguous at batch 0
    return output, h, c if cell == "lstm" else None
