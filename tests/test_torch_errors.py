"""fastrnn against torch.nn's own test data, and torch.nn's exceptions check
by check.

PyTorch's module_db (torch.testing._internal.common_modules, shipped with
torch) describes nn.RNN, LSTM, GRU, RNNCell, LSTMCell and GRUCell by sample
inputs (module_inputs_func) and by inputs that must fail (module_error_inputs_func).
Every sample runs through the torch.nn class and the fastrnn class built
with the same arguments and state_dict: outputs and every gradient agree
(float64 to 1e-10, float32 by the project's rule). Every error input raises
in fastrnn what it raises in torch.nn: the same exception type, a message
matching module_db's regex, and the same message.

Then the checks module_db leaves out, for the modules (padded, unbatched,
packed) and the cells: dims, shapes, dtypes and devices of the input, the
states and the weights, packed batch_sizes, and the constructors. Where
torch.nn raises, fastrnn raises the same; where torch.nn computes something
from arguments it should refuse, fastrnn refuses them (STRICTER below).
"""

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_sequence

import fastrnn

from helpers import compare, precision_excess

try:
    from torch.testing._internal.common_modules import ModuleErrorEnum, module_db
except ImportError as error:  # torch.testing._internal imports expecttest
    module_db, MODULE_DB_MISSING = None, f"module_db unavailable ({error}): pip install expecttest"

FASTRNN_CLASS = {
    nn.RNN: fastrnn.RNN,
    nn.LSTM: fastrnn.LSTM,
    nn.GRU: fastrnn.GRU,
    nn.RNNCell: fastrnn.RNNCell,
    nn.LSTMCell: fastrnn.LSTMCell,
    nn.GRUCell: fastrnn.GRUCell,
}
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _same_error(call_torch, call_fastrnn, exc=Exception, match=None):
    """Both calls raise: torch.nn's an `exc` matching `match`, fastrnn's of
    the same type with the same message."""
    with pytest.raises(exc, match=match) as theirs:
        call_torch()
    with pytest.raises(Exception) as ours:
        call_fastrnn()
    assert type(ours.value) is type(theirs.value), (ours.value, theirs.value)
    assert str(ours.value) == str(theirs.value)


# --- module_db -----------------------------------------------------------------------------


def _module_infos():
    return (
        []
        if module_db is None
        else [info for info in module_db if info.module_cls in FASTRNN_CLASS]
    )


def _cases(inputs_of):
    """(module_info, index) of every input inputs_of(info) lists, as test
    parameters; one skipped parameter where module_db is unavailable."""
    if module_db is None:
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=MODULE_DB_MISSING))]
    return [
        pytest.param(info, i, id=f"{info.module_cls.__name__}-{i}")
        for info in _module_infos()
        for i in range(len(inputs_of(info)))
    ]


def _samples(info, dtype, training):
    # with_packed_sequence: nn.RNN's and nn.GRU's packed samples too
    return info.module_inputs_func(
        info,
        device="cpu",
        dtype=dtype,
        requires_grad=True,
        training=training,
        with_packed_sequence=True,
    )


def _error_inputs(info, dtype, training):
    return info.module_error_inputs_func(
        info, device="cpu", dtype=dtype, requires_grad=False, training=training
    )


def _pair(info, constructor):
    """The torch.nn module and its fastrnn twin, same arguments and state_dict."""
    ref = info.module_cls(*constructor.args, **constructor.kwargs)
    ours = FASTRNN_CLASS[info.module_cls](*constructor.args, **constructor.kwargs)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _cast(obj, dtype):
    """Forward arguments with fresh leaf tensors of `dtype`."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to(dtype).requires_grad_(obj.requires_grad)
    if isinstance(obj, PackedSequence):
        return PackedSequence(
            _cast(obj.data, dtype), obj.batch_sizes, obj.sorted_indices, obj.unsorted_indices
        )
    if isinstance(obj, (tuple, list)):
        return type(obj)(_cast(o, dtype) for o in obj)
    return obj


def _tensors(obj):
    """The tensors in a forward's arguments or results, in order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, PackedSequence):
        return [obj.data]
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _tensors(o)]
    return []


