"""Callbacks: hooks the trainer calls at the start and end of training and of each epoch.

A callback stops training by setting ``self.model.stop_training = True``, as in Keras.
"""
import math

import numpy as np


class Callback:
    """Base class; override the hooks you need.  ``self.model`` is set before training."""

    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, on_train_begin=None, on_epoch_begin=None, on_epoch_end=None, on_train_end=None):
        for name, fn in [("on_train_begin", on_train_begin), ("on_epoch_begin", on_epoch_begin),
                         ("on_epoch_end", on_epoch_end), ("on_train_end", on_train_end)]:
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"{name} must be callable, got {fn!r}")
                setattr(self, name, fn)


class EarlyStopping(Callback):
    """Stop when a monitored figure has stopped improving.

    Parameters
    ----------
    monitor : str
        Key of the epoch logs to watch, e.g. "val_loss", "loss", "val_accuracy".
    patience : int
        Stop after this many epochs in a row without improvement (0 acts as 1).
    min_delta : float
        Smallest change that counts as an improvement.
    mode : {"auto", "min", "max"}
        Whether smaller or larger is better; "auto" picks "max" for accuracy-like names.
    restore_best_weights : bool
        When training ends, for any reason, put back the weights of the best epoch.
    verbose : int or None
        Print one line when it stops training and which weights it restored; None
        (default) follows ``fit``'s ``verbose``.
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False, verbose=None):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a string, got {monitor!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {patience!r}")
        if not (isinstance(min_delta, (int, float)) and math.isfinite(min_delta)):
            raise ValueError(f"min_delta must be a finite number, got {min_delta!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = abs(float(min_delta))
        if mode == "auto":
            mode = "max" if ("acc" in monitor or "score" in monitor) else "min"
        self.mode = mode
        self.restore_best_weights = bool(restore_best_weights)
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = None
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        self.best_weights = None

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping monitor={self.monitor!r} is not among the epoch logs "
                f"{sorted(logs)}; pass validation data for 'val_*' figures."
            )
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = np.array(self.model.params, copy=True)
        else:
            self.wait += 1
            if self.wait >= self.patience:  # `patience` epochs in a row without improvement
                self.stopped_epoch = epoch
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        restored = self.restore_best_weights and self.best_weights is not None
        if restored:
            self.model.params[:] = self.best_weights
        verbose = self.verbose if self.verbose is not None else getattr(self.model, "_fit_verbose", 0)
        if verbose and (self.stopped_epoch is not None or restored):
            text = (f"EarlyStopping: stopped after epoch {self.stopped_epoch + 1} ({self.monitor} "
                    f"did not improve for {max(self.patience, 1)} epochs)"
                    if self.stopped_epoch is not None else "EarlyStopping: training ended")
            if restored:
                text += (f"; restored the weights of epoch {self.best_epoch + 1} "
                         f"({self.monitor} {self.best:.4g})")
            else:
                text += "; the weights of the last epoch are kept"
            print(text, flush=True)
