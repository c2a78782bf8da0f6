"""The training loop: epochs, shuffling, minibatches, validation, callbacks, progress.

A thin Python loop: each minibatch is one compiled call (forward, loss, backward,
update).  The loop shuffles indices, never the data, and weights each minibatch's mean
loss by its size, so the epoch loss is the mean over samples.
"""
import math
import shutil
import sys
import time
import warnings

import numpy as np

from . import _checkpoint, optimizers
from . import _validation as V
from .io import ModelFileError
from .callbacks import Callback, TerminateOnNaN
from .history import History
from ._epoch import CtrlC, DivergenceError, DivergenceWarning, Minibatches, divergence_message, training_steps
from .kernels.optim import HYPER_SIZE
from .kernels.step import threading_for

__all__ = ["fit", "DivergenceError", "DivergenceWarning"]

# an epoch whose mean loss exceeds this many times the loss before training warns once
_DIVERGENCE_FACTOR = 100.0


def _split(model, X, y, validation_data, validation_split):
    """Training rows, and the validation (X, y, rows) or None."""
    n = X.shape[0]
    rows = np.arange(n, dtype=np.int64)
    if validation_data is not None:
        try:
            Xv, yv = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a pair (X_val, y_val)") from None
        Xv = model.check_X(Xv, "validation_data[0]")
        yv = model.check_y(yv, Xv.shape[0], "validation_data[1]")
        return rows, (Xv, yv, np.arange(Xv.shape[0], dtype=np.int64))
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
            or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
    if validation_split == 0:
        return rows, None
    n_val = int(math.ceil(n * validation_split))
    if n_val >= n:
        raise ValueError(f"validation_split={validation_split} leaves no training samples out of {n}")
    # a seeded shuffle first, so data sorted by class still gives a fair split
    perm = model.rng.permutation(n).astype(np.int64)
    val_rows = np.sort(perm[:n_val])
    train_rows = np.sort(perm[n_val:])
    return train_rows, (X, y, val_rows)


def _in_notebook():
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


class _Progress:
    """tqdm bar on a terminal with verbose=1; one line per epoch otherwise; silent at 0."""

    def __init__(self, verbose, epochs, n_batches):
        if verbose not in (0, 1, 2) or isinstance(verbose, bool):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        self.verbose = verbose
        self.epochs = epochs
        self.n_batches = n_batches
        self.bar = None
        self.notebook = verbose == 1 and _in_notebook()
        self.tty = verbose == 1 and (self.notebook or sys.stdout.isatty())

    def start_epoch(self, epoch):
        if self.tty:
            from tqdm.auto import tqdm   # the widget in Jupyter (stdout is no tty there)
            # a width tqdm cannot find (TERM unset, some CI consoles) gave blank bars
            width = None if self.notebook else shutil.get_terminal_size((80, 24)).columns
            self.bar = tqdm(total=self.n_batches, desc=f"Epoch {epoch + 1}/{self.epochs}",
                            unit="batch", leave=True, file=sys.stdout, ncols=width)

    def batches(self, count, loss):
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update(count)

    def end_epoch(self, epoch, logs):
        text = " - ".join(f"{k}: {v:.4g}" for k, v in logs.items() if k != "epoch_time")
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.verbose:   # its own line: a bar's postfix does not fit a narrow terminal
            print(f"Epoch {epoch + 1}/{self.epochs} - {logs['epoch_time']:.2f}s - {text}", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _resume(model, path, optimizer):
    """Restore weights, optimizer and history from a checkpoint; return (optimizer, training)."""
    saved, training = _checkpoint.read(path, type(model))
    if saved.get_config() | {"seed": None} != model.get_config() | {"seed": None}:
        raise ValueError(f"resume: {path} holds a model {saved.get_config()}, but this model is "
                         f"{model.get_config()}")
    if saved.optimizer is None:
        raise ValueError(f"resume: {path} holds no optimizer state")
    if optimizer is not None:
        optimizer = optimizers.get(optimizer)
        # against the optimizer the run started with: callbacks (LearningRateScheduler,
        # ReduceLROnPlateau) may have changed the lr since, and the checkpoint's lr goes on
        start = training.get("optimizer_start") or saved.optimizer.get_config()  # (older checkpoints: none)
        if optimizer.get_config() != start:
            raise ValueError(f"resume: optimizer {optimizer!r} differs from the checkpoint's "
                             f"{optimizers.get(start)!r}")
        optimizer.state = saved.optimizer.state
        optimizer.steps = saved.optimizer.steps
        optimizer.lr = saved.optimizer.lr
    else:
        optimizer = saved.optimizer
    model.params[:] = saved.params
    model.rng.bit_generator.state = saved.rng.bit_generator.state
    model.dropout_seed = saved.dropout_seed
    model.epoch = saved.epoch
    return optimizer, training


def _history_from(training):
    history = History()
    saved = training.get("history") or {}
    history.epoch = list(saved.get("epoch", []))
    history.history = {k: list(v) for k, v in saved.get("history", {}).items()}
    return history


def _save_checkpoint(model, path, epoch, epochs, rng_start, history, optimizer_start, callbacks,
                     rng_state=None, partial=None):
    """``rng_state``: the RNG state to save instead of the model's current one, for a run
    stopped inside epoch ``epoch`` (counted from 0): the state from before the epoch's
    shuffle, so that a resumed run draws the same order.  ``partial``: the minibatches of
    that epoch that ran, their losses and hits; a resumed run goes on from the next one."""
    training = {"epoch": epoch, "epochs": epochs, "rng_state_start": rng_start,
                "history": {"epoch": list(history.epoch),
                            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()}},
                "optimizer_start": optimizer_start,
                "callbacks": [{"class": type(cb).__name__, "state": cb.get_state()} for cb in callbacks
                              if cb.get_state() is not None]}
    if partial is not None:
        training["partial"] = partial
    rng_now = model.rng.bit_generator.state
    if rng_state is not None:
        model.rng.bit_generator.state = rng_state
    try:
        _checkpoint.save(model, path, training)
    finally:
        model.rng.bit_generator.state = rng_now