def _run(module, args, kwargs, dtype, sample_dtype):
    """module(*args) on fresh `dtype` copies of args, then backward of
    sum(upstream * result) over every result: results and every gradient.
    The upstream gradients are the same for every dtype (rounded to
    sample_dtype)."""
    module.zero_grad(set_to_none=True)
    args = _cast(args, dtype)
    outputs = _tensors(module(*args, **kwargs))
    gen = torch.Generator().manual_seed(0)
    upstream = [
        torch.randn(o.shape, generator=gen, dtype=torch.float64).to(sample_dtype).to(dtype)
        for o in outputs
    ]
    sum((o * u).sum() for o, u in zip(outputs, upstream)).backward()
    result = {f"output{i}": o.detach() for i, o in enumerate(outputs)}
    leaves = [t for t in _tensors(args) if t.requires_grad]
    result.update((f"grad_input{i}", t.grad) for i, t in enumerate(leaves))
    result.update((f"grad_{name}", p.grad) for name, p in module.named_parameters())
    return result


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("info,index", _cases(lambda info: _samples(info, torch.float64, True)))
def test_module_db_samples_match_torch(info, index, dtype, training):
    sample = _samples(info, dtype, training)[index]
    ref, ours = _pair(info, sample.constructor_input)
    ref.to(dtype).train(training)
    ours.to(dtype).train(training)
    args, kwargs = sample.forward_input.args, sample.forward_input.kwargs
    got = _run(ours, args, kwargs, dtype, dtype)
    expected = _run(ref, args, kwargs, dtype, dtype)
    if dtype == torch.float64:
        compare(got, expected, atol=1e-10, rtol=1e-10)
        return
    truth = _run(ref.double(), args, kwargs, torch.float64, dtype)
    bad = precision_excess(got, expected, truth, dtype)
    assert not bad, "fastrnn float32 less accurate than torch.nn:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize(
    "info,index", _cases(lambda info: _error_inputs(info, torch.float32, True))
)
def test_module_db_errors_like_torch(info, index, dtype, training):
    error_input = _error_inputs(info, dtype, training)[index]
    module_input = error_input.module_error_input
    constructor = module_input.constructor_input
    exc, match = error_input.error_type, error_input.error_regex
    if error_input.error_on == ModuleErrorEnum.CONSTRUCTION_ERROR:
        _same_error(
            lambda: info.module_cls(*constructor.args, **constructor.kwargs),
            lambda: FASTRNN_CLASS[info.module_cls](*constructor.args, **constructor.kwargs),
            exc,
            match,
        )
        with pytest.raises(exc, match=match):
            FASTRNN_CLASS[info.module_cls](*constructor.args, **constructor.kwargs)
        return
    ref, ours = _pair(info, constructor)
    ref.train(training)
    ours.train(training)
    forward = module_input.forward_input
    _same_error(
        lambda: ref(*forward.args, **forward.kwargs),
        lambda: ours(*forward.args, **forward.kwargs),
        exc,
        match,
    )
    with pytest.raises(exc, match=match):
        ours(*forward.args, **forward.kwargs)


def test_module_db_covers_the_six_classes():
    if module_db is None:
        pytest.skip(MODULE_DB_MISSING)
    infos = _module_infos()
    assert {info.module_cls for info in infos} == set(FASTRNN_CLASS)
    for info in infos:
        assert _samples(info, torch.float64, True) and _error_inputs(info, torch.float64, True)


# --- the modules: torch.nn's checks one by one ---------------------------------------------

I, H, L, B, T, P = 4, 5, 2, 3, 6, 2  # input, hidden, layers, batch, steps, proj_size
MODULES = {
    "rnn_tanh": (nn.RNN, fastrnn.RNN, {}),
    "rnn_relu": (nn.RNN, fastrnn.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, fastrnn.LSTM, {}),
    "lstm_proj": (nn.LSTM, fastrnn.LSTM, {"proj_size": P}),
    "gru": (nn.GRU, fastrnn.GRU, {}),
}


def _module_pair(kind, mutate=None, **kwargs):
    """torch.nn's and fastrnn's module (float32, L layers), same state_dict;
    mutate(module) changes each afterwards."""
    torch_cls, fast_cls, extra = MODULES[kind]
    ref = torch_cls(I, H, num_layers=L, **extra, **kwargs)
    ours = fast_cls(I, H, num_layers=L, **extra, **kwargs)
    ours.load_state_dict(ref.state_dict())
    if mutate is not None:
        mutate(ref)
        mutate(ours)
    return ref, ours


def _hx(kind, batch=(B,), layers=L, features=None, cell=H, dtype=torch.float32, device="cpu"):
    """An initial state: h0 [layers, *batch, features] (and c0 [layers,
    *batch, cell] for an LSTM); features default to P or H."""
    features = features or (P if kind == "lstm_proj" else H)
    h0 = torch.randn(layers, *batch, features, dtype=dtype, device=device)
    if kind.startswith("lstm"):
        return h0, torch.randn(layers, *batch, cell, dtype=dtype, device=device)
    return h0


def _packed(data=None, batch_sizes=(3, 3, 2, 1), **indices):
    batch_sizes = torch.as_tensor(batch_sizes)
    if data is None:
        data = torch.randn(int(batch_sizes.sum()), I)
    return PackedSequence(data, batch_sizes, **indices)


def _set(name, change):
    """mutate: replace the parameter `name` by change(its tensor)."""

    def mutate(module):
        setattr(module, name, nn.Parameter(change(getattr(module, name).detach())))

    return mutate


def x(*shape, dtype=torch.float32, device="cpu"):
    """An input (or any tensor) of random values."""
    return torch.randn(*shape, dtype=dtype, device=device)


LSTMS = ("lstm", "lstm_proj")

