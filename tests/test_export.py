"""Models with fastrnn modules leave Python as torch.nn's do: torch.jit.trace,
torch.jit.script, torch.export, torch.onnx.export (run by onnxruntime), whole-model
torch.save / torch.load(weights_only=True), and tensor-likes
(__torch_function__) as input."""

import copy
import io
import warnings

import onnx
import onnxruntime
import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_sequence

import fastrnn

from helpers import CELLS, make_pair

I, H, T, B = 3, 5, 6, 2

# (cell, constructor kwargs): every cell, and the options that change the graph
LAYERS = [
    ("lstm", {}),
    ("gru", {"num_layers": 2, "bidirectional": True}),
    ("rnn_tanh", {"batch_first": True}),
    ("rnn_relu", {"bias": False}),
    ("lstm", {"proj_size": 2, "num_layers": 2}),
]
LAYER_IDS = [f"{c}-{'-'.join(k) or 'plain'}" for c, k in LAYERS]
CELL_CLASSES = {
    "rnn_cell": (torch.nn.RNNCell, fastrnn.RNNCell),
    "lstm_cell": (torch.nn.LSTMCell, fastrnn.LSTMCell),
    "gru_cell": (torch.nn.GRUCell, fastrnn.GRUCell),
}


class Head(torch.nn.Module):
    """A recurrent module and a linear layer on its output, as models use them."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn
        cell = isinstance(rnn, torch.nn.RNNCellBase)
        features = (
            rnn.hidden_size
            if cell
            else ((rnn.proj_size or rnn.hidden_size) * (2 if rnn.bidirectional else 1))
        )
        self.linear = torch.nn.Linear(features, 2)

    def forward(self, x):
        out = self.rnn(x)
        return self.linear(out[0] if isinstance(out, tuple) else out)


def _layer_pair(cell, kwargs, dtype=torch.float32):
    return tuple(Head(m) for m in make_pair(cell, I, H, dtype=dtype, **kwargs))


def _cell_pair(cell, dtype=torch.float32):
    ref_cls, our_cls = CELL_CLASSES[cell]
    ref, ours = ref_cls(I, H).to(dtype), our_cls(I, H).to(dtype)
    ours.load_state_dict(ref.state_dict())
    ref, ours = Head(ref), Head(ours)
    ours.linear.load_state_dict(ref.linear.state_dict())
    return ref, ours


def _pair(name, kwargs):
    """(torch.nn model, fastrnn model, example input)."""
    if name in CELL_CLASSES:
        ref, ours = _cell_pair(name)
        return ref, ours, torch.randn(B, I)
    ref, ours = _layer_pair(name, kwargs)
    ours.linear.load_state_dict(ref.linear.state_dict())
    x = torch.randn(B, T, I) if kwargs.get("batch_first") else torch.randn(T, B, I)
    return ref, ours, x


ALL = LAYERS + [(c, {}) for c in CELL_CLASSES]
ALL_IDS = LAYER_IDS + list(CELL_CLASSES)


def _fastrnn_ops(graph_nodes):
    return {n for n in graph_nodes if n.startswith("fastrnn")}


def _kinds(graph):
    """The kinds of every node of a TorchScript graph, in nested blocks too."""
    kinds = set()
    for node in graph.nodes():
        kinds.add(node.kind())
        for block in node.blocks():
            kinds |= _kinds(block)
    return kinds


def _grads(model, x):
    x = x.detach().clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    model(x).square().sum().backward()
    return [x.grad] + [p.grad for p in model.parameters()]


@pytest.mark.parametrize("name,kwargs", ALL, ids=ALL_IDS)
def test_jit_trace_records_fastrnn_ops_and_trains(name, kwargs):
    """The traced graph holds fastrnn's ops (not an opaque Python node), saves
    and loads, and reproduces the outputs and gradients."""
    ref, ours, x = _pair(name, kwargs)
    traced = torch.jit.trace(ours, (x,))
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    kinds = _kinds(loaded.inlined_graph)
    assert _fastrnn_ops(k.replace("::", ".") for k in kinds), kinds
    assert "prim::PythonOp" not in kinds
    x2 = torch.randn_like(x)
    torch.testing.assert_close(loaded(x2), ref(x2))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x2), ref(x2))
    for g_ours, g_ref in zip(_grads(loaded, x2), _grads(ref, x2)):
        torch.testing.assert_close(g_ours, g_ref)


@pytest.mark.parametrize("name,kwargs", ALL, ids=ALL_IDS)
def test_torch_export_runs_fastrnn_ops(name, kwargs):
    ref, ours, x = _pair(name, kwargs)
    program = torch.export.export(ours.eval(), (x,))
    assert _fastrnn_ops(str(n.target) for n in program.graph.nodes)
    x2 = torch.randn_like(x)
    torch.testing.assert_close(program.module()(x2), ref(x2))


def _onnx_outputs(model, x, dynamo, run_with):
    """model exported to ONNX with example input x, run by onnxruntime on
    run_with; with the dynamo exporter the time dimension is dynamic when
    run_with has another length."""
    if dynamo:
        dynamic = None
        if run_with.shape != x.shape:
            dynamic = ({1 if model.rnn.batch_first else 0: torch.export.Dim("T")},)
        program = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=dynamic, verbose=False)
        proto = program.model_proto.SerializeToString()
    else:
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated
            torch.onnx.export(model, (x,), buffer, dynamo=False)
        proto = buffer.getvalue()
    session = onnxruntime.InferenceSession(proto, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: run_with.numpy()})[0], proto


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
@pytest.mark.parametrize("name,kwargs", ALL, ids=ALL_IDS)
def test_onnx_export_runs_in_onnxruntime(name, kwargs, dynamo):
    """onnxruntime reproduces the model's outputs. With the dynamo exporter
    (torch.onnx.export's default) the layers become ONNX's recurrent
    operators, and run at another sequence length too; a projection is
    written out step by step, for the example's length."""
    ref, ours, x = _pair(name, kwargs)
    ours.eval()
    onnx_operators = dynamo and "proj_size" not in kwargs
    run_with = x
    if onnx_operators and x.dim() == 3:
        run_with = torch.cat(
            [x, x[:3] if not kwargs.get("batch_first") else x[:, :3]],
            dim=1 if kwargs.get("batch_first") else 0,
        )
        run_with = torch.randn_like(run_with)
    got, proto = _onnx_outputs(ours, x, dynamo, run_with)
    with torch.no_grad():
        expected = ref(run_with)
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-5, atol=1e-6)
    if onnx_operators:
        operators = {n.op_type for n in onnx.load_from_string(proto).graph.node}
        assert operators & {"LSTM", "GRU", "RNN"}, operators


