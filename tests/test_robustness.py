"""fastrnn on the inputs where a fused kernel most easily goes wrong, against
torch.nn and against itself:

1. Memory layout. Every tensor argument of every op (forward and backward),
   as a strided, transposed, expanded or offset view, gives bit for bit the
   result of its contiguous copy, and no argument is written to; through the
   modules, such views (and non-contiguous parameters and upstream
   gradients) agree with torch.nn. Tensors of other layouts (sparse, mkldnn)
   and a non-contiguous batch_sizes are refused with a RuntimeError.
2. NaN and Inf. With one NaN, +Inf or -Inf in the input, a state, one element
   of a weight or bias, or the upstream gradient, the NaN / +Inf / -Inf
   masks of the output, the final states and every gradient are torch.nn's.
3. Sizes. Zero sizes wherever torch.nn takes them (cells with no hidden units
   or no input features, packed sequences with empty steps), and a GEMM
   operand across 2^31 bytes, the largest oneDNN's brgemm takes.
"""

import re
import threading

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence

import fastrnn
from fastrnn import ops, reference

from helpers import (
    cast_inputs,
    cast_module,
    compare,
    forward_backward,
    make_inputs,
    make_pair,
    packed_forward_backward,
    precision_excess,
)

F64_TOL = dict(atol=1e-10, rtol=1e-10)

# op kind -> (cell of ops.GATES, relu, with a projection w_hr)
OP_KINDS = {
    "rnn_tanh": ("rnn", False, False),
    "rnn_relu": ("rnn", True, False),
    "lstm": ("lstm", False, False),
    "lstm_proj": ("lstm", False, True),
    "gru": ("gru", False, False),
}
# module kind -> (conftest.CELLS key, extra constructor arguments)
MODULE_KINDS = {
    "rnn_tanh": ("rnn_tanh", {}),
    "rnn_relu": ("rnn_relu", {}),
    "lstm": ("lstm", {}),
    "lstm_proj": ("lstm", {"proj_size": 2}),
    "gru": ("gru", {}),
}


# --- 1. memory layout ----------------------------------------------------------------------


def forward_op_args(kind, packed, dtype=torch.float64, B=3, I=4, H=5):
    """(forward op, its keyword arguments): 3 steps of B = 3 sequences, packed
    with batch sizes [3, 2, 2] or padded."""
    cell, relu, projected = OP_KINDS[kind]
    G, P = ops.GATES[cell], 2 if projected else H
    batch_sizes = torch.tensor([3, 2, 2]) if packed else None

    def randn(*shape):
        return torch.randn(*shape, dtype=dtype)

    args = dict(input=randn(7, I) if packed else randn(3, B, I), hx=randn(B, P))
    if cell == "lstm":
        args["cx"] = randn(B, H)
    args.update(w_ih=randn(G * H, I), w_hh=randn(G * H, P), b_ih=randn(G * H), b_hh=randn(G * H))
    if cell == "lstm":
        args["w_hr"] = randn(P, H) if projected else None
    args.update(batch_sizes=batch_sizes, reverse=False)
    if cell == "rnn":
        args["relu"] = relu
    args["training"] = True
    return getattr(torch.ops.fastrnn, f"{cell}_forward").default, args


def backward_op_args(kind, packed, dtype=torch.float64):
    """(backward op, its keyword arguments), for the workspace of a forward."""
    cell, relu, _ = OP_KINDS[kind]
    forward, f = forward_op_args(kind, packed, dtype)
    outputs = forward(**f)
    args = dict(grad_output=torch.randn_like(outputs[0]), grad_h_n=torch.randn_like(outputs[1]))
    if cell == "lstm":
        args["grad_c_n"] = torch.randn_like(outputs[2])
    args.update(input=f["input"], w_ih=f["w_ih"], w_hh=f["w_hh"])
    if cell == "lstm":
        args["w_hr"] = f["w_hr"]
    args.update(batch_sizes=f["batch_sizes"], reverse=False)
    if cell == "rnn":
        args["relu"] = relu
    args["workspace"] = outputs[-1]
    return getattr(torch.ops.fastrnn, f"{cell}_backward").default, args


def op_args(kind, packed, direction, dtype=torch.float64):
    make = forward_op_args if direction == "forward" else backward_op_args
    return make(kind, packed, dtype)


def strided(t):
    """t's values, every element 2 apart in memory."""
    buffer = t.new_zeros(*t.shape, 2)
    buffer[..., 0] = t
    return buffer[..., 0]


