"""Helpers shared by the fastrnn tests (imported as `helpers`: pytest puts
tests/ on sys.path; conftest.py holds only pytest's hooks and fixtures).

The central one is `forward_backward`: it runs a module forward, sends a
given upstream gradient into the output and into every final state, and
returns every tensor the contract covers (output, final states, and the
gradients of the input, the initial states and every parameter) by name, so
that two runs can be compared key by key with `compare`.
"""

import copy

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import fastrnn

# The four cells of the contract: (torch.nn class, fastrnn class, extra kwargs).
CELLS = {
    "rnn_tanh": (torch.nn.RNN, fastrnn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (torch.nn.RNN, fastrnn.RNN, {"nonlinearity": "relu"}),
    "lstm": (torch.nn.LSTM, fastrnn.LSTM, {}),
    "gru": (torch.nn.GRU, fastrnn.GRU, {}),
}

SEED = 1234


def devices():
    """The devices a test runs on, for @pytest.mark.parametrize("device", devices()):
    the CPU, and CUDA (with the `cuda` mark) where torch has a GPU."""
    cuda = [pytest.param("cuda", marks=pytest.mark.cuda)] if torch.cuda.is_available() else []
    return ["cpu", *cuda]


def make_pair(cell, input_size, hidden_size, dtype=torch.float64, device="cpu", **kwargs):
    """A torch.nn module and its fastrnn twin with the same state_dict."""
    torch_cls, fast_cls, extra = CELLS[cell]
    ref = torch_cls(input_size, hidden_size, **extra, **kwargs).to(device, dtype)
    ours = fast_cls(input_size, hidden_size, **extra, **kwargs).to(device, dtype)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def cast_module(module, dtype):
    """A copy of `module` with its parameters cast to `dtype`."""
    return copy.deepcopy(module).to(dtype)


def is_lstm(module):
    return module.mode == "LSTM"


def directions(module):
    return 2 if module.bidirectional else 1


def features(module):
    """Features of h: proj_size for an LSTM with projection, else hidden_size."""
    return getattr(module, "proj_size", 0) or module.hidden_size


def state_shape(module, batch, cell_state=False):
    """Shape of h0 (or, with cell_state, c0) for a batch; batch None means
    unbatched input."""
    layers = module.num_layers * directions(module)
    size = module.hidden_size if cell_state else features(module)
    if batch is None:
        return (layers, size)
    return (layers, batch, size)


def make_inputs(module, seq_len, batch, dtype, with_state=True, batch_first=None):
    """Random input, initial states (or None) and upstream gradients for
    `module`, on the module's device.

    batch None makes an unbatched (2-D) input. Returns (x, hx, upstream) where
    hx is None, a tensor, or an (h0, c0) tuple, and upstream maps "output",
    "h_n" (and "c_n") to the gradients sent back into those outputs.
    """
    batch_first = module.batch_first if batch_first is None else batch_first
    H, I = features(module) * directions(module), module.input_size  # H: output features
    if batch is None:
        x_shape, out_shape = (seq_len, I), (seq_len, H)
    elif batch_first:
        x_shape, out_shape = (batch, seq_len, I), (batch, seq_len, H)
    else:
        x_shape, out_shape = (seq_len, batch, I), (seq_len, batch, H)
    device = next(module.parameters()).device

    def randn(shape):
        return torch.randn(shape, dtype=dtype, device=device)

    x = randn(x_shape)
    s_shape, c_shape = state_shape(module, batch), state_shape(module, batch, cell_state=True)
    hx = None
    if with_state:
        h0 = randn(s_shape)
        hx = (h0, randn(c_shape)) if is_lstm(module) else h0
    upstream = {"output": randn(out_shape), "h_n": randn(s_shape)}
    if is_lstm(module):
        upstream["c_n"] = randn(c_shape)
    return x, hx, upstream


def _cast(t, dtype):
    if t is None:
        return None
    if isinstance(t, tuple):
        return tuple(_cast(s, dtype) for s in t)
    if isinstance(t, dict):
        return {k: _cast(v, dtype) for k, v in t.items()}
    return t.to(dtype)


def cast_inputs(x, hx, upstream, dtype):
    return _cast(x, dtype), _cast(hx, dtype), _cast(upstream, dtype)


def forward_backward(module, x, hx, upstream, run=None):
    """Forward, then backward of sum(upstream[k] * result[k]) over the output
    and every final state. Inputs are not modified: fresh leaves are made.
    run(module, x, hx) -> (output, final states) calls the module; by default
    module(x, hx) (the packed tests pack x and re-pad the output there).

    Returns a dict: "output", "h_n", ("c_n"), "grad_input", ("grad_h0",
    "grad_c0" when hx was given) and "grad_<parameter name>" for every
    parameter.
    """
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    states = ()
    if hx is not None:
        states = tuple(
            s.detach().clone().requires_grad_(True)
            for s in (hx if isinstance(hx, tuple) else (hx,))
        )
        hx = states if is_lstm(module) else states[0]
    output, final = module(x, hx) if run is None else run(module, x, hx)
    results = {"output": output}
    if is_lstm(module):
        results["h_n"], results["c_n"] = final
    else:
        results["h_n"] = final
    loss = sum((results[k] * upstream[k]).sum() for k in upstream)
    loss.backward()

    out = {k: v.detach() for k, v in results.items()}
    out["grad_input"] = x.grad
    for name, s in zip(("grad_h0", "grad_c0"), states):
        out[name] = s.grad
    for name, p in module.named_parameters():
        out[f"grad_{name}"] = p.grad
    return out


# lengths of each batch's sequences for the packed tests: unsorted, with
# length 1 and equal lengths
LENGTHS = {3: [7, 2, 7], 4: [3, 9, 1, 9], 5: [5, 5, 1, 3, 2], 2: [1, 1]}


def packed_forward_backward(module, x, lengths, enforce_sorted, hx, upstream, batch_first=False):
    """forward_backward for a PackedSequence made from the padded x [T, B, I]
    (or [B, T, I] with batch_first): the upstream gradient of the output
    applies to the re-padded output, laid out as x."""

    def run(module, x, hx):
        packed = pack_padded_sequence(
            x, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted
        )
        output, final = module(packed, hx)
        assert isinstance(output, PackedSequence)
        assert torch.equal(output.batch_sizes, packed.batch_sizes)
        padded, out_lengths = pad_packed_sequence(
            output, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0]
        )
        assert torch.equal(out_lengths, torch.as_tensor(lengths))
        return padded, final

    return forward_backward(module, x, hx, upstream, run=run)


