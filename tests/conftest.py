import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/naive.py


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def tol(dtype):
    """Relative tolerance for comparing a dtype's result with a float64 reference."""
    return 2e-5 if np.dtype(dtype) == np.float32 else 1e-12
