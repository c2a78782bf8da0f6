"""Training as users see it: throughput of ``MLP.fit``, peak memory of an epoch, and a
learning check (the loss after a fixed number of steps from a fixed seed).

Configurations S, M and MB (docs/benchmarks.md, "Configurations"); L and XL live in
bench_large.py so a quick run can leave them out with ``--bench '^(?!bench_large)'``.
"""
import time

import numpy as np

import fastbp

from . import common
from .common import DTYPES, SMALL, THREADS


class TrainThroughput(common.ThreadsPinned):
    """Samples per second of ``model.fit`` over one epoch, best of ``epochs_timed`` epochs.

    The wall clock spans the whole ``fit`` call (input checks, shuffling, every minibatch),
    which is what a user waits for.  Best-of rather than mean: on a shared 2-core machine
    the noise is one-sided (other work only ever makes us slower).
    """

    params = [SMALL, DTYPES, THREADS]
    param_names = ["config", "dtype", "threads"]
    unit = "samples/s"
    epochs_timed = 2
    timeout = 180
    version = 1

    def setup(self, config, dtype, threads):
        self._setup_training(config, dtype, threads)

    def track_samples_per_second(self, config, dtype, threads):
        best = float("inf")
        for _ in range(1 if common.tiny() else self.epochs_timed):
            t0 = time.perf_counter()
            self.model.fit(self.X, self.y, epochs=1, batch_size=self.batch,
                           optimizer=self.optimizer, shuffle=True, verbose=0,
                           n_threads=self.n_threads)
            best = min(best, time.perf_counter() - t0)
        return self.X.shape[0] / best

    def time_epoch(self, config, dtype, threads):
        # The same epoch, timed by asv: asv assumes smaller is better for every figure, so
        # its regression detection and `asv compare` read a faster commit as a "worse"
        # samples/s.  This time_ twin gives them the right direction, with statistics.
        self.model.fit(self.X, self.y, epochs=1, batch_size=self.batch, optimizer=self.optimizer,
                       shuffle=True, verbose=0, n_threads=self.n_threads)

    # an epoch takes 0.03-3 s: at most 5 samples or 10 s per process
    time_epoch.repeat = (1, 5, 10.0)
    time_epoch.number = 1


class TrainPeakMemory(common.ThreadsPinned):
    """Peak resident memory of a process that trains one epoch (data and model included).

    A workspace or copy that appears in the hot path shows up here first."""

    params = [SMALL, DTYPES]
    param_names = ["config", "dtype"]
    timeout = 120
    version = 1

    def setup(self, config, dtype):
        self._pin_threads("all")
        self.sizes, self.batch, n = common.config(config)
        self.X, self.y = common.make_data(self.sizes, n, dtype)
        self.model = common.make_model(self.sizes, dtype)
        common.warm_up(self.model, self.X, self.y, self.batch)

    def peakmem_fit_one_epoch(self, config, dtype):
        self.model.fit(self.X, self.y, epochs=1, batch_size=self.batch,
                       optimizer=fastbp.SGD(lr=0.1), shuffle=True, verbose=0)


class Learning:
    """The loss after a fixed number of SGD steps on the embedded digits, from seed 0.

    Config S's shapes (64-32-10, batch 32) on real data, 5 epochs = 285 steps.  The
    figure should stay put from commit to commit (results do not depend on the thread
    count); a jump means a change altered what is learned, not just how fast.
    """

    params = [DTYPES]
    param_names = ["dtype"]
    epochs = 5
    batch = 32
    timeout = 120
    version = 1

    def setup(self, dtype):
        self.X, self.y = fastbp.load_digits(dtype=dtype)
        if common.tiny():
            self.X, self.y = self.X[:256], self.y[:256]
        common.warm_up(self._model(dtype), self.X, self.y, self.batch)

    def _model(self, dtype):
        return fastbp.MLP([64, 32, 10], activation="sigmoid", output="softmax", dtype=dtype,
                          seed=common.SEED)

    def _train(self, dtype):
        model = self._model(dtype)
        model.fit(self.X, self.y, epochs=self.epochs, batch_size=self.batch,
                  optimizer=fastbp.SGD(lr=0.5), shuffle=True, verbose=0)
        return model.evaluate(self.X, self.y)

    def track_loss_after_285_steps(self, dtype):
        loss = self._train(dtype)["loss"]
        if not np.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss}")
        return loss

    track_loss_after_285_steps.unit = "cross-entropy"

    def track_accuracy_after_285_steps(self, dtype):
        return self._train(dtype)["accuracy"]

    track_accuracy_after_285_steps.unit = "fraction"