# label -> (kinds it applies to, call(module, kind)); torch.nn raises for each
MODULE_ERRORS = {
    # the input
    "input float64": (MODULES, lambda m, k: m(x(T, B, I, dtype=torch.float64))),
    "input float64 and wrong input_size": (
        MODULES,
        lambda m, k: m(x(T, B, I + 1, dtype=torch.float64)),
    ),
    "input int64": (MODULES, lambda m, k: m(torch.ones(T, B, I, dtype=torch.long))),
    "input float16": (MODULES, lambda m, k: m(x(T, B, I, dtype=torch.float16))),
    "input 1-D": (MODULES, lambda m, k: m(x(I))),
    "input 4-D": (MODULES, lambda m, k: m(x(1, T, B, I))),
    "input_size": (MODULES, lambda m, k: m(x(T, B, I + 1))),
    "unbatched input_size": (MODULES, lambda m, k: m(x(T, I + 1))),
    "seq_len 0": (MODULES, lambda m, k: m(x(0, B, I))),
    "input on meta": (MODULES, lambda m, k: m(x(T, B, I, device="meta"))),
    "input a list": (MODULES, lambda m, k: m([x(T, B, I)])),
    # the initial state
    "hx float64": (MODULES, lambda m, k: m(x(T, B, I), _hx(k, dtype=torch.float64))),
    "hx float16": (MODULES, lambda m, k: m(x(T, B, I), _hx(k, dtype=torch.float16))),
    "hx int64": (MODULES, lambda m, k: m(x(T, B, I), _hx(k, dtype=torch.long))),
    "hx float64 and wrong batch": (
        MODULES,
        lambda m, k: m(x(T, B, I), _hx(k, (B + 1,), dtype=torch.float64)),
    ),
    "hx batch": (MODULES, lambda m, k: m(x(T, B, I), _hx(k, (B + 1,)))),
    "hx layers": (MODULES, lambda m, k: m(x(T, B, I), _hx(k, layers=L + 1))),
    "hx features": (MODULES, lambda m, k: m(x(T, B, I), _hx(k, features=H + 1))),
    "hx 2-D with 3-D input": (MODULES, lambda m, k: m(x(T, B, I), _hx(k, ()))),
    "hx 4-D": (MODULES, lambda m, k: m(x(T, B, I), _hx(k, (1, B)))),
    "hx 3-D with unbatched input": (MODULES, lambda m, k: m(x(T, I), _hx(k))),
    "unbatched hx features": (MODULES, lambda m, k: m(x(T, I), _hx(k, (), features=H + 1))),
    "unbatched hx float64": (MODULES, lambda m, k: m(x(T, I), _hx(k, (), dtype=torch.float64))),
    "hx on meta": (MODULES, lambda m, k: m(x(T, B, I), _hx(k, device="meta"))),
    "batch_first hx batch": (MODULES, lambda m, k: m(x(B, T, I), _hx(k, (T,)))),
    # the packed input
    "packed float64": (MODULES, lambda m, k: m(_packed(x(9, I, dtype=torch.float64)))),
    "packed int64": (MODULES, lambda m, k: m(_packed(torch.ones(9, I, dtype=torch.long)))),
    "packed float16": (MODULES, lambda m, k: m(_packed(x(9, I, dtype=torch.float16)))),
    "packed input_size": (MODULES, lambda m, k: m(_packed(x(9, I + 1)))),
    "packed data 3-D": (MODULES, lambda m, k: m(_packed(x(9, 1, I)))),
    "batch_sizes float": (MODULES, lambda m, k: m(_packed(batch_sizes=(3.0, 3.0, 2.0, 1.0)))),
    "batch_sizes float with hx": (
        MODULES,
        lambda m, k: m(_packed(batch_sizes=(3.0, 3.0, 2.0, 1.0)), _hx(k)),
    ),
    "batch_sizes int32": (
        MODULES,
        lambda m, k: m(_packed(batch_sizes=torch.tensor([3, 3, 2, 1]).int())),
    ),
    "batch_sizes 2-D": (MODULES, lambda m, k: m(_packed(x(9, I), torch.tensor([[3, 3], [2, 1]])))),
    "batch_sizes increasing": (MODULES, lambda m, k: m(_packed(batch_sizes=(3, 2, 3, 1)))),
    "batch_sizes sum more than the rows": (MODULES, lambda m, k: m(_packed(x(9, I), (3, 3, 3, 1)))),
    "batch_sizes negative": (MODULES, lambda m, k: m(_packed(x(9, I), (3, 3, 4, -1)))),
    "packed hx batch": (MODULES, lambda m, k: m(_packed(), _hx(k, (B + 1,)))),
    "packed hx 2-D": (MODULES, lambda m, k: m(_packed(), _hx(k, ()))),
    "packed hx float64": (MODULES, lambda m, k: m(_packed(), _hx(k, dtype=torch.float64))),
    "packed hx on meta": (MODULES, lambda m, k: m(_packed(), _hx(k, device="meta"))),
    # the states of an LSTM
    "c0 features": (LSTMS, lambda m, k: m(x(T, B, I), _hx(k, cell=H + 1))),
    "c0 float64": (LSTMS, lambda m, k: m(x(T, B, I), (_hx(k)[0], x(L, B, H, dtype=torch.float64)))),
    "c0 2-D": (LSTMS, lambda m, k: m(x(T, B, I), (_hx(k)[0], x(L, H)))),
    "c0 on meta": (LSTMS, lambda m, k: m(x(T, B, I), (_hx(k)[0], x(L, B, H, device="meta")))),
    "unbatched c0 3-D": (LSTMS, lambda m, k: m(x(T, I), (_hx(k, ())[0], x(L, B, H)))),
    "hx of one state": (LSTMS, lambda m, k: m(x(T, B, I), _hx(k)[:1])),
    "hx of three states": (LSTMS, lambda m, k: m(x(T, B, I), _hx(k) + (x(L, B, H),))),
    "hx a tensor": (LSTMS, lambda m, k: m(x(T, B, I), torch.stack([_hx(k)[1]] * 2))),
    "packed hx a tensor": (LSTMS, lambda m, k: m(_packed(), torch.stack([_hx(k)[1]] * 2))),
    "packed c0 features": (LSTMS, lambda m, k: m(_packed(), _hx(k, cell=H + 1))),
    "packed c0 float64": (
        LSTMS,
        lambda m, k: m(_packed(), (_hx(k)[0], x(L, B, H, dtype=torch.float64))),
    ),
    "packed hx of one state": (LSTMS, lambda m, k: m(_packed(), _hx(k)[:1])),
    "packed hx of three states": (LSTMS, lambda m, k: m(_packed(), _hx(k) + (x(L, B, H),))),
    # a state that is not what the class takes
    "hx a tuple": (("rnn_tanh", "gru"), lambda m, k: m(x(T, B, I), (_hx(k),))),
}


