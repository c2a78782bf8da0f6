"""One compiled call per minibatch: forward, loss, backward and the optimizer update.

The network is described by ``meta`` (int64, one row per layer):
``[n_in, n_out, weight_offset, bias_offset, activation_code]``.  Layer l's weight is
``params[w_off : w_off + n_out * n_in]`` viewed as (n_out, n_in), its bias
``params[b_off : b_off + n_out]``; gradients use the same offsets in ``grads``.

Workspaces are flat 1-D arrays allocated once per (maximum batch, dtype) and viewed at
the current batch size b, so the last, smaller minibatch needs nothing new:
    ws = (acts, dz_a, dz_b, pa, pb)
    acts: a_0 = x[idx] (b, n_0), then a_1 ... a_L (b, n_l) one after another (a_0 is
          read from x in place instead when idx holds consecutive rows: see _minibatch)
    dz_a, dz_b: deltas dL/dz of two adjacent layers (ping-pong)
    pa, pb: the operands of a matrix product, packed into panels (gemm.py)
``stats`` (2, b_max) float64 receives per-sample losses and hits.
"""
import numpy as np
from numba import njit

from .._config import ENTRY_JIT, INLINE_JIT, KERNEL_JIT
from . import jit
from .activations import IDENTITY
from .gemm import AS_IS, EPI_BIAS_ACT, EPI_DACT, EPI_NONE, TRANSPOSED, col_sums, gather_rows, gemm
from .loss import output_function, output_loss
from .optim import L2_WEIGHTS, SUM_SQ_WEIGHTS, advance, update

_JIT = KERNEL_JIT
# NumPy scalars, not Python constants: Numba would compile a literal into a separate
# specialisation of the callee (see gemm.py), and cached literal specialisations of
# train_steps were seen to load the wrong machine code (a segfault in a new process).
NO_ACT = np.int64(IDENTITY)
NO_COUNT = np.bool_(False)
GATHER = np.bool_(True)
NO_GATHER = np.bool_(False)


@jit(**_JIT)
def _act_offset(meta, l, b):
    """Offset in acts of a_l, the input of layer l (a_0 is the gathered minibatch)."""
    off = 0
    for m in range(l):
        off += b * meta[m, 0]
    return off


@jit(**_JIT)
def _minibatch(x, idx, acts, gather):
    """a_0, the rows x[idx] (b, n_0).  When idx holds consecutive rows (an unshuffled
    epoch), a view of x itself: no copy.  Otherwise the start of acts, where the rows are
    copied first when ``gather``.  x is C-contiguous (validated at the API boundary)."""
    b = idx.shape[0]
    n0 = x.shape[1]
    consecutive = b > 0
    for r in range(1, b):
        if idx[r] != idx[0] + r:
            consecutive = False
            break
    if consecutive:
        return x.reshape(x.size)[idx[0] * n0: (idx[0] + b) * n0].reshape((b, n0))
    a = acts[: b * n0].reshape((b, n0))
    if gather:
        gather_rows(x, idx, a)
    return a


# forward and backward are inlined into the entry points: as functions of their own, each
# was another copy of the whole product code for LLVM to optimise and compile (seconds).
@njit(**INLINE_JIT)
def forward(x, idx, params, meta, ws):
    """a_0 = x[idx]; a_{l+1} = f_l(a_l W_l^T + b_l).  Returns a_L, the last layer's z (its f is identity)."""
    acts, pa, pb = ws[0], ws[3], ws[4]
    b = idx.shape[0]
    # a_0 in a variable of its own: it may be a view of a read-only x, and the outputs
    # the last layer's z is taken from must stay writable.
    a_0 = _minibatch(x, idx, acts, GATHER)
    off = b * meta[0, 0]
    for l in range(meta.shape[0]):
        n_in, n_out, w_off, b_off, act = meta[l, 0], meta[l, 1], meta[l, 2], meta[l, 3], meta[l, 4]
        w = params[w_off : w_off + n_out * n_in].reshape((n_out, n_in))
        bias = params[b_off : b_off + n_out]
        a_out = acts[off : off + b * n_out].reshape((b, n_out))
        if l == 0:
            gemm(a_0, AS_IS, w, TRANSPOSED, a_out, pa, pb, bias, a_out, EPI_BIAS_ACT, act)  # a = f(x W^T + b)
        else:
            a_in = acts[off - b * n_in : off].reshape((b, n_in))
            gemm(a_in, AS_IS, w, TRANSPOSED, a_out, pa, pb, bias, a_out, EPI_BIAS_ACT, act)
        off += b * n_out
    n_last = meta[meta.shape[0] - 1, 1]
    return acts[off - b * n_last : off].reshape((b, n_last))


