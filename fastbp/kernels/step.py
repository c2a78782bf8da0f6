"""One compiled call per minibatch: forward, loss, backward and the optimizer update.

The network is described by ``meta`` and computed in the workspace ``ws``, both laid out
as kernels/layout.py says (meta's columns N_IN ... DROP_KEY, the buffers ACTS ... DM).
``stats`` (2, b_max) float64 receives per-sample losses and hits.
"""
import numpy as np
from numba import njit

from .._config import ENTRY_JIT, INLINE_JIT, KERNEL_JIT, SERIAL_FLOPS
from .._numba_compat import NO_NRT
from . import jit
from .activations import MASKED
from .dropout import dropout
from .gemm import PACKED, SERIAL_ONLY, THREADED, TO_PACK
from .layout import (ACT, ACTS, DM, DROP_KEY, DROP_THRESHOLD, DZ_A, DZ_B, N_IN, N_OUT, PA, PB, PX, W_OFF, bias_of,
                     kept_x, weight_of)
from .loss import output_function, output_loss
from .optim import (FIRST_ROW, L2_ALPHA, L2_DENOM, L2_LOSS, L2_SCALE, L2_WEIGHTS, LR, SCHEDULE, STEPS, STOPPED_AT,
                    SUM_SQ_WEIGHTS, advance, schedule_lr, update)
from .products import delta_down, dense_forward, weight_grad
from .simd import vector_width

_JIT = KERNEL_JIT
# NumPy scalars, not Python constants: Numba would compile a literal into a separate
# specialisation of the callee (gemm.py's top), and a cached literal specialisation of an
# entry point can load the wrong machine code in a new process.
NO_COUNT = np.bool_(False)
MASK_REF = np.int64(MASKED)


def threading_for(meta, b):
    """The entry points' `threaded` (gemm.py) for the network meta at batch b: SERIAL_ONLY
    when each of its products, 2 b n_in n_out flops (forward, weight gradient and delta
    alike), is below SERIAL_FLOPS, so that gemm would run every one serially anyway;
    THREADED otherwise.  Either gives the same results."""
    widest = max(int(meta[l, N_IN]) * int(meta[l, N_OUT]) for l in range(meta.shape[0]))
    return SERIAL_ONLY if 2 * int(b) * widest < SERIAL_FLOPS else THREADED


# forward and backward are inlined into the entry points: as functions of their own, each
# would be another copy of the whole product code for LLVM to optimise and compile (seconds).
@njit(**INLINE_JIT)
def forward(x, idx, params, meta, ws, kept, threaded, step=0, row0=0):
    """a_1 = f_0(x[idx] W_0^T + b_0); a_{l+1} = f_l(a_l W_l^T + b_l).  Returns a_L, the
    last layer's z (its f is identity).  Unless kept (train_steps) is empty, x[idx] is also
    packed into it, for backward's dW_0, and the hidden layers with dropout drop units
    with the masks of step ``step``, idx[0] being row ``row0`` of the step's minibatch
    (kernels/dropout.py); predict and evaluate pass an empty kept: no dropout."""
    acts = ws[ACTS]
    b = idx.shape[0]
    work = (ws[PA], ws[PB], idx[:0], threaded)   # (products.py)
    off = 0
    for l in range(meta.shape[0]):
        n_in, n_out = meta[l, N_IN], meta[l, N_OUT]
        a_out = acts[off : off + b * n_out].reshape((b, n_out))
        # layer 0 reads the rows idx of x in place and packs them into kept (unless it is
        # empty); the others read the whole output of the layer below
        if l == 0:
            a_in, rows, a_in_kept = x, idx, kept
        else:
            a_in, rows, a_in_kept = acts[off - b * n_in : off].reshape((b, n_in)), idx[:0], kept[:0]
        dense_forward(a_in, rows, weight_of(params, meta, l), bias_of(params, meta, l), meta[l, ACT], a_out,
                      a_in_kept, work)                            # a_out = f(a_in W^T + b)
        if meta[l, DROP_THRESHOLD] > 0 and kept.shape[0] > 0:   # training, and dropout on
            dm = ws[DM][off : off + b * n_out].reshape((b, n_out))
            dropout(a_out, dm, meta[l, ACT], meta[l, DROP_THRESHOLD], meta[l, DROP_KEY], step, row0, threaded)
        off += b * n_out
    n_last = meta[meta.shape[0] - 1, N_OUT]
    return acts[off - b * n_last : off].reshape((b, n_last))


