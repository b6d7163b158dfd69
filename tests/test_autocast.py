"""Under torch.autocast fastrnn's modules and cells run in the dtype torch.nn's
would run in and return torch.nn's dtypes: outputs, final states and (float32
parameters getting float32 gradients) every gradient, with values by the
project's rule against a float64 truth on the same weights and inputs. These
are rounded to the autocast dtype beforehand, so that autocast's casts are
exact and the truth is the same for every run.

torch.nn's dtypes under autocast differ by cell and input: on the CPU its RNN
and oneDNN's LSTM (padded input, no projection) run in the autocast dtype,
its GRU, LSTMCell and GRUCell and its LSTM on packed input return float32, a
projected LSTM returns h in the autocast dtype and c in float32
(fastrnn/autocast.py says why). The tests read them off torch.nn itself."""

import contextlib
import warnings

import pytest
import torch
from test_cells import CELLS as CELL_KINDS
from test_cells import cell_pair
from test_cells import inputs as cell_inputs
from test_low_precision import DTYPES, LAYER_CASES
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only

from fastrnn.ops import native_dtypes

from helpers import EXCESS_FLOOR, LENGTHS, make_inputs, make_pair, max_abs

T, B = 9, 4


@pytest.fixture(autouse=True)
def _quiet():
    # torch.nn's warning that oneDNN has no projected LSTM
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _rounded(value, dtype):
    """value (a tensor, or tuples or dicts of them) rounded to dtype's
    values, kept in its own dtype."""
    return tree_map_only(torch.Tensor, lambda t: t.to(dtype).to(t.dtype), value)


def _round_parameters(modules, dtype):
    for module in modules:
        for p in module.parameters():
            p.data = _rounded(p.data, dtype)


def _as(value, dtype_or_device):
    """value (a tensor, or tuples or dicts of them) in a dtype or on a device."""
    return tree_map_only(torch.Tensor, lambda t: t.to(dtype_or_device), value)


def _grads_of(module, x, states):
    out = {"grad_input": x.grad}
    out.update((f"grad_state{i}", s.grad) for i, s in enumerate(states))
    out.update((f"grad_{n}", p.grad) for n, p in module.named_parameters())
    return out


