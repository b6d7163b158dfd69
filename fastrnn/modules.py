"""fastrnn.RNN, fastrnn.LSTM and fastrnn.GRU: torch.nn's constructors,
parameters, forward signatures and outputs, computed by fastrnn's fused ops.

They subclass torch.nn.RNNBase, as torch.nn's own classes do, so parameter
names, shapes, initialisation, state_dict and repr are torch.nn's. They are
not instances of torch.nn.RNN / LSTM / GRU: torch.compile refuses to trace
those, and traces these.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from . import ops

__all__ = ["RNN", "LSTM", "GRU"]

_CELLS = {"RNN_TANH": "rnn", "RNN_RELU": "rnn", "LSTM": "lstm", "GRU": "gru"}


def _stack(states):
    # one layer and direction: a view, not a copy
    return states[0].unsqueeze(0) if len(states) == 1 else torch.stack(states)


class _FastRNNBase(nn.RNNBase):
    def _layer_weights(self, index):
        """ops.layer's weight arguments of one layer and direction (index =
        layer * D + d): w_ih, w_hh, b_ih, b_hh and w_hr, None where absent.
        Their names, in torch.nn's order: w_ih, w_hh, [b_ih, b_hh], [w_hr]."""
        params = [getattr(self, name) for name in self._all_weights[index]]
        w_hr = params.pop() if self.proj_size > 0 else None
        b_ih, b_hh = params[2:] if self.bias else (None, None)
        return dict(w_ih=params[0], w_hh=params[1], b_ih=b_ih, b_hh=b_hh, w_hr=w_hr)

    def _check_state(self, name, state, input):
        # RuntimeError, as torch.nn's kernels raise for these.
        if state.dtype != input.dtype:
            raise RuntimeError(f"{name} dtype ({state.dtype}) does not match input dtype ({input.dtype})")
        if state.device != input.device:
            raise RuntimeError(f"{name} is on {state.device} but input is on {input.device}")

    def _run(self, input, hx, cx, batch_sizes):
        """input: [T, B, I] (batch_first already undone), or packed [N, I] with
        batch_sizes; hx: [L * D, B, P], cx: [L * D, B, H] (P = proj_size, or H).
        Each layer runs one fused op per direction; the reverse direction reads
        each sequence from its own end."""
        cell = _CELLS[self.mode]
        relu = self.mode == "RNN_RELU"
        directions = 2 if self.bidirectional else 1
        h_n, c_n = [], []
        output = input
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                output = F.dropout(output, self.dropout, training=True)
            outputs = []
            for direction in range(directions):
                i = layer * directions + direction
                out, h, c = ops.layer(cell, output, hx[i], None if cx is None else cx[i],
                                      **self._layer_weights(i), batch_sizes=batch_sizes,
                                      reverse=direction == 1, relu=relu)
                outputs.append(out)
                h_n.append(h)
                c_n.append(c)
            output = outputs[0] if directions == 1 else torch.cat(outputs, -1)
        return output, _stack(h_n), None if cx is None else _stack(c_n)

    def _zero_state(self, batch, input):
        directions = 2 if self.bidirectional else 1
        zeros = lambda features: torch.zeros(self.num_layers * directions, batch, features,
                                             dtype=input.dtype, device=input.device)
        h0 = zeros(self.proj_size or self.hidden_size)
        return (h0, zeros(self.hidden_size)) if self.mode == "LSTM" else h0

    def _check_states(self, hx, input):
        if self.mode == "LSTM":
            self._check_state("hx[0]", hx[0], input)
            self._check_state("hx[1]", hx[1], input)
        else:
            self._check_state("hx", hx, input)

    def _forward_packed(self, packed, hx):
        input, batch_sizes, sorted_indices, unsorted_indices = packed
        if hx is None:
            hx = self._zero_state(int(batch_sizes[0]), input)
        else:  # the caller's order of sequences, sorted as the packed data is
            hx = self.permute_hidden(hx, sorted_indices)
        self.check_forward_args(input, hx, batch_sizes)
        self._check_states(hx, input)
        h0, c0 = hx if self.mode == "LSTM" else (hx, None)
        output, h_n, c_n = self._run(input, h0, c0, batch_sizes)
        hidden = (h_n, c_n) if self.mode == "LSTM" else h_n
        return (PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices),
                self.permute_hidden(hidden, unsorted_indices))

    def _forward(self, input, hx):
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        is_lstm = self.mode == "LSTM"
        if input.dim() not in (2, 3):  # torch.nn's three wordings
            what = {"LSTM": "LSTM", "GRU": "GRU"}.get(self.mode, "RNN")
            tensor = " tensor" if self.mode.startswith("RNN") else ""
            raise ValueError(
                f"{what}: Expected input to be 2D or 3D, got {input.dim()}D{tensor} instead")
        is_batched = input.dim() == 3
        batch_dim = 0 if self.batch_first else 1
        if not is_batched:
            input = input.unsqueeze(batch_dim)
        if hx is None:
            hx = self._zero_state(input.size(batch_dim), input)
        else:
            states = hx if is_lstm else (hx,)
            want = 3 if is_batched else 2
            if any(s.dim() != want for s in states):
                kind = "batched 3-D" if is_batched else "unbatched 2-D"
                if is_lstm:
                    raise RuntimeError(
                        f"For {kind} input, hx and cx should also be {want}-D but got "
                        f"({states[0].dim()}-D, {states[1].dim()}-D) tensors")
                raise RuntimeError(f"For {kind} input, hx should also be {want}-D but got "
                                   f"{states[0].dim()}-D tensor")
            if not is_batched:
                states = tuple(s.unsqueeze(1) for s in states)
            hx = states if is_lstm else states[0]
        self.check_forward_args(input, hx, None)
        self._check_states(hx, input)
        h0, c0 = hx if is_lstm else (hx, None)

        if self.batch_first:
            input = input.transpose(0, 1)
        output, h_n, c_n = self._run(input, h0, c0, None)
        if self.batch_first:
            output = output.transpose(0, 1)
        if not is_batched:
            output = output.squeeze(batch_dim)
            h_n = h_n.squeeze(1)
            c_n = None if c_n is None else c_n.squeeze(1)
        return output, ((h_n, c_n) if is_lstm else h_n)


class RNN(_FastRNNBase):
    """Drop-in torch.nn.RNN (tanh or relu) on fastrnn's fused kernels."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            self.nonlinearity = args[3]
            args = args[:3] + args[4:]
        else:
            self.nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if self.nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif self.nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(
                f"Unknown nonlinearity '{self.nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(mode, *args, **kwargs)

    def forward(self, input, hx=None):
        return self._forward(input, hx)


class LSTM(_FastRNNBase):
    """Drop-in torch.nn.LSTM on fastrnn's fused kernels."""

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)

    # torch.nn.LSTM's: the cell state has hidden_size features, h proj_size
    # ones if proj_size > 0, and (h, c) are permuted together for packed input.
    get_expected_cell_size = nn.LSTM.get_expected_cell_size
    check_forward_args = nn.LSTM.check_forward_args
    permute_hidden = nn.LSTM.permute_hidden

    def forward(self, input, hx=None):
        return self._forward(input, hx)


class GRU(_FastRNNBase):
    """Drop-in torch.nn.GRU on fastrnn's fused kernels."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)

    def forward(self, input, hx=None):
        return self._forward(input, hx)