def _module_error_cases(table):
    return [
        pytest.param(kind, label, id=f"{kind}-{label}")
        for label, (kinds, _) in table.items()
        for kind in kinds
    ]


@pytest.mark.parametrize("kind,label", _module_error_cases(MODULE_ERRORS))
def test_module_errors_like_torch(kind, label):
    extra = {"batch_first": True} if label.startswith("batch_first") else {}
    ref, ours = _module_pair(kind, **extra)
    call = MODULE_ERRORS[label][1]
    _same_error(lambda: call(ref, kind), lambda: call(ours, kind))


# label -> (kinds, mutate(module)): weights torch.nn has no check for; where it
# raises, its kernels do, and fastrnn raises the same; where it computes
# something from them (oneDNN's LSTM takes wrongly shaped weights), fastrnn
# refuses them with its own error
WEIGHT_ERRORS = {
    "weight_ih_l0 float64": _set("weight_ih_l0", lambda w: w.double()),
    "weight_hh_l1 float64": _set("weight_hh_l1", lambda w: w.double()),
    "bias_ih_l0 float64": _set("bias_ih_l0", lambda w: w.double()),
    "bias_hh_l1 float64": _set("bias_hh_l1", lambda w: w.double()),
    "bias_ih_l0 short": _set("bias_ih_l0", lambda w: w[:-1]),
    "weight_ih_l0 rows": _set("weight_ih_l0", lambda w: w[:-1]),
    "weight_ih_l0 columns": _set("weight_ih_l0", lambda w: w[:, :-1]),
    "weight_ih_l1 columns": _set("weight_ih_l1", lambda w: w[:, :-1]),
    "weight_hh_l0 rows": _set("weight_hh_l0", lambda w: w[:-1]),
    "weight_hh_l0 columns": _set("weight_hh_l0", lambda w: w[:, :-1]),
    "weight_ih_l0 1-D": _set("weight_ih_l0", lambda w: w.flatten()),
    "weight_ih_l0 on meta": _set("weight_ih_l0", lambda w: w.to("meta")),
}
WEIGHT_ERRORS_PROJ = {
    "weight_hr_l0 rows": _set("weight_hr_l0", lambda w: w[:-1]),
    "weight_hr_l0 transposed": _set("weight_hr_l0", lambda w: w.t()),
    "weight_hr_l0 float64": _set("weight_hr_l0", lambda w: w.double()),
}


def _weight_cases():
    cases = [(kind, label) for label in WEIGHT_ERRORS for kind in MODULES]
    cases += [("lstm_proj", label) for label in WEIGHT_ERRORS_PROJ]
    return [
        pytest.param(kind, label, packed, id=f"{kind}-{label}-{'packed' if packed else 'padded'}")
        for kind, label in cases
        for packed in (False, True)
    ]


def _refused_like_torch(call_torch, call_fastrnn, own_match):
    """fastrnn raises: torch.nn's exception where torch.nn raises one, else
    its own, matching own_match (fastrnn stricter)."""
    try:
        call_torch()
    except Exception as theirs:
        with pytest.raises(Exception) as ours:
            call_fastrnn()
        assert type(ours.value) is type(theirs), (ours.value, theirs)
        assert str(ours.value) == str(theirs)
        return
    with pytest.raises(RuntimeError, match=own_match):
        call_fastrnn()


