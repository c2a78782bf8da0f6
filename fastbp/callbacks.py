"""Callbacks: hooks the trainer calls at the start and end of training and of each epoch.

A callback stops training by setting ``self.model.stop_training = True``, as in Keras.
"""
import math

import numpy as np

from .kernels import optim as _k


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

    def get_state(self):
        """What a checkpoint keeps of the callback's progress (plain JSON), or None; a resumed
        fit hands it to ``set_state`` after ``on_train_begin``."""
        return None

    def set_state(self, state):
        pass


def _finite_or_none(x):
    """JSON has no infinity: an unset best is stored as null."""
    return float(x) if math.isfinite(x) else None


def _best_from(value, mode):
    return (math.inf if mode == "min" else -math.inf) if value is None else float(value)


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

    def get_state(self):
        # (the best weights themselves are not kept: a resumed run restores them only if a
        # later epoch improves on the best)
        return {"wait": self.wait, "best": _finite_or_none(self.best), "best_epoch": self.best_epoch}

    def set_state(self, state):
        self.wait = int(state["wait"])
        self.best_epoch = None if state["best_epoch"] is None else int(state["best_epoch"])
        self.best = _best_from(state["best"], self.mode)

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


# -- learning-rate schedules.  unit="epoch": a LearningRateScheduler callback sets the
# optimizer's lr before each epoch's compiled calls.  unit="step": given as an optimizer's lr
# (Keras's LearningRateSchedule as learning_rate), evaluated before every step inside the
# compiled loop from the optimizer's step count (kernels/optim.py schedule_lr) ------------------
def _positive(name, value, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


class LearningRateSchedule:
    """Base of the schedules: ``schedule(t)`` is the lr of epoch t (unit="epoch") or of step t
    (unit="step", t = updates done before it, as Keras's ``optimizer.iterations``).  The
    formula is also written in the compiled loop (kernels/optim.py), which gives the same
    bits as ``__call__``.  ``get_config()`` is plain JSON; ``schedule_from_config`` reads it."""

    kind = None       # kernels/optim.py's code of the formula
    name = None       # the config's "name"

    def _unit(self, unit):
        if unit not in ("epoch", "step"):
            raise ValueError(f"unit must be 'epoch' or 'step', got {unit!r}")
        self.unit = unit

    def kernel_args(self):
        """The formula's code and its four numbers, for hyper (kernels/optim.py)."""
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, **{k: v for k, v in vars(self).items()}}

    def __eq__(self, other):
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class StepDecay(LearningRateSchedule):
    """lr = initial_lr * factor ** (t // step_size), t the epoch (or step, unit="step")."""

    name = "step_decay"

    def __init__(self, initial_lr, step_size, factor=0.1, unit="epoch"):
        self.initial_lr = _positive("initial_lr", initial_lr)
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"step_size must be an integer >= 1, got {step_size!r}")
        self.step_size = step_size
        self.factor = _positive("factor", factor)
        self._unit(unit)

    def __call__(self, epoch):
        return self.initial_lr * self.factor ** (epoch // self.step_size)

    def kernel_args(self):
        return _k.STEP_DECAY, (self.initial_lr, self.step_size, self.factor, 0.0)


class ExponentialDecay(LearningRateSchedule):
    """lr = initial_lr * gamma ** t, t the epoch (or step, unit="step")."""

    name = "exponential_decay"

    def __init__(self, initial_lr, gamma, unit="epoch"):
        self.initial_lr = _positive("initial_lr", initial_lr)
        self.gamma = _positive("gamma", gamma)
        self._unit(unit)

    def __call__(self, epoch):
        return self.initial_lr * self.gamma ** epoch

    def kernel_args(self):
        return _k.EXPONENTIAL_DECAY, (self.initial_lr, self.gamma, 0.0, 0.0)


class CosineDecay(LearningRateSchedule):
    """Linear warm-up from initial_lr / (warmup_epochs + 1) to initial_lr over warmup_epochs,
    then cosine decay to min_lr at epoch ``epochs`` (held there after).  With unit="step",
    ``epochs`` and ``warmup_epochs`` count optimizer steps (Keras's decay_steps, warmup_steps)."""

    name = "cosine_decay"

    def __init__(self, initial_lr, epochs, warmup_epochs=0, min_lr=0.0, unit="epoch"):
        self.initial_lr = _positive("initial_lr", initial_lr)
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) \
                or not 0 <= warmup_epochs < epochs:
            raise ValueError(f"warmup_epochs must be an integer in [0, epochs), got {warmup_epochs!r}")
        self.epochs, self.warmup_epochs = epochs, warmup_epochs
        self.min_lr = _positive("min_lr", min_lr, allow_zero=True)
        self._unit(unit)

    def __call__(self, epoch):
        if epoch < self.warmup_epochs:
            return self.initial_lr * (epoch + 1) / (self.warmup_epochs + 1)
        t = min(1.0, (epoch - self.warmup_epochs) / (self.epochs - self.warmup_epochs))
        return self.min_lr + 0.5 * (self.initial_lr - self.min_lr) * (1 + math.cos(math.pi * t))

    def kernel_args(self):
        return _k.COSINE_DECAY, (self.initial_lr, self.epochs, self.warmup_epochs, self.min_lr)