def max_abs(t):
    return t.abs().max().item() if t.numel() else 0.0


def compare(ours, ref, atol, rtol):
    """Assert two forward_backward results have the same keys and agree
    elementwise within atol + rtol * |ref|; lists every disagreeing tensor."""
    assert ours.keys() == ref.keys()
    bad = []
    for k in ref:
        a, b = ours[k], ref[k]
        assert a is not None and b is not None, f"{k}: missing gradient"
        assert a.shape == b.shape, f"{k}: shape {tuple(a.shape)} != {tuple(b.shape)}"
        assert a.dtype == b.dtype, f"{k}: dtype {a.dtype} != {b.dtype}"
        if not torch.allclose(a, b, atol=atol, rtol=rtol):
            bad.append(f"{k}: max abs diff {max_abs(a - b):.3e} (max abs ref {max_abs(b):.3e})")
    assert not bad, "disagreement:\n  " + "\n  ".join(bad)


# floor of the accuracy rule, times max|truth|, per dtype: the other error can
# be accidentally (near) zero for a tensor (a single step, a zero gradient, a
# lucky rounding), and twice zero would demand bit-exactness. float32: 1e-6,
# about 8 ulps (eps = 1.19e-7), rounding noise far below any real error.
# float16 and bfloat16 run in float32 and are rounded once at the end (half an
# eps); the floor is one eps, twice that rounding.
EXCESS_FLOOR = {torch.float32: 1e-6, torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}


def precision_excess(ours, theirs, truth, dtype):
    """The project's accuracy rule for `dtype`, tensor by tensor: ours' error
    against the float64 truth is at most twice the other implementation's
    (torch.nn or the reference) plus a floor. Returns the violations as
    readable lines."""
    bad = []
    for k, t in truth.items():
        assert ours[k].dtype == dtype and ours[k].shape == t.shape, k
        e_theirs = max_abs(theirs[k].double() - t)
        e_ours = max_abs(ours[k].double() - t)
        floor = EXCESS_FLOOR[dtype] * max_abs(t)
        if not e_ours <= 2 * e_theirs + floor:
            bad.append(
                f"{k}: e_ours {e_ours:.3e} > 2 * e_theirs {e_theirs:.3e} + floor {floor:.3e}"
            )
    return bad


def float32_excess(ours, theirs, truth):
    """precision_excess for float32."""
    return precision_excess(ours, theirs, truth, torch.float32)
