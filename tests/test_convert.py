"""fastrnn.convert on a model mixing all six torch.nn recurrent module kinds
(its LSTM with proj_size), what it leaves alone (with a warning), hooks carried
over, and the module behaviours users rely on (copy, save/load, dtype moves)."""

import copy
import io
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations

import fastrnn


class Mixed(nn.Module):
    """One of each kind, used in one forward."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(4, 5, num_layers=2, nonlinearity="relu")
        self.lstm = nn.LSTM(5, 6, bidirectional=True, batch_first=False, proj_size=3)
        self.gru = nn.GRU(6, 5, bias=False)
        self.cells = nn.ModuleList([nn.RNNCell(5, 5), nn.LSTMCell(5, 5), nn.GRUCell(5, 5)])

    def forward(self, x):
        y, _ = self.rnn(x)
        y, _ = self.lstm(y)
        y, h = self.gru(y)
        h = h[0]
        h = self.cells[0](y[-1], h)
        h, _ = self.cells[1](y[-1], (h, h))
        return self.cells[2](y[-1], h)


KINDS = (nn.RNN, nn.LSTM, nn.GRU, nn.RNNCell, nn.LSTMCell, nn.GRUCell)


def test_convert_swaps_every_kind_and_keeps_parameters():
    model = Mixed().double()
    x = torch.randn(7, 3, 4, dtype=torch.float64)
    expected = model(x)
    params = dict(model.named_parameters())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    assert fastrnn.convert(model) is model
    assert torch.equal(rng, torch.get_rng_state()), "convert drew random numbers"
    assert not [m for m in model.modules() if type(m) in KINDS]
    assert {type(m) for m in model.modules()} >= {
        fastrnn.RNN,
        fastrnn.LSTM,
        fastrnn.GRU,
        fastrnn.RNNCell,
        fastrnn.LSTMCell,
        fastrnn.GRUCell,
    }
    assert all(p is params[n] for n, p in model.named_parameters())
    assert model.lstm.proj_size == 3 and model.lstm.weight_hr_l0 is params["lstm.weight_hr_l0"]
    assert state.keys() == model.state_dict().keys()
    torch.testing.assert_close(model(x), expected, atol=1e-12, rtol=1e-12)


def test_optimizer_built_before_convert_keeps_training_the_model():
    torch.manual_seed(3)
    ours, ref = Mixed().double(), Mixed().double()
    ref.load_state_dict(ours.state_dict())
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.1)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1)
    fastrnn.convert(ours)
    x = torch.randn(6, 2, 4, dtype=torch.float64)
    for _ in range(3):
        for model, opt in ((ours, opt_ours), (ref, opt_ref)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10, msg=name)


def test_convert_root_module_and_unsupported_left_with_warning():
    lstm = nn.LSTM(3, 4, proj_size=2)
    converted = fastrnn.convert(lstm)
    assert type(converted) is fastrnn.LSTM and converted.weight_hr_l0 is lstm.weight_hr_l0
    assert converted.proj_size == 2
    model = nn.Sequential(
        nn.LSTM(3, 4, proj_size=2), nn.GRU(2, 2, device="meta"), nn.LSTMCell(2, 2, device="meta")
    )
    with pytest.warns(UserWarning) as record:
        fastrnn.convert(model)
    assert type(model[0]) is fastrnn.LSTM
    assert type(model[1]) is nn.GRU and type(model[2]) is nn.LSTMCell
    assert len(record) == 2
    assert all("on meta; fastrnn runs on cpu" in str(w.message) for w in record)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_convert_low_precision_modules(dtype):
    model = Mixed().to(dtype)
    x = torch.randn(7, 3, 4, dtype=dtype)
    expected = model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastrnn.convert(model)
    assert not [m for m in model.modules() if type(m) in KINDS]
    got = model(x)
    assert got.dtype == dtype
    # fastrnn computes in float32, torch.nn partly in dtype: a few of its ulps apart
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(got, expected, atol=4 * eps, rtol=4 * eps)


def test_convert_keeps_train_eval_mode():
    model = nn.Sequential(nn.GRU(3, 4, num_layers=2, dropout=0.5)).eval()
    fastrnn.convert(model)
    assert not model[0].training and model[0].dropout == 0.5


@pytest.mark.parametrize("cls", [fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU])
def test_deepcopy_save_load_and_dtype_moves(cls):
    module = cls(3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, 3)
    expected = module(x)[0]
    torch.testing.assert_close(copy.deepcopy(module)(x)[0], expected)
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded) is cls
    torch.testing.assert_close(loaded(x)[0], expected)
    double = copy.deepcopy(module).double()
    assert double(x.double())[0].dtype == torch.float64
    torch.testing.assert_close(double(x.double())[0].float(), expected, atol=1e-5, rtol=1e-5)
    assert module.to(torch.float64) is module and module.weight_hh_l1.dtype == torch.float64
    module.flatten_parameters()  # accepted, as on torch.nn's CPU modules
    assert isinstance(module, nn.RNNBase)


class OwnForward(nn.LSTM):
    """A user's subclass: fastrnn's LSTM would not run this forward."""

    def forward(self, input, hx=None):
        output, state = super().forward(input, hx)
        return 2 * output, state


PARAMETRIZED = "its weights are computed by parametrizations"


@pytest.mark.parametrize(
    "make,why",
    [
        pytest.param(
            lambda: OwnForward(3, 4),
            "its class OwnForward subclasses torch.nn.LSTM and may have its own forward",
            id="subclass",
        ),
        pytest.param(
            lambda: parametrizations.weight_norm(nn.GRU(3, 4), "weight_hh_l0"),
            PARAMETRIZED,
            id="weight_norm",
        ),
        pytest.param(
            lambda: parametrizations.spectral_norm(nn.RNNCell(3, 4), "weight_hh"),
            PARAMETRIZED,
            id="spectral_norm",
        ),
        pytest.param(
            lambda: parametrizations.orthogonal(nn.LSTMCell(3, 4), "weight_hh"),
            PARAMETRIZED,
            id="orthogonal",
        ),
    ],
)
def test_subclasses_and_parametrized_modules_left_with_a_warning(make, why):
    module = make()
    model = nn.Sequential(module, nn.GRU(3, 4))
    with pytest.warns(UserWarning, match=why) as record:
        fastrnn.convert(model)
    assert len(record) == 1
    assert model[0] is module and type(model[1]) is fastrnn.GRU


def test_deprecated_weight_norm_left_with_a_warning():
    """torch.nn.utils.weight_norm keeps the class but replaces the weight
    Parameter by a tensor that a forward pre-hook computes."""
    with pytest.warns(FutureWarning):
        module = torch.nn.utils.weight_norm(nn.LSTM(3, 4), "weight_hh_l0")
    with pytest.warns(UserWarning, match="its weight_hh_l0 is computed, not a parameter"):
        assert fastrnn.convert(module) is module


def test_hooks_carry_over():
    lstm = nn.LSTM(3, 4)
    calls = []

    def record(what):
        return lambda module, *args: calls.append((what, type(module)))

    handle = lstm.register_forward_hook(record("forward"))
    lstm.register_forward_pre_hook(record("forward_pre"))
    lstm.register_full_backward_hook(record("backward"))
    lstm.register_state_dict_post_hook(record("state_dict"))
    lstm.register_load_state_dict_pre_hook(record("load_state_dict_pre"))
    lstm.register_load_state_dict_post_hook(record("load_state_dict_post"))
    converted = fastrnn.convert(lstm)
    del lstm  # the load_state_dict pre-hook held it weakly
    x = torch.randn(5, 2, 3, requires_grad=True)
    converted(x)[0].sum().backward()
    converted.load_state_dict(converted.state_dict())
    assert calls == [
        (what, fastrnn.LSTM)
        for what in (
            "forward_pre",
            "forward",
            "backward",
            "state_dict",
            "load_state_dict_pre",
            "load_state_dict_post",
        )
    ]
    handle.remove()  # the handles still work on the replacement
    calls.clear()
    converted(x)
    assert calls == [("forward_pre", fastrnn.LSTM)]


def test_convert_twice_changes_nothing():
    model = fastrnn.convert(Mixed())
    types = [type(m) for m in model.modules()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastrnn.convert(model)
    assert [type(m) for m in model.modules()] == types
