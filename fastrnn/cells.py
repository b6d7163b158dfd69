"""fastrnn.RNNCell, fastrnn.LSTMCell and fastrnn.GRUCell: torch.nn's cells
(constructor, parameters, call signature, outputs, exceptions), one step of
fastrnn's fused op per call: the layer op run for a single time step (one
input GEMM, one recurrent GEMM, one fused pointwise pass; backward likewise).

They subclass torch.nn.RNNCellBase, as torch.nn's own cells do.
"""

import torch
from torch import nn

from . import autocast, ops, scripting
from .torch_errors import RaisesLikeTorch

__all__ = ["RNNCell", "LSTMCell", "GRUCell"]


class _FastCellBase(RaisesLikeTorch, nn.RNNCellBase):
    _cell = ""  # "rnn", "lstm" or "gru"

    def __prepare_scriptable__(self):
        """What torch.jit.script compiles (scripting.py)."""
        return scripting.scriptable(self)

    def _step(self, input, h, c=None, relu=False):
        """input [B, I], h [B, H] (and c [B, H] for lstm); returns h, c. Under
        autocast, in the dtypes torch.nn's cell would run in and return
        (autocast.py)."""
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        dtypes = autocast.run_dtypes(f"{self._cell}_cell", input, h if c is None else c)
        if dtypes is not None:
            input, h, c, *weights = (autocast.cast(t, dtypes[0]) for t in (input, h, c, *weights))
        _, h, c = ops.layer(self._cell, input.unsqueeze(0), h, c, *weights, relu=relu)
        return h, (c if dtypes is None else autocast.cast(c, dtypes[1]))

    def _batched(self, input, states, count):
        """Whether input is batched, then input and the first `count` states
        batched, zeros for states not given (None). Every state's dims are
        checked, as torch.nn checks them."""
        name = type(self).__name__
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        for i, s in enumerate(states):
            if s is not None and s.dim() not in (1, 2):
                what = "hidden" if count == 1 else f"hx[{i}]"
                raise ValueError(f"{name}: Expected {what} to be 1D or 2D, got {s.dim()}D instead")
        is_batched = input.dim() == 2
        states = states[:count]
        if not is_batched:
            input = input.unsqueeze(0)
            states = tuple(None if s is None else s.unsqueeze(0) for s in states)

        def zeros():
            return torch.zeros(
                input.size(0), self.hidden_size, dtype=input.dtype, device=input.device
            )

        return is_batched, input, tuple(zeros() if s is None else s for s in states)


class RNNCell(_FastCellBase):
    """Drop-in torch.nn.RNNCell (tanh or relu) on fastrnn's fused op."""

    _cell = "rnn"
    _torch_class = nn.RNNCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def _forward(self, input, hx):
        is_batched, input, (hx,) = self._batched(input, (hx,), 1)
        if self.nonlinearity not in ("tanh", "relu"):
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        h, _ = self._step(input, hx, relu=self.nonlinearity == "relu")
        return h if is_batched else h.squeeze(0)


class LSTMCell(_FastCellBase):
    """Drop-in torch.nn.LSTMCell on fastrnn's fused op."""

    _cell = "lstm"
    _torch_class = nn.LSTMCell

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None
    ) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def _forward(self, input, hx):
        states = (None, None) if hx is None else tuple(hx)
        # batched, torch.nn's kernel takes exactly two tensors; unbatched, it
        # reads hx[0] and hx[1] of whatever it is given
        if input.dim() == 2 and (isinstance(hx, torch.Tensor) or len(states) != 2):
            raise RuntimeError("LSTMCell: expected hx to be a tuple of two tensors (h_0, c_0)")
        is_batched, input, (h, c) = self._batched(input, states, 2)
        h, c = self._step(input, h, c)
        return (h, c) if is_batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(_FastCellBase):
    """Drop-in torch.nn.GRUCell on fastrnn's fused op."""

    _cell = "gru"
    _torch_class = nn.GRUCell

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None
    ) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def _forward(self, input, hx):
        is_batched, input, (hx,) = self._batched(input, (hx,), 1)
        h, _ = self._step(input, hx)
        return h if is_batched else h.squeeze(0)
