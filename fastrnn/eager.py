"""The eager autograd fast path: fastrnn's ops called from eager code without
torch.library's Python wrapper, and every private torch API that needs.

Why it exists: torch.library's autograd wrapper (what
torch.library.register_autograd installs) re-reads the op's schema on every
call (torch._library.utils.fill_defaults), and the autograd key's kernel of
an op without one is a Python fallback; both cost longer than a whole
one-step LSTM op at batch 1 (the figures: benchmarks/README.md,
"Measurements behind the code's choices"; benchmarks/eager_autograd.py
re-measures them). So eager calls go through an autograd.Function that runs
the op below the autograd dispatch key, with the very setup_context and
backward functions registered for the op (fastrnn/ops.py): one autograd, two
ways in. Compiled graphs (torch.compile, torch.export) trace the registered
autograd instead and never come here.

The private torch APIs, all here so that a torch upgrade breaks in one known
place:
  torch._C._AutoDispatchBelowAutograd   run an op past the autograd key
  torch.autograd.forward_ad._current_level   whether any dual level is open
Elsewhere only fastrnn/fake.py (torch._subclasses.fake_tensor.is_fake: real
batch_sizes values are checked, fake ones cannot be) and fastrnn/scripting.py
(torch._jit_internal._overload_method: TorchScript's overloads of forward,
as torch.nn's own modules declare them) use private names.
"""

import torch
from torch.autograd import forward_ad


def call_below_autograd(op, *args):
    """op(*args) past the autograd dispatch key. Only for calls where nothing
    can need a gradient: autograd records nothing."""
    with torch._C._AutoDispatchBelowAutograd():
        return op(*args)


def call(op, *args):
    """op(*args); below the autograd key when grad mode is off in eager code
    (a first-order backward, inference), where autograd has nothing to record."""
    if torch.is_grad_enabled() or torch.compiler.is_compiling():
        return op(*args)
    return call_below_autograd(op, *args)


class _Function(torch.autograd.Function):
    """The registered autograd of one forward op, for eager calls: forward runs
    the op below autograd and calls the op's setup_context; backward calls the
    op's backward function."""

    @staticmethod
    def forward(ctx, op, setup_context, backward, *inputs):
        output = call_below_autograd(op, *inputs)  # grad mode is off here
        setup_context(ctx, inputs, output)
        ctx.op_backward = backward
        return output

    @staticmethod
    def backward(ctx, *grads):
        # grad mode is on in a backward with create_graph=True, and the op's
        # backward function then builds a differentiable graph
        return (None, None, None, *ctx.op_backward(ctx, *grads))


def apply(op, setup_context, backward, *inputs):
    """op(*inputs) recorded for autograd with the op's registered
    setup_context and backward functions."""
    return _Function.apply(op, setup_context, backward, *inputs)


def refuse_forward_ad(inputs):
    """Forward-mode AD (torch.autograd.forward_ad, torch.func.jvp, jacfwd)
    raises: the ops have no forward derivative, and run below autograd they
    would drop the tangents without a word (a zero derivative)."""
    if forward_ad._current_level < 0:  # no dual level is open: nothing carries a tangent
        return
    if any(
        isinstance(t, torch.Tensor) and forward_ad.unpack_dual(t).tangent is not None
        for t in inputs
    ):
        raise NotImplementedError(
            "fastrnn: forward-mode AD (torch.autograd.forward_ad, torch.func.jvp, jacfwd) is "
            "not supported; reverse mode, double backward included, is"
        )
