"""fastrnn: fused CPU kernels for RNN, LSTM and GRU, as drop-in torch.nn modules.

    import fastrnn
    lstm = fastrnn.LSTM(input_size, hidden_size, num_layers=2)   # wherever torch.nn.LSTM was
"""

from . import ops, reference
from .cells import GRUCell, LSTMCell, RNNCell
from .convert import convert
from .modules import GRU, LSTM, RNN

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "convert", "ops", "reference"]
__version__ = "0.1.0"
