"""The contract: fastrnn.RNN / LSTM / GRU give torch.nn's results.

float64: outputs, final states and all gradients equal torch.nn's to 1e-10.
float32: fastrnn's error against a float64 truth is at most twice torch.nn's
float32 error (plus a tiny floor), tensor by tensor.
"""

import pytest
import torch

from helpers import (
    CELLS,
    cast_inputs,
    cast_module,
    compare,
    devices,
    float32_excess,
    forward_backward,
    make_inputs,
    make_pair,
)

# (seq_len, batch, input_size, hidden_size, num_layers, bias, batch_first, initial_state)
# Not the Cartesian product: 14 configurations that together take every value
# of every dimension (seq_len 1/2/7/50, batch 1/3/17, sizes 1/5/33/130,
# layers 1-3, bias, batch_first, given/missing initial state) several times.
CONFIGS = [
    pytest.param(1, 1, 1, 1, 1, True, False, True, id="T1-B1-I1-H1-L1"),
    pytest.param(2, 3, 5, 5, 2, False, True, False, id="T2-B3-I5-H5-L2-nobias-bf-nostate"),
    pytest.param(7, 17, 33, 33, 3, True, False, True, id="T7-B17-I33-H33-L3"),
    pytest.param(50, 3, 130, 130, 1, True, True, True, id="T50-B3-I130-H130-L1-bf"),
    pytest.param(7, 1, 130, 5, 2, True, False, False, id="T7-B1-I130-H5-L2-nostate"),
    pytest.param(50, 17, 5, 33, 2, False, False, True, id="T50-B17-I5-H33-L2-nobias"),
    pytest.param(2, 17, 1, 130, 1, False, True, True, id="T2-B17-I1-H130-L1-nobias-bf"),
    pytest.param(1, 3, 33, 1, 3, True, True, False, id="T1-B3-I33-H1-L3-bf-nostate"),
    pytest.param(7, 3, 5, 1, 1, False, False, True, id="T7-B3-I5-H1-L1-nobias"),
    pytest.param(50, 1, 1, 5, 3, True, False, False, id="T50-B1-I1-H5-L3-nostate"),
    pytest.param(2, 1, 130, 33, 3, False, True, True, id="T2-B1-I130-H33-L3-nobias-bf"),
    pytest.param(1, 17, 5, 130, 2, True, False, True, id="T1-B17-I5-H130-L2"),
    pytest.param(7, 3, 1, 33, 2, True, True, True, id="T7-B3-I1-H33-L2-bf"),
    pytest.param(50, 17, 33, 130, 3, True, True, False, id="T50-B17-I33-H130-L3-bf-nostate"),
]

CELL_IDS = list(CELLS)
F64_TOL = dict(atol=1e-10, rtol=1e-10)


def _pair_and_inputs(cell, T, B, I, H, L, bias, batch_first, given, dtype, device):
    ref, ours = make_pair(
        cell, I, H, dtype=dtype, device=device, num_layers=L, bias=bias, batch_first=batch_first
    )
    x, hx, upstream = make_inputs(ref, T, B, dtype, with_state=given)
    return ref, ours, x, hx, upstream


@pytest.mark.parametrize("T,B,I,H,L,bias,batch_first,given", CONFIGS)
@pytest.mark.parametrize("cell", CELL_IDS)
@pytest.mark.parametrize("device", devices())
def test_float64_matches_torch(device, cell, T, B, I, H, L, bias, batch_first, given):
    ref, ours, x, hx, upstream = _pair_and_inputs(
        cell, T, B, I, H, L, bias, batch_first, given, torch.float64, device
    )
    expected = forward_backward(ref, x, hx, upstream)
    got = forward_backward(ours, x, hx, upstream)
    compare(got, expected, **F64_TOL)


