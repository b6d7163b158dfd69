"""torch.autocast as torch.nn does it: under autocast, fastrnn's modules and
cells run in the dtype torch.nn's would run in and return its dtypes.

torch.nn's recurrent modules have no autocast rule of their own: their dtypes
under autocast follow from the aten ops they call, each cast by its device's
autocast lists (aten/src/ATen/autocast_mode.cpp and autocast_mode.h, and
aten/src/ATen/cudnn/AutocastRNN.cpp for cuDNN), and from type promotion
where a float32 state meets those ops' lower-precision results. `RULES`
mirrors that, for what torch.nn runs on each device (`torch_work`):

- CPU: only the GEMMs (linear, matmul, ...) and oneDNN's LSTM
  (mkldnn_rnn_layer) are cast to the lower precision; no recurrent op or cell
  is on the list. A recurrence whose state enters only GEMMs (rnn:
  h' = act(W x + U h)) is in the lower precision, as is oneDNN's LSTM (torch.nn
  runs it for padded input without projection). Where the state also enters
  the pointwise update (gru: h' = (1 - z) n + z h; lstm: c' = f c + i g) the
  update is promoted to the state's dtype: float32 states give float32
  results, which fastrnn computes in float32 from end to end (torch.nn's gates
  come from lower-precision GEMMs; fastrnn's are at least as accurate). A
  projected LSTM's h comes from a GEMM (lower precision), its c from the
  update (the state's dtype).
- CUDA: torch.nn's modules run cuDNN's _cudnn_rnn, whose autocast wrapper
  casts to float16 whatever the autocast dtype; without cuDNN they run the
  fused pointwise ops (_thnn_fused_lstm_cell, _thnn_fused_gru_cell) and
  GEMMs, which are on the list, as are the cells' ops (rnn_tanh_cell,
  rnn_relu_cell, lstm_cell, gru_cell): the lower precision throughout.

fastrnn's ops have no autocast kernel (autocast falls through to them): the
modules cast their arguments to the dtype of the run, and the results that
torch.nn returns in another dtype (an LSTM's c_n) after it. The casts are
differentiable, so float32 parameters get float32 gradients, as torch.nn's do.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ["RULES", "run_dtypes", "cast"]

# what a dtype rule names: the autocast dtype of the device, float16, or the
# promotion of the autocast dtype with the state's dtype (h for rnn and gru, c
# for lstm), float32 for float32 states
LOWER, FLOAT16, STATE = "lower", "float16", "state"

# (device type, what torch.nn runs) -> (dtype of the run: the output and h_n;
# dtype of an LSTM's c_n). It mirrors torch's autocast lists: see above.
RULES = {
    ("cpu", "rnn"): (LOWER, LOWER),
    ("cpu", "gru"): (STATE, STATE),
    ("cpu", "lstm"): (STATE, STATE),
    ("cpu", "lstm_proj"): (LOWER, STATE),
    ("cpu", "mkldnn_rnn_layer"): (LOWER, LOWER),
    ("cpu", "rnn_cell"): (LOWER, LOWER),
    ("cpu", "gru_cell"): (STATE, STATE),
    ("cpu", "lstm_cell"): (STATE, STATE),
    ("cuda", "_cudnn_rnn"): (FLOAT16, FLOAT16),
    ("cuda", "rnn"): (LOWER, LOWER),
    ("cuda", "gru"): (LOWER, LOWER),
    ("cuda", "lstm"): (LOWER, LOWER),
    ("cuda", "lstm_proj"): (LOWER, LOWER),
    ("cuda", "rnn_cell"): (LOWER, LOWER),
    ("cuda", "gru_cell"): (LOWER, LOWER),
    ("cuda", "lstm_cell"): (LOWER, LOWER),
}


# whether this build of torch has oneDNN and cuDNN (constants, read once:
# torch.compile traces no call of these)
_HAS_ONEDNN = torch.backends.mkldnn.is_available()
_HAS_CUDNN = torch.backends.cudnn.is_available()


def torch_work(cell: str, input: Tensor, packed: bool = False, proj: bool = False) -> str:
    """What torch.nn runs for a module of `cell` ("rnn", "lstm", "gru") on
    input (packed data where packed; proj: an LSTM with projection), or for a
    cell ("rnn_cell", "lstm_cell", "gru_cell"): RULES' key beside the device
    type. The choices are ATen's use_cudnn and use_mkldnn (RNN.cpp), made on
    the input before autocast casts it."""
    if cell.endswith("_cell"):
        return cell
    work = "lstm_proj" if proj else cell
    if input.numel() == 0:
        return work
    if input.device.type == "cuda":
        if _HAS_CUDNN and torch.backends.cudnn.enabled:
            return "_cudnn_rnn"
    elif work == "lstm" and not packed and _HAS_ONEDNN and torch.backends.mkldnn.enabled:
        return "mkldnn_rnn_layer"
    return work


def _eligible(t: Optional[Tensor]) -> bool:
    # autocast's is_eligible: float64 (and anything not floating) is left alone
    return t is None or (t.is_floating_point() and t.dtype != torch.float64)


def run_dtypes(
    cell: str, input: Tensor, state: Optional[Tensor], packed: bool = False, proj: bool = False
) -> Optional[Tuple[torch.dtype, torch.dtype]]:
    """(dtype of the run, dtype of c_n) under the autocast of input's device
    for a module or cell (torch_work's arguments); state: h (rnn, gru) or c
    (lstm), as the caller gives it or as zeros in the input's dtype. None
    where autocast is off for the device or does not cast these tensors:
    then nothing is cast."""
    if not torch._C._is_any_autocast_enabled():  # the common case, checked fast
        return None
    device = input.device.type
    if device not in ("cpu", "cuda") or not torch.is_autocast_enabled(device):
        return None
    if not (_eligible(input) and _eligible(state)):
        return None
    work = torch_work(cell, input, packed, proj)
    lower = torch.get_autocast_dtype(device)
    dtypes = {
        LOWER: lower,
        FLOAT16: torch.float16,
        STATE: lower if state is None else torch.promote_types(lower, state.dtype),
    }
    run, c_n = RULES[(device, work)]
    return dtypes[run], dtypes[c_n]


def cast(t: Optional[Tensor], dtype) -> Optional[Tensor]:
    """t in dtype (itself where it is already), None for None."""
    return None if t is None else t.to(dtype)
