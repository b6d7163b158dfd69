"""Bidirectional layers and PackedSequence input against torch.nn: outputs,
final states and every gradient, float64 to 1e-10 and float32 by the
project's rule (at most twice torch.nn's own error against float64)."""

import pytest
import torch

from helpers import (
    CELLS,
    LENGTHS,
    cast_inputs,
    cast_module,
    compare,
    devices,
    float32_excess,
    forward_backward,
    make_inputs,
    make_pair,
    packed_forward_backward,
)

CELL_IDS = list(CELLS)

# (seq_len, batch, input_size, hidden_size, num_layers, bias, given initial state)
SHAPES = [
    pytest.param(7, 3, 5, 6, 1, True, True, id="T7-B3-L1"),
    pytest.param(9, 4, 3, 5, 2, True, False, id="T9-B4-L2-nostate"),
    pytest.param(5, 5, 4, 33, 3, False, True, id="T5-B5-H33-L3-nobias"),
    pytest.param(1, 2, 3, 4, 2, True, True, id="T1-B2-L2"),
]


@pytest.mark.parametrize("T,B,I,H,L,bias,given", SHAPES)
@pytest.mark.parametrize("batch_first", [False, True], ids=["", "bf"])
@pytest.mark.parametrize("cell", CELL_IDS)
@pytest.mark.parametrize("device", devices())
def test_bidirectional_matches_torch(device, cell, T, B, I, H, L, bias, given, batch_first):
    ref, ours = make_pair(
        cell,
        I,
        H,
        device=device,
        num_layers=L,
        bias=bias,
        batch_first=batch_first,
        bidirectional=True,
    )
    x, hx, upstream = make_inputs(ref, T, B, torch.float64, with_state=given)
    compare(
        forward_backward(ours, x, hx, upstream),
        forward_backward(ref, x, hx, upstream),
        atol=1e-10,
        rtol=1e-10,
    )


@pytest.mark.parametrize("T,B,I,H,L,bias,given", SHAPES)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("enforce_sorted", [False, True], ids=["unsorted", "sorted"])
@pytest.mark.parametrize("cell", CELL_IDS)
@pytest.mark.parametrize("device", devices())
def test_packed_matches_torch(
    device, cell, T, B, I, H, L, bias, given, bidirectional, enforce_sorted
):
    lengths = [min(n, T) for n in LENGTHS[B]]
    if enforce_sorted:
        lengths = sorted(lengths, reverse=True)
    ref, ours = make_pair(
        cell, I, H, device=device, num_layers=L, bias=bias, bidirectional=bidirectional
    )
    x, hx, upstream = make_inputs(ref, T, B, torch.float64, with_state=given)
    theirs = packed_forward_backward(ref, x, lengths, enforce_sorted, hx, upstream)
    got = packed_forward_backward(ours, x, lengths, enforce_sorted, hx, upstream)
    compare(got, theirs, atol=1e-10, rtol=1e-10)


def random_lengths(seed, batch, max_len, equal):
    """Lengths in 1..max_len drawn with a seeded generator: all equal, or
    unsorted with at least one sequence of length 1."""
    generator = torch.Generator().manual_seed(seed)
    if equal:
        return [int(torch.randint(1, max_len + 1, (), generator=generator))] * batch
    lengths = torch.randint(1, max_len + 1, (batch,), generator=generator)
    lengths[torch.randint(batch, (), generator=generator)] = 1
    return lengths.tolist()


# (seed, batch, equal lengths, batch_first module fed a batch_first PackedSequence)
RANDOM_LENGTHS = [
    pytest.param(0, 6, False, False, id="random-B6"),
    pytest.param(1, 3, False, True, id="random-B3-bf"),
    pytest.param(2, 4, True, False, id="equal-B4"),
    pytest.param(3, 5, True, True, id="equal-B5-bf"),
]


