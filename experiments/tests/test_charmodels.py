"""The models of the comparison: their FLOP formulas against torch's
FlopCounterMode, and the same weights under either backend."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from experiments import charmodels


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", charmodels.CELLS)
def test_flops_formula_matches_flop_counter(cell, num_layers):
    """The analytic count equals what torch's FlopCounterMode counts in a
    training step (float64 keeps torch.nn's LSTM off oneDNN, which the
    counter cannot see into)."""
    seq_len, batch = 9, 3
    model = charmodels.build_model(
        cell,
        "torch",
        30,
        seq_len,
        embed_size=12,
        hidden_size=20,
        num_layers=num_layers,
        dtype=torch.float64,
    )
    ids = torch.randint(30, (batch, seq_len))
    with FlopCounterMode(display=False) as counter:
        logits = model(ids)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
    assert counter.get_total_flops() == batch * model.flops_per_sequence(seq_len)


@pytest.mark.parametrize("cell", list(charmodels.RECURRENT))
def test_backends_build_the_same_model(cell):
    fast = charmodels.build_model(cell, "fastrnn", 20, 8, seed=3)
    ref = charmodels.build_model(cell, "torch", 20, 8, seed=3)
    assert type(fast.rnn) is charmodels.RECURRENT[cell][1]
    assert type(ref.rnn) is charmodels.RECURRENT[cell][0]
    assert not isinstance(fast.rnn, (torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU))
    a, b = fast.state_dict(), ref.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert charmodels.model_bytes(fast) == 4 * charmodels.count_params(fast)


@pytest.mark.parametrize("cell", list(charmodels.RECURRENT))
def test_last_position_head(cell):
    """forward(ids, last=True) is the last position of the full forward, and
    its FLOP count (the head once, the recurrence in full) is the counter's."""
    seq_len, batch = 7, 3
    model = charmodels.build_model(
        cell, "torch", 30, seq_len, embed_size=12, hidden_size=20, num_layers=2, dtype=torch.float64
    )
    ids = torch.randint(30, (batch, seq_len))
    assert torch.allclose(model(ids, last=True), model(ids)[:, -1], rtol=1e-12, atol=1e-14)
    with FlopCounterMode(display=False) as counter:
        logits = model(ids, last=True)
        torch.nn.functional.cross_entropy(logits, ids[:, 0]).backward()
    assert counter.get_total_flops() == batch * model.flops_per_sequence(seq_len, last=True)
    assert model.flops_per_sequence(seq_len, last=True) < model.flops_per_sequence(seq_len)
