"""The check before a case is timed: fastrnn and torch.nn, with the same
weights and input, must compute the same outputs, states and gradients."""

import math

import torch

from .workloads import run_once

# A case fails its check when, for some compared tensor,
# max |fastrnn - torch.nn| > REL_TOL * max |torch.nn| (float32; per dtype in
# REL_TOLS: for float16 and bfloat16 some 6-20 of their rounding units, where
# torch.nn itself computes in that dtype and fastrnn in float32).
REL_TOL = 1e-4
REL_TOLS = {
    torch.float64: 1e-10,
    torch.float32: REL_TOL,
    torch.float16: 2e-2,
    torch.bfloat16: 5e-2,
}


def check_agreement(ref, ours, x, mode, rel_tol=None):
    """Run both modules once and compare every tensor run_once returns.

    Returns a dict: max_abs_diff (largest |fastrnn - torch.nn| over all
    tensors), max_rel_diff (largest of max|diff| / max|torch.nn| per tensor),
    worst (the tensor with that relative difference), ok (max_rel_diff <=
    rel_tol, default REL_TOL) and rel_tol.
    """
    rel_tol = REL_TOL if rel_tol is None else rel_tol
    a, b = run_once(ours, x, mode), run_once(ref, x, mode)
    max_abs, max_rel, worst = 0.0, 0.0, None
    for key in b:
        if key not in a or a[key].shape != b[key].shape:
            return {
                "max_abs_diff": math.inf,
                "max_rel_diff": math.inf,
                "worst": key,
                "ok": False,
                "rel_tol": rel_tol,
            }
        diff = (a[key].double() - b[key].double()).abs().max().item()
        scale = b[key].abs().max().item()
        rel = diff / scale if scale > 0 else diff
        if not math.isfinite(diff):
            rel = diff = math.inf
        max_abs = max(max_abs, diff)
        if rel >= max_rel:
            max_rel, worst = rel, key
    return {
        "max_abs_diff": max_abs,
        "max_rel_diff": max_rel,
        "worst": worst,
        "ok": max_rel <= rel_tol,
        "rel_tol": rel_tol,
    }
