"""torch.nn's exceptions for the calls that fastrnn refuses.

fastrnn's checks (csrc/ops_impl.h, and the modules' own) are at least as
strict as torch.nn's but come in another order and other words. torch.nn
checks partly in Python and partly in its kernels, in an order and wording
that depend on the cell and on padded or packed input, and much of it is not
a check at all but the first matrix product or broadcast that fails. Users
and test suites match on those exceptions. So when fastrnn refuses a call,
torch.nn's forward is put to the same call and whatever it raises is raised;
where torch.nn accepts the call, fastrnn's own error stands (fastrnn is
stricter there: torch.nn computes something from arguments it should have
refused; the README lists these cases).

torch.nn's kernels must not see what could make them read out of bounds:
a non-contiguous batch_sizes, which they read as if it were contiguous, and
an LSTM's weight matrices of another shape than its constructor makes where
torch.nn may run oneDNN's LSTM (padded input, no projection, float32,
bfloat16 or float16), which takes them as they come. There fastrnn's own
error stands. Everywhere else torch.nn's kernels are ATen's, which check
every shape before they read, and its Python checks have seen the arguments
first. torch.nn's results are never used, and a call that
fastrnn accepts pays nothing: this runs only after a refusal.
"""

import warnings
from typing import Optional, Tuple, Union

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

# the arguments and results of the modules' and cells' forward, as torch.nn's:
# a layer takes a Tensor or a PackedSequence and returns (output, state); a
# cell takes a Tensor and returns its new state. A state is h, or (h, c) for
# an LSTM.
State = Union[Tensor, Tuple[Tensor, Tensor]]
Input = Union[Tensor, PackedSequence]

__all__ = ["RaisesLikeTorch", "raise_like_torch"]


def _unsafe_batch_sizes(args):
    return any(
        isinstance(a, PackedSequence)
        and isinstance(a.batch_sizes, torch.Tensor)
        and not a.batch_sizes.is_contiguous()
        for a in args
    )


def _canonical_shapes(module):
    """The shape of each of module's parameters as torch.nn's constructor makes it."""
    gates = {"LSTM": 4, "GRU": 3}.get(getattr(module, "mode", None), 1)
    if isinstance(module, nn.RNNCellBase):
        gates = {nn.LSTMCell: 4, nn.GRUCell: 3}.get(getattr(module, "_torch_class", None), 1)
        G, H, I = gates * module.hidden_size, module.hidden_size, module.input_size
        return {"weight_ih": (G, I), "weight_hh": (G, H), "bias_ih": (G,), "bias_hh": (G,)}
    H, P = module.hidden_size, module.proj_size or module.hidden_size
    D = 2 if module.bidirectional else 1
    shapes = {}
    for layer in range(module.num_layers):
        for suffix in ("", "_reverse")[:D]:
            k = f"l{layer}{suffix}"
            shapes.update(
                {
                    f"weight_ih_{k}": (gates * H, module.input_size if layer == 0 else D * P),
                    f"weight_hh_{k}": (gates * H, P),
                    f"bias_ih_{k}": (gates * H,),
                    f"bias_hh_{k}": (gates * H,),
                    f"weight_hr_{k}": (P, H),
                }
            )
    return shapes


def _canonical_weights(module):
    """Whether module's weights (its biases aside: ATen adds them before any
    kernel) have the shapes torch.nn's constructor gives them."""
    shapes = _canonical_shapes(module)
    return all(
        tuple(p.shape) == shapes.get(name)
        for name, p in module.named_parameters()
        if name.startswith("weight")
    )


def _onednn_weights(module, args):
    """Whether torch.nn may hand weights of the wrong shape to oneDNN's LSTM."""
    if (
        getattr(module, "mode", None) != "LSTM"
        or module.proj_size > 0
        or _canonical_weights(module)
    ):
        return False
    input = args[0] if args else None
    return isinstance(input, torch.Tensor) and input.dtype in (
        torch.float32,
        torch.bfloat16,
        torch.float16,
    )


def raise_like_torch(error, torch_forward, module, *args):
    """Raise what torch_forward(module, *args) raises (torch.nn's forward of
    the class that `module` replaces), or `error`, fastrnn's refusal of the
    same call, if it raises nothing. Called while `error` is handled, so that
    a traceback shows fastrnn's error above torch.nn's."""
    if torch.compiler.is_compiling() or _unsafe_batch_sizes(args) or _onednn_weights(module, args):
        raise error
    # torch.nn's dropout between layers would draw from the RNG, and its
    # warnings would be about a run the caller did not ask for
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_forward(module, *args)  # what it raises propagates
    raise error


class RaisesLikeTorch:
    """The forward of fastrnn's modules and cells: their _forward, with
    torch.nn's exception where it refuses a call. _torch_class: the torch.nn
    class the module replaces."""

    _torch_class = None

    def forward(
        self, input: Input, hx: Optional[State] = None
    ) -> Union[Tuple[Input, State], State]:
        try:
            return self._forward(input, hx)
        except Exception as error:  # torch.nn's exception instead, where it raises one
            raise_like_torch(error, self._torch_class.forward, self, input, hx)
