"""Threading: choose a safe Numba threading layer on import, and set thread counts.

Numba's ``workqueue`` layer aborts the process when two Python threads run parallel
code at once, and GNU OpenMP is not fork-safe.  Intel TBB is both; its pip package puts
``libtbb.so.12`` under ``<prefix>/lib`` where Numba does not look, so we load it first.
"""
import contextlib
import ctypes
import glob
import os
import sys

import numba

from ._validation import check_int


def _choose_threading_layer():
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return  # the user chose; respect it
    for prefix in {sys.prefix, sys.base_prefix}:
        for lib in sorted(glob.glob(os.path.join(prefix, "lib", "libtbb.so.12*"))):
            try:
                ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            numba.config.THREADING_LAYER = "tbb"
            return


_choose_threading_layer()


def max_threads():
    """The number of worker threads Numba started with (``NUMBA_NUM_THREADS``)."""
    return numba.config.NUMBA_NUM_THREADS


def get_num_threads():
    """The number of threads fastbp's kernels use in this Python thread."""
    return numba.get_num_threads()


def _check(n, name="n_threads"):
    n = check_int(name, n, low=1)
    if n > max_threads():
        raise ValueError(f"{name} must be between 1 and {max_threads()} (NUMBA_NUM_THREADS), got {n}")
    return n


def set_num_threads(n):
    """Use ``n`` threads in every kernel called from this Python thread from now on."""
    numba.set_num_threads(_check(n))


@contextlib.contextmanager
def using_threads(n):
    """Run the body with ``n`` threads (``None``: unchanged); restore the count on exit or error."""
    if n is None:
        yield
        return
    n = _check(n)
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def threading_layer():
    """The threading layer Numba uses, once a parallel kernel has run."""
    try:
        return numba.threading_layer()
    except ValueError:
        return numba.config.THREADING_LAYER
