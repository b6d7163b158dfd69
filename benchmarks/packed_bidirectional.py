"""Packed, bidirectional training step, fastrnn against torch.nn, interleaved
(median of per-pair ratios): batch 32, lengths drawn from 10-100, input and
hidden 128. Run: python benchmarks/packed_bidirectional.py"""

import statistics
import time

import torch
from torch.nn.utils.rnn import pack_padded_sequence

import fastrnn

torch.set_num_threads(2)
torch.manual_seed(0)
B, I, H = 32, 128, 128
lengths = torch.randint(10, 101, (B,))
x = torch.randn(int(lengths.max()), B, I)


def step(m):
    p = pack_padded_sequence(x, lengths, enforce_sorted=False)
    out, h = m(p)
    hs = h if isinstance(h, tuple) else (h,)
    (out.data.sum() + sum(s.sum() for s in hs)).backward()


for name, a, b in [("lstm", torch.nn.LSTM, fastrnn.LSTM), ("gru", torch.nn.GRU, fastrnn.GRU)]:
    ref = a(I, H, bidirectional=True)
    ours = b(I, H, bidirectional=True)
    ours.load_state_dict(ref.state_dict())
    for _ in range(3):
        step(ref)
        step(ours)
    tr, to = [], []
    for _ in range(30):
        t0 = time.perf_counter()
        step(ref)
        t1 = time.perf_counter()
        step(ours)
        t2 = time.perf_counter()
        tr.append(t1 - t0)
        to.append(t2 - t1)
    speed_up = statistics.median(a / b for a, b in zip(tr, to))
    print(
        f"{name} bidirectional packed B{B} I{I} H{H} lengths 10-100: "
        f"torch.nn {statistics.median(tr) * 1e3:.2f} ms, "
        f"fastrnn {statistics.median(to) * 1e3:.2f} ms, "
        f"speed-up (median of ratios) {speed_up:.2f}x"
    )
