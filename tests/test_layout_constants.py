"""The cells' layout constants: fastrnn/fake.py takes its gate and workspace
plane counts from the extension (csrc/python_module.cpp hands over each
Cell::kGates and Cell::kSaved), and the fake kernels' workspace has the real
ops' shape. (test_ops.py's opcheck also compares every fake output with the
real op's; this test names the counts.)"""

import pytest
import torch

from fastrnn import _C, fake


def test_counts():
    assert fake.GATES == _C.GATES == {"rnn": 1, "lstm": 4, "gru": 3}
    assert fake.SAVED == _C.SAVED == {"rnn": 2, "lstm": 7, "gru": 5}
    # fake.py's rule for proj_size: one more plane (o * tanh(c), the projection's input)
    assert _C.LSTM_PROJ_SAVED == fake.SAVED["lstm"] + 1


@pytest.mark.parametrize("cell, proj_size", [("rnn", 0), ("lstm", 0), ("lstm", 2), ("gru", 0)])
def test_fake_workspace_is_real_workspace(cell, proj_size):
    T, B, I, H = 3, 2, 4, 5
    G, P = fake.GATES[cell], proj_size or H
    hx, w_ih, w_hh = torch.randn(B, P), torch.randn(G * H, I), torch.randn(G * H, P)
    b_ih, b_hh = torch.randn(G * H), torch.randn(G * H)
    args = {
        "rnn": (torch.randn(T, B, I), hx, w_ih, w_hh, b_ih, b_hh, None, False, False, True),
        "lstm": (
            torch.randn(T, B, I),
            hx,
            torch.randn(B, H),
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            torch.randn(P, H) if proj_size else None,
            None,
            False,
            True,
        ),
        "gru": (torch.randn(T, B, I), hx, w_ih, w_hh, b_ih, b_hh, None, False, True),
    }[cell]
    op = getattr(torch.ops.fastrnn, f"{cell}_forward")
    real = op(*args)[-1]
    meta = op(*(a.to("meta") if isinstance(a, torch.Tensor) else a for a in args))[-1]
    planes = _C.LSTM_PROJ_SAVED if proj_size else fake.SAVED[cell]
    assert real.shape == meta.shape == (planes, T * B, H)