@njit(**INLINE_JIT)
def backward(x, idx, params, grads, meta, ws, dz, kept, threaded, top, bottom):
    """From dz = dL/dz of layer ``top`` (a view of DZ_A for the last layer, then
    alternately DZ_B, DZ_A, ... going down), the chain rule layer by layer down to layer
    ``bottom``: dW = dz^T a_in, db = sum_rows dz, dz_prev = (dz W) * f'(a_in).  kept:
    x[idx] as forward packed it.  train_steps runs every layer (top = L - 1, bottom = 0),
    backward_step one.  (One loop, no function per layer: an inlined function's array
    arguments and results are reference-counted per call, 3 % of config S's step.)"""
    b = dz.shape[0]
    work = (ws[PA], ws[PB], idx[:0], threaded)   # (products.py)
    dz_in_a = (meta.shape[0] - 1 - top) % 2 == 0   # dz lives in DZ_A (ping-pong with DZ_B)
    off = 0         # where layer l's output ends in ACTS (a_1 ... a_L in order)
    for l in range(top + 1):
        off += b * meta[l, N_OUT]
    for l in range(top, bottom - 1, -1):
        n_in, n_out = meta[l, N_IN], meta[l, N_OUT]
        off -= b * n_out                # start of layer l's output: the end of its input
        # a_in: layer 0's x[idx], packed by forward into kept, or the output of the layer below
        if l == 0:
            a_in, a_in_kept = x, kept
        else:
            a_in, a_in_kept = ws[ACTS][off - b * n_in : off].reshape((b, n_in)), kept[:0]
        # dz^T is in PA already, packed by the delta_down that computed dz, but for the top
        # layer's (from the loss)
        dz_packed = TO_PACK if l == meta.shape[0] - 1 else PACKED
        weight_grad(dz, dz_packed, a_in, a_in_kept, weight_of(grads, meta, l), bias_of(grads, meta, l),
                    work)                                             # dW = dz^T a_in, db = sum_rows dz
        if l > 0:
            dz_prev = (ws[DZ_B] if dz_in_a else ws[DZ_A])[: b * n_in].reshape((b, n_in))
            f_ref, act = a_in, meta[l - 1, ACT]
            if meta[l - 1, DROP_THRESHOLD] > 0:   # f'(a_in) m / (1 - p), kept by forward
                f_ref, act = ws[DM][off - b * n_in : off].reshape((b, n_in)), MASK_REF
            delta_down(dz, weight_of(params, meta, l), f_ref, act, dz_prev, work)   # dz_prev = (dz W) * f'(a_in)
            dz = dz_prev
            dz_in_a = not dz_in_a


@jit(**_JIT)
def l2_weights(params, grads, meta, coef):
    """L = 0.5 coef sum(W^2) over the weights, not the biases:  dW += coef * W.  Returns sum(W^2)."""
    vector_width()
    c = params.dtype.type(coef)
    sq = 0.0
    for l in range(meta.shape[0]):
        w_off, w_end = meta[l, W_OFF], meta[l, W_OFF] + meta[l, N_IN] * meta[l, N_OUT]
        for i in range(w_off, w_end):
            w = params[i]
            sq += float(w) * float(w)
            grads[i] += c * w                                      # dL/dW = coef W
    return sq


