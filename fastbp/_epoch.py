"""The minibatch loop shared by every way of training (``fit``, the streaming fit and the
scikit-learn estimators): minibatches run many to a compiled call, divergence read from
the kernels, Ctrl-C taken between calls.

A compiled call (kernels/step.py ``train_steps``) runs a run of minibatches; a call is
sized from the speed measured so far to last about ``SECONDS_PER_CALL``: short enough for
a live progress bar and a prompt Ctrl-C, long enough that Python's dispatch cost
disappears.  How the minibatches are grouped into calls changes no result: each
minibatch's loss goes into its own entry of ``step_loss``, added up in one fixed order by
the caller.
"""
import math
import signal
import threading
import time

from .kernels.optim import STOPPED_AT
from .kernels.step import train_steps

SECONDS_PER_CALL = 0.05
MAX_PER_CALL = 4096


class DivergenceWarning(RuntimeWarning):
    """The training loss rose by orders of magnitude while the weights stayed finite."""


class DivergenceError(FloatingPointError, ValueError):
    """Training diverged: a minibatch's loss was not finite, or its update made a weight or
    the optimizer's state non-finite.  The model keeps the weights (and optimizer state)
    of the last finite step; ``epoch`` and ``minibatch`` (counted from 1) name the step
    that failed, ``loss`` its loss (mean over its samples).  A ValueError too, as
    scikit-learn's "Solver produced non-finite parameter weights" is."""

    def __init__(self, message, epoch, minibatch, loss):
        super().__init__(message)
        self.epoch, self.minibatch, self.loss = epoch, minibatch, loss


def divergence_message(epoch, minibatch, n_batches, loss, samples):
    what = (f"the loss is {loss / samples:.4g}" if not math.isfinite(loss) else
            f"its update made the weights or the optimizer state non-finite (its loss {loss / samples:.4g})")
    kept = (f"the weights after minibatch {minibatch - 1}" if minibatch > 1 else
            f"the weights from before epoch {epoch}")
    of = f" of {n_batches}" if n_batches else ""
    return (f"training diverged in epoch {epoch}, minibatch {minibatch}{of}: {what}; "
            f"the model keeps {kept}, the last finite step; lower the learning rate or scale the inputs")


def checked_steps(steps, start, stop, hyper, step_loss):
    """Run ``steps(start, stop, step_loss)``, compiled minibatches of rows [start, stop)
    that return (loss sum, hits), and read how they ended.  The kernels never apply a
    diverging step (train_steps: a minibatch whose loss is not finite, or whose update
    would make a weight or the optimizer state non-finite, stops the call before its
    update and sets hyper[STOPPED_AT]), so the model always holds the last finite step
    and nothing needs copying here.  Returns (loss sum, hits, bad) of the minibatches
    kept: bad is None when every minibatch was finite, else (j, loss sum of minibatch j)
    for the first one, counted in this call, that was not."""
    loss, hits = steps(start, stop, step_loss)
    stopped = int(hyper[STOPPED_AT])
    if stopped == 0:
        return loss, hits, None
    j = stopped - 1
    return math.fsum(step_loss[:j]), hits, (j, float(step_loss[j]))


class CtrlC:
    """While training runs in the main thread, Ctrl-C (SIGINT) only sets ``requested``;
    the loop looks at it after each compiled call, a step boundary, so a
    KeyboardInterrupt never surfaces in the middle of Python code (the validation pass, a
    callback, the history).  Elsewhere (another thread, SIGINT ignored or handled by the
    application) nothing changes."""

    def __enter__(self):
        self.requested = False
        self._before = None
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._before = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        if self._before is not None:
            signal.signal(signal.SIGINT, self._before)
        return False


def training_steps(model, X, y, batch_size, state, hyper, ws, stats, threaded, world=None):
    """``steps(order, start, stop, out)``: the compiled minibatches order[start:stop] of a
    training run (kernels/step.py train_steps), or their data-parallel version across
    the ranks of ``world`` (distributed.py run_steps)."""
    if world is not None:
        from . import distributed

        def steps(order, start, stop, out):
            return distributed.run_steps(world, X, y, order, start, stop, batch_size, model, state,
                                         hyper, ws, stats, out, threaded)
        return steps

    def steps(order, start, stop, out):
        return train_steps(X, y, order, start, stop, batch_size, model.params, model.grads, state,
                           hyper, model.meta, model._out_code, ws, stats, out, True, threaded)
    return steps


class Minibatches:
    """Runs the minibatches of an epoch, many to a compiled call, for one training run
    (the call size it has learned carries over from epoch to epoch).

    ``optimizer.sync(hyper)`` takes the step count back after every call; ``ctrl_c``
    (a CtrlC, or None) stops the loop between calls.  ``one_per_call``: a call per
    minibatch, for callers that set per-step values in ``hyper`` from Python."""

    def __init__(self, hyper, optimizer, ctrl_c=None, one_per_call=False):
        self.hyper, self.optimizer, self.ctrl_c = hyper, optimizer, ctrl_c
        self.one_per_call = one_per_call
        self.per_call = 1

    def run(self, steps, order, batch_size, step_loss, k=0, before_call=None, after_call=None):
        """Minibatches k, k + 1, ... of the rows ``order`` in runs of ``steps(order, start,
        stop, out)`` (training_steps: compiled, returning (loss sum, hits), ``out``
        receiving each minibatch's loss sum: step_loss[k:...]).  ``before_call(k)`` runs before the call that starts with
        minibatch k, ``after_call(k, count, start, stop)`` after a call that kept all its
        ``count`` minibatches.  Stops at the end, at a diverging minibatch, or when Ctrl-C
        was pressed.  Returns (k, hits, bad): the minibatches done (the epoch's, from 0),
        the hits of those run here, and None or (j, loss sum) of the minibatch j that
        diverged (then k = j: it is not done)."""
        n = order.shape[0]
        n_batches = -(-n // batch_size)
        hits, bad = 0.0, None

        def call(start, stop, out):
            return steps(order, start, stop, out)
        ctrl_c = self.ctrl_c
        try:
            while k < n_batches and not (ctrl_c is not None and ctrl_c.requested):
                count = 1 if self.one_per_call else min(self.per_call, n_batches - k)
                start, stop = k * batch_size, min((k + count) * batch_size, n)
                if before_call is not None:
                    before_call(k)
                t = time.perf_counter()
                _, h, bad = checked_steps(call, start, stop, self.hyper, step_loss[k:k + count])
                seconds = time.perf_counter() - t
                self.optimizer.sync(self.hyper)
                hits += h
                if bad is not None:
                    k += bad[0]
                    bad = (k, bad[1])
                    break
                if after_call is not None:
                    after_call(k, count, start, stop)
                k += count
                self.per_call = max(1, min(MAX_PER_CALL, int(SECONDS_PER_CALL * count / max(seconds, 1e-9))))
        except KeyboardInterrupt:      # raised by other means than CtrlC's handler
            self.optimizer.sync(self.hyper)   # (the steps that completed are counted)
            if ctrl_c is None:
                raise
            ctrl_c.requested = True
        return k, hits, bad
