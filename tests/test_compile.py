"""torch.compile(fullgraph=True) traces the modules (no graph break) and a
compiled training step gives eager's loss and gradients."""

import copy
import functools
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd

import fastrnn

from helpers import compare, forward_backward, make_inputs, make_pair

VOCAB, EMBED, HIDDEN = 20, 8, 12
MODULES = {
    "lstm": fastrnn.LSTM,
    "lstm_proj": functools.partial(fastrnn.LSTM, proj_size=5),
    "gru": fastrnn.GRU,
    "rnn": fastrnn.RNN,
}
OP = {"lstm": "lstm", "lstm_proj": "lstm", "gru": "gru", "rnn": "rnn"}  # the ops' cell


class TinyModel(torch.nn.Module):
    def __init__(self, rnn_cls):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, EMBED)
        self.rnn = rnn_cls(EMBED, HIDDEN, num_layers=2, batch_first=True)
        self.head = torch.nn.Linear(getattr(self.rnn, "proj_size", 0) or HIDDEN, VOCAB)

    def forward(self, tokens, targets):
        features, _ = self.rnn(self.embed(tokens))
        return F.cross_entropy(self.head(features).flatten(0, 1), targets.flatten())


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("cell", list(MODULES))
def test_compiled_training_steps_match_eager(cell):
    eager = TinyModel(MODULES[cell]).double()
    compiled = copy.deepcopy(eager)
    step = torch.compile(compiled, fullgraph=True)
    opt_eager = torch.optim.SGD(eager.parameters(), lr=0.5)
    opt_compiled = torch.optim.SGD(compiled.parameters(), lr=0.5)
    tokens = torch.randint(0, VOCAB, (3, 4, 7))
    targets = torch.randint(0, VOCAB, (3, 4, 7))
    for i in range(3):
        loss_eager = eager(tokens[i], targets[i])
        loss_eager.backward()
        loss_compiled = step(tokens[i], targets[i])
        loss_compiled.backward()
        torch.testing.assert_close(loss_compiled, loss_eager, atol=1e-12, rtol=1e-12)
        for (name, a), b in zip(compiled.named_parameters(), eager.parameters()):
            assert a.grad is not None, name
            torch.testing.assert_close(
                a.grad,
                b.grad,
                atol=1e-12,
                rtol=1e-10,
                msg=lambda m, i=i, name=name: f"step {i} {name}: {m}",
            )
        opt_eager.step()
        opt_compiled.step()
        opt_eager.zero_grad()
        opt_compiled.zero_grad()
    # the steps did train: parameters moved, identically
    for (name, a), b in zip(compiled.named_parameters(), eager.parameters()):
        torch.testing.assert_close(
            a, b, atol=1e-12, rtol=1e-10, msg=lambda m, name=name: f"{name}: {m}"
        )


def _calls(gm):
    return Counter(str(n.target) for n in gm.graph.nodes if n.op == "call_function")


@pytest.mark.parametrize("cell", list(MODULES))
def test_compiled_graph_holds_the_fastrnn_ops(cell):
    """The traced graphs call fastrnn's ops, one per layer, forward and backward."""
    graphs = []

    def capture(fx_module, _inputs):
        graphs.append(fx_module)
        return make_boxed_func(fx_module.forward)

    model = TinyModel(MODULES[cell]).double()
    backend = aot_autograd(fw_compiler=capture, bw_compiler=capture)
    step = torch.compile(model, fullgraph=True, backend=backend)
    tokens = torch.randint(0, VOCAB, (4, 7))
    step(tokens, tokens).backward()
    assert len(graphs) == 2  # one forward graph, one backward graph: no break
    forward, backward = (_calls(g) for g in graphs)
    assert forward[f"fastrnn.{OP[cell]}_forward.default"] == 2
    assert backward[f"fastrnn.{OP[cell]}_backward.default"] == 2


@pytest.mark.parametrize("cell", list(MODULES))
def test_compiled_inference_matches_eager(cell):
    """Under no_grad the ops run with training=False (no workspace), traced too."""
    model = TinyModel(MODULES[cell]).double().eval()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    tokens = torch.randint(0, VOCAB, (4, 7))
    with torch.no_grad():
        torch.testing.assert_close(
            compiled(tokens, tokens), model(tokens, tokens), atol=1e-12, rtol=1e-12
        )


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_compiled_bidirectional_sgd_steps_match_torch(cell):
    """Training a compiled bidirectional 2-layer module with SGD: each step's
    outputs and gradients, and the parameters after the steps, are torch.nn's."""
    ref, ours = make_pair(cell, 3, 4, num_layers=2, bidirectional=True)
    compiled = torch.compile(ours, fullgraph=True)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.5)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.5)
    x, hx, upstream = make_inputs(ref, 5, 2, torch.float64)
    before = [p.detach().clone() for p in ref.parameters()]
    for _ in range(2):
        expected = forward_backward(ref, x, hx, upstream)
        got = {
            k.replace("_orig_mod.", ""): v
            for k, v in forward_backward(compiled, x, hx, upstream).items()
        }
        compare(got, expected, atol=1e-10, rtol=1e-10)
        opt_ref.step()
        opt_ours.step()
    for (name, a), b, b0 in zip(ours.named_parameters(), ref.parameters(), before):
        assert not torch.equal(b, b0), f"{name} did not train"
        torch.testing.assert_close(
            a, b, atol=1e-10, rtol=1e-10, msg=lambda m, name=name: f"{name}: {m}"
        )


@pytest.mark.parametrize("cell", ["lstm_proj", "gru", "rnn"])
def test_compiled_under_autocast_matches_eager(cell):
    """Under CPU autocast a compiled module runs in eager's dtypes (autocast.py:
    bfloat16, float32, and a projected LSTM's mix) with eager's results and
    gradients, the parameters' in float32."""
    eager = MODULES[cell](EMBED, HIDDEN, num_layers=2)
    compiled = copy.deepcopy(eager)
    step = torch.compile(compiled, fullgraph=True, backend="aot_eager")
    x = torch.randn(7, 4, EMBED)
    results = {}
    for name, module, run in (("eager", eager, eager), ("compiled", compiled, step)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs = torch.utils._pytree.tree_leaves(run(x))
        sum(t.double().sum() for t in outputs).backward()
        results[name] = outputs + [p.grad for p in module.parameters()]
    assert [t.dtype for t in results["compiled"]] == [t.dtype for t in results["eager"]]
    assert {p.grad.dtype for p in compiled.parameters()} == {torch.float32}
    # Where the module ran in bfloat16, compiled and eager may round a sum to
    # neighbouring bfloat16 values (a GEMM's float sums can depend on its
    # buffers' alignment): compared to two units of bfloat16's rounding, every
    # tensor relative to its largest value; in float32 to float32's.
    in_bfloat16 = any(t.dtype == torch.bfloat16 for t in results["eager"])
    for a, b in zip(results["compiled"], results["eager"]):
        if in_bfloat16:
            bound = 2 * 2**-8 * b.abs().max().item()
            torch.testing.assert_close(a, b, atol=bound, rtol=2 * 2**-8)
        else:
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