def _partial_from(training, n_batches, path):
    """(minibatches done, their losses, hits) of a checkpoint's unfinished epoch, checked."""
    partial = training.get("partial")
    if partial is None:
        return 0, [], 0.0
    try:
        done, losses, hits = partial["minibatches"], partial["step_loss"], float(partial["hits"])
        ok = isinstance(done, int) and 0 < done < n_batches and len(losses) == done \
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in losses)
    except (TypeError, KeyError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"resume: {path} holds an unfinished epoch that does not match this run "
                         f"({n_batches} minibatches per epoch); call fit with the same data and batch_size")
    return done, [float(v) for v in losses], hits


def _restore_callbacks(callbacks, saved):
    """The checkpoint's callback states (plain JSON), the i-th of a class to the i-th callback of
    that class given to the resumed fit."""
    by_class = {}
    for entry in saved or []:
        by_class.setdefault(entry["class"], []).append(entry["state"])
    for cb in callbacks:
        states = by_class.get(type(cb).__name__)
        if states:
            try:
                cb.set_state(states.pop(0))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                if str(exc).startswith("resume:"):   # a state that differs from this run's
                    raise
                # a checkpoint is data from elsewhere: a malformed state is the file's fault
                raise ModelFileError(f"resume: the checkpoint's state for {type(cb).__name__} is "
                                     f"not valid ({type(exc).__name__}: {exc})") from None


