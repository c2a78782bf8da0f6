"""fit on data that arrives in chunks: an iterable of (X, y) pairs, read once per epoch.

Minibatches are cut from the stream in its order and may span chunk boundaries, so the
weights are the same as ``fit(X_all, y_all, shuffle=False)`` on the chunks concatenated.
Only the rows of the current chunk and of one unfinished minibatch are held in memory.
"""
import math

import numpy as np

from . import _validation as V
from . import optimizers
from ._epoch import DivergenceError, Minibatches, divergence_message, training_steps
from .callbacks import Callback
from .history import History
from .kernels.optim import HYPER_SIZE
from .kernels.step import threading_for


def is_stream(X, y):
    """True for fit(chunks) with y omitted: a function, or an iterable that is not array-like."""
    if y is not None or isinstance(X, np.ndarray) or hasattr(X, "__array__") or hasattr(X, "shape"):
        return False
    return callable(X) or hasattr(X, "__iter__")


def _epoch_chunks(data):
    """A fresh iterator over the chunks: ``data()`` when callable, else ``iter(data)``.
    A one-shot generator works for one epoch; the next one would see no data."""
    return data() if callable(data) else iter(data)


def fit_stream(model, data, epochs, batch_size, optimizer, callbacks, verbose, n_threads):
    epochs = V.check_int("epochs", epochs, low=0)
    batch_size = V.check_int("batch_size", batch_size, low=1)
    callbacks = list(callbacks or [])
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be fastbp.Callback instances, got {cb!r}")
    if optimizer is None:
        optimizer = model.optimizer if model.optimizer is not None else optimizers.SGD()
    optimizer = optimizers.get(optimizer)
    state = optimizer.bind(model.params)
    model.optimizer = optimizer
    ws, stats = model.workspace(batch_size)
    hyper = np.zeros(HYPER_SIZE, dtype=np.float64)
    history = History()
    model.history = history
    model.stop_training = False
    classify = model.output != "identity"
    runner = Minibatches(hyper, optimizer)

    def run(Xb, yb, stop, epoch, losses):
        """The minibatches of rows [0, stop) of the chunk; their losses appended to losses."""
        threaded = threading_for(model.meta, min(batch_size, stop))
        step_loss = np.zeros(-(-stop // batch_size))
        steps = training_steps(model, Xb, yb, batch_size, state, hyper, ws, stats, threaded)
        _, h, bad = runner.run(steps, np.arange(stop, dtype=np.int64), batch_size, step_loss)
        if bad is not None:
            j, loss = bad
            k = len(losses) + j   # minibatches of the epoch before the failing one
            raise DivergenceError(divergence_message(epoch + 1, k + 1, None, loss,
                                                      min(batch_size, stop - j * batch_size)),
                                  epoch + 1, k + 1, loss)
        losses.extend(step_loss.tolist())
        return h

    with model._threads(n_threads):
        for cb in callbacks:
            cb.set_model(model)
            cb.on_train_begin({})
        try:
            for epoch in range(epochs):
                for cb in callbacks:
                    cb.on_epoch_begin(epoch, {})
                optimizer.set_hyper(hyper)
                losses = []   # each minibatch's loss sum, added up in order at the end
                hits = 0.0
                n = 0
                rest_X = rest_y = None   # rows of an unfinished minibatch
                for i, chunk in enumerate(_epoch_chunks(data)):
                    try:
                        Xc, yc = chunk
                    except (TypeError, ValueError):
                        raise ValueError(f"chunk {i} of the data must be a pair (X, y)") from None
                    Xc = model.check_X(Xc, f"chunk {i} X")
                    yc = model.check_y(yc, Xc.shape[0], f"chunk {i} y")
                    if rest_X is not None:
                        Xc, yc = np.concatenate([rest_X, Xc]), np.concatenate([rest_y, yc])
                    full = Xc.shape[0] // batch_size * batch_size
                    if full:
                        hits, n = hits + run(Xc, yc, full, epoch, losses), n + full
                    rest_X, rest_y = (Xc[full:], yc[full:]) if full < Xc.shape[0] else (None, None)
                if rest_X is not None:   # the last, smaller minibatch of the epoch
                    hits += run(np.ascontiguousarray(rest_X), np.ascontiguousarray(rest_y), rest_X.shape[0],
                                epoch, losses)
                    n += rest_X.shape[0]
                if n == 0:
                    raise ValueError(f"the data gave no samples in epoch {epoch + 1}; pass a list of "
                                     "chunks or a function returning a new iterator for each epoch")
                logs = {"loss": math.fsum(losses) / n}
                if classify:
                    logs["accuracy"] = hits / n
                history.append(epoch, logs)
                model.epoch += 1
                if verbose:
                    print(f"Epoch {epoch + 1}/{epochs} - " +
                          " - ".join(f"{k}: {v:.4g}" for k, v in logs.items()), flush=True)
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
                if model.stop_training:
                    break
        finally:
            for cb in callbacks:
                cb.on_train_end({})
    return history
