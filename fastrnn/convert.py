"""fastrnn.convert(model): swap torch.nn's recurrent modules for fastrnn's, in
place, keeping the very same Parameter objects, so an optimizer built before
the conversion keeps working and a state_dict is unchanged."""

import warnings

import torch
from torch import nn

from .cells import GRUCell, LSTMCell, RNNCell
from .modules import GRU, LSTM, RNN

__all__ = ["convert"]

# exact torch.nn classes only: a user's subclass may have its own forward
_LAYERS = {nn.RNN: RNN, nn.LSTM: LSTM, nn.GRU: GRU}
_CELLS = {nn.RNNCell: RNNCell, nn.LSTMCell: LSTMCell, nn.GRUCell: GRUCell}


def _unsupported(module):
    """Why fastrnn cannot run this module, or None."""
    for p in module.parameters():
        if p.dtype not in (torch.float32, torch.float64):
            return f"its parameters are {p.dtype}; fastrnn runs float32 and float64"
        if p.device.type != "cpu":
            return f"its parameters are on {p.device}; fastrnn runs on the CPU"
    return None


def _replacement(module):
    """The fastrnn twin of a torch.nn module, holding its Parameter objects."""
    if type(module) in _LAYERS:
        kwargs = dict(num_layers=module.num_layers, bias=module.bias,
                      batch_first=module.batch_first, dropout=module.dropout,
                      bidirectional=module.bidirectional)
        if type(module) is nn.RNN:
            kwargs["nonlinearity"] = module.nonlinearity
        if type(module) is nn.LSTM:
            kwargs["proj_size"] = module.proj_size
        # on the meta device: nothing allocated, no random numbers drawn
        new = _LAYERS[type(module)](module.input_size, module.hidden_size, device="meta",
                                    **kwargs)
    else:
        kwargs = {"nonlinearity": module.nonlinearity} if type(module) is nn.RNNCell else {}
        new = _CELLS[type(module)](module.input_size, module.hidden_size, bias=module.bias,
                                   device="meta", **kwargs)
    for name, _ in list(new.named_parameters(recurse=False)):
        setattr(new, name, getattr(module, name))
    if isinstance(new, nn.RNNBase):
        new._init_flat_weights()
    new.train(module.training)
    return new


def convert(model):
    """Replace every torch.nn.RNN / LSTM / GRU / RNNCell / LSTMCell / GRUCell in
    `model` by fastrnn's, in place, and return the model (or the replacement, if
    `model` itself is one of them). A module fastrnn cannot run is left alone,
    with a warning that says why."""
    if type(model) in _LAYERS or type(model) in _CELLS:
        reason = _unsupported(model)
        if reason is not None:
            warnings.warn(f"fastrnn.convert: left {model!r} as it is: {reason}", stacklevel=2)
            return model
        return _replacement(model)
    for name, child in list(model.named_children()):
        new = convert(child)
        if new is not child:
            setattr(model, name, new)
    return model
