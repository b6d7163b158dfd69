"""fastrnn: fused CPU kernels for RNN, LSTM and GRU, as drop-in torch.nn modules.

import fastrnn
lstm = fastrnn.LSTM(input_size, hidden_size, num_layers=2)   # wherever torch.nn.LSTM was
"""

# A whole model saved with torch.save loads with torch.load(weights_only=True)
# when its classes are allow-listed; torch.nn's users list torch.nn's (e.g.
# torch.serialization.safe_globals([torch.nn.LSTM, ...])), and code written so
# names only those. fastrnn's classes hold nothing but torch.nn's state, so
# they are allow-listed here, once fastrnn is imported.
import torch as _torch

from . import ops, reference
from .cells import GRUCell, LSTMCell, RNNCell
from .convert import convert
from .modules import GRU, LSTM, RNN
from .version import __version__

_torch.serialization.add_safe_globals([RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell])

__all__ = [
    "RNN",
    "LSTM",
    "GRU",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "convert",
    "ops",
    "reference",
    "__version__",
]
