"""Output layers with their losses (PyTorch's default conventions) and the gradient dL/dz.

``z`` holds the last layer's pre-activations (logits) for the b rows of the minibatch;
the kernel overwrites it with the network's outputs, writes ``dz = dL/dz`` for the mean
loss over the minibatch, and returns the summed per-sample loss and the number of hits.

    softmax + cross-entropy   L = mean_r [logsumexp(z_r) - z_r,y_r]       dz = (p - onehot(y)) / b
    sigmoid + binary CE       L = mean_rj [softplus(z) - t z]             dz = (a - t) / (b n_out)
    identity + squared error  L = mean_rj (z - t)^2                       dz = 2 (z - t) / (b n_out)

Targets live in ``y`` (n, n_out) in the model's dtype; for softmax, ``y[:, 0]`` holds the
class index.  An extra last column of ``y`` (``y[:, 1]`` for softmax, ``y[:, n_out]``
otherwise) holds per-sample weights w (``fit(sample_weight=...)``, Keras's semantics): each
sample's loss and its row of dz are multiplied by w, and the mean still divides by b, so
weights of 1 give the unweighted figures exactly.  Losses are computed from the logits, so they stay finite where a
probability rounds to 0 or 1.  Per-sample figures go into ``stats`` and are added up
serially: the sum has a fixed order whatever the thread count.
"""
import math

import numpy as np

from .._config import KERNEL_JIT, LEAF_JIT, STRICT_FASTMATH, STRICT_LEAF_JIT
from . import jit
from .activations import sigmoid
from .simd import vector_width
from .vexp import exp

SOFTMAX_XENT, SIGMOID_BCE, IDENTITY_MSE = 0, 1, 2
CODES = {"softmax": SOFTMAX_XENT, "sigmoid": SIGMOID_BCE, "identity": IDENTITY_MSE}

_JIT = KERNEL_JIT
_LEAF = LEAF_JIT
# Every sum here is in source order, whatever the vector width (_config.STRICT_FASTMATH):
# softmax's denominator reaches the weights through dz, and the loss sums are reported.
_STRICT = dict(KERNEL_JIT, fastmath=STRICT_FASTMATH)


@jit(**STRICT_LEAF_JIT)
def _softmax_inplace(z, r):
    """z[r] = softmax(z[r]), stably (max subtracted).  Returns (logsumexp of the old z[r], argmax)."""
    n = z.shape[1]
    m = z[r, 0]
    best = 0
    for j in range(1, n):
        if z[r, j] > m:
            m = z[r, j]
            best = j
    vector_width()
    for j in range(n):           # element by element: vectorised
        z[r, j] = exp(z[r, j] - m)
    s = z.dtype.type(0)
    for j in range(n):           # the sum, in order
        s += z[r, j]
    for j in range(n):
        z[r, j] = z[r, j] / s
    return m + math.log(s), best


# Serial: the output layer's O(b n_out) work is a small fraction of the product that
# computes z (O(b n_out n_in)); a parallel loop here would be another parallel kernel for
# Numba to build on the first call (about a second) for a few microseconds a step.  The
# loops are written out here, not in a function per loss: each compiled function costs
# its own compile on the first call.
@jit(**_STRICT)
def output_loss(z, y, idx, dz, stats, code):
    """Apply the output function in place, write dz = dL/dz; return (sum of per-sample losses, hits)."""
    vector_width()
    b, n = z.shape
    one = z.dtype.type(1)   # 1 in z's dtype (float32 stays float32); one - one is its 0
    wcol = y.shape[1] - 1   # the weight column, when y has one more column than targets
    weighted = wcol == (1 if code == SOFTMAX_XENT else n)
    if code == SOFTMAX_XENT:
        inv_b = z.dtype.type(1.0 / b)
        for r in range(b):
            label = int(y[idx[r], 0])
            w = y[idx[r], wcol] if weighted else one
            zy = z[r, label]
            lse, best = _softmax_inplace(z, np.int64(r))   # int64 row: one signature for every caller
            for j in range(n):
                dz[r, j] = (z[r, j] - (one if j == label else one - one)) * (w * inv_b)  # dL/dz = w (p - onehot) / b
            stats[0, r] = w * (lse - zy)                                                   # -w log p_y
            stats[1, r] = 1.0 if best == label else 0.0
    else:
        for r in range(b):
            w = y[idx[r], wcol] if weighted else one
            scale = w * z.dtype.type(1.0 / (b * n))
            loss = 0.0
            hits = 0.0
            for j in range(n):
                t = y[idx[r], j]
                x = z[r, j]
                if code == SIGMOID_BCE:
                    a = sigmoid(x, one)
                    # softplus(x) - t x, with softplus(x) = max(x, 0) + log1p(exp(-|x|))
                    loss += max(x, x - x) + math.log1p(math.exp(-abs(x))) - t * x  # x - x: a 0 of x's type
                    hits += 1.0 if (a > 0.5) == (t > 0.5) else 0.0
                    dz[r, j] = (a - t) * scale                             # dL/dz = (a - t) / (b n)
                    z[r, j] = a
                else:
                    d = x - t
                    loss += d * d
                    dz[r, j] = (d + d) * scale                              # dL/dz = 2 (z - t) / (b n)
            stats[0, r] = w * loss / n
            stats[1, r] = hits / n
    loss = 0.0
    hits = 0.0
    for r in range(b):
        loss += stats[0, r]
        hits += stats[1, r]
    return loss, hits


@jit(**_LEAF)
def _output_function_row(z, r, code):
    vector_width()
    if code == SOFTMAX_XENT:
        _softmax_inplace(z, r)
    elif code == SIGMOID_BCE:
        one = z.dtype.type(1)
        for j in range(z.shape[1]):
            z[r, j] = sigmoid(z[r, j], one)


@jit(**_JIT)
def output_function(z, code):
    """z = softmax(z) / sigmoid(z) / z in place: the network's outputs, for predict (serial,
    as output_loss)."""
    for r in range(z.shape[0]):
        _output_function_row(z, np.int64(r), code)   # int64 row, as output_loss passes it
