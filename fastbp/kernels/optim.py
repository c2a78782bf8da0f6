"""Optimizer updates over the one flat parameter buffer, step for step as torch.optim.

``hyper`` (float64) = [kind, lr, momentum, weight_decay, nesterov, beta1, beta2, eps,
step_size, bias_correction2_sqrt, steps, l2_weights, sum_sq_weights]: ``advance`` counts a
step and derives Adam's step_size = lr / (1 - beta1^t) and sqrt(1 - beta2^t) from the new
count t.  ``l2_weights`` (input) is an L2 coefficient applied to the weights only, never to
biases, as scikit-learn's ``alpha``: ``train_step`` adds ``l2_weights * W`` to each weight
gradient before the update and writes ``sum(W**2)`` (the weights before the update) into
``sum_sq_weights`` (output).  The optimizers leave both at 0, which turns the term off.
``state`` (2, P): SGD's momentum buffer in row 0; Adam's first and second moments.
``hyper[SCHEDULE]`` (0: none) and the four numbers after it: a learning-rate schedule
evaluated before each counted step from the step count (``schedule_lr``); the optimizers
write them when their lr is a schedule with unit="step" (callbacks.py).
"""
import math

import numpy as np
from numba import njit

from .._config import INLINE_JIT, KERNEL_JIT
from . import jit
from .simd import vector_width

NO_UPDATE, SGD, ADAM = 0, 1, 2
HYPER_SIZE = 19
STEPS = 10  # index of the step count in hyper
L2_WEIGHTS, SUM_SQ_WEIGHTS = 11, 12  # the weights-only L2 term (see above)
SCHEDULE = 13  # the schedule's code; its numbers are hyper[SCHEDULE + 1 : SCHEDULE + 5]
FIRST_ROW = 18  # the minibatch row of a data-parallel shard's first row (dropout masks)
NO_SCHEDULE, STEP_DECAY, EXPONENTIAL_DECAY, COSINE_DECAY = 0, 1, 2, 3

_JIT = KERNEL_JIT


@njit(**INLINE_JIT)   # also called from Python (optimizers.py)
def advance(hyper):
    """Count one step; for Adam, the bias corrections of step t (float64, as torch)."""
    hyper[STEPS] += 1
    if int(hyper[0]) == ADAM:
        t = hyper[STEPS]
        hyper[8] = hyper[1] / (1.0 - hyper[5] ** t)   # step_size = lr / bias_correction1
        hyper[9] = math.sqrt(1.0 - hyper[6] ** t)     # sqrt(bias_correction2)


# Without fast-math, and compiled on its own (inline="always" would take the caller's
# flags): the same operations in the same order as the schedules' Python __call__
# (callbacks.py), so the lr of every step is bit for bit the one Python computes.
@jit(**dict(_JIT, fastmath=False))
def schedule_lr(hyper):
    """The lr of the next step, t = hyper[STEPS] steps done: the formula hyper[SCHEDULE] of
    callbacks.py's StepDecay, ExponentialDecay or CosineDecay (unit="step")."""
    kind = int(hyper[SCHEDULE])
    t = np.int64(hyper[STEPS])
    lr0, a, b, c = hyper[SCHEDULE + 1], hyper[SCHEDULE + 2], hyper[SCHEDULE + 3], hyper[SCHEDULE + 4]
    if kind == STEP_DECAY:                 # a = step_size, b = factor
        return lr0 * b ** float(t // np.int64(a))
    if kind == EXPONENTIAL_DECAY:          # a = gamma
        return lr0 * a ** float(t)
    if kind == COSINE_DECAY:               # a = steps, b = warm-up steps, c = min_lr
        n, w = np.int64(a), np.int64(b)
        if t < w:
            return lr0 * float(t + 1) / float(w + 1)
        x = min(1.0, float(t - w) / float(n - w))
        return c + 0.5 * (lr0 - c) * (1.0 + math.cos(math.pi * x))
    return hyper[1]


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
