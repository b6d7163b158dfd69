"""fastrnn.RNN / LSTM / GRU against torch.nn under pytest-benchmark.

One benchmark per (cell, size, seq_len, mode, impl): small, seed and medium at
seq_len 10, 20, 30, 50, 100, 200 and large at 50; forward (eval, no grad) and
train (forward + backward of output.sum() + h_n.sum() (+ c_n.sum())). The
modules, inputs and steps are fastrnn.bench's, the same as
`python -m fastrnn.bench` times. See benchmarks/README.md and conftest.py.
"""

import pytest

from fastrnn import bench

SMOKE_CASES = [(cell, "small", 10, mode) for cell in bench.CELLS for mode in bench.MODES]
IMPLS = ("fastrnn", "torch")


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    cases = SMOKE_CASES if metafunc.config.getoption("--smoke") else bench.full_grid()
    params = [(case, impl) for case in cases for impl in IMPLS]
    ids = [f"{cell}-{size}-T{seq_len}-{mode}-{impl}"
           for (cell, size, seq_len, mode), impl in params]
    metafunc.parametrize("case,impl", params, ids=ids)


def test_bench(benchmark, case, impl, smoke):
    cell, size, seq_len, mode = case
    ref, ours = bench.make_modules(cell, size)
    x = bench.make_input(size, seq_len, mode)
    step = bench.make_step(ours if impl == "fastrnn" else ref, x, mode)

    benchmark.group = f"{cell}-{size}-T{seq_len}-{mode}"
    s = bench.SIZES[size]
    benchmark.extra_info.update(cell=cell, size=size, batch=s.batch, input=s.input,
                                hidden=s.hidden, seq_len=seq_len, mode=mode, impl=impl)
    if smoke:
        benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
    else:
        for _ in range(2):  # first calls allocate and initialise; not timed
            step()
        benchmark(step)
