"""The check before a case is timed: fastrnn and torch.nn, with the same
weights and input, must compute the same outputs, states and gradients: to a relative
tolerance in float32 and float64, by the project's rule against float64 in
float16 and bfloat16."""

import copy
import math

import torch

from .workloads import run_once

# float32 and float64: a case fails its check when, for some compared tensor,
# max |fastrnn - torch.nn| > REL_TOLS[dtype] * max |torch.nn|.
REL_TOL = 1e-4
REL_TOLS = {torch.float64: 1e-10, torch.float32: REL_TOL}
# float16 and bfloat16: the project's accuracy rule (tests/helpers.py,
# precision_excess), against torch.nn run in float64 on the same rounded
# weights and input: for every tensor, fastrnn's error is at most twice
# torch.nn's own plus EXCESS_FLOOR[dtype] * max |truth| (one unit of the
# dtype's epsilon: fastrnn rounds once, from float32, at the end).
EXCESS_FLOOR = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}


def _max_abs(t):
    return t.abs().max().item() if t.numel() else 0.0


def _float64_truth(ref, x, mode):
    """What run_once(ref, x, mode) computes, in float64 from the same
    (rounded) weights and input."""
    x64 = x.detach().double().requires_grad_(x.requires_grad)
    return run_once(copy.deepcopy(ref).double(), x64, mode)


def check_agreement(ref, ours, x, mode, rel_tol=None):
    """Run both modules once and compare every tensor run_once returns.

    Returns a dict: max_abs_diff (largest |fastrnn - torch.nn| over all
    tensors), max_rel_diff (largest of max|diff| / max|torch.nn| per tensor),
    worst (the tensor that decided), ok and rule. The rule: "rel_tol" (ok
    when max_rel_diff <= rel_tol, default REL_TOLS of x's dtype), or for
    float16 and bfloat16 without a rel_tol "twice torch.nn's error" (ok when
    max_excess <= 1, max_excess being the largest over the tensors of
    fastrnn's error against float64 / (2 * torch.nn's + the floor)).
    """
    by_rule = rel_tol is None and x.dtype in EXCESS_FLOOR
    if not by_rule and rel_tol is None:
        rel_tol = REL_TOLS.get(x.dtype, REL_TOL)
    a, b = run_once(ours, x, mode), run_once(ref, x, mode)
    truth = _float64_truth(ref, x, mode) if by_rule else None
    result = {"rule": "twice torch.nn's error" if by_rule else "rel_tol", "rel_tol": rel_tol}
    max_abs, max_rel, max_excess, worst = 0.0, 0.0, 0.0, None
    for key in b:
        if key not in a or a[key].shape != b[key].shape:
            inf = {"max_abs_diff": math.inf, "max_rel_diff": math.inf, "worst": key, "ok": False}
            return {**result, **inf, **({"max_excess": math.inf} if by_rule else {})}
        diff = _max_abs(a[key].double() - b[key].double())
        scale = _max_abs(b[key])
        rel = diff / scale if scale > 0 else diff
        if not math.isfinite(diff):
            rel = diff = math.inf
        max_abs = max(max_abs, diff)
        if by_rule:
            t = truth[key]
            e_ours, e_torch = _max_abs(a[key].double() - t), _max_abs(b[key].double() - t)
            bound = 2 * e_torch + EXCESS_FLOOR[x.dtype] * _max_abs(t)
            excess = e_ours / bound if bound > 0 else (0.0 if e_ours == 0 else math.inf)
            if not math.isfinite(e_ours):
                excess = math.inf
            if excess >= max_excess:
                max_excess, worst = excess, key
            max_rel = max(max_rel, rel)
        elif rel >= max_rel:
            max_rel, worst = rel, key
    result.update({"max_abs_diff": max_abs, "max_rel_diff": max_rel, "worst": worst})
    if by_rule:
        result.update({"max_excess": max_excess, "ok": max_excess <= 1.0})
    else:
        result["ok"] = max_rel <= rel_tol
    return result
