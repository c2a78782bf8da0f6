"""Buffers the kernels stream through start on a cache-line boundary (fastbp/_memory.py)."""
import numpy as np
import pytest

import fastbp
from fastbp._config import ALIGN_BYTES
from fastbp._memory import aligned_empty, aligned_zeros


def _aligned(a):
    return a.ctypes.data % ALIGN_BYTES == 0


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("shape", [0, 1, 3, 17, 5000, (2, 255), (3, 1, 7)])
def test_aligned_arrays_are_like_numpys(shape, dtype):
    for a, zeroed in ((aligned_empty(shape, dtype), False), (aligned_zeros(shape, dtype), True)):
        assert a.shape == np.empty(shape).shape and a.dtype == np.dtype(dtype)
        assert a.flags.c_contiguous and a.flags.writeable
        assert _aligned(a) or a.size == 0     # (an empty array has no first element)
        if zeroed:
            assert not a.any()
        a[...] = 1          # the whole array is writable memory of its own
        assert a.sum() == a.size


def test_model_buffers_are_aligned():
    m = fastbp.MLP([37, 100, 13], seed=0)
    X = np.random.default_rng(0).random((77, 37)).astype(np.float32)
    m.fit(X, np.arange(77) % 13, epochs=1, batch_size=16, optimizer=fastbp.Adam(1e-3), verbose=0)
    buffers, stats = m.workspace(16)
    for name, a in [("params", m.params), ("grads", m.grads), ("state", m.optimizer.state), ("stats", stats)] + \
            [(f"workspace {i}", b) for i, b in enumerate(buffers)]:
        assert _aligned(a), name
    # and pickling (rebuilds the buffers) keeps them so
    import pickle
    m2 = pickle.loads(pickle.dumps(m))
    assert _aligned(m2.params) and _aligned(m2.grads)
    np.testing.assert_array_equal(m2.params, m.params)
