"""Arrays whose data start on a cache-line boundary, for the buffers the kernels stream
through (parameters, gradients, optimizer state, workspaces).

NumPy's large arrays start 16 bytes past a 64-byte boundary (the header of glibc's
mmap'ed chunk), where half of the kernels' 32-byte vector loads and stores would straddle
two cache lines (what alignment buys: docs/performance.md, "Packing and alignment").
"""
import numpy as np

from ._config import ALIGN_BYTES


def aligned_empty(shape, dtype):
    """Like ``np.empty(shape, dtype)`` (C order), the first element on an ALIGN_BYTES boundary."""
    dtype = np.dtype(dtype)
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN_BYTES, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN_BYTES
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def aligned_zeros(shape, dtype):
    """Like ``np.zeros(shape, dtype)``, the first element on an ALIGN_BYTES boundary."""
    a = aligned_empty(shape, dtype)
    a[...] = 0
    return a
