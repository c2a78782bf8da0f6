"""Every private name of Numba (and llvmlite) that fastbp relies on, in one place.

None of these is a documented API: a Numba release may rename or drop any of them.
Checked against numba 0.68.1 with llvmlite 0.50.0, the versions ``pyproject.toml``
allows and CI installs (``numba>=0.68.1,<0.69``).  After a Numba upgrade, run
``tests/test_numba_compat.py`` first: it fails on the first name that no longer resolves.

    name                                           what fastbp uses it for
    numba.core.bytecode.FunctionIdentity._unique_ids   the counter behind compiled symbol
                                                   names; renumbered per process (_cache.py)
    numba.core.caching._CacheLocator               base class of fastbp's cache locator
    numba.core.caching.CacheImpl._locator_classes  the locators Numba tries, in order; ours
                                                   goes first (older Numbas: _CacheImpl)
    numba.np.ufunc.parallel._launch_threads        starts the threading layer, which registers
                                                   the C symbols get/set_parallel_chunksize
                                                   that kernels/gemm.py calls by name
    jit option ``_nrt``                            False: no reference counting in leaf kernels
                                                   (_config.LEAF_JIT)
    jit options ``no_cpython_wrapper``,            kernels compiled for calls from compiled
      ``no_cfunc_wrapper``                         code only (_config.KERNEL_JIT, ENTRY_JIT)
    numba.core.registry.CPUDispatcher(py_func=,    the dispatcher behind kernels.CompiledOnly,
      locals=, targetoptions=), .targetoptions     built without njit's wrapper
    llvmlite.ir FunctionAttributes (a set whose    string attributes such as
      add() accepts only known names)              "prefer-vector-width" (kernels/simd.py)
"""
import itertools

from numba.core import bytecode, caching
from numba.core.registry import CPUDispatcher  # noqa: F401  (kernels.CompiledOnly's base)

CHECKED_NUMBA = "0.68.1"
CHECKED_LLVMLITE = "0.50.0"

# the base class of a cache locator (caching.py's locators derive from it)
CacheLocator = caching._CacheLocator

# Numba's CacheImpl, whose class attribute _locator_classes lists the locators in order
CacheImpl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")

# jit options: no reference counting of arrays passed or viewed (the caller keeps them alive)
NO_NRT = {"_nrt": False}


def renumber_functions(start):
    """Number the functions this process compiles from ``start`` on (Numba counts from 1
    in every process and writes the number into each symbol name).  False when this
    Numba has no such counter (then nothing changes)."""
    if not hasattr(bytecode.FunctionIdentity, "_unique_ids"):
        return False
    bytecode.FunctionIdentity._unique_ids = itertools.count(start)
    return True


def register_cache_locator(cls):
    """Make ``cls`` the first locator Numba asks where to cache a function (once)."""
    if cls not in CacheImpl._locator_classes:
        CacheImpl._locator_classes.insert(0, cls)


def launch_threads():
    """Start Numba's threading layer (idempotent), so that the C functions it exports,
    such as ``set_parallel_chunksize``, are known to LLVM by symbol name."""
    from numba.np.ufunc.parallel import _launch_threads
    _launch_threads()


def add_string_attribute(attributes, name):
    """Add an LLVM string attribute (``'"key"="value"'``) to an llvmlite function's
    attributes: their own add() accepts only the attribute names llvmlite knows."""
    set.add(attributes, name)


# (module, dotted name) of each private name above, for tests/test_numba_compat.py
PRIVATE_NAMES = [
    ("numba.core.bytecode", "FunctionIdentity._unique_ids"),
    ("numba.core.caching", "_CacheLocator"),
    ("numba.core.caching", "CacheImpl._locator_classes"),
    ("numba.np.ufunc.parallel", "_launch_threads"),
    ("numba.core.registry", "CPUDispatcher"),
    ("llvmlite.ir.values", "FunctionAttributes"),
]
# jit options fastbp passes that Numba's documentation does not list
PRIVATE_OPTIONS = ["_nrt", "no_cpython_wrapper", "no_cfunc_wrapper"]
