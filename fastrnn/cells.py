"""fastrnn.RNNCell, fastrnn.LSTMCell and fastrnn.GRUCell: torch.nn's cells
(constructor, parameters, call signature, outputs), one step of fastrnn's
fused op per call: the layer op run for a single time step (one input GEMM,
one recurrent GEMM, one fused pointwise pass; backward likewise).

They subclass torch.nn.RNNCellBase, as torch.nn's own cells do.
"""

import torch
from torch import nn

from . import ops

__all__ = ["RNNCell", "LSTMCell", "GRUCell"]


class _FastCellBase(nn.RNNCellBase):
    _cell = ""  # "rnn", "lstm" or "gru"

    def _step(self, input, states, relu=False):
        """input [B, I], states ([B, H],) or ([B, H], [B, H]); returns h, c."""
        # RuntimeError, as torch.nn's kernels raise (ops.layer would raise a
        # TypeError for integer input)
        if input.dtype != self.weight_ih.dtype:
            raise RuntimeError(f"input dtype ({input.dtype}) does not match weight dtype "
                               f"({self.weight_ih.dtype})")
        for i, s in enumerate(states):
            if s.dtype != input.dtype:
                raise RuntimeError(f"hx[{i}] dtype ({s.dtype}) does not match input dtype "
                                   f"({input.dtype})")
        output, h, c = ops.layer(self._cell, input.unsqueeze(0), states[0],
                                 states[1] if len(states) > 1 else None, self.weight_ih,
                                 self.weight_hh, self.bias_ih, self.bias_hh, relu=relu)
        return h, c

    def _check_dims(self, input, states):
        name = type(self).__name__
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        for i, s in enumerate(states):
            if s is not None and s.dim() not in (1, 2):
                what = "hidden" if len(states) == 1 else f"hx[{i}]"
                raise ValueError(f"{name}: Expected {what} to be 1D or 2D, got {s.dim()}D instead")
        return input.dim() == 2

    def _prepare(self, input, states):
        """Batched input and states, zeros where none were given."""
        is_batched = self._check_dims(input, states)
        if not is_batched:
            input = input.unsqueeze(0)
            states = tuple(None if s is None else s.unsqueeze(0) for s in states)
        zeros = lambda: torch.zeros(input.size(0), self.hidden_size, dtype=input.dtype,
                                    device=input.device)
        return is_batched, input, tuple(zeros() if s is None else s for s in states)


class RNNCell(_FastCellBase):
    """Drop-in torch.nn.RNNCell (tanh or relu) on fastrnn's fused op."""

    _cell = "rnn"

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        is_batched, input, (hx,) = self._prepare(input, (hx,))
        if self.nonlinearity not in ("tanh", "relu"):
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        h, _ = self._step(input, (hx,), relu=self.nonlinearity == "relu")
        return h if is_batched else h.squeeze(0)


class LSTMCell(_FastCellBase):
    """Drop-in torch.nn.LSTMCell on fastrnn's fused op."""

    _cell = "lstm"

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        is_batched, input, states = self._prepare(input, (None, None) if hx is None else tuple(hx))
        h, c = self._step(input, states)
        return (h, c) if is_batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(_FastCellBase):
    """Drop-in torch.nn.GRUCell on fastrnn's fused op."""

    _cell = "gru"

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        is_batched, input, (hx,) = self._prepare(input, (hx,))
        h, _ = self._step(input, (hx,))
        return h if is_batched else h.squeeze(0)
