"""The kernel benchmark's parts (benchmarks/) that compute rather than time:
the case grid, the command line, the agreement check, the limit's GEMM
count, interleaved rounds and the report. They run with the tests, since
`pytest benchmarks/ --benchmark-only` skips every test that is not a benchmark.
Run from the repository root (`python -m pytest`), where `benchmarks` imports.
"""

import pytest
import torch

from benchmarks import bench, report
from benchmarks.agreement import REL_TOL, check_agreement
from benchmarks.cases import SIZES, full_grid, grid
from benchmarks.limit import limit_step
from benchmarks.machine import others_share, require_device
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
    assert args.dtype == dtype and args.rel_tol == bench.REL_TOLS[dtype]
    ref, ours = make_modules("gru", "small", dtype=args.dtype)
    x = make_input("small", 3, "train", dtype=args.dtype)
    assert {p.dtype for p in [*ref.parameters(), *ours.parameters()]} == {dtype}
    assert x.dtype == dtype
    _, calls, _ = limit_step("gru", "small", 3, "train", dtype=args.dtype)
    assert calls > 0
    assert check_agreement(ref, ours, x, "train", args.rel_tol)["ok"]


def test_huge_size_is_left_out_of_the_cpu_full_grid():
    assert "huge" in SIZES
    assert all(size != "huge" for _, size, _, _ in full_grid())
    assert bench.parse_args(["--sizes", "huge"]).sizes == ["huge"]
