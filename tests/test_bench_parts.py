"""The kernel benchmark's parts (benchmarks/) that compute rather than time:
the case grid, the command line, the agreement check, the limit's GEMM
count, interleaved rounds, the report, and the busy processes of --load.
They run with the tests, since `pytest benchmarks/ --benchmark-only` skips
every test that is not a benchmark. Run from the repository root
(`python -m pytest`), where `benchmarks` imports.
"""

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time

import pytest
import torch

from benchmarks import bench, report
from benchmarks.agreement import EXCESS_FLOOR, REL_TOL, REL_TOLS, check_agreement
from benchmarks.cases import SIZES, full_grid, grid
from benchmarks.limit import (
    ONEDNN,
    gemm_candidates,
    gemm_rate,
    limit_step,
    onednn_step,
    peak_gemm_rate,
)
from benchmarks.load import busy_processes
from benchmarks.machine import one_thread_share, others_share, require_device
from benchmarks.mkl_gemm import FUNCTIONS, mkl_gemm_step
from benchmarks.timing import quartiles, synchronized, time_interleaved
from benchmarks.workloads import make_input, make_modules


def test_full_grid_is_small_seed_medium_at_every_length_and_large_at_50():
    cases = full_grid()
    assert len(cases) == (3 * 6 + 1) * 3 * 2
    assert cases[0] == ("rnn", "small", 10, "forward")
    assert {seq_len for _, size, seq_len, _ in cases if size == "large"} == {50}


def test_default_run_is_the_cases_of_the_note():
    args = bench.parse_args([])
    cases = grid(args.sizes, args.cells, args.modes, args.seq_lens, args.full)
    assert sorted({(size, seq_len) for _, size, seq_len, _ in cases}) == [
        ("medium", 10),
        ("medium", 50),
        ("medium", 100),
        ("small", 200),
    ]
    assert len(cases) == 4 * 3 * 2
    assert (args.json, args.plot, args.device) == (
        "bench-out/bench.json",
        "bench-out/speedup.png",
        "cpu",
    )


def test_smoke_and_list_options():
    args = bench.parse_args(["--smoke", "--cells", "lstm, gru", "--seq-lens", "5,7"])
    assert (args.sizes, args.cells, args.seq_lens) == (["small"], ["lstm", "gru"], [5, 7])
    assert (args.json, args.target_time, args.warmup) == ("bench-out/bench-smoke.json", 0.03, 1)


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--cells", "rnn,foo,bar"],
            "argument --cells: unknown cell foo, bar; choose from rnn, lstm, gru",
        ),
        (["--sizes", ","], "argument --sizes: no size given"),
        (["--seq-lens", "10,x"], "argument --seq-lens: invalid int value: 'x'"),
        (["--modes", "backward"], "argument --modes: unknown mode backward"),
    ],
)
def test_a_bad_list_item_is_an_argparse_error_that_names_it(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_a_clear_error(capsys):
    with pytest.raises(RuntimeError, match="'cuda' is not available"):
        require_device("cuda")
    with pytest.raises(SystemExit):
        bench.parse_args(["--device", "cuda"])
    assert "argument --device: device 'cuda' is not available" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["forward", "train"])
def test_agreement_of_equal_modules_and_a_changed_weight(mode):
    ref, ours = make_modules("gru", "small")
    x = make_input("small", 3, mode)
    check = check_agreement(ref, ours, x, mode)
    assert check["ok"] and check["max_rel_diff"] <= REL_TOL
    with torch.no_grad():
        ours.weight_hh_l0.add_(0.1)
    check = check_agreement(ref, ours, x, mode)
    assert not check["ok"] and check["worst"] is not None


