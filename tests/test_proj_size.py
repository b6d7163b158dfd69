"""fastrnn.LSTM with proj_size against torch.nn.LSTM: outputs, final states
and every gradient (weight_hr included), float64 to 1e-10 and float32 by the
project's rule, over layers 1-3, bidirectional, batch_first, bias, packed
sequences, given/missing states and dropout; parameters and state_dict."""

import pytest
import torch

import fastrnn

from helpers import (
    LENGTHS,
    cast_inputs,
    cast_module,
    compare,
    float32_excess,
    forward_backward,
    make_inputs,
    make_pair,
    packed_forward_backward,
)

F64_TOL = dict(atol=1e-10, rtol=1e-10)

# (seq_len, batch, input_size, hidden_size, proj_size, num_layers, bias, batch_first,
#  bidirectional, initial_state): every value of each dimension more than once,
# proj_size 1 and hidden_size - 1 included.
CONFIGS = [
    pytest.param(1, 2, 3, 3, 1, 1, True, False, False, True, id="T1-B2-I3-H3-P1-L1"),
    pytest.param(
        5, 3, 4, 6, 2, 2, False, True, False, False, id="T5-B3-H6-P2-L2-nobias-bf-nostate"
    ),
    pytest.param(7, 4, 5, 33, 7, 3, True, False, True, True, id="T7-B4-H33-P7-L3-bi"),
    pytest.param(9, 2, 3, 8, 7, 2, True, True, True, False, id="T9-B2-H8-P7-L2-bi-bf-nostate"),
    pytest.param(40, 5, 16, 40, 10, 1, False, False, True, True, id="T40-B5-H40-P10-L1-bi-nobias"),
    pytest.param(3, 17, 33, 130, 64, 3, True, True, False, True, id="T3-B17-H130-P64-L3-bf"),
]


# float64 only: with batch 1, input_size 1 and proj_size 1, grad_input and
# grad_h0 are single elements, often the small difference of larger terms, and
# the float32 rule (twice torch.nn's error) compares two rounding accidents:
# it fails for ~5% of seeds here, as for test_against_torch's T1-B1-I1-H1-L1
# (no projection), which fails for 15 of 200 seeds.
SINGLE_ELEMENT = [
    pytest.param(1, 1, 1, 2, 1, 1, True, False, False, True, id="T1-B1-I1-H2-P1-L1"),
]


def _pair(I, H, P, dtype=torch.float64, **kwargs):
    return make_pair("lstm", I, H, dtype=dtype, proj_size=P, **kwargs)


@pytest.mark.parametrize(
    "T,B,I,H,P,L,bias,batch_first,bidirectional,given", CONFIGS + SINGLE_ELEMENT
)
def test_float64_matches_torch(T, B, I, H, P, L, bias, batch_first, bidirectional, given):
    ref, ours = _pair(
        I, H, P, num_layers=L, bias=bias, batch_first=batch_first, bidirectional=bidirectional
    )
    x, hx, upstream = make_inputs(ref, T, B, torch.float64, with_state=given)
    got = forward_backward(ours, x, hx, upstream)
    D = 2 if bidirectional else 1
    assert got["output"].shape[-1] == D * P
    assert got["h_n"].shape == (L * D, B, P) and got["c_n"].shape == (L * D, B, H)
    assert "grad_weight_hr_l0" in got
    compare(got, forward_backward(ref, x, hx, upstream), **F64_TOL)


@pytest.mark.parametrize("T,B,I,H,P,L,bias,batch_first,bidirectional,given", CONFIGS)
def test_float32_error_within_twice_torch(
    T, B, I, H, P, L, bias, batch_first, bidirectional, given
):
    ref32, ours32 = _pair(
        I,
        H,
        P,
        dtype=torch.float32,
        num_layers=L,
        bias=bias,
        batch_first=batch_first,
        bidirectional=bidirectional,
    )
    x, hx, upstream = make_inputs(ref32, T, B, torch.float32, with_state=given)
    truth = forward_backward(
        cast_module(ref32, torch.float64), *cast_inputs(x, hx, upstream, torch.float64)
    )
    bad = float32_excess(
        forward_backward(ours32, x, hx, upstream), forward_backward(ref32, x, hx, upstream), truth
    )
    assert not bad, "fastrnn float32 less accurate than torch.nn:\n  " + "\n  ".join(bad)


# (seq_len, batch, input_size, hidden_size, proj_size, num_layers, bias, initial_state)
PACKED_SHAPES = [
    pytest.param(7, 3, 5, 6, 3, 1, True, True, id="T7-B3-L1"),
    pytest.param(9, 4, 3, 9, 4, 2, False, False, id="T9-B4-L2-nobias-nostate"),
    pytest.param(5, 5, 4, 33, 5, 3, True, True, id="T5-B5-H33-L3"),
]


