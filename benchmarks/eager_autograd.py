"""What fastrnn/eager.py saves: one training call of a one-step LSTM layer at
batch 1 through torch.library's registered autograd (what compiled graphs
trace), through fastrnn's eager path, and without autograd, for scale.

    python benchmarks/eager_autograd.py [--threads 1] [--hidden 64]
"""

import argparse
import statistics
import time

import torch

from fastrnn import ops


def per_call_us(fn, calls=100, rounds=30):
    for _ in range(2 * calls):
        fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    H = I = args.hidden
    w_ih, w_hh = (torch.randn(4 * H, n, requires_grad=True) for n in (I, H))
    b_ih, b_hh = (torch.randn(4 * H, requires_grad=True) for _ in range(2))
    x, h, c = torch.randn(1, 1, I), torch.zeros(1, H), torch.zeros(1, H)
    op = torch.ops.fastrnn.lstm_forward.default

    def registered():
        return op(x, h, c, w_ih, w_hh, b_ih, b_hh, None, None, False, True)

    def eager():
        return ops.layer("lstm", x, h, c, w_ih, w_hh, b_ih, b_hh)

    def no_autograd():
        with torch.no_grad():
            return ops.layer("lstm", x, h, c, w_ih, w_hh, b_ih, b_hh)

    for name, fn in [
        ("registered autograd", registered),
        ("eager path", eager),
        ("no autograd", no_autograd),
    ]:
        print(f"{name}: {per_call_us(fn):.1f} us per call")


if __name__ == "__main__":
    main()