def _layer_step(module, x, hx, upstream, autocast_dtype, packed=False, device="cpu"):
    """Forward under autocast (None: without), backward outside it of
    sum(upstream * result) over the output and every final state. Returns
    every result and gradient by name; the packed output is re-padded."""
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    states = tuple(s.detach().clone().requires_grad_(True) for s in _tuple(hx))
    hx = None if not states else (states if len(states) == 2 else states[0])
    inp = pack_padded_sequence(x, LENGTHS[B], enforce_sorted=False) if packed else x
    with torch.autocast(device, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        output, final = module(inp, hx)
    if packed:
        assert isinstance(output, PackedSequence)
        output = pad_packed_sequence(output, total_length=T)[0]
    results = {"output": output}
    results.update((f"state{i}", s) for i, s in enumerate(_tuple(final)))
    loss = sum((results[k].double() * upstream[k].double()).sum() for k in results)
    loss.backward()
    out = {k: v.detach() for k, v in results.items()}
    out.update(_grads_of(module, x, states))
    return out


def _cell_step(module, x, hx, upstream, autocast_dtype, device="cpu"):
    """_layer_step for a cell: one call under autocast, backward outside it."""
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    states = tuple(s.detach().clone().requires_grad_(True) for s in _tuple(hx))
    arg = None if not states else (states if len(states) == 2 else states[0])
    with torch.autocast(device, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        results = dict(enumerate(_tuple(module(x, arg))))
    results = {f"state{i}": r for i, r in results.items()}
    sum((r.double() * u.double()).sum() for r, u in zip(results.values(), upstream)).backward()
    out = {k: v.detach() for k, v in results.items()}
    out.update(_grads_of(module, x, states))
    return out


def _tuple(value):
    if value is None:
        return ()
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _upstream_by_name(upstream):
    """make_inputs' upstream gradients under _layer_step's names."""
    return {
        "output": upstream["output"],
        "state0": upstream["h_n"],
        **({"state1": upstream["c_n"]} if "c_n" in upstream else {}),
    }


def _onednn_refuses(error):
    # oneDNN's LSTM (mkldnn_rnn_layer, which CPU autocast casts to its dtype)
    # has no primitive for that dtype on every CPU (float16 on most)
    return isinstance(error, RuntimeError) and "primitive" in str(error)


def _torch_run(step, ref, args, dtype):
    """torch.nn's results under autocast, and their dtypes. Where oneDNN's LSTM
    refuses the dtype that autocast casts it to, torch.nn's own run in that
    dtype stands in for its values, and the dtypes are those of the cast:
    dtype for the results, the arguments' for the gradients."""
    try:
        results = step(ref, *args, dtype)
        return results, {k: v.dtype for k, v in results.items()}
    except RuntimeError as error:
        if not _onednn_refuses(error):
            raise
    results = step(ref.to(dtype), *_as(args, dtype), None)
    ref.float()
    dtypes = {k: dtype if not k.startswith("grad_") else torch.float32 for k in results}
    return results, dtypes


class _OpDtypes(TorchDispatchMode):
    """The floating dtypes of the tensors fastrnn's forward ops are called
    with: the dtype they run in."""

    def __init__(self):
        super().__init__()
        self.dtypes = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if name.startswith("fastrnn::") and name.endswith("_forward"):
            self.dtypes.update(
                a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()
            )
        return func(*args, **(kwargs or {}))


def _ran_in(dtype, device="cpu"):
    """What fastrnn's ops run a dtype in: itself where the device's kernels
    take it, else float32 (ops.layer converts)."""
    if dtype in (torch.float16, torch.bfloat16) and dtype not in native_dtypes(device):
        return torch.float32
    return dtype


def _assert_as_torch(ours, theirs, torch_dtypes, truth, dtype, op_dtypes, device="cpu"):
    """ours has torch.nn's dtypes, ran fastrnn's ops in its output's dtype
    (the run's), and is as accurate as torch.nn by the rule, with the floor of
    the run's dtype."""
    assert {k: v.dtype for k, v in ours.items()} == torch_dtypes
    run = ours["output" if "output" in ours else "state0"].dtype
    assert op_dtypes == {_ran_in(run, device)}
    bad = []
    for k, t in truth.items():
        e_theirs = max_abs(theirs[k].double().cpu() - t)
        e_ours = max_abs(ours[k].double().cpu() - t)
        floor = EXCESS_FLOOR[run] * max_abs(t)
        if not e_ours <= 2 * e_theirs + floor:
            bad.append(
                f"{k}: e_ours {e_ours:.3e} > 2 * e_theirs {e_theirs:.3e} + floor {floor:.3e}"
            )
    assert not bad, (
        f"fastrnn under {dtype} autocast less accurate than torch.nn:\n  " + "\n  ".join(bad)
    )


def _layer_setup(cell, kwargs, dtype, device="cpu"):
    ref, ours = make_pair(
        cell, 5, 7, dtype=torch.float32, device=device, num_layers=2, bidirectional=True, **kwargs
    )
    _round_parameters((ref, ours), dtype)
    x, hx, upstream = _rounded(make_inputs(ref, T, B, torch.float32), dtype)
    return ref, ours, (x, hx, _upstream_by_name(upstream))


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@DTYPES
@LAYER_CASES
def test_layers_as_torch_under_autocast(cell, kwargs, dtype, packed):
    ref, ours, args = _layer_setup(cell, kwargs, dtype)

    def step(module, x, hx, upstream, autocast_dtype):
        return _layer_step(module, x, hx, upstream, autocast_dtype, packed)

    theirs, torch_dtypes = _torch_run(step, ref, args, dtype)
    truth = step(ref.double(), *_as(args, torch.float64), None)
    with _OpDtypes() as recorded:
        got = step(ours, *args, dtype)
    _assert_as_torch(got, theirs, torch_dtypes, truth, dtype, recorded.dtypes)


@DTYPES
@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_cells_as_torch_under_autocast(cell, dtype):
    ref, ours = cell_pair(cell, dtype=torch.float32)
    _round_parameters((ref, ours), dtype)
    args = _rounded(cell_inputs(cell, 5, True, torch.float32), dtype)
    theirs, torch_dtypes = _torch_run(_cell_step, ref, args, dtype)
    truth = _cell_step(ref.double(), *_as(args, torch.float64), None)
    with _OpDtypes() as recorded:
        got = _cell_step(ours, *args, dtype)
    _assert_as_torch(got, theirs, torch_dtypes, truth, dtype, recorded.dtypes)


def _dtypes(results):
    return tuple(r.dtype for r in _tuple(results))


def _flat(value):
    """The tensors of a module's or cell's results, packed data as a tensor."""
    if isinstance(value, PackedSequence):
        return [value.data]
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for v in value for t in _flat(v)]


def _forward_dtypes(module, call, dtype, context):
    """The dtypes of call(module)'s results under autocast in `context`, and
    of the parameters' gradients."""
    module.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=dtype), context():
        results = _flat(call(module))
    sum(r.double().sum() for r in results).backward()
    return [r.dtype for r in results], {p.grad.dtype for p in module.parameters()}


def _x():
    return torch.randn(T, B, 5)