@pytest.mark.parametrize("T,B,I,H,L,bias,batch_first,given", CONFIGS)
@pytest.mark.parametrize("cell", CELL_IDS)
@pytest.mark.parametrize("device", devices())
def test_float32_error_within_twice_torch(device, cell, T, B, I, H, L, bias, batch_first, given):
    ref32, ours32, x, hx, upstream = _pair_and_inputs(
        cell, T, B, I, H, L, bias, batch_first, given, torch.float32, device
    )
    # The truth: torch.nn in float64 on exactly the float32 weights and inputs.
    truth = forward_backward(
        cast_module(ref32, torch.float64), *cast_inputs(x, hx, upstream, torch.float64)
    )
    theirs = forward_backward(ref32, x, hx, upstream)
    got = forward_backward(ours32, x, hx, upstream)
    assert got.keys() == truth.keys() == theirs.keys()
    bad = float32_excess(got, theirs, truth)
    assert not bad, "fastrnn float32 less accurate than torch.nn:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("given", [True, False], ids=["hx", "no_hx"])
@pytest.mark.parametrize("cell", CELL_IDS)
@pytest.mark.parametrize("device", devices())
def test_unbatched_input(device, cell, given, batch_first):
    ref, ours = make_pair(cell, 4, 6, device=device, num_layers=2, batch_first=batch_first)
    x, hx, upstream = make_inputs(ref, 5, None, torch.float64, with_state=given)
    assert x.dim() == 2
    expected = forward_backward(ref, x, hx, upstream)
    got = forward_backward(ours, x, hx, upstream)
    assert got["output"].shape == (5, 6) and got["h_n"].shape == (2, 6)
    compare(got, expected, **F64_TOL)


@pytest.mark.parametrize("cell", CELL_IDS)
def test_inference_without_grad(cell):
    """No tensor needs grad: the ops run without a workspace, same results."""
    ref, ours = make_pair(cell, 4, 6, num_layers=2)
    x, hx, _ = make_inputs(ref, 5, 3, torch.float64)
    with torch.no_grad():
        expected, got = ref(x, hx), ours(x, hx)
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-10)
    assert got[0].grad_fn is None


