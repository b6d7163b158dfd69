"""fastrnn.RNN, fastrnn.LSTM and fastrnn.GRU: torch.nn's constructors,
parameters, forward signatures, outputs and exceptions (fastrnn/torch_errors.py),
computed by fastrnn's fused ops.

They subclass torch.nn.RNNBase, as torch.nn's own classes do, so parameter
names, shapes, initialisation, state_dict and repr are torch.nn's. They are
not instances of torch.nn.RNN / LSTM / GRU: torch.compile refuses to trace
those, and traces these.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from . import autocast, ops, scripting
from .torch_errors import RaisesLikeTorch

__all__ = ["RNN", "LSTM", "GRU"]

_CELLS = {"RNN_TANH": "rnn", "RNN_RELU": "rnn", "LSTM": "lstm", "GRU": "gru"}


def _stack(states):
    # one layer and direction: a view, not a copy
    return states[0].unsqueeze(0) if len(states) == 1 else torch.stack(states)


class _FastRNNBase(RaisesLikeTorch, nn.RNNBase):
    def __prepare_scriptable__(self):
        """What torch.jit.script compiles (scripting.py)."""
        return scripting.scriptable(self)

    def _layer_weights(self, index):
        """ops.layer's weight arguments of one layer and direction (index =
        layer * D + d): w_ih, w_hh, b_ih, b_hh and w_hr, None where absent.
        Their names, in torch.nn's order: w_ih, w_hh, [b_ih, b_hh], [w_hr]."""
        params = [getattr(self, name) for name in self._all_weights[index]]
        w_hr = params.pop() if self.proj_size > 0 else None
        b_ih, b_hh = params[2:] if self.bias else (None, None)
        return dict(w_ih=params[0], w_hh=params[1], b_ih=b_ih, b_hh=b_hh, w_hr=w_hr)

    def _run(self, input, hx, cx, batch_sizes):
        """input: [T, B, I] (batch_first already undone), or packed [N, I] with
        batch_sizes; hx: [L * D, B, P], cx: [L * D, B, H] (P = proj_size, or H).
        Returns output, h_n and c_n (None but for an LSTM). Under autocast,
        in the dtypes torch.nn's would run in and return (autocast.py)."""
        cell = _CELLS[self.mode]
        dtypes = autocast.run_dtypes(
            cell,
            input,
            hx if cx is None else cx,
            packed=batch_sizes is not None,
            proj=self.proj_size > 0,
        )
        if dtypes is None:
            return self._run_layers(input, hx, cx, batch_sizes)
        run, c_n_dtype = dtypes
        input, hx, cx = (autocast.cast(t, run) for t in (input, hx, cx))
        output, h_n, c_n = self._run_layers(input, hx, cx, batch_sizes, weights_dtype=run)
        return output, h_n, autocast.cast(c_n, c_n_dtype)

    def _run_layers(self, input, hx, cx, batch_sizes, weights_dtype=None):
        """_run's layers, the weights cast to weights_dtype where given. Each
        layer runs one fused op per direction; the reverse direction reads
        each sequence from its own end. The ops check the states' and weights'
        dtypes and devices against the input's."""
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
                weights = self._layer_weights(i)
                if weights_dtype is not None:
                    weights = {k: autocast.cast(w, weights_dtype) for k, w in weights.items()}
                out, h, c = ops.layer(
                    cell,
                    output,
                    hx[i],
                    None if cx is None else cx[i],
                    **weights,
                    batch_sizes=batch_sizes,
                    reverse=direction == 1,
                    relu=relu,
                )
                outputs.append(out)
                h_n.append(h)
                c_n.append(c)
            output = outputs[0] if directions == 1 else torch.cat(outputs, -1)
        return output, _stack(h_n), None if cx is None else _stack(c_n)

    def _zero_state(self, batch, input):
        directions = 2 if self.bidirectional else 1

        def zeros(features):
            return torch.zeros(
                self.num_layers * directions,
                batch,
                features,
                dtype=input.dtype,
                device=input.device,
            )

        h0 = zeros(self.proj_size or self.hidden_size)
        return (h0, zeros(self.hidden_size)) if self.mode == "LSTM" else h0

    def _states(self, hx):
        """h0, c0 (None but for an LSTM) of hx, the initial state in the
        layout the kernels take."""
        if self.mode != "LSTM":
            return hx, None
        # torch.nn's kernel takes a tuple of exactly two tensors
        if isinstance(hx, torch.Tensor) or len(hx) != 2:
            raise RuntimeError("LSTM: expected hx to be a tuple of two tensors (h_0, c_0)")
        return hx

    def _forward_packed(self, packed, hx):
        input, batch_sizes, sorted_indices, unsorted_indices = packed
        if hx is None:
            hx = self._zero_state(int(batch_sizes[0]), input)
        else:  # the caller's order of sequences, sorted as the packed data is
            hx = self.permute_hidden(hx, sorted_indices)
        self.check_forward_args(input, hx, batch_sizes)
        h0, c0 = self._states(hx)
        output, h_n, c_n = self._run(input, h0, c0, batch_sizes)
        hidden = (h_n, c_n) if self.mode == "LSTM" else h_n
        return (
            PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices),
            self.permute_hidden(hidden, unsorted_indices),
        )

    def _forward(self, input, hx):
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        is_lstm = self.mode == "LSTM"
        if input.dim() not in (2, 3):
            raise ValueError(
                f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D instead"
            )
        is_batched = input.dim() == 3
        batch_dim = 0 if self.batch_first else 1
        if not is_batched:
            input = input.unsqueeze(batch_dim)
        if hx is None:
            hx = self._zero_state(input.size(batch_dim), input)
        else:
            # torch.nn.LSTM reads hx[0] and hx[1] here; more states are refused below
            states = (hx[0], hx[1]) if is_lstm else (hx,)
            want = 3 if is_batched else 2
            if any(s.dim() != want for s in states):
                kind = "batched 3-D" if is_batched else "unbatched 2-D"
                raise RuntimeError(
                    f"For {kind} input, hx (and cx) should also be {want}-D, got "
                    f"{', '.join(f'{s.dim()}-D' for s in states)}"
                )
            if not is_batched:
                states = tuple(s.unsqueeze(1) for s in states)
                hx = states if is_lstm else states[0]
        self.check_forward_args(input, hx, None)
        h0, c0 = self._states(hx)

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

    _torch_class = nn.RNN

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
                f"Unknown nonlinearity '{self.nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        super().__init__(mode, *args, **kwargs)


class LSTM(_FastRNNBase):
    """Drop-in torch.nn.LSTM on fastrnn's fused kernels."""

    _torch_class = nn.LSTM

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)

    # torch.nn.LSTM's: the cell state has hidden_size features, h proj_size
    # ones if proj_size > 0, and (h, c) are permuted together for packed input.
    get_expected_cell_size = nn.LSTM.get_expected_cell_size
    check_forward_args = nn.LSTM.check_forward_args
    permute_hidden = nn.LSTM.permute_hidden


class GRU(_FastRNNBase):
    """Drop-in torch.nn.GRU on fastrnn's fused kernels."""

    _torch_class = nn.GRU

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)
