"""Fixed cost of one fastrnn op call, with warm caches and after other work
has evicted them.

The interleaved benchmark (python -m benchmarks.bench) runs torch.nn and the
GEMM limit between fastrnn's calls, so each call starts with caches that hold
someone else's data; at batch 1 that start costs more than the arithmetic.
This script times the raw LSTM forward op at batch 1 (below autograd, no
module), and one ATen op for scale, each call either straight after the
previous one ("warm") or after writing an 8 MB buffer ("flushed").

    python benchmarks/op_overhead.py [--threads 1] [--calls 500]
"""

import argparse
import gc
import statistics
import time

import torch

import fastrnn


def per_call_us(fn, calls, flush=None):
    for _ in range(20):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if flush is not None:
            flush()
    return statistics.median(times) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    buffer = torch.zeros(2 * 1024 * 1024)  # 8 MB, more than this machine's L2 and L3 share

    def flush():
        return buffer.add_(1)

    lstm = fastrnn.LSTM(64, 64)
    weights = [p.detach() for p in lstm.parameters()]
    h0 = torch.zeros(1, 64)
    small = torch.randn(64)
    cases = {"aten add (x.add(1), 64 floats)": lambda: small.add(1)}
    for T in (1, 200):
        x = torch.randn(T, 1, 64)
        op_args = (x, h0, h0, *weights, None, None, False, False)
        cases[f"fastrnn.lstm_forward op, B 1, H 64, T {T}"] = lambda a=op_args: (
            torch.ops.fastrnn.lstm_forward.default(*a)
        )

    print(f"{args.threads} thread(s), median of {args.calls} calls, microseconds per call")
    print(f"{'call':45} {'warm':>8} {'flushed':>8}")
    gc.disable()
    with torch.no_grad(), torch._C._AutoDispatchBelowAutograd():
        for name, fn in cases.items():
            warm = per_call_us(fn, args.calls)
            cold = per_call_us(fn, args.calls, flush)
            print(f"{name:45} {warm:8.1f} {cold:8.1f}")


if __name__ == "__main__":
    main()
