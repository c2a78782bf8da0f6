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

from .._config import INLINE_JIT, KERNEL_JIT
from . import jit
from .simd import vector_width

NO_UPDATE, SGD, ADAM = 0, 1, 2
HYPER_SIZE = 13
STEPS = 10  # index of the step count in hyper
L2_WEIGHTS, SUM_SQ_WEIGHTS = 11, 12  # the weights-only L2 term (see above)

_JIT = KERNEL_JIT


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
# parallel loop was one more parallel kernel for Numba to build on the first call.  The
# loops are written out here rather than in a function per optimizer: each compiled
# function costs its own compile on the first call.
@jit(**_JIT)
def update(params, grads, state, hyper):
    """One optimizer step, params -= lr * (transformed) grads, element by element."""
    vector_width()
    t = params.dtype.type
    kind = int(hyper[0])
    lr, momentum, wd = t(hyper[1]), t(hyper[2]), t(hyper[3])
    p, g = params, grads
    if kind == SGD and momentum == 0:
        for i in range(p.shape[0]):
            p[i] = p[i] - lr * (g[i] + wd * p[i])  # p = p - lr (g + weight_decay p)
    elif kind == SGD:
        nesterov = hyper[4] != 0
        buf = state[0]
        for i in range(p.shape[0]):
            d = g[i] + wd * p[i]                       # g + weight_decay * p
            buf[i] = momentum * buf[i] + d             # buf = momentum buf + g  (buf starts at 0)
            d = d + momentum * buf[i] if nesterov else buf[i]
            p[i] = p[i] - lr * d                       # p = p - lr g
    elif kind == ADAM:
        beta1, beta2, eps = t(hyper[5]), t(hyper[6]), t(hyper[7])
        step_size, bc2_sqrt = t(hyper[8]), t(hyper[9])
        one = t(1)
        m, v = state[0], state[1]
        for i in range(p.shape[0]):
            d = g[i] + wd * p[i]
            m[i] = m[i] + (one - beta1) * (d - m[i])                  # m = lerp(m, g, 1 - beta1)
            v[i] = beta2 * v[i] + (one - beta2) * d * d               # v = beta2 v + (1 - beta2) g^2
            p[i] = p[i] - step_size * (m[i] / (math.sqrt(v[i]) / bc2_sqrt + eps))