@pytest.mark.parametrize("cell", CELL_IDS)
def test_dropout_eval_mode_is_identity(cell):
    ref, ours = make_pair(cell, 4, 6, num_layers=3, dropout=0.5)
    ref.eval()
    ours.eval()
    x, hx, upstream = make_inputs(ref, 5, 3, torch.float64)
    compare(
        forward_backward(ours, x, hx, upstream), forward_backward(ref, x, hx, upstream), **F64_TOL
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("cell", CELL_IDS)
def test_dropout_training_matches_torch_rng(cell, dtype):
    """Same seed, same dropout masks: fastrnn must draw them as torch.nn does."""
    ref, ours = make_pair(cell, 4, 6, dtype=dtype, num_layers=3, dropout=0.5)
    x, hx, upstream = make_inputs(ref, 5, 3, dtype)
    torch.manual_seed(7)
    expected = forward_backward(ref, x, hx, upstream)
    torch.manual_seed(7)
    got = forward_backward(ours, x, hx, upstream)
    tol = F64_TOL if dtype == torch.float64 else dict(atol=1e-5, rtol=1e-5)
    compare(got, expected, **tol)
    # and dropout did act: eval mode (no dropout) gives another output
    ours.eval()
    no_dropout = forward_backward(ours, x, hx, upstream)
    assert not torch.allclose(no_dropout["output"], got["output"], atol=1e-3)


@pytest.mark.parametrize("view", ["transposed", "strided"])
@pytest.mark.parametrize("cell", CELL_IDS)
def test_non_contiguous_input(cell, view):
    ref, ours = make_pair(cell, 4, 6, num_layers=2)
    x, hx, upstream = make_inputs(ref, 5, 3, torch.float64)
    if view == "transposed":
        x = x.transpose(0, 1).contiguous().transpose(0, 1)  # [T, B, I] with batch-major strides
    else:
        x = torch.randn(10, 3, 8, dtype=torch.float64)[::2, :, ::2]  # every other step/feature
    # non-contiguous states as well
    hx = tuple(
        s.transpose(0, 1).contiguous().transpose(0, 1)
        for s in (hx if isinstance(hx, tuple) else (hx,))
    )
    hx = hx if cell == "lstm" else hx[0]
    assert not x.is_contiguous()
    compare(
        forward_backward(ours, x, hx, upstream), forward_backward(ref, x, hx, upstream), **F64_TOL
    )


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("cell", CELL_IDS)
def test_empty_batch(cell, batch_first):
    ref, ours = make_pair(cell, 4, 6, num_layers=2, batch_first=batch_first)
    x, hx, upstream = make_inputs(ref, 5, 0, torch.float64)
    expected = forward_backward(ref, x, hx, upstream)
    got = forward_backward(ours, x, hx, upstream)
    assert got["output"].shape == ((0, 5, 6) if batch_first else (5, 0, 6))
    compare(got, expected, **F64_TOL)


@pytest.mark.parametrize("cell", CELL_IDS)
def test_zero_seq_len_raises_like_torch(cell):
    ref, ours = make_pair(cell, 4, 6)
    x = torch.randn(0, 3, 4, dtype=torch.float64)
    with pytest.raises(RuntimeError) as theirs:
        ref(x)
    with pytest.raises(RuntimeError, match="sequence length") as got:
        ours(x)
    assert str(got.value) == str(theirs.value)


def _randomized(module):
    """Parameters away from the shared default initialisation."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    return module


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cell", CELL_IDS)
def test_state_dict_round_trips(cell, bias):
    torch_cls, fast_cls, extra = CELLS[cell]
    kwargs = dict(num_layers=2, bias=bias, **extra)
    theirs = _randomized(torch_cls(3, 5, **kwargs))
    ours = fast_cls(3, 5, **kwargs)
    ours.load_state_dict(theirs.state_dict())  # strict: same keys, same shapes
    for k, v in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[k], v), k

    ours = _randomized(fast_cls(3, 5, **kwargs))
    theirs = torch_cls(3, 5, **kwargs)
    theirs.load_state_dict(ours.state_dict())
    for k, v in ours.state_dict().items():
        assert torch.equal(theirs.state_dict()[k], v), k
    x = torch.randn(4, 2, 3)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("cell", CELL_IDS)
def test_parameter_names_and_shapes(cell, bias):
    torch_cls, fast_cls, extra = CELLS[cell]
    theirs = torch_cls(3, 5, num_layers=3, bias=bias, **extra)
    ours = fast_cls(3, 5, num_layers=3, bias=bias, **extra)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [
        (n, p.shape) for n, p in theirs.named_parameters()
    ]
    assert list(ours.state_dict()) == list(theirs.state_dict())


@pytest.mark.parametrize("cell", CELL_IDS)
def test_same_initialisation_with_same_seed(cell):
    torch_cls, fast_cls, extra = CELLS[cell]
    torch.manual_seed(3)
    theirs = torch_cls(3, 5, num_layers=2, **extra)
    torch.manual_seed(3)
    ours = fast_cls(3, 5, num_layers=2, **extra)
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"num_layers": 2, "bias": False, "batch_first": True, "dropout": 0.25},
    ],
    ids=["default", "options"],
)
@pytest.mark.parametrize("cell", CELL_IDS)
def test_repr_matches_torch(cell, kwargs):
    torch_cls, fast_cls, extra = CELLS[cell]
    theirs, ours = torch_cls(3, 5, **extra, **kwargs), fast_cls(3, 5, **extra, **kwargs)
    assert repr(ours) == repr(theirs)
    assert type(ours).__module__ == "fastrnn.modules"
    assert type(ours).__name__ == type(theirs).__name__
    assert isinstance(ours, torch.nn.RNNBase)
