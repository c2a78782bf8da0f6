"""Optimizer updates over the one flat parameter buffer, step for step as torch.optim.

``hyper`` (float64, HYPER_SIZE) holds the optimizer's numbers, each slot named below:
KIND, LR, MOMENTUM, WEIGHT_DECAY, NESTEROV, BETA1, BETA2, EPS, then STEP_SIZE and
BC2_SQRT, which ``advance`` derives when it counts a step: Adam's step_size = lr / (1 -
beta1^t) and sqrt(1 - beta2^t) from the new count t = hyper[STEPS].  ``L2_WEIGHTS``
(input) is an L2 coefficient applied to the weights only, never to biases, as
scikit-learn's ``alpha``: ``train_step`` adds ``l2_weights * W`` to each weight gradient
before the update and writes ``sum(W**2)`` (the weights before the update) into
``SUM_SQ_WEIGHTS`` (output).  The optimizers leave both at 0, which turns the term off.
``state`` (2, P): SGD's momentum buffer in row 0; Adam's first and second moments.
``hyper[SCHEDULE]`` (0: none) and the four numbers after it: a learning-rate schedule
evaluated before each counted step from the step count (``schedule_lr``); the optimizers
write them when their lr is a schedule with unit="step" (callbacks.py).
scikit-learn's per-step terms (sklearn.py), derived in the compiled loop from slots the
estimators set once per epoch: the L2 coefficient of a minibatch of b rows is
``hyper[L2_WEIGHTS] = alpha / (denominator * hyper[L2_SCALE])`` with hyper[L2_ALPHA] =
alpha and the denominator hyper[L2_DENOM], or b when that is 0; ``hyper[L2_LOSS]`` adds
up ``0.5 alpha sum(W**2) b / denominator`` over the steps (scikit-learn's L2 term of the
loss times the batch's rows).  When hyper[ADAM_EPS_SCALE] != 0, Adam's epsilon of step t
is ``hyper[ADAM_EPS0] / (hyper[ADAM_EPS_SCALE] sqrt(1 - beta2^t))`` (``advance``).
"""
import math

import numpy as np
from numba import njit

from .._config import INLINE_JIT, KERNEL_JIT
from . import jit
from .simd import vector_width

NO_UPDATE, SGD, ADAM = 0, 1, 2   # hyper[KIND]
# hyper's slots (module-level ints: constants in compiled code, costing nothing)
KIND, LR, MOMENTUM, WEIGHT_DECAY, NESTEROV = 0, 1, 2, 3, 4   # NESTEROV: 1.0 or 0.0
BETA1, BETA2, EPS = 5, 6, 7                                  # Adam
STEP_SIZE, BC2_SQRT = 8, 9                                   # Adam's, derived by advance
STEPS = 10  # the step count
L2_WEIGHTS, SUM_SQ_WEIGHTS = 11, 12  # the weights-only L2 term (see above)
SCHEDULE = 13  # the schedule's code; its numbers are hyper[SCHEDULE_ARGS]
SCHEDULE_ARGS = slice(SCHEDULE + 1, SCHEDULE + 5)
FIRST_ROW = 18  # the minibatch row of a data-parallel shard's first row (dropout masks)
STOPPED_AT = 19  # set by a compiled call: 1 + the minibatch it stopped before (0: none)
L2_ALPHA, L2_SCALE, L2_DENOM, L2_LOSS = 20, 21, 22, 23   # scikit-learn's L2 term (see above)
ADAM_EPS0, ADAM_EPS_SCALE = 24, 25                       # scikit-learn's Adam epsilon
HYPER_SIZE = 26
NO_SCHEDULE, STEP_DECAY, EXPONENTIAL_DECAY, COSINE_DECAY = 0, 1, 2, 3

_JIT = KERNEL_JIT


@njit(**INLINE_JIT)   # also called from Python (optimizers.py)
def advance(hyper):
    """Count one step; for Adam, the bias corrections of step t (float64, as torch)."""
    hyper[STEPS] += 1
    if int(hyper[KIND]) == ADAM:
        t = hyper[STEPS]
        hyper[STEP_SIZE] = hyper[LR] / (1.0 - hyper[BETA1] ** t)   # lr / bias_correction1
        hyper[BC2_SQRT] = math.sqrt(1.0 - hyper[BETA2] ** t)       # sqrt(bias_correction2)
        if hyper[ADAM_EPS_SCALE] != 0.0:               # scikit-learn's epsilon, on sqrt(v) unscaled
            hyper[EPS] = hyper[ADAM_EPS0] / (hyper[ADAM_EPS_SCALE] * hyper[BC2_SQRT])