_SCHEDULES = {cls.name: cls for cls in (StepDecay, ExponentialDecay, CosineDecay)}


def schedule_from_config(config):
    """A schedule from its ``get_config()`` (a checkpoint's optimizer header)."""
    if not isinstance(config, dict) or config.get("name") not in _SCHEDULES:
        raise ValueError(f"a schedule config needs 'name' in {sorted(_SCHEDULES)}, got {config!r}")
    config = dict(config)
    return _SCHEDULES[config.pop("name")](**config)


def _settable_lr(callback, optimizer):
    """The optimizer, when its lr is a number a per-epoch callback may set (as Keras refuses)."""
    if isinstance(optimizer.lr, LearningRateSchedule):
        raise TypeError(f"{type(callback).__name__}: the optimizer's lr is a schedule ({optimizer.lr!r}), "
                        "evaluated every step; it cannot also be set per epoch")
    return optimizer


class LearningRateScheduler(Callback):
    """Set the optimizer's lr before each epoch to ``schedule(epoch)`` (epoch counted from 0
    over the model's life, so a resumed run follows the same schedule)."""

    def __init__(self, schedule):
        if not callable(schedule):
            raise TypeError(f"schedule must be callable (epoch -> lr), got {schedule!r}")
        if getattr(schedule, "unit", "epoch") != "epoch":
            raise ValueError(f"schedule {schedule!r} counts steps: pass it as the optimizer's lr, e.g. "
                             "fastbp.SGD(lr=schedule), or make it with unit='epoch'")
        self.schedule = schedule

    def get_state(self):
        # a record of the schedule the run followed (plain JSON); the schedule itself is the
        # one given to the resumed fit, counted from the model's epoch
        config = getattr(self.schedule, "get_config", None)
        return {"schedule": config()} if config is not None else None

    def set_state(self, state):
        config = getattr(self.schedule, "get_config", lambda: None)()
        if config != state["schedule"]:
            raise ValueError(f"resume: LearningRateScheduler's schedule {config} differs from the "
                             f"checkpoint's {state['schedule']}")

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.schedule(epoch)
        _settable_lr(self, self.model.optimizer).lr = _positive(f"schedule({epoch})", lr)