@pytest.mark.parametrize("kind,label,packed", _weight_cases())
def test_module_weight_errors_like_torch(kind, label, packed):
    ref, ours = _module_pair(kind, mutate={**WEIGHT_ERRORS, **WEIGHT_ERRORS_PROJ}[label])
    input = _packed() if packed else x(T, B, I)
    _refused_like_torch(lambda: ref(input), lambda: ours(input), r"fastrnn\.\w+_forward: ")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(hidden_size=0),
        dict(hidden_size=-1),
        dict(hidden_size=5.0),
        dict(input_size=0),
        dict(input_size=-1),
        dict(input_size=4.0),
        dict(input_size="4"),
        dict(num_layers=0),
        dict(num_layers=-1),
        dict(dropout=1.5),
        dict(dropout=-0.1),
        dict(dropout="0.5"),
        dict(dropout=True),
        dict(bias=1),
        dict(bias="True"),
        dict(batch_first=0),
        dict(batch_first=None),
        dict(proj_size=-1),
        dict(proj_size=H),
        dict(proj_size=H + 1),
        dict(proj_size=2),
        dict(nonlinearity="sigmoid"),
        dict(nonlinearity="relu"),
    ],
    ids=lambda kwargs: ",".join(f"{k}={v!r}" for k, v in kwargs.items()),
)
@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_module_constructor_errors_like_torch(cls, kwargs):
    """The constructors are torch.nn's (RNNBase's); RNN and GRU refuse
    proj_size, LSTM and GRU nonlinearity, as torch.nn's do."""
    args = dict(input_size=I, hidden_size=H) | kwargs
    torch_cls, fast_cls = getattr(nn, cls), getattr(fastrnn, cls)
    try:
        torch_cls(**args)
    except Exception:
        _same_error(lambda: torch_cls(**args), lambda: fast_cls(**args))
        return
    assert fast_cls(**args).state_dict().keys() == torch_cls(**args).state_dict().keys()


# --- the cells -----------------------------------------------------------------------------

CI, CH, CB = 10, 20, 3  # the cells' input_size, hidden_size, batch (module_db's)
CELLS = {
    "rnn_tanh": (nn.RNNCell, fastrnn.RNNCell, {}),
    "rnn_relu": (nn.RNNCell, fastrnn.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTMCell, fastrnn.LSTMCell, {}),
    "gru": (nn.GRUCell, fastrnn.GRUCell, {}),
}


def _cell_pair(kind, mutate=None, bias=True):
    torch_cls, fast_cls, extra = CELLS[kind]
    ref = torch_cls(CI, CH, bias=bias, **extra)
    ours = fast_cls(CI, CH, bias=bias, **extra)
    ours.load_state_dict(ref.state_dict())
    if mutate is not None:
        mutate(ref)
        mutate(ours)
    return ref, ours


def _state(kind, *shape, dtype=torch.float32, device="cpu"):
    """The cell's hx: h, or (h, c) for an LSTMCell, of `shape`."""
    h = torch.randn(*shape, dtype=dtype, device=device)
    return (h, torch.randn(*shape, dtype=dtype, device=device)) if kind == "lstm" else h


f64 = torch.float64
# label -> (kinds, call(module, kind)); torch.nn raises for each. torch.nn's
# cell kernels check, in this order: the LSTM cell two states, input_size,
# the weights' rows, then each state's batch and hidden_size; the GRU cell
# input_size, the state, then the weights' rows; the RNN cell the weights'
# rows first. Only then do the matrix products check the dtypes (addmm's
# message with a bias, mm's without) and the broadcasts the bias's size.
CELL_ERRORS = {
    "input_size": (CELLS, lambda m, k: m(x(CB, CI + 1), _state(k, CB, CH))),
    "hidden_size": (CELLS, lambda m, k: m(x(CB, CI), _state(k, CB, CH + 1))),
    "batch": (CELLS, lambda m, k: m(x(CB, CI), _state(k, CB + 2, CH))),
    "input_size and hidden_size": (CELLS, lambda m, k: m(x(CB, CI + 1), _state(k, CB, CH + 1))),
    "batch and hidden_size": (CELLS, lambda m, k: m(x(CB, CI), _state(k, CB + 2, CH + 1))),
    "input float64": (CELLS, lambda m, k: m(x(CB, CI, dtype=f64), _state(k, CB, CH))),
    "input float64 without hx": (CELLS, lambda m, k: m(x(CB, CI, dtype=f64))),
    "input float64 and input_size": (
        CELLS,
        lambda m, k: m(x(CB, CI + 1, dtype=f64), _state(k, CB, CH)),
    ),
    "input float64 and batch": (CELLS, lambda m, k: m(x(CB, CI, dtype=f64), _state(k, CB + 2, CH))),
    "hx float64": (CELLS, lambda m, k: m(x(CB, CI), _state(k, CB, CH, dtype=f64))),
    "hx float64 and hidden_size": (
        CELLS,
        lambda m, k: m(x(CB, CI), _state(k, CB, CH + 1, dtype=f64)),
    ),
    "hx float16": (CELLS, lambda m, k: m(x(CB, CI), _state(k, CB, CH, dtype=torch.float16))),
    "input int64": (CELLS, lambda m, k: m(torch.ones(CB, CI, dtype=torch.long))),
    "input float16": (CELLS, lambda m, k: m(x(CB, CI, dtype=torch.float16))),
    "input bool": (CELLS, lambda m, k: m(torch.ones(CB, CI, dtype=torch.bool))),
    "input 0-D": (CELLS, lambda m, k: m(torch.tensor(1.0))),
    "input 3-D": (CELLS, lambda m, k: m(x(2, CB, CI))),
    "hx 0-D": (CELLS, lambda m, k: m(x(CB, CI), _state(k))),
    "hx 3-D": (CELLS, lambda m, k: m(x(CB, CI), _state(k, 1, CB, CH))),
    "unbatched input_size": (CELLS, lambda m, k: m(x(CI + 1), _state(k, CH))),
    "unbatched hidden_size": (CELLS, lambda m, k: m(x(CI), _state(k, CH + 1))),
    "unbatched input, batched hx": (CELLS, lambda m, k: m(x(CI), _state(k, CB, CH))),
    "batched input, unbatched hx": (CELLS, lambda m, k: m(x(CB, CI), _state(k, CH))),
    "batch 0 and hidden_size": (CELLS, lambda m, k: m(x(0, CI), _state(k, 0, CH + 1))),
    "input a list": (CELLS, lambda m, k: m([1.0] * CI)),
    "hx a tuple": (("rnn_tanh", "gru"), lambda m, k: m(x(CB, CI), (x(CB, CH),))),
    # the LSTM cell's (h, c)
    "hx of one state": (("lstm",), lambda m, k: m(x(CB, CI), (x(CB, CH),))),
    "hx of three states": (("lstm",), lambda m, k: m(x(CB, CI), (x(CB, CH),) * 3)),
    "hx a tensor": (("lstm",), lambda m, k: m(x(CB, CI), x(2, CB, CH))),
    "unbatched hx of one state": (("lstm",), lambda m, k: m(x(CI), (x(CH),))),
    "c hidden_size": (("lstm",), lambda m, k: m(x(CB, CI), (x(CB, CH), x(CB, CH + 1)))),
    "c batch": (("lstm",), lambda m, k: m(x(CB, CI), (x(CB, CH), x(CB + 2, CH)))),
    "c 3-D": (("lstm",), lambda m, k: m(x(CB, CI), (x(CB, CH), x(1, CB, CH)))),
    "c 1-D with batched input": (("lstm",), lambda m, k: m(x(CB, CI), (x(CB, CH), x(CH)))),
    "h float64": (("lstm",), lambda m, k: m(x(CB, CI), (x(CB, CH, dtype=f64), x(CB, CH)))),
}