@pytest.mark.parametrize("T,B,I,H,P,L,bias,given", PACKED_SHAPES)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("enforce_sorted", [False, True], ids=["unsorted", "sorted"])
def test_packed_matches_torch(T, B, I, H, P, L, bias, given, bidirectional, enforce_sorted):
    lengths = [min(n, T) for n in LENGTHS[B]]  # length 1 and equal lengths among them
    if enforce_sorted:
        lengths = sorted(lengths, reverse=True)
    ref, ours = _pair(I, H, P, num_layers=L, bias=bias, bidirectional=bidirectional)
    x, hx, upstream = make_inputs(ref, T, B, torch.float64, with_state=given)
    compare(
        packed_forward_backward(ours, x, lengths, enforce_sorted, hx, upstream),
        packed_forward_backward(ref, x, lengths, enforce_sorted, hx, upstream),
        **F64_TOL,
    )


@pytest.mark.parametrize("draw", range(3))
def test_packed_random_lengths_matches_torch(draw):
    T, B = 8, 6
    lengths = torch.randint(1, T + 1, (B,)).tolist()
    ref, ours = _pair(3, 7, 3, num_layers=2, bidirectional=True)
    x, hx, upstream = make_inputs(ref, T, B, torch.float64)
    compare(
        packed_forward_backward(ours, x, lengths, False, hx, upstream),
        packed_forward_backward(ref, x, lengths, False, hx, upstream),
        **F64_TOL,
    )


def test_packed_float32_within_twice_torch():
    ref32, ours32 = _pair(5, 33, 9, dtype=torch.float32, num_layers=2, bidirectional=True)
    x, hx, upstream = make_inputs(ref32, 9, 4, torch.float32)
    lengths = LENGTHS[4]
    x64, hx64, upstream64 = cast_inputs(x, hx, upstream, torch.float64)
    truth = packed_forward_backward(
        cast_module(ref32, torch.float64), x64, lengths, False, hx64, upstream64
    )
    bad = float32_excess(
        packed_forward_backward(ours32, x, lengths, False, hx, upstream),
        packed_forward_backward(ref32, x, lengths, False, hx, upstream),
        truth,
    )
    assert not bad, "fastrnn float32 less accurate than torch.nn:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_dropout_training_matches_torch_rng(bidirectional, packed):
    ref, ours = _pair(4, 6, 3, num_layers=3, dropout=0.4, bidirectional=bidirectional)
    x, hx, upstream = make_inputs(ref, 9, 4, torch.float64)

    def run(module, seed):
        torch.manual_seed(seed)
        if packed:
            return packed_forward_backward(module, x, LENGTHS[4], False, hx, upstream)
        return forward_backward(module, x, hx, upstream)

    got = run(ours, 7)
    compare(got, run(ref, 7), **F64_TOL)
    assert not torch.allclose(run(ours, 8)["output"], got["output"], atol=1e-3), (
        "dropout changed nothing"
    )


@pytest.mark.parametrize("given", [True, False], ids=["hx", "no_hx"])
def test_unbatched_input(given):
    ref, ours = _pair(4, 6, 2, num_layers=2, bidirectional=True)
    x, hx, upstream = make_inputs(ref, 5, None, torch.float64, with_state=given)
    got = forward_backward(ours, x, hx, upstream)
    assert got["output"].shape == (5, 4) and got["h_n"].shape == (4, 2)
    assert got["c_n"].shape == (4, 6)
    compare(got, forward_backward(ref, x, hx, upstream), **F64_TOL)


def test_inference_without_grad():
    ref, ours = _pair(4, 6, 3, num_layers=2)
    x, hx, _ = make_inputs(ref, 5, 3, torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, hx), ref(x, hx), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("bias", [True, False])
def test_parameters_and_state_dict_both_ways(bias):
    kwargs = dict(num_layers=2, bias=bias, bidirectional=True, proj_size=2)
    theirs = torch.nn.LSTM(3, 5, **kwargs)
    ours = fastrnn.LSTM(3, 5, **kwargs)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [
        (n, p.shape) for n, p in theirs.named_parameters()
    ]
    assert repr(ours) == repr(theirs)
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_()
    ours.load_state_dict(theirs.state_dict())  # strict: same keys, same shapes
    assert all(torch.equal(ours.state_dict()[k], v) for k, v in theirs.state_dict().items())

    ours = fastrnn.LSTM(3, 5, **kwargs)
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_()
    theirs = torch.nn.LSTM(3, 5, **kwargs)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 2, 3)
    torch.testing.assert_close(ours(x), theirs(x))


def test_same_initialisation_with_same_seed():
    torch.manual_seed(3)
    theirs = torch.nn.LSTM(3, 5, num_layers=2, proj_size=2)
    torch.manual_seed(3)
    ours = fastrnn.LSTM(3, 5, num_layers=2, proj_size=2)
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert torch.equal(a, b), name
