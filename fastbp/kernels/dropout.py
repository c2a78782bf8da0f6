"""Inverted dropout on a hidden layer's output, with masks from a counter-based generator.

Unit (i, j) of hidden layer l in training step t is kept when
``u(key_l, t, i * n + j) >> 11 >= threshold_l`` (53 bits against threshold = round(p 2^53)),
where u is splitmix64's mixing function applied to a counter:

    base = mix(key_l + (t + 1) * GAMMA)           one per (seed, layer, step)
    u    = mix(base + (i * n + j + 1) * GAMMA)    one per element

and i counts rows from the start of the step's whole minibatch: a data-parallel rank
(distributed.py) whose shard starts at row i0 passes i0, so its rows get the masks they
would get in one process.

so a mask depends only on (seed, layer, step, row, column): never on the thread count,
the tiling, or how steps are grouped into compiled calls, and nothing is stored to draw
it again.  A kept unit is scaled by s = 1 / (1 - p), a dropped one is 0.  The backward
pass needs f'(a) of the activation before dropout and the same mask: the forward pass
writes ``d = f'(a) s`` (kept) or 0 (dropped) into a buffer of the layer's shape, and the
delta product below multiplies by it (activations.MASKED in gemm's EPI_DACT epilogue):
dz = (dz_next W) * d, so the delta of a dropped unit is 0.

``meta[l, DROP_THRESHOLD]`` holds the threshold (0: no dropout, the pass is skipped) and
``meta[l, DROP_KEY]`` the layer's key (model.py derives it from the seed and l).
"""
import numpy as np
from numba import prange

from .._config import KERNEL_JIT, LEAF_JIT, SERIAL_ELEMENTS
from . import jit
from .activations import derivative
from .gemm import _SerialOnlyAllowed
from .simd import vector_width

DROP_THRESHOLD, DROP_KEY = 5, 6   # meta columns (kernels/step.py)
MANTISSA = 53                      # bits of u compared with the threshold
GAMMA = 0x9E3779B97F4A7C15         # splitmix64's increment (the golden ratio in 64 bits)
_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_U64 = (1 << 64) - 1


def mix_py(z):
    """splitmix64's finaliser on a Python int (model.py's layer keys; the tests)."""
    z &= _U64
    z = ((z ^ (z >> 30)) * _M1) & _U64
    z = ((z ^ (z >> 27)) * _M2) & _U64
    return z ^ (z >> 31)


def layer_key(seed, layer):
    """The key of hidden layer ``layer``'s masks, from the model's dropout seed; int64 bits."""
    k = mix_py(mix_py(seed) + (layer + 1) * GAMMA)
    return k - (1 << 64) if k >= 1 << 63 else k


def threshold(p):
    """round(p 2^53): a unit is dropped when its 53-bit number is below it."""
    return int(round(float(p) * (1 << MANTISSA)))


def scale(thr):
    """1 / (1 - p) for the threshold's rate p = thr / 2^53, in float64."""
    return 1.0 / (1.0 - thr * 2.0 ** -MANTISSA)


# The counter arithmetic is uint64 throughout, constants included: Numba, like NumPy,
# turns a mix of uint64 and a signed integer into float64.
@jit(**LEAF_JIT)
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


@jit(**LEAF_JIT)
def _rows(a, d, act, thr, base, row0, i0, i1):
    """Rows i0 <= i < i1: a = a s, d = f'(a) s where kept; a = d = 0 where dropped."""
    vector_width()
    n = a.shape[1]
    one = a.dtype.type(1)
    zero = one - one   # 0 in a's dtype (a literal 0 would turn a float32 select into float64)
    s = a.dtype.type(1.0 / (1.0 - thr * 2.0 ** -MANTISSA))
    t = np.uint64(thr)
    g = np.uint64(GAMMA)
    for i in range(i0, i1):
        row = a[i]
        drow = d[i]
        c0 = np.uint64((row0 + i) * n + 1)
        for j in range(n):
            keep = (_mix(base + (c0 + np.uint64(j)) * g) >> np.uint64(64 - MANTISSA)) >= t
            v = row[j]
            drow[j] = derivative(v, act, one) * s if keep else zero
            row[j] = v * s if keep else zero


@jit(dispatcher=_SerialOnlyAllowed, parallel=True, **KERNEL_JIT)
def dropout(a, d, act, thr, key, step, row0, threaded):
    """Inverted dropout on a (b, n), a layer's output after its activation ``act``, in
    place; d (b, n) receives f'(a) s or 0 (see top).  ``step``: the global step count;
    ``row0``: the minibatch row of a's first row.
    Rows in parallel unless threaded is SERIAL_ONLY (gemm.py) or the layer is small; each
    element's result is the same either way."""
    b, n = a.shape
    base = _mix(np.uint64(key) + np.uint64(step + 1) * np.uint64(GAMMA))
    rows = max(1, SERIAL_ELEMENTS // max(n, 1))     # rows per task
    n_tasks = (b + rows - 1) // rows
    if threaded is None or n_tasks == 1:
        _rows(a, d, act, thr, base, row0, 0, b)
    else:
        for t in prange(n_tasks):
            _rows(a, d, act, thr, base, row0, t * rows, min(b, (t + 1) * rows))