# torch.nn's cells check devices in the matrix product with the bias; without
# a bias, a meta tensor among CPU ones gives a meta result
CELL_DEVICE_ERRORS = {
    "input on meta": lambda m, k: m(x(CB, CI, device="meta")),
    "hx on meta": lambda m, k: m(x(CB, CI), _state(k, CB, CH, device="meta")),
    "c on meta": lambda m, k: m(x(CB, CI), (x(CB, CH), x(CB, CH, device="meta"))),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kind,label", _module_error_cases(CELL_ERRORS))
def test_cell_errors_like_torch(kind, label, bias):
    ref, ours = _cell_pair(kind, bias=bias)
    _same_error(lambda: CELL_ERRORS[label][1](ref, kind), lambda: CELL_ERRORS[label][1](ours, kind))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("label", CELL_DEVICE_ERRORS)
@pytest.mark.parametrize("kind", CELLS)
def test_cell_device_errors_like_torch(kind, label, bias):
    if label == "c on meta" and kind != "lstm":
        pytest.skip("only an LSTMCell has c")
    ref, ours = _cell_pair(kind, bias=bias)
    call = CELL_DEVICE_ERRORS[label]
    _refused_like_torch(
        lambda: call(ref, kind),
        lambda: call(ours, kind),
        r"fastrnn\.\w+_forward: \w+: expected device",
    )


def test_cell_checks_shapes_before_dtypes():
    """float64 input into a float32 cell with the wrong input_size: torch.nn
    reports the size, and so does fastrnn (it reported the dtype)."""
    ref, ours = _cell_pair("lstm")

    def call(m):
        return m(x(CB, CI + 1, dtype=f64), _state("lstm", CB, CH))

    _same_error(
        lambda: call(ref),
        lambda: call(ours),
        RuntimeError,
        "^input has inconsistent input_size: got 11 expected 10$",
    )


CELL_WEIGHT_ERRORS = {
    "bias_hh float64": _set("bias_hh", lambda w: w.double()),
    "weight_hh float64": _set("weight_hh", lambda w: w.double()),
    "weight_ih float64": _set("weight_ih", lambda w: w.double()),
    "bias_ih short": _set("bias_ih", lambda w: w[:-1]),
    "weight_hh rows": _set("weight_hh", lambda w: w[:-1]),
    "weight_hh columns": _set("weight_hh", lambda w: w[:, :-1]),
    "weight_ih rows": _set("weight_ih", lambda w: w[:-1]),
    "weight_ih 1-D": _set("weight_ih", lambda w: w.flatten()),
    "weight_hh 1-D": _set("weight_hh", lambda w: w.flatten()),
    "weight_ih 3-D": _set("weight_ih", lambda w: w[None]),
    "weight_ih 11 columns": _set("weight_ih", lambda w: torch.cat([w, w[:, :1]], 1)),
}


# a second fault with the weight's, to pin which of them torch.nn reports
ALSO = {
    "alone": lambda k: (x(CB, CI), _state(k, CB, CH)),
    "without hx": lambda k: (x(CB, CI), None),
    "and input_size": lambda k: (x(CB, CI + 1), _state(k, CB, CH)),
    "and hidden_size": lambda k: (x(CB, CI), _state(k, CB, CH + 1)),
    "and float64 input": lambda k: (x(CB, CI, dtype=f64), _state(k, CB, CH)),
}


@pytest.mark.parametrize("also", ALSO)
@pytest.mark.parametrize("label", CELL_WEIGHT_ERRORS)
@pytest.mark.parametrize("kind", CELLS)
def test_cell_weight_errors_like_torch(kind, label, also):
    ref, ours = _cell_pair(kind, mutate=CELL_WEIGHT_ERRORS[label])
    input, hx = ALSO[also](kind)
    if (label, also) == ("weight_ih 11 columns", "and input_size"):  # they fit: no error
        compare(_outputs(ours(input, hx)), _outputs(ref(input, hx)), atol=1e-6, rtol=1e-6)
        return
    _same_error(lambda: ref(input, hx), lambda: ours(input, hx))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(input_size=-1),
        dict(hidden_size=-1),
        dict(input_size=4.0),
        dict(hidden_size=5.0),
        dict(input_size="4"),
        dict(nonlinearity="sigmoid"),
    ],
    ids=lambda kwargs: ",".join(f"{k}={v!r}" for k, v in kwargs.items()),
)
@pytest.mark.parametrize("kind", CELLS)
def test_cell_constructor_and_nonlinearity_errors_like_torch(kind, kwargs):
    """The constructors are torch.nn's (RNNCellBase's); an unknown
    nonlinearity is refused at the call, as torch.nn refuses it."""
    torch_cls, fast_cls, extra = CELLS[kind]
    if "nonlinearity" in kwargs and torch_cls is not nn.RNNCell:
        pytest.skip("only RNNCell takes a nonlinearity")
    args = dict(input_size=CI, hidden_size=CH) | extra | kwargs
    if "nonlinearity" in kwargs:
        ref, ours = torch_cls(**args), fast_cls(**args)
        _same_error(lambda: ref(x(CB, CI)), lambda: ours(x(CB, CI)), RuntimeError)
        _same_error(lambda: ref(x(2, CB, CI)), lambda: ours(x(2, CB, CI)), ValueError)
        return
    _same_error(lambda: torch_cls(**args), lambda: fast_cls(**args))


