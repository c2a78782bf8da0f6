"""Compile the kernels ahead of need."""
import time

import numpy as np

# Two networks per dtype: every product of the first is below SERIAL_FLOPS (it trains with
# the specialisation compiled without threads, kernels/step.py's threading_for); the second's
# are not, at batch 256 (2 * 256 * 64 * 64 flops), so it takes the threaded one.
_NETWORKS = (([2, 2, 2], 2), ([64, 64, 2], 256))


def warmup(dtypes=("float32", "float64"), verbose=False):
    """Compile, or load from the on-disk cache, every kernel a model of these dtypes uses.

    Activations and output layers are run-time codes inside the same compiled functions, so
    a fit, predict and evaluate per dtype of a tiny network (compiled without threads) and
    of one large enough to use them cover every model.  Returns the seconds spent per dtype.
    """
    from .kernels.finite import all_finite
    from .model import MLP
    seconds = {}
    for dtype in dtypes:
        t = time.perf_counter()
        for sizes, batch in _NETWORKS:
            model = MLP(sizes, dtype=dtype, seed=0)
            X = np.random.default_rng(0).random((batch, sizes[0])).astype(dtype)
            y = np.arange(batch) % sizes[-1]
            model.fit(X, y, epochs=1, batch_size=batch, verbose=0)
            model.predict(X)
            model.evaluate(X, y)
        all_finite(X)   # the input check of large arrays (fastbp/_validation.py)
        seconds[np.dtype(dtype).name] = time.perf_counter() - t
        if verbose:
            print(f"fastbp.warmup: {np.dtype(dtype).name} ready in {seconds[np.dtype(dtype).name]:.2f} s")
    return seconds
