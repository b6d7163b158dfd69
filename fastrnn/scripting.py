"""torch.jit.script of fastrnn's modules and cells.

torch.jit.script compiles a module's forward from its source, in the
TorchScript subset of Python. fastrnn's own forwards are not in it: they
raise torch.nn's exceptions through try/except, and reach the fused ops
through a Python autograd.Function (ops.layer), which TorchScript cannot
call. So scripting a fastrnn module compiles a twin instead, made by
`scriptable` from the module's `__prepare_scriptable__`: the same
parameters (the same tensors), the same arguments, and a forward written in
the subset that calls fastrnn's ops directly (their autograd is the one
registered with torch.library). The twins subclass torch.nn's classes only to
compile torch.nn's scriptable argument checks (check_forward_args,
permute_hidden); every forward of theirs is fastrnn's.
"""

import copy
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from . import ops  # noqa: F401  (registers torch.ops.fastrnn.*)


def _needs_grad(tensors: List[Optional[Tensor]]) -> bool:
    if not torch.is_grad_enabled():
        return False
    for t in tensors:
        if t is not None and t.requires_grad:
            return True
    return False


def _as(t: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]:
    return None if t is None else t.to(dtype)


def _layer(
    mode: str,
    input: Tensor,
    hx: Tensor,
    cx: Optional[Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    w_hr: Optional[Tensor],
    batch_sizes: Optional[Tensor],
    reverse: bool,
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """ops.layer in TorchScript: one layer, one direction, on fastrnn's op for
    `mode` (torch.nn's RNNBase.mode). float16 and bfloat16 run the float32
    kernels, as in ops.layer."""
    dtype = input.dtype
    if dtype != torch.float16 and dtype != torch.bfloat16:
        return _kernel(mode, input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse)
    f = torch.float32
    output, h_n, c_n = _kernel(
        mode,
        input.to(f),
        hx.to(f),
        _as(cx, f),
        w_ih.to(f),
        w_hh.to(f),
        _as(b_ih, f),
        _as(b_hh, f),
        _as(w_hr, f),
        batch_sizes,
        reverse,
    )
    return output.to(dtype), h_n.to(dtype), _as(c_n, dtype)


def _kernel(
    mode: str,
    input: Tensor,
    hx: Tensor,
    cx: Optional[Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    w_hr: Optional[Tensor],
    batch_sizes: Optional[Tensor],
    reverse: bool,
) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    training = _needs_grad([input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr])
    if mode == "LSTM":
        assert cx is not None
        output, h_n, c_n, _ = torch.ops.fastrnn.lstm_forward(
            input, hx, cx, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, training
        )
        return output, h_n, c_n
    if mode == "GRU":
        output, h_n, _ = torch.ops.fastrnn.gru_forward(
            input, hx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, training
        )
        return output, h_n, None
    output, h_n, _ = torch.ops.fastrnn.rnn_forward(
        input, hx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, mode == "RNN_RELU", training
    )
    return output, h_n, None


class _ScriptableLayers:
    """What the three modules' twins share. _name: the class's name, for messages."""

    _name: str

    def _run(
        self, input: Tensor, h0: Tensor, c0: Optional[Tensor], batch_sizes: Optional[Tensor]
    ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """The layers (modules.py's _run): input [T, B, I] or packed [N, I];
        h0 [L * D, B, P]; c0 [L * D, B, H] (LSTM)."""
        directions = 2 if self.bidirectional else 1
        # each layer and direction's weights in _flat_weights: w_ih, w_hh, [b_ih, b_hh], [w_hr]
        per_layer = 2 + 2 * int(self.bias) + int(self.proj_size > 0)
        weights: List[Tensor] = self._flat_weights
        h_n: List[Tensor] = []
        c_n: List[Tensor] = []
        output = input
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                output = torch.nn.functional.dropout(output, self.dropout, True)
            outputs: List[Tensor] = []
            for direction in range(directions):
                i = layer * directions + direction
                w = weights[i * per_layer : (i + 1) * per_layer]
                b_ih: Optional[Tensor] = w[2] if self.bias else None
                b_hh: Optional[Tensor] = w[3] if self.bias else None
                w_hr: Optional[Tensor] = w[per_layer - 1] if self.proj_size > 0 else None
                out, h, c = _layer(
                    self.mode,
                    output,
                    h0[i],
                    None if c0 is None else c0[i],
                    w[0],
                    w[1],
                    b_ih,
                    b_hh,
                    w_hr,
                    batch_sizes,
                    direction == 1,
                )
                outputs.append(out)
                h_n.append(h)
                if c is not None:
                    c_n.append(c)
            output = outputs[0] if directions == 1 else torch.cat(outputs, -1)
        return output, torch.stack(h_n), torch.stack(c_n) if c0 is not None else None

    def _zeros(self, batch: int, features: int, like: Tensor) -> Tensor:
        directions = 2 if self.bidirectional else 1
        return torch.zeros(
            self.num_layers * directions, batch, features, dtype=like.dtype, device=like.device
        )

    def _batched(self, input: Tensor) -> Tuple[Tensor, bool, int]:
        """input as [T, B, I] or [B, T, I] (unbatched input gets a batch of one)."""
        if input.dim() != 2 and input.dim() != 3:
            raise ValueError(
                f"{self._name}: Expected input to be 2D or 3D, got {input.dim()}D instead"
            )
        batch_dim = 0 if self.batch_first else 1
        is_batched = input.dim() == 3
        return (input if is_batched else input.unsqueeze(batch_dim)), is_batched, batch_dim


def _check_state_dims(state: Tensor, is_batched: bool):
    want = 3 if is_batched else 2
    if state.dim() != want:
        kind = "batched 3-D" if is_batched else "unbatched 2-D"
        raise RuntimeError(
            f"For {kind} input, hx (and cx) should also be {want}-D, got {state.dim()}-D"
        )


class ScriptableLSTM(_ScriptableLayers, nn.LSTM):
    """fastrnn.LSTM's twin for torch.jit.script."""

    @torch._jit_internal._overload_method
    def forward(
        self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None
    ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        pass

    @torch._jit_internal._overload_method
    def forward(  # noqa: F811
        self, input: PackedSequence, hx: Optional[Tuple[Tensor, Tensor]] = None
    ) -> Tuple[PackedSequence, Tuple[Tensor, Tensor]]:
        pass

    def forward(self, input, hx=None):  # noqa: F811
        features = self.proj_size if self.proj_size > 0 else self.hidden_size
        if isinstance(input, PackedSequence):
            data, batch_sizes, sorted_indices, unsorted_indices = input
            batch = int(batch_sizes[0])
            if hx is None:
                hx = (
                    self._zeros(batch, features, data),
                    self._zeros(batch, self.hidden_size, data),
                )
            else:
                hx = self.permute_hidden(hx, sorted_indices)
            self.check_forward_args(data, hx, batch_sizes)
            output, h_n, c_n = self._run(data, hx[0], hx[1], batch_sizes)
            assert c_n is not None
            return (
                PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices),
                self.permute_hidden((h_n, c_n), unsorted_indices),
            )
        x, is_batched, batch_dim = self._batched(input)
        if hx is None:
            batch = x.size(batch_dim)
            hx = (self._zeros(batch, features, x), self._zeros(batch, self.hidden_size, x))
        else:
            _check_state_dims(hx[0], is_batched)
            _check_state_dims(hx[1], is_batched)
            if not is_batched:
                hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
        self.check_forward_args(x, hx, None)
        if self.batch_first:
            x = x.transpose(0, 1)
        output, h_n, c_n = self._run(x, hx[0], hx[1], None)
        assert c_n is not None
        if self.batch_first:
            output = output.transpose(0, 1)
        if not is_batched:
            output, h_n, c_n = output.squeeze(batch_dim), h_n.squeeze(1), c_n.squeeze(1)
        return output, (h_n, c_n)


class _ScriptableOneState(_ScriptableLayers):
    """forward of the RNN and GRU twins, whose state is one tensor."""

    def _forward_one_state(self, input: Tensor, hx: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        x, is_batched, batch_dim = self._batched(input)
        if hx is None:
            hx = self._zeros(x.size(batch_dim), self.hidden_size, x)
        else:
            _check_state_dims(hx, is_batched)
            if not is_batched:
                hx = hx.unsqueeze(1)
        self.check_forward_args(x, hx, None)
        if self.batch_first:
            x = x.transpose(0, 1)
        output, h_n, _ = self._run(x, hx, None, None)
        if self.batch_first:
            output = output.transpose(0, 1)
        if not is_batched:
            output, h_n = output.squeeze(batch_dim), h_n.squeeze(1)
        return output, h_n

    def _forward_packed(
        self, input: PackedSequence, hx: Optional[Tensor]
    ) -> Tuple[PackedSequence, Tensor]:
        data, batch_sizes, sorted_indices, unsorted_indices = input
        if hx is None:
            hx = self._zeros(int(batch_sizes[0]), self.hidden_size, data)
        else:
            hx = self.permute_hidden(hx, sorted_indices)
        self.check_forward_args(data, hx, batch_sizes)
        output, h_n, _ = self._run(data, hx, None, batch_sizes)
        return (
            PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices),
            self.permute_hidden(h_n, unsorted_indices),
        )


class ScriptableGRU(_ScriptableOneState, nn.GRU):
    """fastrnn.GRU's twin for torch.jit.script."""

    @torch._jit_internal._overload_method
    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        pass

    @torch._jit_internal._overload_method
    def forward(  # noqa: F811
        self, input: PackedSequence, hx: Optional[Tensor] = None
    ) -> Tuple[PackedSequence, Tensor]:
        pass

    def forward(self, input, hx=None):  # noqa: F811
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        return self._forward_one_state(input, hx)


class ScriptableRNN(_ScriptableOneState, nn.RNN):
    """fastrnn.RNN's twin for torch.jit.script. Its forward is ScriptableGRU's
    written again: TorchScript finds a method's overloads only in the class
    that declares them (torch._jit_internal._get_overloaded_methods)."""

    @torch._jit_internal._overload_method
    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        pass

    @torch._jit_internal._overload_method
    def forward(  # noqa: F811
        self, input: PackedSequence, hx: Optional[Tensor] = None
    ) -> Tuple[PackedSequence, Tensor]:
        pass

    def forward(self, input, hx=None):  # noqa: F811
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        return self._forward_one_state(input, hx)


class _ScriptableCell:
    """What the three cells' twins share. _name: the class's name, for messages."""

    _name: str

    def _step(
        self, mode: str, input: Tensor, hx: Tensor, cx: Optional[Tensor]
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """One step: the layer op for T = 1; returns h and (LSTM) c."""
        _, h, c = _layer(
            mode,
            input.unsqueeze(0),
            hx,
            cx,
            self.weight_ih,
            self.weight_hh,
            self.bias_ih,
            self.bias_hh,
            None,
            None,
            False,
        )
        return h, c

    def _input(self, input: Tensor) -> Tuple[Tensor, bool]:
        if input.dim() != 1 and input.dim() != 2:
            raise ValueError(
                f"{self._name}: Expected input to be 1D or 2D, got {input.dim()}D instead"
            )
        return (input if input.dim() == 2 else input.unsqueeze(0)), input.dim() == 2

    def _state(self, state: Optional[Tensor], what: str, input: Tensor, is_batched: bool) -> Tensor:
        if state is None:
            return torch.zeros(
                input.size(0), self.hidden_size, dtype=input.dtype, device=input.device
            )
        if state.dim() != 1 and state.dim() != 2:
            raise ValueError(
                f"{self._name}: Expected {what} to be 1D or 2D, got {state.dim()}D instead"
            )
        return state if is_batched else state.unsqueeze(0)


class ScriptableRNNCell(_ScriptableCell, nn.RNNCell):
    """fastrnn.RNNCell's twin for torch.jit.script."""

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        x, is_batched = self._input(input)
        h0 = self._state(hx, "hidden", x, is_batched)
        if self.nonlinearity != "tanh" and self.nonlinearity != "relu":
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        mode = "RNN_RELU" if self.nonlinearity == "relu" else "RNN_TANH"
        h, _ = self._step(mode, x, h0, None)
        return h if is_batched else h.squeeze(0)


class ScriptableGRUCell(_ScriptableCell, nn.GRUCell):
    """fastrnn.GRUCell's twin for torch.jit.script."""

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        x, is_batched = self._input(input)
        h0 = self._state(hx, "hidden", x, is_batched)
        h, _ = self._step("GRU", x, h0, None)
        return h if is_batched else h.squeeze(0)


class ScriptableLSTMCell(_ScriptableCell, nn.LSTMCell):
    """fastrnn.LSTMCell's twin for torch.jit.script."""

    def forward(
        self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None
    ) -> Tuple[Tensor, Tensor]:
        x, is_batched = self._input(input)
        if hx is None:
            h0 = self._state(None, "hx[0]", x, is_batched)
            c0 = self._state(None, "hx[1]", x, is_batched)
        else:
            h0 = self._state(hx[0], "hx[0]", x, is_batched)
            c0 = self._state(hx[1], "hx[1]", x, is_batched)
        h, c = self._step("LSTM", x, h0, c0)
        assert c is not None
        return (h, c) if is_batched else (h.squeeze(0), c.squeeze(0))


def scriptable(module):
    """What torch.jit.script compiles for `module`. For one of fastrnn's six
    classes, a twin that TorchScript compiles: a shallow copy of it (the same
    parameter tensors, registered under the same names) of the class above for
    its kind. A user's subclass, which may have a forward of its own, is
    compiled as it is."""
    from . import cells, modules

    twins = {
        modules.LSTM: ScriptableLSTM,
        modules.GRU: ScriptableGRU,
        modules.RNN: ScriptableRNN,
        cells.RNNCell: ScriptableRNNCell,
        cells.GRUCell: ScriptableGRUCell,
        cells.LSTMCell: ScriptableLSTMCell,
    }
    if type(module) not in twins:
        return module
    twin = copy.copy(module)
    twin.__class__ = twins[type(module)]
    twin._parameters = dict(module._parameters)
    twin._buffers = dict(module._buffers)
    twin._modules = dict(module._modules)
    twin._name = type(module).__name__
    return twin
