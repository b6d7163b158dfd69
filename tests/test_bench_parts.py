"""The kernel benchmark's parts (benchmarks/) that compute rather than time:
the case grid, the command line, the agreement check, the limit's GEMM
count, interleaved rounds and the report. They run with the tests, since
`pytest benchmarks/ --benchmark-only` skips every test that is not a benchmark.
Run from the repository root (`python -m pytest`), where `benchmarks` imports.
"""

import statistics

import pytest
import torch

from benchmarks import bench, report
from benchmarks.agreement import EXCESS_FLOOR, REL_TOL, REL_TOLS, check_agreement
from benchmarks.cases import SIZES, full_grid, grid
from benchmarks.limit import gemm_candidates, gemm_rate, limit_step, peak_gemm_rate
from benchmarks.machine import others_share, require_device
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
def test_peak_rate_is_the_best_of_every_large_gemm_in_the_dtype(dtype):
    candidates = gemm_candidates(dtype, sizes=(32, 64))
    calls = {call for call, _ in candidates}
    assert ("torch.mm", 32) in candidates and ("torch.mm", 64) in candidates
    assert calls <= {"torch.mm", FUNCTIONS.get(dtype)}
    if dtype == torch.float32:
        assert calls == {"torch.mm"}
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
