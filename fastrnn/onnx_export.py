"""fastrnn's layers in an ONNX graph, for torch.onnx.export.

An ONNX file cannot hold fastrnn's kernels: whatever runs it (onnxruntime)
brings its own. So while torch.onnx.export traces a model, `ops.layer` emits
ONNX's own LSTM, GRU and RNN operators here instead of fastrnn's ops, as
torch.nn's modules export: the same weights, rearranged into ONNX's gate
order, and a sequence length that stays dynamic. What those operators cannot
express (LSTM projections, packed sequences) is written out as the reference
recurrence (fastrnn/reference.py) in plain torch operations, one step per
time step of the example input.
"""

import torch

from . import reference

# torch.nn's gate order -> ONNX's: LSTM i f g o -> i o f c(=g); GRU r z n -> z r h(=n)
_GATE_ORDER = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn": (0,)}
_OPERATOR = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def _onnx_gates(cell, w):
    """w [G * H, ...] in torch.nn's gate order, as [1, G * H, ...] in ONNX's."""
    chunks = w.chunk(len(_GATE_ORDER[cell]), 0)
    return torch.cat([chunks[g] for g in _GATE_ORDER[cell]]).unsqueeze(0)


def layer(cell, input, hx, cx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, relu, w_hr):
    """ops.layer's results, traced as ONNX operators."""
    if batch_sizes is not None or w_hr is not None or torch.jit.is_tracing():
        return reference.layer(
            cell, input, hx, cx, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, relu, w_hr
        )
    T, B, _ = input.shape
    H = w_hh.shape[1]
    attrs = {"hidden_size": H, "direction": "reverse" if reverse else "forward"}
    if cell == "gru":
        attrs["linear_before_reset"] = 1  # torch.nn's GRU: r * (W_hn h + b_hn)
    if cell == "rnn":
        attrs["activations"] = ["Relu" if relu else "Tanh"]
    bias = None
    if b_ih is not None:  # ONNX's B: [1, 2 * G * H], the input biases, then the recurrent ones
        bias = torch.cat([_onnx_gates(cell, b_ih), _onnx_gates(cell, b_hh)], dim=1)
    inputs = [input, _onnx_gates(cell, w_ih), _onnx_gates(cell, w_hh), bias, None, hx.unsqueeze(0)]
    # outputs: Y [T, 1, B, H], Y_h [1, B, H] (and the LSTM's Y_c [1, B, H])
    shapes = [(T, 1, B, H), (1, B, H)]
    if cell == "lstm":
        inputs.append(cx.unsqueeze(0))
        shapes.append((1, B, H))
    results = torch.onnx.ops.symbolic_multi_out(
        f"::{_OPERATOR[cell]}",
        inputs,
        attrs,
        dtypes=[input.dtype] * len(shapes),
        shapes=shapes,
        version=14,
    )
    output, h_n = results[0].squeeze(1), results[1].squeeze(0)
    return output, h_n, results[2].squeeze(0) if cell == "lstm" else None
