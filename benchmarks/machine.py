"""The machine a benchmark ran on: CPU (or GPU) model, threads, library
versions and GEMM rates, and how busy other processes kept it (the noise
indicator of a shared machine)."""

import os
import platform
import time

import torch

import fastrnn

from .limit import gemm_rate, mm_call_overhead, peak_gemm_rate

# A case is flagged when other processes used more than this share of the
# machine's CPU time while it was timed.
BUSY_WARN = 0.10


def require_device(device):
    """Raise a RuntimeError that says why when `device` cannot be used."""
    if torch.device(device).type != "cuda" or torch.cuda.is_available():
        return
    if torch.version.cuda is None:
        why = f"torch {torch.__version__} is built without CUDA"
    else:
        why = f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"
    raise RuntimeError(f"device {device!r} is not available: {why}")


def _cpuinfo():
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def _clock_ticks():
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_snapshot():
    """(wall s, machine busy CPU s from /proc/stat, this process's CPU s); the
    busy time is None where /proc/stat is missing."""
    busy = None
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        if fields and fields[0] == "cpu":
            v = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
            busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / _clock_ticks()
    except (OSError, ValueError):
        pass
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system


def others_share(before, after, cpus):
    """Share of the machine's CPU time (0..1) that other processes (and the
    hypervisor, as steal) used between two cpu_snapshot()s: the noise
    indicator of a shared machine. None where it cannot be told."""
    wall = after[0] - before[0]
    if before[1] is None or after[1] is None or wall <= 0:
        return None
    # less two clock ticks: both counters advance in ticks (10 ms, usually)
    tick = 1.0 / _clock_ticks()
    others = (after[1] - before[1]) - (after[2] - before[2]) - 2 * tick
    return min(1.0, max(0.0, others / (wall * cpus)))


def call_threads():
    """How many of fastrnn's CPU op calls so far split their loops across
    threads and how many ran them on one because other processes shared the
    cores (csrc/cpu/threads.h): (split, one thread), or None where the build
    has no CPU backend (the emulated device's)."""
    counts = fastrnn._C.cpu_thread_counts()
    return None if counts is None else (counts["split_calls"], counts["serial_calls"])


def one_thread_share(before, after):
    """Share (0..1) of the op calls between two call_threads() that ran on one
    thread; None where nothing was counted (FASTRNN_CPU_THREADS=all or one, a
    single thread, CUDA)."""
    if before is None or after is None:
        return None
    split, serial = after[0] - before[0], after[1] - before[1]
    return serial / (split + serial) if split + serial else None


def available_cpus():
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def loadavg():
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_info(quick=False, device="cpu", dtype=torch.float32):
    """The machine as a JSON-able dict; the GEMM rates and the empty torch.mm
    call are measured on `device` (briefly when `quick`): the float32 1024^3
    torch.mm, and the peak in `dtype` (limit.peak_gemm_rate, under
    "gemm_peak")."""
    model, flags = _cpuinfo()
    isa = [
        f
        for f in ("avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16", "avx2", "fma")
        if f in flags
    ]
    rate_median, rate_best = gemm_rate(1024, 0.25 if quick else 0.6, device)
    peak = peak_gemm_rate(dtype, 0.1 if quick else 0.4, device)
    overhead = mm_call_overhead(0.1 if quick else 0.3, device)
    info = {
        "device": device,
        "cpu_model": model,
        "cpu_flags": isa,
        "logical_cpus": os.cpu_count(),
        "cpus_available": available_cpus(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "sgemm_1024_gflops_median": rate_median,
        "sgemm_1024_gflops_best": rate_best,
        "gemm_peak": peak,
        "mm_call_overhead_us": overhead * 1e6,
        "loadavg_start": loadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "mkl": torch.backends.mkl.is_available(),
        "fastrnn": getattr(fastrnn, "__version__", None),
        "FASTRNN_CPU_ISA": os.environ.get("FASTRNN_CPU_ISA"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info