class ReduceLROnPlateau(Callback):
    """Multiply the lr by ``factor`` after ``patience`` epochs without improvement of ``monitor``."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, min_delta=1e-4, min_lr=0.0,
                 mode="auto"):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a string, got {monitor!r}")
        self.factor = _positive("factor", factor)
        if self.factor >= 1:
            raise ValueError(f"factor must be < 1, got {factor!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {patience!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.patience = monitor, patience
        self.min_delta = _positive("min_delta", min_delta, allow_zero=True)
        self.min_lr = _positive("min_lr", min_lr, allow_zero=True)
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.best = math.inf if self.mode == "min" else -math.inf

    def get_state(self):   # (the lr it lowered is the optimizer's, kept with it)
        return {"wait": self.wait, "best": _finite_or_none(self.best)}

    def set_state(self, state):
        self.wait, self.best = int(state["wait"]), _best_from(state["best"], self.mode)

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor not in (logs or {}):
            raise ValueError(f"ReduceLROnPlateau monitor={self.monitor!r} is not among the epoch "
                             f"logs {sorted(logs or {})}")
        value = float(logs[self.monitor])
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            opt = _settable_lr(self, self.model.optimizer)
            opt.lr = max(self.min_lr, opt.lr * self.factor)
            self.wait = 0


class CSVLogger(Callback):
    """Write one CSV row of epoch logs per epoch to ``path`` (a header row first)."""
    writes_files = True   # in a distributed fit, rank 0 alone runs it

    def __init__(self, path, append=False):
        self.path, self.append = path, bool(append)

    def on_train_begin(self, logs=None):
        self._file = open(self.path, "a" if self.append else "w", newline="")
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        import csv
        row = {"epoch": epoch, **(logs or {})}
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=list(row))
            if not self.append or self._file.tell() == 0:
                self._writer.writeheader()
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        self._file.close()


class ModelCheckpoint(Callback):
    """Save the model (``fastbp.load`` reads it) every ``every`` epochs, or with
    ``save_best_only`` only when ``monitor`` improved.  ``path`` may hold ``{epoch}``."""
    writes_files = True   # in a distributed fit, rank 0 alone runs it

    def __init__(self, path, monitor="val_loss", save_best_only=False, every=1, mode="auto"):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.path, self.monitor, self.every = str(path), monitor, every
        self.save_best_only = bool(save_best_only)
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf

    def get_state(self):
        return {"best": _finite_or_none(self.best)}

    def set_state(self, state):
        self.best = _best_from(state["best"], self.mode)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        if self.save_best_only:
            if self.monitor not in (logs or {}):
                raise ValueError(f"ModelCheckpoint monitor={self.monitor!r} is not among the "
                                 f"epoch logs {sorted(logs or {})}")
            value = float(logs[self.monitor])
            if not (value < self.best if self.mode == "min" else value > self.best):
                return
            self.best = value
        self.model.save(self.path.format(epoch=epoch + 1))


class TerminateOnNaN(Callback):
    """Stop training cleanly when it diverges, instead of raising.

    Without it, ``fit`` raises ``fastbp.DivergenceError`` (a ``FloatingPointError``) at the
    first minibatch whose loss is NaN or infinite, or whose update makes a weight or the
    optimizer's state non-finite.  With it, ``fit`` returns normally at that point: the
    model keeps the weights of the last finite step (as it does before the error), the
    history records the epochs that ran and the unfinished epoch's minibatches that ran
    (``history.partial``), and ``stopped_epoch`` / ``stopped_minibatch`` (counted from 1)
    and ``message`` say where it stopped.  Unlike Keras's callback of the same name, the
    weights are never the NaN ones, and the check is made by the training loop at every
    minibatch, not by this callback.
    """

    def __init__(self, verbose=None):
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        self.stopped_epoch = self.stopped_minibatch = self.message = None

    def on_divergence(self, epoch, minibatch, message):
        """Called by the trainer with the failing step (counted from 0) and its description."""
        self.stopped_epoch, self.stopped_minibatch, self.message = epoch + 1, minibatch + 1, message
        self.model.stop_training = True
        verbose = self.verbose if self.verbose is not None else getattr(self.model, "_fit_verbose", 0)
        if verbose:
            print(f"TerminateOnNaN: {message}", flush=True)