# --- accepted as torch.nn accepts them -----------------------------------------------------


def _outputs(result):
    return {f"out{i}": t.detach() for i, t in enumerate(_tensors(result))}


@pytest.mark.parametrize(
    "case", ["hx a list", "unbatched hx of three states", "unbatched hx a tensor"]
)
def test_lstm_cell_states_taken_as_torch_takes_them(case):
    """torch.nn's LSTMCell takes (h, c) as a list; unbatched it reads hx[0]
    and hx[1] of whatever it is given. fastrnn likewise, same results."""
    ref, ours = _cell_pair("lstm")
    h, c = x(CB, CH), x(CB, CH)
    input, hx = {
        "hx a list": (x(CB, CI), [h, c]),
        "unbatched hx of three states": (x(CI), (h[0], c[0], h[1])),
        "unbatched hx a tensor": (x(CI), h[:2]),
    }[case]
    compare(_outputs(ours(input, hx)), _outputs(ref(input, hx)), atol=1e-6, rtol=1e-6)


def test_unbatched_lstm_takes_a_stacked_tensor_as_torch_takes_it():
    """Unbatched, torch.nn.LSTM reads hx[0] and hx[1] of an hx tensor [2, L,
    H]; so does fastrnn, with the same results (batched, both refuse it)."""
    ref, ours = _module_pair("lstm")
    input, hx = x(T, I), x(2, L, H)
    compare(_outputs(ours(input, hx)), _outputs(ref(input, hx)), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kind", list(MODULES))
def test_packed_steps_of_batch_zero_as_torch(kind):
    """batch_sizes with a zero at the end: steps without sequences, which
    torch.nn computes through."""
    ref, ours = _module_pair(kind)
    packed = _packed(x(9, I), (3, 3, 3, 0))
    compare(_outputs(ours(packed)), _outputs(ref(packed)), atol=1e-6, rtol=1e-6)


def test_packed_lstm_unsorted_reads_two_states_as_torch():
    """With sorted_indices torch.nn.LSTM permutes hx[0] and hx[1] only, so a
    third state is dropped; fastrnn permutes them with torch.nn's code."""
    ref, ours = _module_pair("lstm")
    packed = pack_sequence([x(2, I), x(4, I), x(3, I)], enforce_sorted=False)
    hx = _hx("lstm") + (x(L, B, H),)
    compare(_outputs(ours(packed, hx)), _outputs(ref(packed, hx)), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("sizes", [(CI, 0), (0, CH)], ids=["hidden_size 0", "input_size 0"])
@pytest.mark.parametrize("kind", CELLS)
def test_cell_zero_sizes_as_torch(kind, sizes, dtype):
    torch_cls, fast_cls, extra = CELLS[kind]
    ref = torch_cls(*sizes, **extra).to(dtype)
    ours = fast_cls(*sizes, **extra).to(dtype)
    ours.load_state_dict(ref.state_dict())
    input = x(CB, sizes[0], dtype=dtype)
    compare(_outputs(ours(input)), _outputs(ref(input)), atol=1e-6, rtol=1e-6)


# --- STRICTER: torch.nn computes something, fastrnn refuses --------------------------------

# label -> (modules or cells, mutate(module) or None, call(module, kind),
# fastrnn's message)
STRICTER = {
    # torch.nn broadcasts the bias: a [1, G*H] or a [1] bias passes unnoticed
    "bias 2-D": (
        "modules",
        _set("bias_ih_l0", lambda w: w.view(1, -1)),
        lambda m, k: m(x(T, B, I)),
        r"b_ih: expected shape \[\d+\], got \[1, \d+\]",
    ),
    "bias of one element": (
        "modules",
        _set("bias_hh_l0", lambda w: w[:1]),
        lambda m, k: m(x(T, B, I)),
        r"b_hh: expected shape \[\d+\], got \[1\]",
    ),
    "packed bias 2-D": (
        "modules",
        _set("bias_ih_l0", lambda w: w.view(1, -1)),
        lambda m, k: m(_packed()),
        r"b_ih: expected shape",
    ),
    # torch.nn reads batch_sizes without checking them against the data
    "batch_sizes sum to fewer rows than the data": (
        "modules",
        None,
        lambda m, k: m(_packed(x(9, I), (3, 3, 1, 1))),
        "batch_sizes sum to 8 but input has 9 rows",
    ),
    "packed weight on meta": (
        "modules",
        _set("weight_ih_l0", lambda w: w.to("meta")),
        lambda m, k: m(_packed()),
        "w_ih: expected device cpu",
    ),
    "cell bias 2-D": (
        "cells",
        _set("bias_ih", lambda w: w.view(1, -1)),
        lambda m, k: m(x(CB, CI)),
        r"b_ih: expected shape \[\d+\], got \[1, \d+\]",
    ),
    "cell bias of one element": (
        "cells",
        _set("bias_hh", lambda w: w[:1]),
        lambda m, k: m(x(CB, CI)),
        r"b_hh: expected shape",
    ),
    "cell weight on meta": (
        "cells",
        _set("weight_ih", lambda w: w.to("meta")),
        lambda m, k: m(x(CB, CI)),
        "w_ih: expected device cpu",
    ),
    # torch.nn.LSTMCell computes h and c in c's dtype when only c differs
    "LSTMCell c float64": (
        "lstm_cell",
        None,
        lambda m, k: m(x(CB, CI), (x(CB, CH), x(CB, CH, dtype=f64))),
        "cx: expected dtype Float",
    ),
    "LSTMCell c float16": (
        "lstm_cell",
        None,
        lambda m, k: m(x(CB, CI), (x(CB, CH), x(CB, CH, dtype=torch.float16))),
        "cx: expected dtype Float",
    ),
}


def _stricter_cases():
    kinds = {"modules": MODULES, "cells": CELLS, "lstm_cell": ["lstm"]}
    return [
        pytest.param(kind, label, id=f"{kind}-{label}")
        for label, (what, *_) in STRICTER.items()
        for kind in kinds[what]
    ]


@pytest.mark.parametrize("kind,label", _stricter_cases())
def test_stricter_than_torch(kind, label):
    what, mutate, call, message = STRICTER[label]
    ref, ours = (_module_pair if what == "modules" else _cell_pair)(kind, mutate=mutate)
    call(ref, kind)  # torch.nn computes something
    with pytest.raises(RuntimeError, match=message):
        call(ours, kind)


# --- what finding torch.nn's exception costs ----------------------------------------------


def test_refusal_leaves_the_rng_alone():
    """Finding torch.nn's exception runs torch.nn's forward, whose dropout
    draws from the RNG: after the refusal the RNG is as it was. (fastrnn
    refuses the 2-D bias of layer 0 before its own dropout runs.)"""
    ref, ours = _module_pair(
        "lstm", mutate=_set("bias_ih_l0", lambda w: w.view(1, -1)), dropout=0.5
    )
    input = x(T, B, I)
    state = torch.get_rng_state()
    with pytest.raises(RuntimeError, match="b_ih: expected shape"):
        ours(input)
    assert torch.equal(torch.get_rng_state(), state)
    ref(input)  # torch.nn's forward did draw
    assert not torch.equal(torch.get_rng_state(), state)


def test_refusal_shows_no_torch_warning():
    """torch.nn's forward of an LSTM with proj_size warns that oneDNN does not
    run it; run to find torch.nn's exception, it warns nothing."""
    _, ours = _module_pair("lstm_proj")
    warn_always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)  # a warning once per process would hide on a rerun
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(RuntimeError):
                ours(x(T, B, I), _hx("lstm_proj", dtype=f64))
    finally:
        torch.set_warn_always(warn_always)
    assert not caught, [str(w.message) for w in caught]