class Model(torch.nn.Module):
    """A word language model's shape: embedding, recurrent layers, decoder."""

    def __init__(self, rnn):
        super().__init__()
        self.embedding = torch.nn.Embedding(10, I)
        self.dropout = torch.nn.Dropout(0.2)
        self.rnn = rnn
        self.decoder = torch.nn.Linear(rnn.hidden_size, 10)

    def forward(self, tokens):
        out = self.rnn(self.dropout(self.embedding(tokens)))
        return self.decoder(out[0] if isinstance(out, tuple) else out)


@pytest.mark.parametrize(
    "cls",
    [fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU, fastrnn.RNNCell, fastrnn.LSTMCell, fastrnn.GRUCell],
    ids=lambda c: c.__name__,
)
def test_whole_model_loads_with_weights_only(cls):
    """torch.save(model) and torch.load(weights_only=True) with the allow-list a
    torch.nn user writes (their own classes and torch.nn's): fastrnn's classes
    are allow-listed by importing fastrnn, as torch.nn's layers are by name."""
    model = Model(cls(I, H)).eval()
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    allowed = [Model, torch.nn.Embedding, torch.nn.Dropout, torch.nn.Linear]
    with torch.serialization.safe_globals(allowed):
        loaded = torch.load(buffer, weights_only=True)
    assert type(loaded.rnn) is cls
    tokens = torch.randint(10, (4, 2) if not cls.__name__.endswith("Cell") else (2,))
    torch.testing.assert_close(loaded(tokens), model(tokens), rtol=0, atol=0)


class TensorLike:
    """A tensor-like that is not a Tensor: it holds one and unwraps itself
    for torch functions (__torch_function__), like torch's own test wrappers."""

    def __init__(self, data):
        self.data = data

    def __getattr__(self, name):
        value = getattr(self.data, name)
        if callable(value):
            return lambda *args, **kwargs: _wrap(value(*_unwrap(args), **_unwrap(kwargs)))
        return _wrap(value)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs or {})))


def _unwrap(v):
    if isinstance(v, (tuple, list)):
        return type(v)(_unwrap(x) for x in v)
    if isinstance(v, dict):
        return {k: _unwrap(x) for k, x in v.items()}
    return v.data if isinstance(v, TensorLike) else v


