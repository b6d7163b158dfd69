"""fastrnn.RNN / LSTM / GRU against torch.nn under pytest-benchmark.

One benchmark per (cell, size, seq_len, mode, impl): small, seed and medium at
seq_len 10, 20, 30, 50, 100, 200 and large at 50; forward (eval, no grad) and
train (forward + backward of output.sum() + h_n.sum() (+ c_n.sum())). The
modules, inputs and steps are benchmarks/workloads.py's, the same as
`python -m benchmarks.bench` times. See benchmarks/README.md and conftest.py.
"""

from benchmarks.cases import CELLS, MODES, SIZES, full_grid, grid
from benchmarks.timing import synchronized
from benchmarks.workloads import make_input, make_modules, make_step

SMOKE_CASES = grid(["small"], CELLS, MODES, seq_lens=[10])
IMPLS = ("fastrnn", "torch")


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    cases = SMOKE_CASES if metafunc.config.getoption("--smoke") else full_grid()
    params = [(case, impl) for case in cases for impl in IMPLS]
    ids = [
        f"{cell}-{size}-T{seq_len}-{mode}-{impl}" for (cell, size, seq_len, mode), impl in params
    ]
    metafunc.parametrize("case,impl", params, ids=ids)


def test_bench(benchmark, case, impl, smoke, bench_device, bench_dtype):
    cell, size, seq_len, mode = case
    ref, ours = make_modules(cell, size, device=bench_device, dtype=bench_dtype)
    x = make_input(size, seq_len, mode, device=bench_device, dtype=bench_dtype)
    # pytest-benchmark reads the host clock: a call must end when its device work does
    step = synchronized(make_step(ours if impl == "fastrnn" else ref, x, mode), bench_device)

    benchmark.group = f"{cell}-{size}-T{seq_len}-{mode}"
    s = SIZES[size]
    benchmark.extra_info.update(
        cell=cell,
        size=size,
        batch=s.batch,
        input=s.input,
        hidden=s.hidden,
        seq_len=seq_len,
        mode=mode,
        impl=impl,
        device=bench_device,
        dtype=str(bench_dtype).removeprefix("torch."),
    )
    if smoke:
        benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
    else:
        for _ in range(2):  # first calls allocate and initialise; not timed
            step()
        benchmark(step)
