"""The CPU backend on a shared machine (csrc/cpu/threads.h): an op call
splits its loops across torch's threads only while the process gets the
cores' time, and runs them on one thread otherwise. The results must not
depend on which: FASTRNN_CPU_THREADS=one (never split) and =all (always)
give the same bits, for every cell, layout, dtype and gradient; with busy
processes on the same two CPUs the calls do go to one thread; a bad value
of the variable raises at import.

Each case runs in its own Python process, since the variable is read once."""

import json
import os
import subprocess
import sys

import pytest
import torch

import fastrnn._C

pytestmark = pytest.mark.skipif(
    fastrnn._C.cpu_thread_counts() is None,
    reason="the emulated CUDA device's build, which has no CPU backend",
)

# Outputs, final states and every gradient of each case, saved to argv[1].
# Shapes whose steps split across two threads (tests/test_threads.py: a
# step's GEMM of at least 2^19 multiply-adds).
CASES = r"""
import sys, torch, fastrnn
torch.set_num_threads(2)
torch.manual_seed(0)
T, B, I, H = 6, 32, 48, 128
results = {}
CELLS = [(fastrnn.RNN, "rnn_tanh", {}), (fastrnn.RNN, "rnn_relu", {"nonlinearity": "relu"}),
         (fastrnn.LSTM, "lstm", {}), (fastrnn.GRU, "gru", {})]
LAYOUTS = [("one-layer", {}), ("2-layers-bi", dict(num_layers=2, bidirectional=True))]
for cls, name, kw in CELLS:
    for layout, extra in LAYOUTS:
        for dtype in (torch.float64, torch.float32, torch.bfloat16):
            for packed in (False, True):
                key = f"{name}-{layout}-{dtype}-{'packed' if packed else 'padded'}"
                m = cls(I, H, **kw, **extra).to(dtype)
                x = torch.randn(T, B, I, dtype=dtype, requires_grad=True)
                if packed:
                    lengths = torch.randint(1, T + 1, (B,))
                    lengths[0] = T
                    inp = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
                    out, state = m(inp)
                    out = torch.nn.utils.rnn.pad_packed_sequence(out)[0]
                else:
                    out, state = m(x)
                states = state if isinstance(state, tuple) else (state,)
                loss = (out.float() * torch.randn(out.shape)).sum()
                for s in states:
                    loss = loss + (s.float() * torch.randn(s.shape)).sum()
                grads = torch.autograd.grad(loss, [x, *m.parameters()])
                results[key] = [out.detach(), *(s.detach() for s in states), *grads]
torch.save(results, sys.argv[1])
"""


def _python(code, *args, env=None, check=True):
    environment = dict(os.environ)
    # the subprocess finds fastrnn where this one did (a checkout, build/cuda-lib)
    environment["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=environment,
        capture_output=True,
        text=True,
        check=check,
        timeout=600,
    )


def _run_cases(tmp_path, mode):
    path = tmp_path / f"{mode}.pt"
    _python(CASES, str(path), env={"FASTRNN_CPU_THREADS": mode})
    return torch.load(path)


def test_one_thread_gives_the_same_bits_as_two(tmp_path):
    one = _run_cases(tmp_path, "one")
    both = _run_cases(tmp_path, "all")
    assert one.keys() == both.keys() and len(one) == 4 * 2 * 3 * 2
    for key in one:
        assert len(one[key]) == len(both[key])
        for a, b in zip(one[key], both[key]):
            assert a.dtype == b.dtype and torch.equal(a, b), key


def test_bad_value_raises_at_import():
    done = _python("import fastrnn", env={"FASTRNN_CPU_THREADS": "some"}, check=False)
    assert done.returncode != 0
    assert "FASTRNN_CPU_THREADS=some: expected adaptive, all or one" in done.stderr
    assert "RuntimeError" in done.stderr


# Training steps of the seed LSTM on 2 threads pinned to CPUs {0, 1}, for
# `seconds`; prints the CPU backend's counts (split calls, serial calls,
# back-offs).
STEPS = r"""
import json, os, sys, time, torch, fastrnn, fastrnn._C
os.sched_setaffinity(0, {0, 1})
torch.set_num_threads(2)
m = fastrnn.LSTM(128, 128)
x = torch.randn(30, 32, 128)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    out, _ = m(x)
    out.sum().backward()
print(json.dumps(fastrnn._C.cpu_thread_counts()))
"""

BUSY = "import os; os.sched_setaffinity(0, {0, 1})\nwhile True: pass"


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or not {0, 1} <= os.sched_getaffinity(0),
    reason="needs CPUs 0 and 1",
)
def test_shared_cores_run_calls_on_one_thread():
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    try:
        # two busy processes and two threads of ours on two CPUs: half a
        # core each, below the 80% that keeps calls splitting
        done = _python(STEPS, "3", env={"FASTRNN_CPU_THREADS": "adaptive"})
    finally:
        for p in busy:
            p.kill()
            p.wait()
    counts = json.loads(done.stdout)
    assert counts["backoffs"] >= 1, counts
    assert counts["serial_calls"] > counts["split_calls"], counts
