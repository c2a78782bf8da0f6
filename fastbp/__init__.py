"""fastbp: JIT-compiled, explicit-loop backpropagation for multi-layer perceptrons."""
__version__ = "0.1.0"

from . import _cache  # noqa: E402,F401  (before any kernel: where compiled code is cached)

from ._threads import get_num_threads, set_num_threads, threading_layer  # noqa: E402  (first: picks the threading layer)
from .callbacks import (Callback, CosineDecay, CSVLogger, EarlyStopping, ExponentialDecay,  # noqa: E402
                        LambdaCallback, LearningRateScheduler, ModelCheckpoint,
                        ReduceLROnPlateau, StepDecay, TerminateOnNaN)
from .datasets import load_digits  # noqa: E402
from .history import History  # noqa: E402
from .interop import from_torch  # noqa: E402
from .files import load  # noqa: E402
from .io import ModelFileError  # noqa: E402
from .model import MLP, Layer  # noqa: E402
from .optimizers import SGD, Adam, Optimizer  # noqa: E402
from .trainer import DivergenceError, DivergenceWarning  # noqa: E402
from .warmup import warmup  # noqa: E402

__all__ = ["MLP", "Layer", "SGD", "Adam", "Optimizer", "History", "Callback", "EarlyStopping",
           "LambdaCallback", "LearningRateScheduler", "ReduceLROnPlateau", "CSVLogger",
           "ModelCheckpoint", "StepDecay", "ExponentialDecay", "CosineDecay", "load",
           "ModelFileError", "load_digits", "from_torch", "set_num_threads",
           "get_num_threads", "threading_layer", "warmup", "DivergenceWarning", "DivergenceError",
           "TerminateOnNaN", "MLPClassifier", "MLPRegressor",
           "__version__"]


def __getattr__(name):
    # the estimators need scikit-learn; import it only when they are asked for
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import sklearn as _sk
        return getattr(_sk, name)
    raise AttributeError(f"module 'fastbp' has no attribute {name!r}")
