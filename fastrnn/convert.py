"""fastrnn.convert(model): swap torch.nn's recurrent modules for fastrnn's, in
place, keeping the very same Parameter objects, so an optimizer built before
the conversion keeps working and a state_dict is unchanged."""

import warnings
import weakref

from torch import nn
from torch.nn.utils import parametrize

from .cells import GRUCell, LSTMCell, RNNCell
from .modules import GRU, LSTM, RNN
from .ops import DTYPES, device_types

__all__ = ["convert"]

# exact torch.nn classes only: a subclass is left alone, with a warning
_LAYERS = {nn.RNN: RNN, nn.LSTM: LSTM, nn.GRU: GRU}
_CELLS = {nn.RNNCell: RNNCell, nn.LSTMCell: LSTMCell, nn.GRUCell: GRUCell}
_KINDS = tuple(_LAYERS) + tuple(_CELLS)

# the attributes nn.Module keeps its hooks in (forward, backward, state_dict,
# load_state_dict), as this torch version names them
_HOOKS = [name for name in vars(nn.Module()) if "hook" in name]


def _unsupported(module):
    """Why fastrnn cannot run this module, or None."""
    if type(module) not in _LAYERS and type(module) not in _CELLS:
        kind = next(k for k in _KINDS if isinstance(module, k)).__name__
        if parametrize.is_parametrized(module):
            return (
                f"its weights are computed by parametrizations (weight_norm, spectral_norm, "
                f"...), which fastrnn's {kind} would not apply"
            )
        return (
            f"its class {type(module).__name__} subclasses torch.nn.{kind} and may have "
            f"its own forward, which fastrnn's {kind} would not run"
        )
    for name in _expected_parameters(module):
        if name not in module._parameters:  # torch.nn.utils.weight_norm's (deprecated) way
            return f"its {name} is computed, not a parameter (torch.nn.utils.weight_norm?)"
    for p in module.parameters():
        if p.dtype not in DTYPES:
            return (
                f"its parameters are {p.dtype}; fastrnn runs float32, float64, float16 and bfloat16"
            )
        if p.device.type not in device_types():
            return (
                f"its parameters are on {p.device}; fastrnn runs on {' and '.join(device_types())}"
            )
    return None


def _expected_parameters(module):
    """The names of the weights the module's configuration has."""
    if isinstance(module, nn.RNNBase):
        return [name for names in module._all_weights for name in names]
    return ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if module.bias else [])


def _replacement(module):
    """The fastrnn twin of a torch.nn module, holding its Parameter objects."""
    if type(module) in _LAYERS:
        kwargs = dict(
            num_layers=module.num_layers,
            bias=module.bias,
            batch_first=module.batch_first,
            dropout=module.dropout,
            bidirectional=module.bidirectional,
        )
        if type(module) is nn.RNN:
            kwargs["nonlinearity"] = module.nonlinearity
        if type(module) is nn.LSTM:
            kwargs["proj_size"] = module.proj_size
        # on the meta device: nothing allocated, no random numbers drawn
        new = _LAYERS[type(module)](module.input_size, module.hidden_size, device="meta", **kwargs)
    else:
        kwargs = {"nonlinearity": module.nonlinearity} if type(module) is nn.RNNCell else {}
        new = _CELLS[type(module)](
            module.input_size, module.hidden_size, bias=module.bias, device="meta", **kwargs
        )
    for name, _ in list(new.named_parameters(recurse=False)):
        setattr(new, name, getattr(module, name))
    if isinstance(new, nn.RNNBase):
        new._init_flat_weights()
    new.train(module.training)
    # the very dict objects, so the handles their owner holds still remove them
    for hooks in _HOOKS:
        setattr(new, hooks, getattr(module, hooks))
    for hook in new._load_state_dict_pre_hooks.values():
        # a _WrappedHook passes the module it was registered on, held weakly
        if getattr(hook, "with_module", False) and hook.module() is module:
            hook.module = weakref.ref(new)
    return new


def convert(model: nn.Module) -> nn.Module:
    """Replace every torch.nn.RNN / LSTM / GRU / RNNCell / LSTMCell / GRUCell in
    `model` by fastrnn's, in place, and return the model (or the replacement, if
    `model` itself is one of them). Their hooks carry over. A module fastrnn
    cannot run is left alone, with a warning that says why: an instance of a
    subclass (a user's, whose forward may be its own, or a parametrized one,
    whose weights are computed), or one on another device or of another dtype."""
    if isinstance(model, _KINDS):
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
