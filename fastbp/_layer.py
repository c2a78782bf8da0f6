"""A dense layer's view of the model's parameters, and the checks of the per-layer
arguments of ``MLP`` (activation, dropout)."""
import numpy as np

from . import _validation as V
from .kernels import activations as _act

ACTIVATIONS = tuple(_act.CODES)


def _check_activation(activation, n_hidden):
    """A name for every hidden layer (kept as given), or a list of one name per hidden layer."""
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        return activation
    if not isinstance(activation, (list, tuple)):
        raise TypeError(f"activation must be a name or a list of names, got {activation!r}")
    if len(activation) != n_hidden:
        raise ValueError(f"activation lists one name per hidden layer: the model has {n_hidden} "
                         f"hidden layers, got {len(activation)} names {list(activation)!r}")
    for i, a in enumerate(activation):
        if a not in ACTIVATIONS:
            raise ValueError(f"activation[{i}] must be one of {ACTIVATIONS}, got {a!r}")
    return list(activation)


def _check_dropout(dropout, n_hidden):
    """One rate in [0, 1) for every hidden layer (kept as given), or a list of one per hidden layer."""
    def rate(name, p):
        if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.integer, np.floating)) \
                or not 0.0 <= float(p) < 1.0:
            raise ValueError(f"{name} must be a number in [0, 1) (the fraction of units dropped), got {p!r}")
        return float(p)
    if isinstance(dropout, (list, tuple)):
        if len(dropout) != n_hidden:
            raise ValueError(f"dropout lists one rate per hidden layer: the model has {n_hidden} "
                             f"hidden layers, got {len(dropout)} rates {list(dropout)!r}")
        return [rate(f"dropout[{i}]", p) for i, p in enumerate(dropout)]
    return rate("dropout", dropout)


class Layer:
    """One dense layer: ``a = f(x W^T + b)``.  ``weight`` (n_out, n_in) and ``bias`` (n_out,)
    are writable views of the model's parameter buffer."""

    def __init__(self, weight, bias, activation):
        self._weight = weight
        self._bias = bias
        self.activation = activation

    n_in = property(lambda self: self._weight.shape[1])
    n_out = property(lambda self: self._weight.shape[0])

    @property
    def weight(self):
        return self._weight

    @weight.setter
    def weight(self, value):
        self._assign(self._weight, value, "weight")

    @property
    def bias(self):
        return self._bias

    @bias.setter
    def bias(self, value):
        self._assign(self._bias, value, "bias")

    @staticmethod
    def _assign(view, value, name):
        value = np.asarray(value)
        if value.shape != view.shape:
            raise ValueError(f"{name} must have shape {view.shape}, got {value.shape}")
        if not V.all_finite(value):
            raise ValueError(f"{name} contains NaN or infinity")
        view[...] = value

    def __repr__(self):
        return f"Layer({self.n_in} -> {self.n_out}, {self.activation})"