@njit(**INLINE_JIT)
def l2_term(params, grads, meta, hyper, b):
    """The weights' L2 term of a minibatch of b rows, when hyper asks for one (optim.py):
    its coefficient (scikit-learn's alpha / (denominator * scale), or hyper[L2_WEIGHTS] as
    given), added to the weight gradients, and its share of the loss."""
    denom = hyper[L2_DENOM] if hyper[L2_DENOM] != 0.0 else float(b)
    if hyper[L2_ALPHA] != 0.0:            # scikit-learn's alpha
        hyper[L2_WEIGHTS] = hyper[L2_ALPHA] / (denom * hyper[L2_SCALE])
    if hyper[L2_WEIGHTS] != 0.0:
        hyper[SUM_SQ_WEIGHTS] = l2_weights(params, grads, meta, hyper[L2_WEIGHTS])
        if hyper[L2_ALPHA] != 0.0:
            hyper[L2_LOSS] += 0.5 * hyper[L2_ALPHA] * hyper[SUM_SQ_WEIGHTS] * float(b) / denom


@njit(**ENTRY_JIT, **NO_NRT)
def train_steps(x, y, order, start, stop, batch_size, params, grads, state, hyper, meta, out_code,
                ws, stats, step_loss, count_steps, threaded):
    """Minibatches order[start:start+batch_size], ... up to order[:stop]: for each, forward,
    loss, backward and the optimizer update.  One compiled call for many small steps keeps
    Python's dispatch cost out of the loop.  ``count_steps``: count each step in
    hyper[STEPS] (and derive Adam's bias corrections) first, after setting the lr from a
    per-step schedule when hyper[SCHEDULE] names one.  Returns (loss sum, hits) of
    the data term over all their samples; an L2 term on the weights is added when
    hyper[L2_WEIGHTS] != 0 (optim.py).  ``threaded``: threading_for(meta, batch_size).
    ``step_loss`` (float64, one entry per minibatch of the call) receives each minibatch's
    loss sum, so the caller can add them in an order that does not depend on how the
    minibatches were grouped into calls.  A minibatch whose loss is not finite stops the
    loop before its backward pass and update (and is not counted in hyper[STEPS]): its
    entry holds the loss, later entries are left as they were, and the returned loss sum
    includes it, so the caller sees a non-finite sum.  So does a minibatch whose update
    would make a weight or the optimizer state non-finite (optim.update's check), with
    its finite loss in its entry: either way the weights stay those of the last finite
    step, and hyper[STOPPED_AT] = 1 + the minibatch's index in the call (0 when none)."""
    vector_width()   # (kernels/simd.py: loops inlined here vectorise at the level's width)
    dz_a = ws[DZ_A]
    loss = 0.0
    hits = 0.0
    hyper[STOPPED_AT] = 0.0
    for s in range(start, stop, batch_size):
        if count_steps:
            if hyper[SCHEDULE] != 0:          # a per-step lr schedule (optim.py)
                hyper[LR] = schedule_lr(hyper)
            advance(hyper)
        idx = order[s:min(s + batch_size, stop)]
        b = idx.shape[0]
        kept = kept_x(ws, meta, b)   # x[idx] packed by layer 0's forward for dW_0
        # (np.int64: hyper is float64; the dropout masks' step and row are integers)
        z = forward(x, idx, params, meta, ws, kept, threaded, np.int64(hyper[STEPS]),
                    np.int64(hyper[FIRST_ROW]))
        dz = dz_a[: b * z.shape[1]].reshape((b, z.shape[1]))
        l, h = output_loss(z, y, idx, dz, stats, out_code)
        step_loss[(s - start) // batch_size] = l
        if not np.isfinite(l):   # diverged: keep this minibatch's update out of the weights
            if count_steps:
                hyper[STEPS] -= 1
            hyper[STOPPED_AT] = (s - start) // batch_size + 1
            return loss + l, hits
        backward(x, idx, params, grads, meta, ws, dz, kept, threaded, meta.shape[0] - 1, 0)
        l2_term(params, grads, meta, hyper, b)
        if not update(params, grads, state, hyper, False):   # the update would diverge
            if count_steps:
                hyper[STEPS] -= 1
            hyper[STOPPED_AT] = (s - start) // batch_size + 1
            return loss + np.nan, hits
        update(params, grads, state, hyper, True)
        loss += l
        hits += h
    return loss, hits


def train_step(x, y, idx, params, grads, state, hyper, meta, out_code, ws, stats, threaded, step_loss=None):
    """One minibatch, the rows idx, with the hyper-parameters exactly as given (no step
    counted).  Returns (loss sum, hits).  The compiled train_steps over one minibatch: one
    compiled function for both, so the second costs no compile.  ``threaded``:
    threading_for(meta, the largest minibatch), worked out once, not per step.
    ``step_loss`` (1,) receives the minibatch's loss, also when the step was refused."""
    b = idx.shape[0]
    return train_steps(x, y, idx, 0, b, max(b, 1), params, grads, state, hyper, meta, out_code,
                       ws, stats, np.empty(1) if step_loss is None else step_loss, NO_COUNT, threaded)


@njit(**ENTRY_JIT, **NO_NRT)
def eval_batch(x, y, idx, params, meta, out_code, ws, stats, threaded):
    """Forward and loss for rows idx, no gradient step.  Returns (loss sum, hits)."""
    vector_width()
    dz_a = ws[DZ_A]
    b = idx.shape[0]
    z = forward(x, idx, params, meta, ws, ws[PX][:0], threaded)
    dz = dz_a[: b * z.shape[1]].reshape((b, z.shape[1]))
    return output_loss(z, y, idx, dz, stats, out_code)


@njit(**ENTRY_JIT, **NO_NRT)
def predict_batch(x, idx, params, meta, out_code, ws, out, threaded):
    """out[r] = the network's output (probabilities for softmax/sigmoid) for row idx[r]."""
    vector_width()
    z = forward(x, idx, params, meta, ws, ws[PX][:0], threaded)
    output_function(z, out_code)
    for r in range(z.shape[0]):
        for j in range(z.shape[1]):
            out[r, j] = z[r, j]


@njit(**ENTRY_JIT, **NO_NRT)
def update_step(params, grads, state, hyper, meta, b):
    """Count one step, add the L2 term of its b rows (l2_term) and apply the optimizer to
    ``grads``: the second half of a data-parallel step, whose gradients were added up
    across processes in between (distributed.py).  Returns False, with nothing changed
    but the lr, when the update would make a weight or the optimizer state non-finite (as
    train_steps refuses it)."""
    vector_width()
    l2_term(params, grads, meta, hyper, b)
    if hyper[SCHEDULE] != 0:          # as train_steps: the lr of a per-step schedule first
        hyper[LR] = schedule_lr(hyper)
    advance(hyper)
    if not update(params, grads, state, hyper, False):
        hyper[STEPS] -= 1
        return False
    update(params, grads, state, hyper, True)
    return True


# A training step in pieces, for data-parallel training (distributed.py): the forward pass
# and loss in one call, then one call per layer's backward, so that the reduction of each
# layer's gradient across processes can start while the layers below it are computed.
@njit(**ENTRY_JIT, **NO_NRT)
def forward_loss(x, y, idx, params, meta, out_code, ws, stats, step, row0, threaded):
    """train_steps's forward pass and loss for the rows idx (dropout masks of step
    ``step``, idx[0] being row ``row0`` of the step's minibatch), leaving dL/dz of the
    last layer in DZ_A and x[idx] packed in PX for backward_step.  Returns (loss sum, hits)."""
    vector_width()
    b = idx.shape[0]
    z = forward(x, idx, params, meta, ws, kept_x(ws, meta, b), threaded, step, row0)
    dz = ws[DZ_A][: b * z.shape[1]].reshape((b, z.shape[1]))
    return output_loss(z, y, idx, dz, stats, out_code)


@njit(**ENTRY_JIT, **NO_NRT)
def backward_step(x, idx, params, grads, meta, ws, l, threaded):
    """Layer l's gradient (and the delta passed below it) after forward_loss on the same
    rows idx and backward_step of the layers above l: train_steps's backward pass, a layer
    a call."""
    vector_width()
    b = idx.shape[0]
    in_a = (meta.shape[0] - 1 - l) % 2 == 0   # where backward keeps layer l's dz
    dz = (ws[DZ_A] if in_a else ws[DZ_B])[: b * meta[l, N_OUT]].reshape((b, meta[l, N_OUT]))
    backward(x, idx, params, grads, meta, ws, dz, kept_x(ws, meta, b), threaded, l, l)
