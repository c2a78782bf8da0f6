"""Optimizer updates over the one flat parameter buffer, step for step as torch.optim.

``hyper`` (float64) = [kind, lr, momentum, weight_decay, nesterov, beta1, beta2, eps,
step_size, bias_correction2_sqrt, steps, l2_weights, sum_sq_weights]: ``advance`` counts a
step and derives Adam's step_size = lr / (1 - beta1^t) and sqrt(1 - beta2^t) from the new
count t.  ``l2_weights`` (input) is an L2 coefficient applied to the weights only, never to
biases, as scikit-learn's ``alpha``: ``train_step`` adds ``l2_weights * W`` to each weight
gradient before the update and writes ``sum(W**2)`` (the weights before the update) into
``sum_sq_weights`` (output).  The optimizers leave both at 0, which turns the term off.
``state`` (2, P): SGD's momentum buffer in row 0; Adam's first and second moments.
"""
import math

from numba import njit

from .._config import INLINE_JIT, KERNEL_JIT, LEAF_JIT
from . import jit

NO_UPDATE, SGD, ADAM = 0, 1, 2
HYPER_SIZE = 13
STEPS = 10  # index of the step count in hyper
L2_WEIGHTS, SUM_SQ_WEIGHTS = 11, 12  # the weights-only L2 term (see above)
_CHUNK = 4096

_JIT = KERNEL_JIT
_LEAF = LEAF_JIT


@jit(**_LEAF)
def _sgd_chunk(p, g, state, hyper, lo, hi):
    t = p.dtype.type
    lr, momentum, wd = t(hyper[1]), t(hyper[2]), t(hyper[3])
    nesterov = hyper[4] != 0
    # views starting at 0: LLVM then knows no index is negative and vectorises
    p, g, buf = p[lo:hi], g[lo:hi], state[0, lo:hi]
    if momentum == 0:
        for i in range(p.shape[0]):
            p[i] = p[i] - lr * (g[i] + wd * p[i])  # p = p - lr (g + weight_decay p)
        return
    for i in range(p.shape[0]):
        d = g[i] + wd * p[i]                       # g + weight_decay * p
        buf[i] = momentum * buf[i] + d             # buf = momentum buf + g  (buf starts at 0)
        d = d + momentum * buf[i] if nesterov else buf[i]
        p[i] = p[i] - lr * d                       # p = p - lr g


@jit(**_LEAF)
def _adam_chunk(p, g, state, hyper, lo, hi):
    t = p.dtype.type
    wd = t(hyper[3])
    beta1, beta2, eps = t(hyper[5]), t(hyper[6]), t(hyper[7])
    step_size, bc2_sqrt = t(hyper[8]), t(hyper[9])
    one = t(1)
    p, g, m, v = p[lo:hi], g[lo:hi], state[0, lo:hi], state[1, lo:hi]
    for i in range(p.shape[0]):
        d = g[i] + wd * p[i]
        m[i] = m[i] + (one - beta1) * (d - m[i])                  # m = lerp(m, g, 1 - beta1)
        v[i] = beta2 * v[i] + (one - beta2) * d * d               # v = beta2 v + (1 - beta2) g^2
        p[i] = p[i] - step_size * (m[i] / (math.sqrt(v[i]) / bc2_sqrt + eps))


@njit(**INLINE_JIT)   # also called from Python (optimizers.py)
def advance(hyper):
    """Count one step; for Adam, the bias corrections of step t (float64, as torch)."""
    hyper[STEPS] += 1
    if int(hyper[0]) == ADAM:
        t = hyper[STEPS]
        hyper[8] = hyper[1] / (1.0 - hyper[5] ** t)   # step_size = lr / bias_correction1
        hyper[9] = math.sqrt(1.0 - hyper[6] ** t)     # sqrt(bias_correction2)


# Serial: the update streams params, grads (and state) once, at memory speed, and a second
# thread gained little: SGD over 2.1M float32 parameters (config L) took 462 us on two
# threads against 619 us on one (0.3 % of a step), 270k (MB) 91 us either way.  The
# parallel loop was one more parallel kernel for Numba to build on the first call.
@jit(**_JIT)
def update(params, grads, state, hyper):
    """One optimizer step, params -= lr * (transformed) grads, element-wise in chunks."""
    kind = int(hyper[0])
    for lo in range(0, params.shape[0], _CHUNK):
        hi = min(params.shape[0], lo + _CHUNK)
        if kind == SGD:
            _sgd_chunk(params, grads, state, hyper, lo, hi)
        elif kind == ADAM:
            _adam_chunk(params, grads, state, hyper, lo, hi)