# (name, torch.nn and fastrnn constructors' arguments, call, context of the call)
VARIANTS = [
    ("lstm_unbatched", ("lstm", {}), lambda m: m(_x()[:, 0]), contextlib.nullcontext),
    (
        "lstm_batch_first",
        ("lstm", {"batch_first": True}),
        lambda m: m(_x()),
        contextlib.nullcontext,
    ),
    (
        "lstm_proj_packed",
        ("lstm", {"proj_size": 3}),
        lambda m: m(pack_padded_sequence(_x(), LENGTHS[B], enforce_sorted=False)),
        contextlib.nullcontext,
    ),
    (
        "gru_state_in_autocast_dtype",
        ("gru", {}),
        lambda m: m(_x(), torch.zeros(1, B, 7, dtype=torch.get_autocast_dtype("cpu"))),
        contextlib.nullcontext,
    ),
    (
        "lstm_proj_states_in_autocast_dtype",
        ("lstm", {"proj_size": 3}),
        lambda m: m(
            _x(),
            tuple(torch.zeros(1, B, n, dtype=torch.get_autocast_dtype("cpu")) for n in (3, 7)),
        ),
        contextlib.nullcontext,
    ),
    (
        "rnn_input_in_bfloat16",
        ("rnn_tanh", {}),
        lambda m: m(_x().bfloat16()),
        contextlib.nullcontext,
    ),
    *[
        (
            f"{cell}_autocast_disabled_inside",
            (cell, {}),
            lambda m: m(_x()),
            lambda: torch.autocast("cpu", enabled=False),
        )
        for cell in ("rnn_tanh", "lstm", "gru")
    ],
    (
        "lstm_onednn_disabled",
        ("lstm", {}),
        lambda m: m(_x()),
        lambda: torch.backends.mkldnn.flags(enabled=False),
    ),
]


@DTYPES
@pytest.mark.parametrize("name,pair,call,context", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_dtypes_as_torch_under_autocast(name, pair, call, context, dtype):
    """torch.nn's dtypes of the results and parameters' gradients, for
    unbatched and batch_first input, states given in the autocast dtype, an
    input already in it, autocast disabled inside and oneDNN disabled."""
    cell, kwargs = pair
    ref, ours = make_pair(cell, 5, 7, dtype=torch.float32, **kwargs)
    torch.manual_seed(0)
    try:
        expected = _forward_dtypes(ref, call, dtype, context)
    except RuntimeError as error:  # the dtypes of autocast's cast (see _torch_run)
        if not _onednn_refuses(error):
            raise
        expected = [dtype] * 3, {torch.float32}
    torch.manual_seed(0)
    assert _forward_dtypes(ours, call, dtype, context) == expected


@DTYPES
@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_cells_without_state_and_unbatched_dtypes_as_torch(cell, dtype):
    ref, ours = cell_pair(cell, dtype=torch.float32)
    x = torch.randn(3, 5)
    for arg in (x, x[0]):

        def call(m, arg=arg):
            return m(arg)

        expected = _forward_dtypes(ref, call, dtype, contextlib.nullcontext)
        assert _forward_dtypes(ours, call, dtype, contextlib.nullcontext) == expected


# CUDA: torch.nn on the GPU (cuDNN) under CUDA autocast; skipped without a GPU
# or without fastrnn's CUDA backend.


def _cuda_backend():
    import fastrnn.ops

    if "cuda" not in fastrnn.ops.device_types():
        pytest.skip("fastrnn was built without its CUDA backend")


@pytest.mark.cuda
@DTYPES
@LAYER_CASES
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_cuda_layers_as_torch_under_autocast(cell, kwargs, dtype, packed):
    _cuda_backend()
    ref, ours, args = _layer_setup(cell, kwargs, dtype, device="cuda")
    truth = _layer_step(
        ref.double().cpu(), *_as(_as(args, "cpu"), torch.float64), None, packed=packed
    )
    ref.float().cuda()

    def step(module, autocast_dtype):
        return _layer_step(module, *args, autocast_dtype, packed, device="cuda")

    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        theirs = step(ref, dtype)
        with _OpDtypes() as recorded:
            got = step(ours, dtype)
    torch_dtypes = {k: v.dtype for k, v in theirs.items()}
    _assert_as_torch(got, theirs, torch_dtypes, truth, dtype, recorded.dtypes, "cuda")


@pytest.mark.cuda
@DTYPES
@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_cuda_cells_as_torch_under_autocast(cell, dtype):
    _cuda_backend()
    ref, ours = cell_pair(cell, dtype=torch.float32, device="cuda")
    _round_parameters((ref, ours), dtype)
    args = _rounded(cell_inputs(cell, 5, True, torch.float32, device="cuda"), dtype)
    truth = _cell_step(ref.double().cpu(), *_as(_as(args, "cpu"), torch.float64), None)
    ref.float().cuda()
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        theirs = _cell_step(ref, *args, dtype, device="cuda")
        with _OpDtypes() as recorded:
            got = _cell_step(ours, *args, dtype, device="cuda")
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
    torch_dtypes = {k: v.dtype for k, v in theirs.items()}
    _assert_as_torch(got, theirs, torch_dtypes, truth, dtype, recorded.dtypes, "cuda")