def fit(model, X, y, epochs=10, batch_size=32, optimizer=None, shuffle=True,
        validation_data=None, validation_split=0.0, callbacks=None, verbose=1, n_threads=None,
        checkpoint=None, checkpoint_every=1, resume=None, metrics=None, sample_weight=None,
        class_weight=None, distributed=None):
    from . import metrics as _metrics
    metrics = _metrics.check(metrics, model.output)
    X = model.check_X(X)
    y = model.check_y(y, X.shape[0])
    w = V.sample_weights(sample_weight, class_weight, y, model.sizes[-1], model.output)
    y_train = y if w is None else np.column_stack([y, w]).astype(model.dtype)  # kernels/loss.py
    epochs = V.check_int("epochs", epochs, low=0)
    batch_size = V.check_int("batch_size", batch_size, low=1)
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
    callbacks = list(callbacks or [])
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be fastbp.Callback instances, got {cb!r}")
    checkpoint_every = V.check_int("checkpoint_every", checkpoint_every, low=1)
    start_epoch = 0
    training = None
    if resume is not None:
        optimizer, training = _resume(model, resume, optimizer)
        start_epoch = V.check_int("checkpoint epoch", training.get("epoch"), low=0)
        if epochs < start_epoch:
            raise ValueError(f"resume: {resume} is at epoch {start_epoch}; epochs={epochs} "
                             "counts all epochs of the run, so it must be at least that")
    if optimizer is None:
        optimizer = model.optimizer if model.optimizer is not None else optimizers.SGD()
    optimizer = optimizers.get(optimizer)
    optimizer_start = (training or {}).get("optimizer_start") or optimizer.get_config()
    state = optimizer.bind(model.params)
    model.optimizer = optimizer
    world = None
    if distributed is not None:
        if distributed != "mpi":
            raise ValueError(f"distributed must be None or 'mpi', got {distributed!r}")
        from . import distributed as _dist
        world = _dist.World()
        _dist.start(world, model, X, y_train, batch_size, epochs, optimizer, state)
        if n_threads is None and model.n_threads is None:
            n_threads = _dist.threads_per_rank(world)
        if world.rank != 0:   # rank 0 alone shows progress and writes files
            verbose, checkpoint = 0, None
            callbacks = [cb for cb in callbacks if not getattr(cb, "writes_files", False)]

    if training is not None:   # replay the validation split from the run's starting RNG state
        rng_now = model.rng.bit_generator.state
        rng_start = training["rng_state_start"]
        model.rng.bit_generator.state = rng_start
        train_rows, val = _split(model, X, y, validation_data, validation_split)
        model.rng.bit_generator.state = rng_now
    else:
        rng_start = model.rng.bit_generator.state
        train_rows, val = _split(model, X, y, validation_data, validation_split)
    n = train_rows.shape[0]
    batch_size = min(batch_size, n)
    n_batches = (n + batch_size - 1) // batch_size
    progress = _Progress(verbose, epochs, n_batches)
    ws, stats = model.workspace(batch_size)
    hyper = np.zeros(HYPER_SIZE, dtype=np.float64)
    history = History() if training is None else _history_from(training)
    model.history = history
    model.stop_training = False
    classify = model.output != "identity"
    threaded = threading_for(model.meta, batch_size)
    # each minibatch's loss sum, added up in one fixed order at the end of the epoch: the
    # epoch loss does not depend on how the minibatches were grouped into calls (timing)
    step_loss = np.zeros(n_batches, dtype=np.float64)
    resume_done, resume_losses, resume_hits = (0, [], 0.0) if training is None else \
        _partial_from(training, n_batches, resume)
    terminate = [cb for cb in callbacks if isinstance(cb, TerminateOnNaN)]

    steps = training_steps(model, X, y_train, batch_size, state, hyper, ws, stats, threaded, world)

    def after_call(k, count, start, stop):
        nonlocal first_loss
        if first_loss is None:   # loss of the untrained model's first minibatch
            first_loss = step_loss[0] / min(batch_size, n)
        progress.batches(count, math.fsum(step_loss[k:k + count]) / (stop - start))

    model._fit_verbose = verbose   # EarlyStopping(verbose=None) follows it
    with model._threads(n_threads), CtrlC() as ctrl_c:
        runner = Minibatches(hyper, optimizer, ctrl_c)
        for cb in callbacks:
            cb.set_model(model)
            cb.on_train_begin({})
        if training is not None:
            _restore_callbacks(callbacks, training.get("callbacks"))
        first_loss = None
        warned = False
        try:
            for epoch in range(start_epoch, epochs):
                if ctrl_c.requested:   # pressed during the last epoch's validation or callbacks
                    if checkpoint is not None:
                        _save_checkpoint(model, checkpoint, epoch, epochs, rng_start, history,
                                         optimizer_start, callbacks)
                    _interrupted(history, epoch, 0, n_batches, checkpoint)
                    break
                for cb in callbacks:
                    cb.on_epoch_begin(epoch, {})
                rng_epoch = model.rng.bit_generator.state
                order = model.rng.permutation(train_rows) if shuffle else train_rows
                progress.start_epoch(epoch)
                k, hits = 0, 0.0
                if epoch == start_epoch and resume_done:   # the rest of an unfinished epoch
                    k, hits = resume_done, resume_hits
                    step_loss[:k] = resume_losses
                    progress.batches(k, resume_losses[-1] / batch_size)
                optimizer.set_hyper(hyper)
                t0 = time.perf_counter()
                k, h, bad = runner.run(steps, order, batch_size, step_loss, k, after_call=after_call)
                hits += h
                if world is not None and ctrl_c.requested:   # the ranks would stop at different
                    world.abort("interrupted (Ctrl-C)")       # steps: stop them all
                seconds = time.perf_counter() - t0
                done = min(k * batch_size, n)   # samples of the minibatches kept
                logs = {"loss": math.fsum(step_loss[:k]) / done if done else float("nan")}
                if classify:
                    logs["accuracy"] = hits / done if done else float("nan")
                if k < n_batches:   # stopped inside the epoch: record what ran, then stop
                    progress.close()
                    logs["epoch_time"] = seconds
                    logs["samples_per_second"] = done / seconds if seconds > 0 else float("inf")
                    if checkpoint is not None and bad is None:   # resumable from here
                        _save_checkpoint(model, checkpoint, epoch, epochs, rng_start, history,
                                         optimizer_start, callbacks, rng_epoch,
                                         {"minibatches": k, "step_loss": step_loss[:k].tolist(),
                                          "hits": hits} if k else None)
                    if k > 0:
                        history.append(epoch, logs)
                        history.partial = {"epoch": epoch, "minibatches": k, "of": n_batches}
                    if bad is None:
                        _interrupted(history, epoch, k, n_batches, checkpoint)
                        break
                    message = divergence_message(epoch + 1, k + 1, n_batches, bad[1],
                                                  min(batch_size, n - k * batch_size))
                    if not terminate:
                        raise DivergenceError(message, epoch + 1, k + 1, bad[1])
                    for cb in terminate:
                        cb.on_divergence(epoch, k, message)
                    break
                logs["epoch_time"] = seconds
                logs["samples_per_second"] = n / seconds if seconds > 0 else float("inf")
                if val is not None:
                    ev = model._evaluate_rows(*val) if world is None else _dist.evaluate_rows(world, model, *val)
                    logs.update({"val_" + key: value for key, value in ev.items()})
                if metrics:   # a pass of predictions over the training (and validation) rows
                    logs.update(_metrics.compute(metrics, model.predict(X[train_rows]), y[train_rows], model.output))
                    if val is not None:
                        vX, vy = val[0][val[2]], val[1][val[2]]
                        logs.update({"val_" + k: v for k, v in
                                     _metrics.compute(metrics, model.predict(vX), vy, model.output).items()})
                history.append(epoch, logs)
                model.epoch += 1
                progress.end_epoch(epoch, logs)
                if (not warned and first_loss is not None and math.isfinite(first_loss)
                        and logs["loss"] > _DIVERGENCE_FACTOR * max(first_loss, 1e-3)):
                    warned = True
                    warnings.warn(
                        f"training diverged in epoch {epoch + 1}: the mean loss {logs['loss']:.4g} "
                        f"is over {_DIVERGENCE_FACTOR:g} times the loss before training "
                        f"({first_loss:.4g}); lower the learning rate or scale the inputs",
                        DivergenceWarning, stacklevel=3)
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
                if checkpoint is not None and ((epoch + 1) % checkpoint_every == 0
                                               or epoch + 1 == epochs or model.stop_training):
                    _save_checkpoint(model, checkpoint, epoch + 1, epochs, rng_start, history, optimizer_start,
                                     callbacks)
                if model.stop_training:
                    break
            else:
                if ctrl_c.requested:   # pressed during the last epoch's end (its checkpoint is written)
                    _interrupted(history, epochs, 0, n_batches, checkpoint)
        except BaseException as exc:
            if world is not None and world.size > 1:   # never leave the other ranks waiting
                world.abort(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            progress.close()
            for cb in callbacks:
                cb.on_train_end({})
    return history


def _interrupted(history, epoch, k, n_batches, checkpoint=None):
    history.interrupted = True
    where = (f"during epoch {epoch + 1}, after minibatch {k} of {n_batches}" if k else
             f"after epoch {epoch}")
    text = f"\nTraining interrupted {where}; the model keeps the weights of the last completed step."
    if checkpoint is not None:
        text += f" Checkpoint {checkpoint} written; fit(..., resume=...) goes on from there."
    print(text, file=sys.stderr, flush=True)
