"""The SIMD vector operations of kernels/simd.py, each against NumPy, in both dtypes."""
import numpy as np
import pytest
from numba import njit

from fastbp._config import VEC_BYTES
from fastbp.kernels.simd import (lanes, sload, sstore, vadd, vbroadcast, vfma, vlane, vload, vload_block,
                                 vload_part, vstore, vstore_block, vstore_part, vtranspose, vzero)

DTYPES = [np.float32, np.float64]


@njit
def _ops(x, out):
    """out rows: fma(x[0:L], x[L:2L], x[2L:3L]), broadcast(x[5]) + x[L:2L], zero, lanes."""
    w = lanes(x)
    vstore(out, 0, vfma(vload(x, 0), vload(x, w), vload(x, 2 * w)))
    vstore(out, w, vadd(vbroadcast(x, 5), vload(x, w)))
    vstore(out, 2 * w, vzero(x))
    for i in range(w):
        sstore(out, 3 * w + i, vlane(vload(x, 3), i) + sload(x, 0))
    return w


@njit
def _transpose(src, dst, offset):
    w = lanes(src)
    vstore_block(dst, offset, w + 1, vtranspose(vload_block(src, offset, w + 1)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_vector_ops(dtype):
    w = VEC_BYTES // np.dtype(dtype).itemsize
    x = np.arange(1, 4 * w + 1, dtype=dtype) / 7
    out = np.full(4 * w, np.nan, dtype)
    assert _ops(x, out) == w
    np.testing.assert_allclose(out[:w], x[:w] * x[w:2 * w] + x[2 * w:3 * w], rtol=1e-6)
    np.testing.assert_array_equal(out[w:2 * w], x[5] + x[w:2 * w])
    np.testing.assert_array_equal(out[2 * w:3 * w], 0)
    np.testing.assert_array_equal(out[3 * w:], x[3:3 + w] + x[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_block_transpose_with_stride_and_offset(dtype):
    w = VEC_BYTES // np.dtype(dtype).itemsize
    src = np.arange(3 + w * (w + 1), dtype=dtype)
    dst = np.full_like(src, -1)
    _transpose(src, dst, 3)
    block = src[3:3 + w * (w + 1)].reshape(w, w + 1)[:, :w]          # rows w + 1 apart
    got = dst[3:3 + w * (w + 1)].reshape(w, w + 1)
    np.testing.assert_array_equal(got[:, :w], block.T)
    np.testing.assert_array_equal(got[:, w:], -1)                      # gaps untouched
    np.testing.assert_array_equal(dst[:3], -1)


@njit
def _part(src, offset, n, dst, dst_offset):
    """dst[0:lanes] = the masked load of n values at src[offset:], and its first n lanes
    stored again at dst[dst_offset:]."""
    v = vload_part(src, offset, n)
    vstore(dst, 0, v)
    vstore_part(dst, dst_offset, n, v)


@pytest.mark.parametrize("dtype", DTYPES)
def test_partial_load_and_store_touch_only_n_values(dtype):
    """A masked load gives the first n values and zeros; a masked store writes exactly n
    values (none for n <= 0, a whole vector for n >= lanes) and leaves its neighbours
    alone.  (That neither reads nor writes past the n values is checked with bounds
    checks compiled in: test_reliability_run.py's kernels at every level.)"""
    w = VEC_BYTES // np.dtype(dtype).itemsize
    for n in (-1, 0, 1, w - 1, w, w + 3):
        m = max(0, min(n, w))
        src = np.arange(1, 4 + m, dtype=dtype)[: 3 + m]                   # 3 + m values: offset 3, m read
        dst = np.full(4 * w, -1, dtype)
        _part(src, 3, n, dst, 2 * w + 1)
        np.testing.assert_array_equal(dst[:w], np.concatenate([src[3:3 + m], np.zeros(w - m, dtype)]))
        np.testing.assert_array_equal(dst[2 * w + 1:2 * w + 1 + m], src[3:3 + m])
        np.testing.assert_array_equal(dst[w:2 * w + 1], -1)
        np.testing.assert_array_equal(dst[2 * w + 1 + m:], -1)
