"""Every private Numba / llvmlite name fastbp relies on still exists (fastbp/_numba_compat.py).

A Numba upgrade that renames or drops one fails here, by name, before anything compiles."""
import importlib

import numba
from numba.core import cpu

from fastbp import _numba_compat


def test_every_private_name_resolves():
    for module, dotted in _numba_compat.PRIVATE_NAMES:
        obj = importlib.import_module(module)
        for part in dotted.split("."):
            assert hasattr(obj, part), f"{module}.{dotted}: {part!r} is gone (numba {numba.__version__})"
            obj = getattr(obj, part)


def test_private_jit_options_are_known():
    known = set(dir(cpu.CPUTargetOptions))   # the options @njit accepts
    for name in _numba_compat.PRIVATE_OPTIONS:
        assert name in known, f"jit option {name!r} is gone (numba {numba.__version__})"


def test_the_shapes_fastbp_relies_on():
    from fastbp import _cache
    assert isinstance(_numba_compat.CacheImpl._locator_classes, list)
    assert _cache.FastbpLocator in _numba_compat.CacheImpl._locator_classes


def test_the_checked_versions_are_the_installed_ones_minor():
    """The versions written in _numba_compat are those installed (same minor release)."""
    import llvmlite
    assert numba.__version__.split(".")[:2] == _numba_compat.CHECKED_NUMBA.split(".")[:2]
    assert llvmlite.__version__.split(".")[:2] == _numba_compat.CHECKED_LLVMLITE.split(".")[:2]
