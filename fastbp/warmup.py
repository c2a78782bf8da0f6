"""Compile the kernels ahead of need."""
import time

import numpy as np


def warmup(dtypes=("float32", "float64"), verbose=False):
    """Compile, or load from the on-disk cache, every kernel a model of these dtypes uses.

    Activations and output layers are run-time codes inside the same compiled functions, so
    one tiny fit, predict and evaluate per dtype covers every model.  Returns the seconds
    spent per dtype.
    """
    from .kernels.finite import all_finite
    from .model import MLP
    seconds = {}
    for dtype in dtypes:
        t = time.perf_counter()
        model = MLP([2, 2, 2], dtype=dtype, seed=0)
        X = np.eye(2, dtype=dtype)
        y = np.array([0, 1])
        model.fit(X, y, epochs=1, batch_size=2, verbose=0)
        model.predict(X)
        model.evaluate(X, y)
        all_finite(X)   # the input check of large arrays (fastbp/_validation.py)
        seconds[np.dtype(dtype).name] = time.perf_counter() - t
        if verbose:
            print(f"fastbp.warmup: {np.dtype(dtype).name} ready in {seconds[np.dtype(dtype).name]:.2f} s")
    return seconds
