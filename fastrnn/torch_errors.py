"""torch.nn's exceptions for the calls that fastrnn refuses.

fastrnn's checks (csrc/ops_impl.h, and the modules' own) are at least as
strict as torch.nn's but come in another order and other words. torch.nn
checks partly in Python and partly in its kernels, in an order and wording
that depend on the cell, on padded or packed input and on the kernel the CPU
runs (oneDNN's LSTM has messages of its own), and much of it is not a check
at all but the first matrix product or broadcast that fails. Users and test
suites match on those exceptions. So when fastrnn refuses a call, the same
call goes to torch.nn's forward on the same module, and whatever torch.nn
raises is raised. Where torch.nn accepts the call, fastrnn's own error
stands: there fastrnn is stricter than torch.nn, which computes something
from arguments fastrnn does not take (a broadcast bias, batch_sizes that
do not cover the data, mixed dtypes it promotes; the README lists them).
torch.nn's result is never used, and a call that fastrnn accepts pays
nothing: this runs only after a refusal. Under torch.compile the traced
graph keeps fastrnn's own errors.
"""

import warnings

import torch

__all__ = ["raise_like_torch"]


def raise_like_torch(error, torch_forward, module, *args):
    """Raise what torch_forward(module, *args) raises (torch.nn's forward of
    the class that `module` replaces), or `error`, fastrnn's refusal of the
    same call, if it raises nothing. Called while `error` is handled, so that
    a traceback shows fastrnn's error above torch.nn's."""
    if torch.compiler.is_compiling():  # traced graphs keep fastrnn's words
        raise error
    # torch.nn's dropout between layers would draw from the RNG, and its
    # warnings would be about a run the caller did not ask for
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_forward(module, *args)  # what it raises propagates
    raise error
