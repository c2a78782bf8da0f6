"""Optimizers: small classes holding hyper-parameters and state, following torch.optim.

The update itself is one compiled loop over the flat parameter buffer
(``fastbp.kernels.optim.update``); these classes fill its hyper-parameter vector each
step and own the state arrays (momentum buffer, Adam moments) in the parameters' layout.
"""
import math
import numbers

import numpy as np

from . import io
from ._memory import aligned_zeros
from .kernels import optim as _k


def _check_number(name, value, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return value


def _check_lr(lr):
    """A number > 0, or a schedule with unit="step" (Keras's LearningRateSchedule as the
    learning rate: evaluated before every step, inside the compiled loop), or its config."""
    from .callbacks import LearningRateSchedule, schedule_from_config
    if isinstance(lr, dict):
        lr = schedule_from_config(lr)
    if isinstance(lr, LearningRateSchedule):
        if lr.unit != "step":
            raise ValueError(f"lr={lr!r} counts epochs; an optimizer evaluates its lr schedule every "
                             "step: make it with unit='step', or pass it to "
                             "fastbp.LearningRateScheduler for one lr per epoch")
        return lr
    return _check_number("lr", lr, low=0.0, low_open=True)


class Optimizer:
    """Base class.  ``state`` is created on first use with a model and kept across ``fit`` calls."""

    kind = _k.NO_UPDATE

    def __init__(self, lr):
        self.lr = _check_lr(lr)
        self.state = None   # (2, n_params) array in the model's dtype
        self.steps = 0      # number of updates applied

    def bind(self, params):
        """Create (or check) the state for a parameter buffer."""
        if self.state is None:
            self.state = aligned_zeros((2, params.shape[0]), params.dtype)
        elif self.state.shape[1] != params.shape[0] or self.state.dtype != params.dtype:
            raise ValueError(
                "optimizer is already bound to a model with "
                f"{self.state.shape[1]} {self.state.dtype} parameters; this model has "
                f"{params.shape[0]} {params.dtype} ones. Use a new optimizer per model."
            )
        return self.state

    def reset(self):
        """Forget the state (momentum, moments) and the step count."""
        self.state = None
        self.steps = 0

    def set_hyper(self, hyper):
        """Write the hyper-parameters and the step count into the kernels' vector ``hyper``.
        The compiled loop counts steps in ``hyper[STEPS]``; read it back with ``sync``."""
        hyper[:] = 0
        hyper[_k.KIND] = self.kind
        hyper[_k.LR] = self.current_lr
        hyper[_k.STEPS] = self.steps
        if not isinstance(self.lr, numbers.Real):   # a schedule: the compiled loop sets hyper[LR] per step
            hyper[_k.SCHEDULE], hyper[_k.SCHEDULE_ARGS] = self.lr.kernel_args()

    @property
    def current_lr(self):
        """The lr of the next step: ``lr``, or the schedule's value at the step count."""
        return self.lr if isinstance(self.lr, numbers.Real) else float(self.lr(self.steps))

    def _lr_config(self):
        return self.lr if isinstance(self.lr, numbers.Real) else self.lr.get_config()

    def sync(self, hyper):
        """Take the step count back from ``hyper`` after compiled steps."""
        self.steps = int(hyper[_k.STEPS])

    def next_hyper(self, hyper):
        """Count one step and write this step's hyper-parameters into ``hyper``."""
        self.set_hyper(hyper)
        _k.advance(hyper)
        self.sync(hyper)

    def get_config(self):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={self.lr if k == 'lr' else v!r}" for k, v in self.get_config().items()
                         if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    Parameters
    ----------
    lr : float or schedule
        Learning rate, > 0, or a schedule made with unit="step" (e.g.
        ``fastbp.CosineDecay(0.1, epochs=5000, warmup_epochs=100, unit="step")``),
        evaluated before every step from the step count, inside the compiled loop.
    momentum : float
        Momentum factor in [0, 1).
    nesterov : bool
        Use Nesterov momentum (needs momentum > 0).
    weight_decay : float
        L2 penalty added to the gradient as ``weight_decay * p``, as ``torch.optim.SGD``.
    """

    kind = _k.SGD

    def __init__(self, lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr)
        self.momentum = _check_number("momentum", momentum, 0.0, 1.0, high_open=True)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.weight_decay = _check_number("weight_decay", weight_decay, low=0.0)

    def set_hyper(self, hyper):
        super().set_hyper(hyper)
        hyper[_k.MOMENTUM] = self.momentum
        hyper[_k.WEIGHT_DECAY] = self.weight_decay
        hyper[_k.NESTEROV] = 1.0 if self.nesterov else 0.0

    def get_config(self):
        return {"name": "sgd", "lr": self._lr_config(), "momentum": self.momentum,
                "nesterov": self.nesterov, "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam (Kingma and Ba), as ``torch.optim.Adam`` with its defaults.

    Parameters
    ----------
    lr : float or schedule
        Learning rate, > 0, or a schedule with unit="step" (see SGD).
    betas : (float, float)
        Decay rates of the first and second moment estimates, each in [0, 1).
    eps : float
        Added to the denominator, > 0.
    weight_decay : float
        L2 penalty added to the gradient (not decoupled: this is Adam, not AdamW).
    """

    kind = _k.ADAM

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
        self.betas = (_check_number("betas[0]", b1, 0.0, 1.0, high_open=True),
                      _check_number("betas[1]", b2, 0.0, 1.0, high_open=True))
        self.eps = _check_number("eps", eps, low=0.0, low_open=True)
        self.weight_decay = _check_number("weight_decay", weight_decay, low=0.0)

    def set_hyper(self, hyper):
        super().set_hyper(hyper)
        hyper[_k.WEIGHT_DECAY] = self.weight_decay
        hyper[_k.BETA1], hyper[_k.BETA2] = self.betas
        hyper[_k.EPS] = self.eps

    def get_config(self):
        return {"name": "adam", "lr": self._lr_config(), "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay}


_BY_NAME = {"sgd": SGD, "adam": Adam}


def get(spec):
    """An optimizer from an instance, a name ("sgd", "adam") or a config dict."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str):
        if spec.lower() not in _BY_NAME:
            raise ValueError(f"optimizer must be one of {sorted(_BY_NAME)} or an Optimizer, got {spec!r}")
        return _BY_NAME[spec.lower()]()
    if isinstance(spec, dict):
        config = dict(spec)
        name = config.pop("name", None)
        if name not in _BY_NAME:
            raise ValueError(f"optimizer config needs 'name' in {sorted(_BY_NAME)}, got {name!r}")
        if "betas" in config:
            config["betas"] = tuple(config["betas"])
        return _BY_NAME[name](**config)
    raise TypeError(f"optimizer must be an Optimizer, a name or a dict, got {type(spec).__name__}")


# -- model files (the format: io.py) -----------------------------------------------------
def to_file(optimizer):
    """An optimizer's entry in a model file's header: its config and its step count."""
    return dict(optimizer.get_config(), steps=optimizer.steps)


def check_state(path, name, state, params):
    """A file's optimizer state against the parameters it belongs to."""
    if state.shape != (2, params.shape[0]) or state.dtype != params.dtype:
        raise io.ModelFileError(f"{path}: optimizer state has shape {state.shape} {state.dtype}, "
                                f"expected {(2, params.shape[0])} {params.dtype}")
    io.check_finite(path, name, state)


def from_file(path, entry, state, params):
    """The optimizer of a file's header entry (``to_file``) and its state array, bound to
    ``params``; every field checked."""
    entry = dict(io.field(path, "optimizer", entry, "dict"))
    steps = io.field(path, "optimizer.steps", entry.pop("steps", 0), "int", 0, 1 << 53)
    try:
        optimizer = get(entry)
    except (TypeError, ValueError) as exc:
        raise io.ModelFileError(f"{path} has an invalid optimizer description: {exc}") from None
    check_state(path, "optimizer_state", state, params)
    optimizer.bind(params)[...] = state
    optimizer.steps = steps
    return optimizer
