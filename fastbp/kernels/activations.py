"""Activations and their derivatives, written in terms of the activation's output ``a``.

Codes are small integers so one compiled kernel serves every activation: the branch is
taken once per element in an epilogue, never in the inner product loop.  ``one`` is the
number 1 in the array's dtype, so float32 arithmetic stays float32, and ``one - one`` is
the 0 of that dtype (a literal 0, an int, would turn a float32 result into float64).
"""
from numba import njit

from .._config import INLINE_JIT
from .vexp import exp, tanh

IDENTITY, SIGMOID, TANH, RELU = 0, 1, 2, 3
CODES = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU}
# Not an activation: the delta product of a layer under dropout multiplies by its ref, which
# holds f'(a) / (1 - p) or 0 already (kernels/dropout.py).
MASKED = 4


@njit(**INLINE_JIT)
def sigmoid(z, one):
    # a = 1 / (1 + exp(-z)), from e = exp(-|z|) <= 1 so nothing overflows:
    # z >= 0: 1 / (1 + e);  z < 0: e / (1 + e).  Branch-free, so it vectorises.
    e = exp(-abs(z))
    s = one / (one + e)
    return s if z >= 0 else e * s


@njit(**INLINE_JIT)
def activate(z, code, one):
    """a = f(z)"""
    if code == SIGMOID:
        return sigmoid(z, one)
    if code == TANH:
        return tanh(z)
    if code == RELU:
        return z if (z > 0 or z != z) else one - one  # max(z, 0); NaN passes through
    return z


@njit(**INLINE_JIT)
def derivative(a, code, one):
    """da/dz as a function of the output a = f(z)"""
    if code == SIGMOID:
        return a * (one - a)          # sigmoid' = a (1 - a)
    if code == TANH:
        return one - a * a            # tanh' = 1 - a^2
    if code == RELU:
        return one if a > 0 else one - one  # relu' = [z > 0] = [a > 0]
    return one                        # identity' = 1