def _wrap(v):
    if isinstance(v, (tuple, list)):
        return type(v)(_wrap(x) for x in v)
    return TensorLike(v) if isinstance(v, torch.Tensor) else v


@pytest.mark.parametrize("name", list(CELLS) + list(CELL_CLASSES))
def test_tensor_like_input(name):
    if name in CELL_CLASSES:
        ref, ours = (m.rnn for m in _cell_pair(name))
        x = torch.randn(B, I)
    else:
        ref, ours = make_pair(name, I, H, dtype=torch.float32, num_layers=2)
        x = torch.randn(T, B, I)
    got, expected = ours(TensorLike(x)), ref(TensorLike(x))

    def flat(out):
        return [
            t
            for t in (out if isinstance(out, tuple) else (out,))
            for t in (t if isinstance(t, tuple) else (t,))
        ]

    for a, b in zip(flat(got), flat(expected)):
        assert isinstance(a, TensorLike) and isinstance(b, TensorLike)
        torch.testing.assert_close(a.data, b.data)


def _scripted(model):
    """torch.jit.script of model, saved and loaded again."""
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


@pytest.mark.parametrize("name,kwargs", ALL, ids=ALL_IDS)
def test_jit_script_runs_fastrnn_ops_and_trains(name, kwargs):
    """A scripted model with a fastrnn module calls fastrnn's ops, saves and
    loads, and reproduces torch.nn's outputs and gradients (training, so
    with dropout off; eval too)."""
    ref, ours, x = _pair(name, kwargs)
    scripted = _scripted(ours)
    kinds = _kinds(scripted.inlined_graph)
    assert _fastrnn_ops(k.replace("::", ".") for k in kinds), kinds
    for g_ours, g_ref in zip(_grads(scripted, x), _grads(ref, x)):
        torch.testing.assert_close(g_ours, g_ref)
    scripted.eval()
    ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), ref(x))


class _Packed(torch.nn.Module):
    """Calls a recurrent module on a PackedSequence, in TorchScript (a
    scripted torch.nn or fastrnn module has only its overloads, no forward)."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x: PackedSequence) -> torch.Tensor:
        return self.rnn(x)[0].data


class _WithState(torch.nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        out, h_n = self.rnn(x, h)
        return torch.cat([out.flatten(), h_n.flatten()])


class _LSTMWithState(_WithState):
    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        out, (h_n, c_n) = self.rnn(x, (h, h * 2))
        return torch.cat([out.flatten(), h_n.flatten(), c_n.flatten()])


@pytest.mark.parametrize("cell", list(CELLS))
def test_jit_script_packed_unbatched_states_low_precision(cell):
    """The scripted module's other call forms: PackedSequence (unsorted),
    unbatched input with and without initial states, bfloat16."""
    ref, ours = make_pair(cell, I, H, dtype=torch.float64, num_layers=2, bidirectional=True)
    sequences = [torch.randn(n, I, dtype=torch.float64) for n in (3, 5, 1)]
    packed = pack_sequence(sequences, enforce_sorted=False)
    with_state = _LSTMWithState if cell == "lstm" else _WithState
    h0 = torch.randn(4, H, dtype=torch.float64)
    for wrap, args in [
        (_Packed, (packed,)),
        (Head, (sequences[1],)),
        (with_state, (sequences[1], h0)),
    ]:
        expected = wrap(ref)
        ours_wrapped = wrap(ours)
        if isinstance(expected, Head):
            ours_wrapped.linear.load_state_dict(expected.linear.state_dict())
            expected, ours_wrapped = expected.double(), ours_wrapped.double()
        torch.testing.assert_close(
            _scripted(ours_wrapped)(*args), expected(*args), rtol=1e-10, atol=1e-10
        )
    low = Head(copy.deepcopy(ours)).bfloat16()
    x = sequences[1].bfloat16()
    got = _scripted(low)(x)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got, low(x), rtol=0, atol=0)


def test_jit_script_of_a_subclass_compiles_its_own_forward():
    """A user's subclass may have a forward of its own: it is compiled as
    written, not replaced by fastrnn's twin."""

    class Doubled(fastrnn.GRU):
        def forward(self, input: torch.Tensor) -> torch.Tensor:
            return input * 2

    scripted = torch.jit.script(Doubled(I, H))
    x = torch.randn(T, B, I)
    torch.testing.assert_close(scripted(x), x * 2)
