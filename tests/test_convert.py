"""fastrnn.convert on a model mixing all six torch.nn recurrent module kinds
(its LSTM with proj_size), and the module behaviours users rely on (copy,
save/load, dtype moves)."""

import copy
import io

import pytest
import torch
from torch import nn

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
    assert {type(m) for m in model.modules()} >= {fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU,
                                                  fastrnn.RNNCell, fastrnn.LSTMCell, fastrnn.GRUCell}
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
    model = nn.Sequential(nn.LSTM(3, 4, proj_size=2), nn.GRU(2, 2).half(), nn.LSTMCell(2, 2).half())
    with pytest.warns(UserWarning) as record:
        fastrnn.convert(model)
    assert type(model[0]) is fastrnn.LSTM
    assert type(model[1]) is nn.GRU and type(model[2]) is nn.LSTMCell
    assert len(record) == 2
    assert all("float16" in str(w.message) for w in record)


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
