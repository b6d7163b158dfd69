"""The course example: each variant, on fastrnn.RNN, learns "hihell" ->
"ihello", and its losses are the course notes' (torch.nn.RNN, seed 777) and
torch.nn.RNN's here."""

import pytest
import torch

from experiments import hihell

# epoch (1-based) -> loss, as the notes print them (three decimals)
NOTES = {
    "step": {1: 10.155, 2: 9.137, 12: 4.827, 50: 2.859, 100: 2.747},
    "onehot": {1: 1.544, 2: 1.315, 12: 0.648, 90: 0.523, 100: 0.513},
    "embedding": {1: 1.768, 2: 1.396, 12: 0.235, 50: 0.025},
}
# the notes print "ihello" from these epochs on in the step and embedding
# variants; the one-hot sequence reaches it at epoch 90
FIRST_IHELLO = {"step": 24, "onehot": 90, "embedding": 24}


@pytest.fixture(scope="module")
def runs():
    return {
        (variant, backend, dtype): hihell.train_variant(variant, backend, dtype=dtype)
        for variant in hihell.VARIANTS
        for backend in ("fastrnn", "torch")
        for dtype in (torch.float32, torch.float64)
    }


@pytest.mark.parametrize("variant", list(hihell.VARIANTS))
def test_learns_ihello(runs, variant):
    model, history = runs[(variant, "fastrnn", torch.float32)]
    assert type(model.rnn) is hihell.fastrnn.RNN
    assert hihell.predict(model, variant) == "ihello"
    assert history[0][1] != "ihello"  # it had to learn it
    assert all(s == "ihello" for _, s in history[FIRST_IHELLO[variant] - 1 :])


@pytest.mark.parametrize("variant", list(hihell.VARIANTS))
def test_losses_are_the_notes(runs, variant):
    _, history = runs[(variant, "fastrnn", torch.float32)]
    assert len(history) == hihell.VARIANTS[variant][1]
    for epoch, loss in NOTES[variant].items():
        # printed to three decimals: half a unit of the last, plus rounding
        assert history[epoch - 1][0] == pytest.approx(loss, abs=1e-3), epoch


@pytest.mark.parametrize("variant", list(hihell.VARIANTS))
def test_fastrnn_trains_as_torch_nn(runs, variant):
    """float64: the same strings and losses to 1e-10. float32: lr 0.1
    amplifies rounding from epoch to epoch, so fastrnn's distance from the
    float64 run is held to twice torch.nn's own, plus a floor."""

    def losses(backend, dtype):
        return torch.tensor([l for l, _ in runs[(variant, backend, dtype)][1]], dtype=torch.float64)

    fast64, ref64 = (
        runs[(variant, "fastrnn", torch.float64)],
        runs[(variant, "torch", torch.float64)],
    )
    assert [s for _, s in fast64[1]] == [s for _, s in ref64[1]]
    assert torch.allclose(
        losses("fastrnn", torch.float64), losses("torch", torch.float64), rtol=1e-10, atol=0
    )
    exact = losses("torch", torch.float64)
    fast_error = (losses("fastrnn", torch.float32) - exact).abs().max().item()
    torch_error = (losses("torch", torch.float32) - exact).abs().max().item()
    assert fast_error <= 2 * torch_error + 1e-5


def test_main_prints_the_result(capsys):
    assert hihell.main(["--variants", "embedding", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "embedding: after 50 epochs, loss 0.025, predicts 'ihello'" in out
