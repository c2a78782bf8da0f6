"""Shared pieces of the asv suite: the benchmark configurations, seeded data, warm-up.

Everything here runs in a benchmark's ``setup``: data is built from a fixed seed and
every compiled kernel is called once before anything is timed, so no figure ever
includes Numba compilation.

``FASTBP_BENCH_TINY=1`` shrinks every configuration (widths capped, a few batches per
epoch).  The figures are then meaningless; it exists so tests/test_benchmarks.py can run
each benchmark once in seconds and catch a broken one.
"""
import os
import re

import numpy as np

import fastbp

# name: (layer sizes, batch size, samples per epoch); docs/benchmarks.md, "Configurations"
CONFIGS = {
    "S": ((64, 32, 10), 32, 20_000),
    "M": ((784, 256, 256, 10), 128, 20_000),
    "MB": ((784, 256, 256, 10), 1024, 20_000),
    "L": ((1024, 1024, 1024, 10), 512, 8_192),
    "XL": ((4096, 4096, 4096, 10), 512, 2_048),
}
SMALL = ["S", "M", "MB"]
LARGE = ["L", "XL"]
DTYPES = ["float32", "float64"]
# "all" is resolved at run time to the threads Numba started with (NUMBA_NUM_THREADS).
THREADS = [1, "all"]
SEED = 0

_TINY_WIDTH = 48
_TINY_BATCHES = 3


def tiny():
    return os.environ.get("FASTBP_BENCH_TINY", "") not in ("", "0")


def shape(spec):
    """(sizes, batch, samples) for a configuration name of CONFIGS, or for a shape written
    as ``SIZES@BATCH`` or ``SIZES@BATCHxSAMPLES`` (``784-300-100-10@128x20000``: layer widths
    joined by '-'; samples default to 32 minibatches, at least 8,192), for the scripts that
    time other widths and depths than the five configurations."""
    if spec in CONFIGS:
        return CONFIGS[spec]
    m = re.fullmatch(r"(\d+(?:-\d+)+)@(\d+)(?:x(\d+))?", spec)
    if m is None:
        raise ValueError(f"configuration {spec!r} is neither one of {', '.join(CONFIGS)} "
                         "nor a shape SIZES@BATCH[xSAMPLES] such as 784-300-100-10@128x20000")
    sizes = tuple(int(v) for v in m.group(1).split("-"))
    batch = int(m.group(2))
    n = int(m.group(3)) if m.group(3) else max(32 * batch, 8192)
    if min(sizes) < 1 or batch < 1 or n < batch:
        raise ValueError(f"configuration {spec!r}: widths and batch must be >= 1, samples >= batch")
    return sizes, batch, n


def config(name):
    """(sizes, batch, samples) for a configuration name, shrunk when tiny() is on."""
    sizes, batch, n = CONFIGS[name]
    if tiny():
        sizes = tuple(min(s, _TINY_WIDTH) for s in sizes[:-1]) + (sizes[-1],)
        batch = min(batch, 32)
        n = min(n, _TINY_BATCHES * batch)
    return sizes, batch, n


def n_threads(threads):
    """Resolve the ``threads`` parameter: an int, or "all" for every Numba thread."""
    if threads == "all":
        return fastbp._threads.max_threads()
    return int(threads)


def make_data(sizes, n, dtype, seed=SEED):
    """Seeded inputs in [0, 1) and integer labels for a softmax output."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, sizes[0]), dtype=np.float64).astype(dtype)
    y = rng.integers(0, sizes[-1], size=n).astype(np.int64)
    return X, y


def make_model(sizes, dtype, seed=SEED):
    """The benchmark network: sigmoid hidden layers, softmax cross-entropy output."""
    return fastbp.MLP(list(sizes), activation="sigmoid", output="softmax", dtype=dtype, seed=seed)


def warm_up(model, X, y, batch):
    """Compile (or load from Numba's cache) every kernel one training epoch and an
    evaluation call need, on a couple of minibatches; the model's weights change a bit."""
    k = min(X.shape[0], 2 * batch)
    model.fit(X[:k], y[:k], epochs=1, batch_size=batch, optimizer=fastbp.SGD(lr=0.1),
              shuffle=False, verbose=0)


class ThreadsPinned:
    """Mixin: pin the thread count in setup, restore it in teardown."""

    def _pin_threads(self, threads):
        self._threads_before = fastbp.get_num_threads()
        self.n_threads = n_threads(threads)
        fastbp.set_num_threads(self.n_threads)

    def _setup_training(self, config_name, dtype, threads):
        """Pin threads; seeded data and model of a configuration; an SGD optimizer; warm-up."""
        self._pin_threads(threads)
        self.sizes, self.batch, n = config(config_name)
        self.X, self.y = make_data(self.sizes, n, dtype)
        self.model = make_model(self.sizes, dtype)
        self.optimizer = fastbp.SGD(lr=0.1)
        warm_up(self.model, self.X, self.y, self.batch)

    def teardown(self, *params):
        before = getattr(self, "_threads_before", None)
        if before is not None:
            fastbp.set_num_threads(before)