@njit(**INLINE_JIT)
def backward(x, idx, params, grads, meta, ws, dz):
    """From dz = dL/dz of the last layer, the chain rule layer by layer down to layer 0:
    dW = dz^T a_in,  db = sum_rows dz,  dz_prev = (dz W) * f'(a_in)."""
    acts, dz_a, dz_b, pa, pb = ws
    b = dz.shape[0]
    dz_in_a = True  # dz currently lives in dz_a
    for l in range(meta.shape[0] - 1, -1, -1):
        n_in, n_out, w_off, b_off = meta[l, 0], meta[l, 1], meta[l, 2], meta[l, 3]
        if l == 0:
            a_in = _minibatch(x, idx, acts, NO_GATHER)            # a_0, as forward left it
        else:
            off = _act_offset(meta, l, b)
            a_in = acts[off : off + b * n_in].reshape((b, n_in))
        dw = grads[w_off : w_off + n_out * n_in].reshape((n_out, n_in))
        gemm(dz, TRANSPOSED, a_in, AS_IS, dw, pa, pb, dw[0], dw, EPI_NONE, NO_ACT)  # dW = dz^T a_in
        col_sums(dz, grads[b_off : b_off + n_out])                   # db = sum over the batch of dz
        if l > 0:
            w = params[w_off : w_off + n_out * n_in].reshape((n_out, n_in))
            nxt = dz_b if dz_in_a else dz_a
            dz_prev = nxt[: b * n_in].reshape((b, n_in))
            gemm(dz, AS_IS, w, AS_IS, dz_prev, pa, pb, dw[0], a_in, EPI_DACT, meta[l - 1, 4])  # dz_prev = (dz W) f'(a_in)
            dz = dz_prev
            dz_in_a = not dz_in_a


@jit(**_JIT)
def l2_weights(params, grads, meta, coef):
    """L = 0.5 coef sum(W^2) over the weights, not the biases:  dW += coef * W.  Returns sum(W^2)."""
    c = params.dtype.type(coef)
    sq = 0.0
    for l in range(meta.shape[0]):
        w_off, w_end = meta[l, 2], meta[l, 2] + meta[l, 0] * meta[l, 1]
        for i in range(w_off, w_end):
            w = params[i]
            sq += float(w) * float(w)
            grads[i] += c * w                                      # dL/dW = coef W
    return sq


@njit(**ENTRY_JIT)
def train_steps(x, y, order, start, stop, batch_size, params, grads, state, hyper, meta, out_code,
                ws, stats, count_steps):
    """Minibatches order[start:start+batch_size], ... up to order[:stop]: for each, forward,
    loss, backward and the optimizer update.  One compiled call for many small steps keeps
    Python's dispatch cost out of the loop.  ``count_steps``: count each step in
    hyper[STEPS] (and derive Adam's bias corrections) first.  Returns (loss sum, hits) of
    the data term over all their samples; an L2 term on the weights is added when
    hyper[L2_WEIGHTS] != 0 (optim.py)."""
    dz_a = ws[1]
    loss = 0.0
    hits = 0.0
    for s in range(start, stop, batch_size):
        if count_steps:
            advance(hyper)
        idx = order[s:min(s + batch_size, stop)]
        b = idx.shape[0]
        z = forward(x, idx, params, meta, ws)
        dz = dz_a[: b * z.shape[1]].reshape((b, z.shape[1]))
        l, h = output_loss(z, y, idx, dz, stats, out_code)
        backward(x, idx, params, grads, meta, ws, dz)
        if hyper[L2_WEIGHTS] != 0.0:
            hyper[SUM_SQ_WEIGHTS] = l2_weights(params, grads, meta, hyper[L2_WEIGHTS])
        update(params, grads, state, hyper)
        loss += l
        hits += h
    return loss, hits


def train_step(x, y, idx, params, grads, state, hyper, meta, out_code, ws, stats):
    """One minibatch, the rows idx, with the hyper-parameters exactly as given (no step
    counted).  Returns (loss sum, hits).  The compiled train_steps over one minibatch: one
    compiled function for both, so the second costs no compile."""
    b = idx.shape[0]
    return train_steps(x, y, idx, 0, b, max(b, 1), params, grads, state, hyper, meta, out_code,
                       ws, stats, NO_COUNT)


@njit(**ENTRY_JIT)
def eval_batch(x, y, idx, params, meta, out_code, ws, stats):
    """Forward and loss for rows idx, no gradient step.  Returns (loss sum, hits)."""
    dz_a = ws[1]
    b = idx.shape[0]
    z = forward(x, idx, params, meta, ws)
    dz = dz_a[: b * z.shape[1]].reshape((b, z.shape[1]))
    return output_loss(z, y, idx, dz, stats, out_code)


@njit(**ENTRY_JIT)
def predict_batch(x, idx, params, meta, out_code, ws, out):
    """out[r] = the network's output (probabilities for softmax/sigmoid) for row idx[r]."""
    z = forward(x, idx, params, meta, ws)
    output_function(z, out_code)
    for r in range(z.shape[0]):
        for j in range(z.shape[1]):
            out[r, j] = z[r, j]
