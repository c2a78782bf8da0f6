"""Numba kernels: explicit loops, no BLAS.  Inputs are trusted: validate before calling.

Only the entry points (step.py's train_steps, eval_batch and predict_batch, finite.py's
count_non_finite) are compiled with the wrapper that lets Python call them.  Every other
kernel is compiled with ``jit`` below for calls from compiled code only (see
_config.KERNEL_JIT); ``python_callable(kernel)`` gives a copy Python can call.
"""
import functools

from numba import njit

from .._numba_compat import CPUDispatcher


class CompiledOnly(CPUDispatcher):
    """A kernel compiled without the wrapper for calls from Python.  Numba would crash if
    Python called it (numba issue #2541); this raises instead."""

    def __call__(self, *args, **kwargs):
        raise TypeError(f"fastbp kernel {self.py_func.__qualname__} is compiled for calls from compiled "
                        "code only; fastbp.kernels.python_callable(kernel) returns a copy Python can call")


def jit(dispatcher=CompiledOnly, **options):
    """``njit(**options)``, or, when the options drop the Python wrapper, a CompiledOnly kernel
    (or one of the subclass ``dispatcher``)."""
    if not options.get("no_cpython_wrapper"):
        return njit(**options)
    options = dict(options, nopython=True)
    if options.pop("cache", False):
        raise ValueError("a kernel that Python cannot call is compiled into its callers, never cached")
    return lambda f: dispatcher(py_func=f, locals={}, targetoptions=options)


@functools.cache
def python_callable(kernel):
    """The same kernel (its Python source and compiler options) compiled so that Python
    can call it: for tests and benchmarks that run one kernel on its own.  A kernel
    Python can call already is returned as it is."""
    if not isinstance(kernel, CompiledOnly):
        return kernel
    options = {k: v for k, v in kernel.targetoptions.items() if k != "nopython"}
    return njit(**dict(options, no_cpython_wrapper=False, no_cfunc_wrapper=False))(kernel.py_func)