# Without fast-math, and compiled on its own (inline="always" would take the caller's
# flags): the same operations in the same order as the schedules' Python __call__
# (callbacks.py), so the lr of every step is bit for bit the one Python computes.
@jit(**dict(_JIT, fastmath=False))
def schedule_lr(hyper):
    """The lr of the next step, t = hyper[STEPS] steps done: the formula hyper[SCHEDULE] of
    callbacks.py's StepDecay, ExponentialDecay or CosineDecay (unit="step")."""
    kind = int(hyper[SCHEDULE])
    t = np.int64(hyper[STEPS])             # (integer arithmetic on the count, as Python's)
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
    return hyper[LR]


# Serial: the update streams params, grads (and state) once, at memory speed, where a
# second thread gains little (docs/performance.md) and a parallel loop would be one more
# parallel kernel for Numba to build on the first call.  The loops are written out here
# rather than in a function per optimizer: each compiled function costs its own compile.
# One formula per optimizer, inlined into both loops below: the update, and the check
# that runs before it (a diverging step is refused before it touches the weights).
@njit(**INLINE_JIT)
def _sgd(p, g, buf, lr, momentum, wd, nesterov, plain):
    """(new p, new momentum buffer) of one element; ``plain``: no momentum (buf unused)."""
    d = g + wd * p                                # g + weight_decay * p
    if plain:
        return p - lr * d, buf                    # p = p - lr (g + weight_decay p)
    b = momentum * buf + d                        # buf = momentum buf + g  (buf starts at 0)
    d = d + momentum * b if nesterov else b
    return p - lr * d, b                          # p = p - lr g


@njit(**INLINE_JIT)
def _adam(p, g, m, v, wd, beta1, beta2, eps, step_size, bc2_sqrt, one):
    """(new p, m, v) of one element."""
    d = g + wd * p
    m = m + (one - beta1) * (d - m)               # m = lerp(m, g, 1 - beta1)
    v = beta2 * v + (one - beta2) * d * d         # v = beta2 v + (1 - beta2) g^2
    return p - step_size * (m / (math.sqrt(v) / bc2_sqrt + eps)), m, v


@jit(**_JIT)
def update(params, grads, state, hyper, apply):
    """One optimizer step, params -= lr * (transformed) grads, element by element, when
    ``apply``; otherwise nothing is written and the result says whether every new
    parameter and state value would be finite: a count of values not below infinity in
    magnitude (comparisons, which fast-math's reassociation cannot fold away as it can
    a sum of x - x; no flag here assumes finite values)."""
    vector_width()
    t = params.dtype.type
    kind = int(hyper[KIND])
    lr, momentum, wd = t(hyper[LR]), t(hyper[MOMENTUM]), t(hyper[WEIGHT_DECAY])
    p, g = params, grads
    inf = t(np.inf)
    bad = 0
    if kind == SGD:
        plain = momentum == 0
        nesterov = hyper[NESTEROV] != 0
        buf = state[0]
        for i in range(p.shape[0]):
            q, b = _sgd(p[i], g[i], buf[i], lr, momentum, wd, nesterov, plain)
            if apply:
                p[i] = q
                if not plain:
                    buf[i] = b
            else:
                bad += 0 if abs(q) < inf and (plain or abs(b) < inf) else 1   # (plain: b is not a state)
    elif kind == ADAM:
        beta1, beta2, eps = t(hyper[BETA1]), t(hyper[BETA2]), t(hyper[EPS])
        step_size, bc2_sqrt = t(hyper[STEP_SIZE]), t(hyper[BC2_SQRT])
        one = t(1)
        m, v = state[0], state[1]
        for i in range(p.shape[0]):
            q, mi, vi = _adam(p[i], g[i], m[i], v[i], wd, beta1, beta2, eps, step_size, bc2_sqrt, one)
            if apply:
                p[i] = q
                m[i] = mi
                v[i] = vi
            else:
                bad += 0 if abs(q) < inf and abs(mi) < inf and abs(vi) < inf else 1
    return bad == 0
