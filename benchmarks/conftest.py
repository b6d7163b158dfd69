"""pytest-benchmark setup for fastrnn's benchmarks (benchmarks/test_bench.py).

    python -m pytest benchmarks/ --benchmark-only
    FASTRNN_BENCH_SMOKE=1 python -m pytest benchmarks/ --benchmark-only -q   # CI, seconds
    python -m pytest benchmarks/ --benchmark-only --smoke                     # the same

Options (or environment variables):
  --smoke                (FASTRNN_BENCH_SMOKE=1)   size small, seq_len 10, 3 rounds each
  --bench-threads N      (FASTRNN_BENCH_THREADS=N) torch.set_num_threads, default 2
  --bench-device D       (FASTRNN_BENCH_DEVICE=D)  cpu (default) or cuda: where the
                         modules and inputs live; on cuda each timed call ends
                         with torch.cuda.synchronize()
  --bench-dtype T        (FASTRNN_BENCH_DTYPE=T)   float32 (default), float64, float16
                         or bfloat16: the dtype of the modules and inputs

Tables are grouped by benchmark.group = "<cell>-<size>-T<seq_len>-<mode>", so
fastrnn and torch.nn of one case sit side by side; this is pytest-benchmark's
default --benchmark-group-by=group, and is set here when none is given.
"""

import os

import pytest
import torch

from benchmarks.bench import DTYPES
from benchmarks.machine import require_device


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def pytest_addoption(parser):
    group = parser.getgroup("fastrnn benchmarks")
    group.addoption(
        "--smoke",
        action="store_true",
        default=_env_flag("FASTRNN_BENCH_SMOKE"),
        help="fastrnn benchmarks: only size small at seq_len 10, 3 rounds each "
        "(also FASTRNN_BENCH_SMOKE=1)",
    )
    group.addoption(
        "--bench-threads",
        type=int,
        default=int(os.environ.get("FASTRNN_BENCH_THREADS", "2")),
        help="fastrnn benchmarks: torch.set_num_threads (default 2, or FASTRNN_BENCH_THREADS)",
    )
    group.addoption(
        "--bench-device",
        choices=("cpu", "cuda"),
        default=os.environ.get("FASTRNN_BENCH_DEVICE", "cpu"),
        help="fastrnn benchmarks: the device of the modules and inputs (default "
        "cpu, or FASTRNN_BENCH_DEVICE)",
    )

    group.addoption(
        "--bench-dtype",
        choices=list(DTYPES),
        default=os.environ.get("FASTRNN_BENCH_DTYPE", "float32"),
        help="fastrnn benchmarks: the dtype of the modules and inputs (default float32, "
        "or FASTRNN_BENCH_DTYPE)",
    )


def pytest_configure(config):
    if getattr(config.option, "benchmark_group_by", None) in (None, ""):
        config.option.benchmark_group_by = "group"
    torch.set_num_threads(config.getoption("--bench-threads"))
    try:
        require_device(config.getoption("--bench-device"))
    except RuntimeError as e:
        raise pytest.UsageError(f"--bench-device: {e}") from None


def pytest_report_header(config):
    mode = "smoke" if config.getoption("--smoke") else "full"
    return (
        f"fastrnn benchmarks: {mode} grid, device {config.getoption('--bench-device')}, "
        f"{config.getoption('--bench-dtype')}, "
        f"torch threads {torch.get_num_threads()}"
    )


@pytest.fixture
def smoke(request):
    return request.config.getoption("--smoke")


@pytest.fixture
def bench_device(request):
    return request.config.getoption("--bench-device")


@pytest.fixture
def bench_dtype(request):
    return DTYPES[request.config.getoption("--bench-dtype")]