@pytest.mark.parametrize("seed,B,equal,batch_first", RANDOM_LENGTHS)
@pytest.mark.parametrize("L", [1, 2, 3], ids=["L1", "L2", "L3"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", CELL_IDS)
def test_packed_random_lengths_match_torch(cell, bidirectional, L, seed, B, equal, batch_first):
    T = 8
    lengths = random_lengths(seed, B, T, equal)
    assert equal == (len(set(lengths)) == 1) and (equal or 1 in lengths)
    ref, ours = make_pair(
        cell, 3, 5, num_layers=L, bidirectional=bidirectional, batch_first=batch_first
    )
    x, hx, upstream = make_inputs(ref, T, B, torch.float64)
    theirs = packed_forward_backward(ref, x, lengths, False, hx, upstream, batch_first)
    got = packed_forward_backward(ours, x, lengths, False, hx, upstream, batch_first)
    compare(got, theirs, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("cell", CELL_IDS)
def test_packed_bidirectional_float32_within_twice_torch(cell):
    ref32, ours32 = make_pair(cell, 5, 33, dtype=torch.float32, num_layers=2, bidirectional=True)
    x, hx, upstream = make_inputs(ref32, 9, 4, torch.float32)
    lengths = LENGTHS[4]
    truth = packed_forward_backward(
        cast_module(ref32, torch.float64),
        *cast_inputs(x, None, None, torch.float64)[:1],
        lengths,
        False,
        *cast_inputs(None, hx, upstream, torch.float64)[1:],
    )
    theirs = packed_forward_backward(ref32, x, lengths, False, hx, upstream)
    got = packed_forward_backward(ours32, x, lengths, False, hx, upstream)
    bad = float32_excess(got, theirs, truth)
    assert not bad, "fastrnn float32 less accurate than torch.nn:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("cell", CELL_IDS)
def test_bidirectional_dropout_matches_torch_in_training(cell):
    ref, ours = make_pair(cell, 4, 6, num_layers=3, dropout=0.4, bidirectional=True)
    ref.train(), ours.train()
    x, hx, _ = make_inputs(ref, 6, 3, torch.float64)
    torch.manual_seed(7)
    expected, _ = ref(x, hx)
    torch.manual_seed(7)
    got, _ = ours(x, hx)
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-10)
    torch.manual_seed(8)
    assert not torch.allclose(ours(x, hx)[0], got), "dropout changed nothing"


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", CELL_IDS)
def test_packed_dropout_matches_torch_rng(cell, bidirectional):
    """Training with dropout on a PackedSequence: with the same seed, fastrnn
    draws torch.nn's masks (one draw per layer after the first, over the
    packed [N, D * H] rows in their packed order), so outputs and every
    gradient agree."""
    ref, ours = make_pair(cell, 4, 6, num_layers=3, dropout=0.4, bidirectional=bidirectional)
    x, hx, upstream = make_inputs(ref, 9, 4, torch.float64)
    lengths = LENGTHS[4]
    torch.manual_seed(7)
    expected = packed_forward_backward(ref, x, lengths, False, hx, upstream)
    torch.manual_seed(7)
    got = packed_forward_backward(ours, x, lengths, False, hx, upstream)
    compare(got, expected, atol=1e-10, rtol=1e-10)
    # and dropout did act: another seed gives another output
    torch.manual_seed(8)
    other = packed_forward_backward(ours, x, lengths, False, hx, upstream)
    assert not torch.allclose(other["output"], got["output"], atol=1e-3), "dropout changed nothing"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_compiled_bidirectional_training_matches_eager(cell):
    ref, ours = make_pair(cell, 4, 8, num_layers=2, bidirectional=True)
    compiled = torch.compile(ours, fullgraph=True)
    x, hx, upstream = make_inputs(ours, 5, 3, torch.float64)
    got = {
        k.replace("_orig_mod.", ""): v
        for k, v in forward_backward(compiled, x, hx, upstream).items()
    }
    compare(got, forward_backward(ref, x, hx, upstream), atol=1e-10, rtol=1e-10)