def transposed(t):
    """t's values with its dimensions in reverse order in memory."""
    if t.dim() < 2:
        return None
    dims = list(reversed(range(t.dim())))
    return t.permute(dims).contiguous().permute(dims)


def expanded(t):
    """t's first slice, broadcast (stride 0) over the first dimension."""
    return t[:1].expand_as(t) if t.dim() > 0 and t.shape[0] > 1 else None


def offset(t):
    """t's values, contiguous, but not at the start of their storage."""
    buffer = t.new_zeros(t.numel() + 3)
    buffer[3:] = t.flatten()
    return buffer[3:].view(t.shape)


VIEWS = {"strided": strided, "transposed": transposed, "expanded": expanded, "offset": offset}


def tensor_args(args):
    return {k: v for k, v in args.items() if isinstance(v, torch.Tensor) and k != "batch_sizes"}


def same_outputs(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("kind", list(OP_KINDS))
def test_op_argument_views_give_the_contiguous_result(kind, packed, direction):
    """Each tensor argument in turn as each view: the op's outputs equal those
    of the same values contiguous, bit for bit, and no argument changes."""
    op, args = op_args(kind, packed, direction)
    bad = []
    for name, t in tensor_args(args).items():
        for view_name, make_view in VIEWS.items():
            view = make_view(t)
            if view is None:
                continue
            assert view_name == "offset" or t.numel() <= 1 or not view.is_contiguous(), name
            with_view = dict(args, **{name: view})
            before = {k: v.clone() for k, v in tensor_args(with_view).items()}
            got = op(**with_view)
            expected = op(**dict(args, **{name: view.contiguous()}))
            if not same_outputs(got, expected):
                bad.append(f"{name} {view_name}: outputs differ from the contiguous copy's")
            changed = [
                k for k, v in tensor_args(with_view).items() if not torch.equal(v, before[k])
            ]
            if changed:
                bad.append(f"{name} {view_name}: the op wrote into {changed}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("kind", list(OP_KINDS))
def test_op_batch_sizes_must_be_contiguous(kind, direction):
    """batch_sizes is read as raw memory, as torch.nn does: an offset view
    (contiguous) works, a strided or expanded one is refused, never misread."""
    op, args = op_args(kind, True, direction)
    expected = op(**args)
    assert same_outputs(op(**dict(args, batch_sizes=offset(args["batch_sizes"]))), expected)
    for view in (
        strided(args["batch_sizes"]),
        torch.tensor([3, 9, 2, 9, 2, 9])[::2],  # the same values [3, 2, 2]
        torch.tensor([3]).expand(3),
    ):
        with pytest.raises(RuntimeError, match="batch_sizes: expected a contiguous tensor"):
            op(**dict(args, batch_sizes=view))


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_relu"])
def test_module_non_contiguous_batch_sizes_raises_like_torch(kind):
    """The issue's case: torch.nn reads a non-contiguous batch_sizes' memory as
    if it were contiguous ([3, 9, 2] here) and raises a RuntimeError; so does
    fastrnn (instead of corrupting the heap), for expanded ones too (where
    torch.nn reads past the storage)."""
    ref, ours = make_pair(MODULE_KINDS[kind][0], 4, 5)
    data = torch.randn(6, 4, dtype=torch.float64)
    packed = PackedSequence(data, torch.tensor([3, 9, 2, 9, 1, 9])[::2])
    with pytest.raises(RuntimeError):
        ref(packed)
    with pytest.raises(RuntimeError, match="batch_sizes: expected a contiguous tensor"):
        ours(packed)
    with pytest.raises(RuntimeError, match="batch_sizes: expected a contiguous tensor"):
        ours(PackedSequence(data, torch.tensor([2]).expand(3)))


def run_with_grads(module, x, hx, grads):
    """module(x, hx), then autograd.backward of the outputs with `grads` (as
    given: views stay views); returns outputs and gradients by name."""
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    states = tuple(
        s.detach().requires_grad_(True) for s in (hx if isinstance(hx, tuple) else (hx,))
    )
    output, final = module(x, states if len(states) == 2 else states[0])
    finals = final if isinstance(final, tuple) else (final,)
    torch.autograd.backward((output, *finals), grads)
    result = {"output": output.detach(), "grad_input": x.grad}
    result.update((f"final{i}", f.detach()) for i, f in enumerate(finals))
    result.update((f"grad_state{i}", s.grad) for i, s in enumerate(states))
    result.update((f"grad_{n}", p.grad) for n, p in module.named_parameters())
    return result


@pytest.mark.parametrize("kind", list(MODULE_KINDS))
def test_module_views_match_torch(kind):
    """Through the modules: a strided input, an expanded h0 (the
    zeros(1, 1, H).expand(...) idiom), transposed parameters, and strided or
    expanded upstream gradients (as sum().backward() sends), against torch.nn
    on the same values."""
    cell, extra = MODULE_KINDS[kind]
    ref, ours = make_pair(cell, 4, 6, num_layers=2, bidirectional=True, **extra)
    x, hx, upstream = make_inputs(ref, 5, 3, torch.float64)
    for p in ours.parameters():  # the same values, non-contiguous
        p.data = transposed(p.data) if p.dim() == 2 else strided(p.data)
    x = strided(x)
    states = hx if isinstance(hx, tuple) else (hx,)
    states = (states[0][:, :1].expand_as(states[0]),) + tuple(strided(s) for s in states[1:])
    hx = states if kind.startswith("lstm") else states[0]
    grads = [strided(upstream["output"]), upstream["h_n"][:, :1].expand_as(upstream["h_n"])]
    if "c_n" in upstream:
        grads.append(transposed(upstream["c_n"]))
    compare(run_with_grads(ours, x, hx, grads), run_with_grads(ref, x, hx, grads), **F64_TOL)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_module_packed_strided_data_matches_torch(kind):
    """A PackedSequence made directly from a strided data tensor."""
    ref, ours = make_pair(MODULE_KINDS[kind][0], 4, 6)
    data = strided(torch.randn(7, 4, dtype=torch.float64))
    batch_sizes = torch.tensor([3, 2, 2])

    def run(module):
        d = data.detach().requires_grad_(True)
        output, _ = module(PackedSequence(d, batch_sizes))
        (output.data * torch.arange(output.data.numel()).view_as(output.data)).sum().backward()
        return {
            "output": output.data.detach(),
            "grad_data": d.grad,
            **{n: p.grad for n, p in module.named_parameters()},
        }

    compare(run(ours), run(ref), **F64_TOL)


def other_layouts(t):
    """t as tensors of other layouts: name -> tensor."""
    out = {"sparse_coo": t.to_sparse()}
    if t.dim() == 2:
        out["sparse_csr"] = t.to_sparse_csr()
    if t.dtype == torch.float32:
        out["mkldnn"] = t.to_mkldnn()
    return out


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("kind", ["lstm_proj", "gru", "rnn_tanh"])
def test_op_other_layouts_raise_naming_the_argument(kind, direction):
    op, args = op_args(kind, True, direction, dtype=torch.float32)
    for name, t in tensor_args(args).items():
        for other in other_layouts(t).values():
            with pytest.raises(RuntimeError, match=f"{name}: expected a strided"):
                op(**dict(args, **{name: other}))
    with pytest.raises(RuntimeError, match="batch_sizes: expected a 1-D int64 CPU tensor"):
        op(**dict(args, batch_sizes=args["batch_sizes"].to_sparse()))


def _raises_like_torch_or_own(torch_call, our_call, own_match):
    """our_call raises torch_call's exception if torch_call raises one, else
    fastrnn's own, matching own_match."""
    try:
        torch_call()
    except RuntimeError as error:
        with pytest.raises(RuntimeError, match=re.escape(str(error))):
            our_call()
    else:
        with pytest.raises(RuntimeError, match=own_match):
            our_call()


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_module_sparse_arguments_raise(kind):
    """Sparse arguments: fastrnn's kernels read strided memory only. Where
    torch.nn raises (a sparse input to a module) fastrnn raises its
    exception; where torch.nn computes (a sparse h0 for an LSTM), fastrnn
    refuses the argument by name."""
    ref, ours = make_pair(MODULE_KINDS[kind][0], 4, 6, dtype=torch.float32)
    x = torch.randn(3, 2, 4)
    with pytest.raises(RuntimeError):
        ref(x.to_sparse())
    _raises_like_torch_or_own(lambda: ref(x.to_sparse()), lambda: ours(x.to_sparse()), "")
    h0 = torch.randn(1, 2, 6).to_sparse()
    hx = (h0, torch.randn(1, 2, 6)) if kind == "lstm" else h0
    _raises_like_torch_or_own(lambda: ref(x, hx), lambda: ours(x, hx), "hx: expected a strided")
    cell = fastrnn.LSTMCell(4, 6) if kind == "lstm" else fastrnn.GRUCell(4, 6)
    ref_cell = (torch.nn.LSTMCell if kind == "lstm" else torch.nn.GRUCell)(4, 6)
    sparse = torch.randn(2, 4).to_sparse()
    _raises_like_torch_or_own(
        lambda: ref_cell(sparse), lambda: cell(sparse), "input: expected a strided"
    )


# --- 2. NaN and Inf ------------------------------------------------------------------------
#
# Each case puts one non-finite value in one place and compares where the
# results are NaN, +Inf and -Inf with torch.nn's. The reference is torch.nn in
# float64 on the same (float32-rounded) values, also for fastrnn's float32:
# torch.nn's float32 picks its path per CPU (its float32 LSTM runs oneDNN where
# oneDNN supports the CPU), while its float64 always runs ATen's native cell
# code under autograd, the definition of the pattern. For the cells whose
# float32 path is that same native code (RNN, GRU), fastrnn's float32 is also
# compared with torch.nn's float32.

VALUES = {"nan": float("nan"), "+inf": float("inf"), "-inf": float("-inf")}
DTYPES = {"f64": torch.float64, "f32": torch.float32}
SIZES = {
    "small": dict(T=3, B=2, I=3, H=4),
    # float32: gates wider than one GEMM block (LSTM 4 * 72 columns), packed panels
    "wide": dict(T=3, B=5, I=20, H=72),
    "packed": dict(T=3, B=3, I=3, H=4),
}


def masks(results):
    return {k: (v.isnan(), v.isposinf(), v.isneginf()) for k, v in results.items()}


def pattern_differences(ours, ref):
    bad = []
    m_ours, m_ref = masks(ours), masks(ref)
    assert m_ours.keys() == m_ref.keys()
    for k in m_ref:
        for what, a, b in zip(("NaN", "+Inf", "-Inf"), m_ours[k], m_ref[k]):
            if not torch.equal(a, b):
                bad.append(
                    f"{k}: {what} in {int(a.sum())} elements, torch.nn {int(b.sum())}, "
                    f"{int((a ^ b).sum())} differ"
                )
    return bad


def module_places(module, gates, all_gates):
    """Where one value goes: the input, the initial states, one element per
    gate (or of the first and last gate) of every weight and bias of the first
    layer and direction (and one of each other layer and direction), and the
    upstream gradients."""
    places = ["input", "h0"] + (["c0"] if module.mode == "LSTM" else [])
    for name, p in module.named_parameters():
        first = name.endswith("_l0")
        rows = p.shape[0] // (1 if "weight_hr" in name else gates)
        chosen = range(gates) if all_gates else (0, gates - 1)
        for g in chosen if first and "weight_hr" not in name else (0,):
            places.append(("param", name, g * rows + rows // 2))
    places += ["grad_output", "grad_h_n"] + (["grad_c_n"] if module.mode == "LSTM" else [])
    return places


def poison(place, value, module, x, hx, upstream):
    """Copies of the arguments with `value` at `place` (module: in place)."""
    x = x.clone()
    hx = tuple(s.clone() for s in hx) if isinstance(hx, tuple) else hx.clone()
    upstream = {k: v.clone() for k, v in upstream.items()}
    states = hx if isinstance(hx, tuple) else (hx,)

    def middle(t):
        return tuple(s // 2 for s in t.shape)

    if place == "input":
        x[middle(x)] = value
    elif place in ("h0", "c0"):
        states[place == "c0"][middle(states[0])] = value
    elif place in ("grad_output", "grad_h_n", "grad_c_n"):
        u = upstream[place[5:]]
        u[middle(u)] = value
    else:
        _, name, row = place
        with torch.no_grad():
            p = dict(module.named_parameters())[name]
            p[(row, p.shape[1] // 2) if p.dim() == 2 else row] = value
    return x, hx, upstream


def check_module_patterns(kind, dtype, size, places=None, packed_lengths=None, **module_args):
    cell, extra = MODULE_KINDS[kind]
    s = SIZES[size]
    ref64, ours64 = make_pair(cell, s["I"], s["H"], **extra, **module_args)
    x64, hx64, up64 = make_inputs(ref64, s["T"], s["B"], torch.float64)
    gates = ops.GATES[OP_KINDS[kind][0]]
    run = (
        (lambda m, x, hx, u: packed_forward_backward(m, x, packed_lengths, False, hx, u))
        if packed_lengths
        else forward_backward
    )
    bad = []
    for place in places or module_places(ref64, gates, all_gates=size == "small"):
        for value_name, value in VALUES.items():
            ref = cast_module(ref64, dtype)
            x, hx, up = poison(place, value, ref, *cast_inputs(x64, hx64, up64, dtype))
            ours = cast_module(ours64, dtype)
            ours.load_state_dict(ref.state_dict())
            got = run(ours, x, hx, up)
            refs = {
                "torch.nn float64": run(
                    cast_module(ref, torch.float64), *cast_inputs(x, hx, up, torch.float64)
                )
            }
            if dtype == torch.float32 and cell != "lstm":
                refs["torch.nn float32"] = run(ref, x, hx, up)
            for ref_name, r in refs.items():
                bad += [
                    f"{place} = {value_name}, vs {ref_name}: {d}"
                    for d in pattern_differences(got, r)
                ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("dtype,size", [("f64", "small"), ("f32", "small"), ("f32", "wide")])
@pytest.mark.parametrize("kind", list(MODULE_KINDS))
def test_nonfinite_patterns_match_torch(kind, dtype, size):
    check_module_patterns(kind, DTYPES[dtype], size)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("kind", list(MODULE_KINDS))
def test_nonfinite_patterns_match_torch_packed_bidirectional(kind, dtype):
    """Packed (unsorted lengths, one of them 1), two layers, both directions."""
    places = ["input", "h0", "grad_output", "grad_h_n"]
    places += [("param", "weight_hh_l0_reverse", 1), ("param", "bias_ih_l1", 2)]
    check_module_patterns(
        kind,
        DTYPES[dtype],
        "packed",
        places=places,
        packed_lengths=[3, 1, 2],
        num_layers=2,
        bidirectional=True,
    )


# cell kind -> (torch.nn cell, fastrnn cell, extra arguments, gates)
CELL_KINDS = {
    "rnn_tanh": ("RNNCell", {"nonlinearity": "tanh"}, 1),
    "rnn_relu": ("RNNCell", {"nonlinearity": "relu"}, 1),
    "lstm": ("LSTMCell", {}, 4),
    "gru": ("GRUCell", {}, 3),
}


def cell_step(module, x, states, upstream):
    """One call with the given states, backward of sum(upstream * outputs)."""
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    states = tuple(s.detach().clone().requires_grad_(True) for s in states)
    out = module(x, states if len(states) == 2 else states[0])
    outs = out if isinstance(out, tuple) else (out,)
    sum((o * u).sum() for o, u in zip(outs, upstream)).backward()
    result = {f"out{i}": o.detach() for i, o in enumerate(outs)}
    result["grad_input"] = x.grad
    result.update((f"grad_state{i}", s.grad) for i, s in enumerate(states))
    result.update((f"grad_{n}", p.grad) for n, p in module.named_parameters())
    return result


def poison_cell(place, value, module, x, states, upstream):
    """Copies of the arguments with `value` at `place` (module: in place)."""
    x, states, upstream = x.clone(), [s.clone() for s in states], [u.clone() for u in upstream]
    where, which = place
    if where == "input":
        x[1, 2] = value
    elif where == "state":
        states[which][1, 2] = value
    elif where == "upstream":
        upstream[which][1, 2] = value
    else:
        name, row = which
        with torch.no_grad():
            p = dict(module.named_parameters())[name]
            p[(row, 1) if p.dim() == 2 else row] = value
    return x, states, upstream


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("kind", list(CELL_KINDS))
def test_cell_nonfinite_patterns_match_torch(kind, dtype):
    """The cells: in the input, each state, one element per gate of every
    weight and bias, each upstream gradient."""
    name, extra, gates = CELL_KINDS[kind]
    dtype = DTYPES[dtype]
    B, I, H = 3, 4, 5
    ref64 = getattr(torch.nn, name)(I, H, **extra).double()
    n_states = 2 if kind == "lstm" else 1
    x64 = torch.randn(B, I, dtype=torch.float64)
    states64 = [torch.randn(B, H, dtype=torch.float64) for _ in range(n_states)]
    up64 = [torch.randn(B, H, dtype=torch.float64) for _ in range(n_states)]
    places = [("input", None)] + [("state", i) for i in range(n_states)]
    places += [("param", (n, g * H + 2)) for n, _ in ref64.named_parameters() for g in range(gates)]
    places += [("upstream", i) for i in range(n_states)]

    def as_dtype(ts, d):
        return [t.to(d) for t in ts]

    bad = []
    for place in places:
        for value_name, value in VALUES.items():
            ref = cast_module(ref64, dtype)
            x, states, up = poison_cell(
                place, value, ref, x64.to(dtype), as_dtype(states64, dtype), as_dtype(up64, dtype)
            )
            ours = getattr(fastrnn, name)(I, H, **extra).to(dtype)
            ours.load_state_dict(ref.state_dict())
            got = cell_step(ours, x, states, up)
            refs = {
                "torch.nn float64": cell_step(
                    cast_module(ref, torch.float64),
                    x.double(),
                    as_dtype(states, torch.float64),
                    as_dtype(up, torch.float64),
                )
            }
            if dtype == torch.float32:
                refs["torch.nn float32"] = cell_step(ref, x, states, up)
            for ref_name, r in refs.items():
                bad += [
                    f"{place} = {value_name}, vs {ref_name}: {d}"
                    for d in pattern_differences(got, r)
                ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_relu_backward_is_threshold_backward(dtype):
    """torch.nn's relu RNN differentiates with threshold_backward(grad, h, 0):
    the gradient is exactly 0 where h <= 0, also for a NaN or Inf upstream
    gradient (NaN * 0 would be NaN), and passes where h is NaN. Values, not
    only masks: one step (no recurrence to spread the NaN), every
    pre-activation negative but unit 1's, NaN."""
    dtype = DTYPES[dtype]
    ref, ours = make_pair("rnn_relu", 3, 4, dtype=dtype)
    with torch.no_grad():
        for m in (ref, ours):
            m.bias_ih_l0.fill_(-20.0)  # every h is 0 ...
            m.weight_ih_l0[1, 0] = float("nan")  # ... but unit 1's, NaN
    x, hx, upstream = make_inputs(ref, 1, 2, dtype)
    upstream["output"][0, 0] = torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0])
    got, expected = forward_backward(ours, x, hx, upstream), forward_backward(ref, x, hx, upstream)
    assert got["output"][..., 1].isnan().all() and (got["output"][..., [0, 2, 3]] == 0).all()
    assert not got["grad_bias_ih_l0"][[0, 2, 3]].isnan().any()
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], equal_nan=True, **F64_TOL)


# --- 3. sizes ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize(
    "I,H,B",
    [(10, 0, 3), (0, 5, 3), (0, 0, 3), (10, 5, 0), (0, 0, 0)],
    ids=["H0", "I0", "I0-H0", "B0", "all0"],
)
@pytest.mark.parametrize("kind", list(CELL_KINDS))
def test_cell_zero_sizes_match_torch(kind, I, H, B, dtype):
    """torch.nn's cells take hidden_size 0, input_size 0 and an empty batch
    (test_nn's test_RNN_cell_forward_zero_hidden_size): the same outputs
    (empty, or the biases' activations for input_size 0) and gradients."""
    name, extra, _ = CELL_KINDS[kind]
    dtype = DTYPES[dtype]
    ref = getattr(torch.nn, name)(I, H, **extra).to(dtype)
    ours = getattr(fastrnn, name)(I, H, **extra).to(dtype)
    ours.load_state_dict(ref.state_dict())
    n = 2 if kind == "lstm" else 1
    x = torch.randn(B, I, dtype=dtype)
    states = [torch.randn(B, H, dtype=dtype) for _ in range(n)]
    upstream = [torch.randn(B, H, dtype=dtype) for _ in range(n)]
    tol = F64_TOL if dtype == torch.float64 else dict(atol=1e-6, rtol=1e-6)
    compare(cell_step(ours, x, states, upstream), cell_step(ref, x, states, upstream), **tol)
    assert (ours(x)[0] if n == 2 else ours(x)).shape == (B, H)  # no state given


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize(
    "batch_sizes", [[0], [0, 0], [3, 0], [3, 1, 0, 0]], ids=["0", "0-0", "3-0", "3-1-0-0"]
)
@pytest.mark.parametrize("kind", list(MODULE_KINDS))
def test_packed_empty_steps_match_torch(kind, batch_sizes, bidirectional):
    """PackedSequences with steps of no sequences (batch sizes 0), which
    torch.nn takes (pack_padded_sequence never makes them, a PackedSequence
    built directly may have them): outputs, final states and gradients."""
    cell, extra = MODULE_KINDS[kind]
    ref, ours = make_pair(cell, 4, 5, num_layers=2, bidirectional=bidirectional, **extra)
    batch_sizes = torch.tensor(batch_sizes)
    data = torch.randn(int(batch_sizes.sum()), 4, dtype=torch.float64)
    B = int(batch_sizes[0])
    hx = make_inputs(ref, 1, B, torch.float64)[1]

    def run(module):
        module.zero_grad(set_to_none=True)
        d = data.clone().requires_grad_(True)
        states = tuple(
            s.clone().requires_grad_(True) for s in (hx if isinstance(hx, tuple) else (hx,))
        )
        output, final = module(
            PackedSequence(d, batch_sizes), states if len(states) == 2 else states[0]
        )
        finals = final if isinstance(final, tuple) else (final,)
        loss = (
            output.data
            * torch.linspace(-1, 1, output.data.numel(), dtype=d.dtype).view_as(output.data)
        ).sum()
        loss = loss + sum((f * f).sum() for f in finals)
        loss.backward()
        result = {"output": output.data.detach(), "grad_data": d.grad}
        result.update((f"final{i}", f.detach()) for i, f in enumerate(finals))
        result.update((f"grad_state{i}", s.grad) for i, s in enumerate(states))
        result.update((f"grad_{n}", p.grad) for n, p in module.named_parameters())
        return result

    compare(run(ours), run(ref), **F64_TOL)


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("kind", list(OP_KINDS))
def test_op_zero_sizes_agree_with_reference(kind, direction):
    """The ops with no hidden units, no input features or no rows, padded and
    packed, against fastrnn.reference (through autograd for the backward ops):
    results of the right shapes, and zeros where nothing contributes (the
    weight gradients of an empty batch, the input gradient of no hidden units)."""
    cell, relu, projected = OP_KINDS[kind]
    G = ops.GATES[cell]
    cases = [
        dict(T=2, B=3, I=0, H=4),
        dict(T=2, B=0, I=3, H=4),
        dict(T=2, B=3, I=3, H=4, bs=[3, 0]),
    ]
    if not projected:  # a projection needs 0 < proj_size < hidden_size
        cases.append(dict(T=2, B=3, I=3, H=0))
    for case in cases:
        T, B, I, H = case["T"], case["B"], case["I"], case["H"]
        P = 2 if projected else H
        bs = torch.tensor(case["bs"]) if "bs" in case else None
        args = dict(
            input=torch.randn(
                *((int(bs.sum()),) if bs is not None else (T, B)), I, dtype=torch.float64
            ),
            hx=torch.randn(B, P, dtype=torch.float64),
            cx=torch.randn(B, H, dtype=torch.float64) if cell == "lstm" else None,
            w_ih=torch.randn(G * H, I, dtype=torch.float64),
            w_hh=torch.randn(G * H, P, dtype=torch.float64),
            b_ih=torch.randn(G * H, dtype=torch.float64),
            b_hh=torch.randn(G * H, dtype=torch.float64),
            w_hr=torch.randn(P, H, dtype=torch.float64) if projected else None,
        )
        results = {}
        for impl_name, impl in (("ours", ops.layer), ("reference", reference.layer)):
            leaves = {
                k: v.clone().requires_grad_(direction == "backward")
                for k, v in args.items()
                if v is not None
            }
            out = impl(cell, **{k: leaves.get(k) for k in args}, batch_sizes=bs, relu=relu)
            outs = [o for o in out if o is not None]
            r = {f"out{i}": o.detach() for i, o in enumerate(outs)}
            if direction == "backward":
                loss = sum(
                    (o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum()
                    for o in outs
                )
                grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
                r.update(
                    (f"grad_{k}", torch.zeros_like(v) if g is None else g)
                    for (k, v), g in zip(leaves.items(), grads)
                )
            results[impl_name] = r
        compare(results["ours"], results["reference"], **F64_TOL)


# A GEMM operand of 2^31 bytes or more is refused by oneDNN's brgemm (it threw
# std::bad_alloc): the input projection of T = 1, B = 8192 rows of 65536
# float32 features is the smallest such operand through the input, B = 8191
# the largest below. The backward's input gradient [8192, 65536] crosses it
# as the GEMM's output. Each case holds a 2 GiB input, and about 3 s of two
# cores; the backward 6-8 GiB (the input gradients, fastrnn's copy of x
# beside h_prev, torch.nn's) and about 9 s.
BIG_I = 65536


def rank_one_input(rows):
    """x [1, rows, BIG_I] float32 with x[0, n, i] = a[n] * b[i], exactly (a
    has 16 significant bits, b 8), and a, b in float64: so x W^T = a (W b)^T
    has a float64 truth without a float64 copy of x."""
    a = torch.randint(-(2**15), 2**15, (rows,)).float() / 2**15
    b = torch.randint(-127, 128, (BIG_I,)).float() / 128
    x = torch.empty(1, rows, BIG_I)
    torch.mul(a[:, None], b[None, :], out=x[0])
    return x, a.double(), b.double()


def torch_native(f, *args):
    """f(*args) with torch.nn on its native path: its float32 LSTM on oneDNN
    could not create a primitive for 8191 rows of 65536 features, and its
    backward asked for 24 GiB."""
    with torch.backends.mkldnn.flags(enabled=False):
        return f(*args)


def small_twin(module, a, b):
    """A float64 torch.nn module with input_size = G * H whose input a[n] *
    (W_ih b) and identity W_ih give module's pre-activations on rank_one_input
    exactly: its input gradient is the gates' gradient."""
    G = module.weight_ih_l0.shape[0] // module.hidden_size
    twin = type(module)(
        G * module.hidden_size,
        module.hidden_size,
        **({"nonlinearity": module.nonlinearity} if module.mode.startswith("RNN") else {}),
    ).double()
    state = {k: v.double() for k, v in module.state_dict().items()}
    projected = module.weight_ih_l0.double() @ b  # [G * H]
    state["weight_ih_l0"] = torch.eye(G * module.hidden_size, dtype=torch.float64)
    twin.load_state_dict(state)
    return twin, (a[None, :, None] * projected[None, None, :]).detach()


# torch.backends.mkldnn.flags() warns that TF32 needs an Intel GPU
TF32_WARNING = "ignore:TF32 acceleration on top of oneDNN"


@pytest.mark.filterwarnings(TF32_WARNING)
@pytest.mark.parametrize(
    "kind,rows", [("rnn_tanh", 8191), ("rnn_tanh", 8192), ("lstm", 8192), ("gru", 8192)]
)
def test_input_projection_across_2_31_bytes(kind, rows):
    ref, ours = make_pair(MODULE_KINDS[kind][0], BIG_I, 2, dtype=torch.float32)
    x, a, b = rank_one_input(rows)
    twin, x_twin = small_twin(ref, a, b)
    with torch.no_grad():
        truth = dict(zip(("output", "h_n"), twin(x_twin)))
        theirs = dict(zip(("output", "h_n"), torch_native(ref, x)))
        got = dict(zip(("output", "h_n"), ours(x)))
    del x
    if kind == "lstm":
        truth["h_n"], theirs["h_n"], got["h_n"] = truth["h_n"][0], theirs["h_n"][0], got["h_n"][0]
    bad = precision_excess(got, theirs, truth, torch.float32)
    assert not bad, "\n".join(bad)


@pytest.mark.filterwarnings(TF32_WARNING)
def test_backward_across_2_31_bytes():
    """B = 8192 rows of 65536 features, backward: the input gradient's GEMM
    writes a 2^31-byte output. The float64 truth of the gates' gradient comes
    from small_twin; grad_input is checked on rows around the split and a
    sample, grad_weight_ih (= gates^T a b^T) and the biases' in full."""
    rows = 8192
    ref, ours = make_pair("lstm", BIG_I, 2, dtype=torch.float32)
    x, a, b = rank_one_input(rows)
    upstream = torch.randn(1, rows, 2)
    twin, x_twin = small_twin(ref, a, b)
    x_twin.requires_grad_(True)
    (twin(x_twin)[0] * upstream.double()).sum().backward()
    gates = x_twin.grad[0]  # [rows, G * H]
    sample = torch.cat([torch.arange(8186, 8192), torch.randint(0, rows, (58,))])
    truth = {
        "grad_input": gates[sample] @ ref.weight_ih_l0.double(),
        "grad_weight_ih_l0": (gates.t() @ a)[:, None] * b[None, :],
        "grad_bias_ih_l0": gates.sum(0),
    }

    def gradients(module):
        module.zero_grad(set_to_none=True)
        leaf = x.requires_grad_(True)
        (module(leaf)[0] * upstream).sum().backward()
        result = {
            "grad_input": leaf.grad[0, sample],
            "grad_bias_ih_l0": module.bias_ih_l0.grad,
            "grad_weight_ih_l0": module.weight_ih_l0.grad,
        }
        leaf.grad = None
        return result

    theirs = torch_native(lambda: gradients(ref))
    got = {}
    # in a thread of its own: fastrnn's per-thread temporaries (here a copy of
    # x, 2 GiB) are freed when the thread ends
    worker = threading.Thread(target=lambda: got.update(gradients(ours)))
    worker.start()
    worker.join()
    assert got.keys() == truth.keys()
    bad = precision_excess(got, theirs, truth, torch.float32)
    assert not bad, "\n".join(bad)
