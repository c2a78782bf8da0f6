"""Is every value finite?  The input check of fit/predict, at memory speed on all threads.

A float is NaN or infinite exactly when all bits of its exponent are set.  The kernel
reads the floats' bits as unsigned integers and counts the values whose exponent field
equals the mask: an integer reduction, without a branch, so LLVM vectorises it (and no
floating-point fast-math rule can fold it away).
"""
import numpy as np
from numba import njit, prange

from .._config import ENTRY_JIT
from .simd import vector_width

BLOCK = 1 << 14   # values per task
EXPONENT = {np.dtype(np.float32): np.uint32(0x7F800000), np.dtype(np.float64): np.uint64(0x7FF0000000000000)}
UNSIGNED = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


@njit(parallel=True, **ENTRY_JIT)
def count_non_finite(bits, mask):
    """How many values of bits (1-D, floats viewed as unsigned integers) have every bit of
    the exponent field ``mask`` set, i.e. are NaN or +-inf."""
    vector_width()
    n = bits.shape[0]
    n_blocks = (n + BLOCK - 1) // BLOCK
    counts = np.zeros(n_blocks, np.int64)
    for t in prange(n_blocks):
        # (prange's index is unsigned: int64 keeps the bounds signed, as the slice needs)
        blk = bits[np.int64(t) * BLOCK: min(n, (np.int64(t) + 1) * BLOCK)]
        c = 0
        for i in range(blk.shape[0]):
            c += (blk[i] & mask) == mask
        counts[t] = c
    total = 0
    for t in range(n_blocks):
        total += counts[t]
    return total


def all_finite(a):
    """True when no value of the C-contiguous float32/float64 array a is NaN or infinite."""
    return count_non_finite(a.reshape(a.size).view(UNSIGNED[a.dtype]), EXPONENT[a.dtype]) == 0