@pytest.mark.parametrize("cell, gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_limit_counts_the_recurrence_gemms(cell, gates):
    T, num_layers = 3, 2
    batch, input_size, hidden = SIZES["small"]
    step, calls, flops = limit_step(cell, "small", T, "forward", num_layers)
    step()
    assert calls == num_layers * (1 + T)
    rows, cols = T * batch, gates * hidden  # of each layer's gate pre-activations
    assert flops == 2 * rows * cols * (input_size + hidden) + 2 * rows * cols * 2 * hidden
    _, train_calls, _ = limit_step(cell, "small", T, "train", num_layers)
    assert train_calls == num_layers * (1 + T + T + 3)


def test_interleaved_rounds_take_one_sample_of_each():
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    timing = time_interleaved(steps, warmup=0, repeats=4, sample=0.0)
    assert timing["rounds"] == 4
    assert all(len(v) == 4 for v in timing["seconds"].values())
    assert calls[3:] == list("abcbcacababc")  # after the three cost estimates
    assert quartiles([1.0]) == (1.0, 1.0) and quartiles([1.0, 2.0, 3.0]) == (1.5, 2.5)
    assert synchronized(steps["a"], "cpu") is steps["a"]


def test_others_share_needs_proc_stat():
    assert others_share((0.0, None, 0.0), (1.0, None, 1.0), 2) is None
    assert others_share((0.0, 0.0, 0.0), (1.0, 2.0, 0.0), 2) == pytest.approx(1.0, abs=0.02)


def test_one_thread_share_of_the_calls_between_two_counts():
    assert one_thread_share((10, 5), (13, 14)) == pytest.approx(9 / 12)
    assert one_thread_share((10, 5), (10, 5)) is None  # no call counted
    assert one_thread_share(None, None) is None  # no CPU backend


def test_table_marks_errors_and_failures():
    ok = {
        "cell": "lstm",
        "size": "small",
        "seq_len": 10,
        "mode": "train",
        "torch_ms": 2.0,
        "fastrnn_ms": 1.0,
        "speedup": 2.0,
        "check": {"ok": True, "max_abs_diff": 1e-7, "max_rel_diff": 1e-7},
    }
    failed = dict(ok, check=dict(ok["check"], ok=False))
    error = {
        "cell": "gru",
        "size": "small",
        "seq_len": 10,
        "mode": "forward",
        "error": "RuntimeError: x",
    }
    rows = report.format_table([ok, failed, error]).splitlines()[2:]
    assert [row.split()[-1] for row in rows] == ["ok", "FAIL", "ERROR"]
    assert "2.00x" in rows[0] and rows[2].split()[4] == "-"
    assert "FAIL if > 0.001" in report.legend(1e-3)


@pytest.mark.parametrize("name,dtype", [("float64", torch.float64), ("bfloat16", torch.bfloat16)])
def test_dtype_option_reaches_modules_inputs_and_limit(name, dtype):
    args = bench.parse_args(["--dtype", name])
    assert args.dtype == dtype and args.rel_tol == REL_TOLS.get(dtype)
    ref, ours = make_modules("gru", "small", dtype=args.dtype)
    x = make_input("small", 3, "train", dtype=args.dtype)
    assert {p.dtype for p in [*ref.parameters(), *ours.parameters()]} == {dtype}
    assert x.dtype == dtype
    _, calls, _ = limit_step("gru", "small", 3, "train", dtype=args.dtype)
    assert calls > 0
    assert check_agreement(ref, ours, x, "train", args.rel_tol)["ok"]


def test_every_dtype_has_a_check():
    assert set(bench.DTYPES.values()) == {*REL_TOLS, *EXCESS_FLOOR}
    assert bench.parse_args(["--dtype", "float16"]).rel_tol is None  # the project's rule
    assert bench.parse_args(["--dtype", "float16", "--rel-tol", "0.1"]).rel_tol == 0.1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("mode", ["forward", "train"])
def test_16_bit_check_is_the_projects_rule_against_float64(dtype, mode):
    ref, ours = make_modules("lstm", "small", dtype=dtype)
    x = make_input("small", 4, mode, dtype=dtype)
    check = check_agreement(ref, ours, x, mode)
    assert check["rule"] == "twice torch.nn's error" and check["rel_tol"] is None
    assert check["ok"] and 0 <= check["max_excess"] <= 1
    with torch.no_grad():  # an error far over twice torch.nn's own
        ours.weight_ih_l0.mul_(1.05)
    check = check_agreement(ref, ours, x, mode)
    assert not check["ok"] and check["max_excess"] > 1
    assert "x the allowed in" in report.check_failure(check)


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["float32", "float16", "bfloat16"]
)
def test_gemm_rate_times_torch_mm_in_its_dtype(dtype, monkeypatch):
    seen = []
    mm = torch.mm

    def recording_mm(a, b, **kwargs):
        seen.append((a.dtype, b.dtype, kwargs["out"].dtype, a.shape))
        return mm(a, b, **kwargs)

    monkeypatch.setattr(torch, "mm", recording_mm)
    median, best = gemm_rate(32, 0.0, dtype=dtype)
    assert 0 < median <= best
    assert seen and set(seen) == {(dtype, dtype, dtype, (32, 32))}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_mkl_16_bit_gemm_through_ctypes_is_the_product(dtype):
    a, b = torch.randn(48, 40).to(dtype), torch.randn(40, 24).to(dtype)
    c = torch.full((48, 24), float("nan"))
    step = mkl_gemm_step(a, b, c)
    if step is None:
        pytest.skip(f"torch here does not export MKL's {FUNCTIONS[dtype]}")
    step()
    expected = a.double() @ b.double()  # float32 sums of exact products
    assert torch.allclose(c.double(), expected, rtol=1e-5, atol=1e-5)
    assert mkl_gemm_step(a.float(), b.float(), c) is None  # only the 16-bit dtypes


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_onednn_matmul_is_the_product(dtype):
    a, b = torch.randn(48, 40).to(dtype), torch.randn(24, 40).to(dtype)
    step = onednn_step(a, b)
    if step is None:
        pytest.skip("torch here has no oneDNN")
    expected = a.double() @ b.double().t()
    got = step().to_dense().double()
    tol = 1e-5 if dtype == torch.float32 else 1e-2  # the result is in the dtype
    assert torch.allclose(got, expected, rtol=tol, atol=tol * expected.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_peak_rate_is_the_best_of_every_large_gemm_in_the_dtype(dtype):
    candidates = gemm_candidates(dtype, sizes=(32, 64))
    calls = {call for call, _ in candidates}
    assert ("torch.mm", 32) in candidates and ("torch.mm", 64) in candidates
    assert calls <= {"torch.mm", ONEDNN, FUNCTIONS.get(dtype)}
    if dtype == torch.float32:
        assert calls <= {"torch.mm", ONEDNN}
    if torch.backends.mkldnn.is_available():
        # oneDNN takes float32 everywhere, bfloat16 only with AVX-512 (BW, VL,
        # DQ) or AVX-NE-CONVERT: not on an AVX2 Zen 3
        takes = dtype == torch.float32 or torch.ops.mkldnn._is_mkldnn_bf16_supported()
        assert (ONEDNN in calls) == takes
    peak = peak_gemm_rate(dtype, 0.0, sizes=(32, 64))
    assert peak["dtype"] == str(dtype).removeprefix("torch.")
    assert {(c["call"], c["n"]) for c in peak["candidates"]} == set(candidates)
    best = max(c["gflops_best"] for c in peak["candidates"])
    assert peak["gflops"] == best and peak["gflops_median"] <= best
    line = report.format_machine(_machine(peak)).splitlines()[3]
    assert line.startswith(f"{peak['dtype']} GEMM peak (the limit's rate): {peak['call']} ")
    assert f"{peak['gflops']:.1f} GFLOP/s" in line


def _machine(peak):
    return {
        "cpu_model": "a CPU",
        "cpu_flags": ["avx2"],
        "cpus_available": 2,
        "torch_threads": 2,
        "torch": "2",
        "mkl": True,
        "fastrnn": "0",
        "python": "3",
        "sgemm_1024_gflops_median": 1.0,
        "sgemm_1024_gflops_best": 2.0,
        "gemm_peak": peak,
        "mm_call_overhead_us": 1.0,
        "loadavg_start": None,
    }


def test_case_record_has_the_limit_at_the_peak_rate_of_its_dtype():
    peak = {"dtype": "bfloat16", "call": "cblas_gemm_bf16bf16f32", "n": 2048, "gflops": 50.0}
    r = bench.run_case(
        "rnn", "small", 3, "forward", repeats=2, warmup=0, dtype=torch.bfloat16, peak=peak
    )
    assert r["dtype"] == r["peak_dtype"] == "bfloat16"
    assert r["peak_call"] == "cblas_gemm_bf16bf16f32 2048^3" and r["peak_gflops"] == 50.0
    assert r["limit_at_peak_ms"] == pytest.approx(r["limit_flops"] / 50e9 * 1e3)
    over = [f / r["limit_at_peak_ms"] for f in r["samples_ms"]["fastrnn"]]
    assert r["fastrnn_over_peak"] == pytest.approx(statistics.median(over))
    row = report.format_table([r]).splitlines()
    assert "peak ms" in row[0] and "fast/peak" in row[0]
    assert f"{r['fastrnn_over_peak']:.2f}x" in row[2]
    text = report.legend(None, dict(peak, gflops=1234.4))
    assert "bfloat16 GEMM rate, 1234 GFLOP/s (cblas_gemm_bf16bf16f32 2048^3" in text
    assert "FAIL if > 1 (the project's rule)" in text


def test_huge_size_is_left_out_of_the_cpu_full_grid():
    assert "huge" in SIZES
    assert all(size != "huge" for _, size, _, _ in full_grid())
    assert bench.parse_args(["--sizes", "huge"]).sizes == ["huge"]


def test_limit_of_a_bidirectional_2_layer_case_is_the_hand_count():
    # lstm at small: B 1, I 64, H 64, G*H = 4 * 64 = 256 gate columns; T 3, so N = T*B = 3 rows.
    # Each direction of a layer, forward: the input projection [3, I] x [I, 256] and 3 steps
    # [1, 64] x [64, 256]; the first layer's I is 64, the second's 2 * 64 = 128 (both
    # directions' outputs side by side).
    layer_0 = 2 * 3 * 64 * 256 + 3 * 2 * 1 * 64 * 256
    layer_1 = 2 * 3 * 128 * 256 + 3 * 2 * 1 * 64 * 256
    forward = 2 * (layer_0 + layer_1)  # two directions each
    assert forward == 983_040
    step, calls, flops = limit_step("lstm", "small", 3, "forward", 2, bidirectional=True)
    step()
    assert (calls, flops) == (2 * 2 * (1 + 3), forward)
    # train adds per direction: 3 steps [1, 256] x [256, 64] (the state's gradient),
    # dW_ih [256, 3] x [3, I], dW_hh [256, 3] x [3, 64] and dX [3, 256] x [256, I]
    backward_0 = 3 * 2 * 1 * 256 * 64 + 2 * 256 * 3 * 64 + 2 * 256 * 3 * 64 + 2 * 3 * 256 * 64
    backward_1 = 3 * 2 * 1 * 256 * 64 + 2 * 256 * 3 * 128 + 2 * 256 * 3 * 64 + 2 * 3 * 256 * 128
    step, calls, flops = limit_step("lstm", "small", 3, "train", 2, bidirectional=True)
    step()
    assert (calls, flops) == (2 * 2 * (1 + 3 + 3 + 3), forward + 2 * (backward_0 + backward_1))
    # one direction of the same: the second layer's input is H wide
    _, _, one_way = limit_step("lstm", "small", 3, "forward", 2)
    assert one_way == layer_0 + 2 * 3 * 64 * 256 + 3 * 2 * 1 * 64 * 256


def test_bidirectional_and_load_options():
    args = bench.parse_args(["--num-layers", "2", "--bidirectional", "--load", "3"])
    assert (args.num_layers, args.bidirectional, args.load) == (2, True, 3)
    args = bench.parse_args([])
    assert (args.num_layers, args.bidirectional, args.load) == (1, False, 0)
    ref, ours = make_modules("gru", "small", 2, bidirectional=True)
    assert ref.bidirectional and ours.bidirectional and ours.num_layers == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--load", "-1"], "--load must be at least 0"),
        (["--load", "x"], "argument --load: invalid int value: 'x'"),
        (["--bidirectional=yes"], "argument --bidirectional: ignored explicit argument"),
    ],
)
def test_bad_load_and_bidirectional_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def _running(pid):
    """Whether process `pid` exists and is not a zombie (an orphan's zombie
    waits for a reaper that a container may not have)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_load_processes_run_inside_the_block_and_are_gone_after_it():
    with busy_processes(2) as procs:
        pids = [p.pid for p in procs]
        assert len(set(pids)) == 2 and all(p.poll() is None for p in procs)
        assert all(_running(pid) for pid in pids)
    assert all(p.returncode is not None for p in procs)
    assert not any(_running(pid) for pid in pids)
    with busy_processes(0) as procs:
        assert procs == []
    with pytest.raises(ValueError, match="at least 0"):
        with busy_processes(-1):
            pass


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_load_processes_are_gone_after_an_exception_inside(error):
    with pytest.raises(error):
        with busy_processes(2) as procs:
            pids = [p.pid for p in procs]
            raise error("stop")
    assert all(p.returncode is not None for p in procs)
    assert not any(_running(pid) for pid in pids)


def test_load_processes_stop_by_themselves_when_the_benchmark_is_killed():
    # a parent that starts two busy processes, says their pids and waits to be killed
    code = (
        "import time\n"
        "from benchmarks.load import busy_processes\n"
        "with busy_processes(2) as procs:\n"
        "    print(*[p.pid for p in procs], flush=True)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_running(pid) for pid in pids)
    finally:
        parent.kill()  # SIGKILL: no finally runs in the parent
        parent.wait()
    deadline = time.monotonic() + 20  # they look at their parent every million iterations
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [pid for pid in pids if _running(pid)]
    for pid in survivors:  # do not leave them spinning if the test fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors


def test_smoke_run_of_bidirectional_layers_under_load_writes_the_fields(
    tmp_path, monkeypatch, capsys
):
    started = []

    @contextlib.contextmanager
    def recording_busy_processes(n):
        with busy_processes(n) as procs:
            started.extend(procs)
            yield procs

    monkeypatch.setattr(bench, "busy_processes", recording_busy_processes)
    path = tmp_path / "bench.json"
    argv = ["--smoke", "--bidirectional", "--num-layers", "2", "--load", "1", "--cells", "gru"]
    argv += ["--repeats", "2", "--no-plot", "--no-progress", "--no-samples", "--json", str(path)]
    assert bench.main(argv) == 0
    assert len(started) == 1 and started[0].returncode is not None
    assert not _running(started[0].pid)
    out = json.loads(path.read_text())
    assert (out["options"]["load"], out["options"]["bidirectional"]) == (1, True)
    assert [(r["num_layers"], r["bidirectional"], r["mode"]) for r in out["cases"]] == [
        (2, True, "forward"),
        (2, True, "train"),
    ]
    assert all(r["check"]["ok"] and r["limit_flops"] > 0 for r in out["cases"])
    # the share of calls on one thread is recorded (None: none counted, at
    # the smoke size the steps are too small to split)
    assert all(r["one_thread"] is None or 0 <= r["one_thread"] <= 1 for r in out["cases"])
    text = capsys.readouterr().out
    assert "2 cases, 2 layers, bidirectional, float32" in text
    assert "load: 1 busy process(es)" in text
    table = text[text.index("cell  size") :].splitlines()
    assert table[0].split()[:3] == ["cell", "size", "layers"]
    assert table[2].split()[:4] == ["gru", "small", "2", "bi"]


def test_layers_column_only_when_a_case_is_not_one_unidirectional_layer():
    one = {"cell": "rnn", "size": "small", "seq_len": 3, "mode": "train", "num_layers": 1}
    assert "layers" not in report.format_table([dict(one, bidirectional=False)])
    rows = report.format_table([one, dict(one, bidirectional=True)]).splitlines()
    assert rows[0].split()[2] == "layers"
    assert rows[2].split()[2:4] == ["1", "uni"] and rows[3].split()[2:4] == ["1", "bi"]
    assert report.layers_label(1, False) == "1 layer"
