"""How a network and its workspace lie in flat arrays: meta's columns, the workspace's
buffers, and the buffers' sizes, which follow gemm's packing (gemm.py).

``meta`` (int64, one row per layer, META_COLUMNS wide): layer l's weight is
``params[meta[l, W_OFF] : ... + n_out * n_in]`` viewed as (n_out, n_in), its bias
``params[meta[l, B_OFF] : ... + n_out]`` (``weight_of``, ``bias_of``); gradients use the same
offsets in ``grads``.  meta[l, ACT] is the layer's activation code (kernels/activations.py),
meta[l, DROP_THRESHOLD] and meta[l, DROP_KEY] its dropout (kernels/dropout.py; threshold 0:
none, as on the output layer).

The workspace is flat 1-D arrays allocated once per (maximum batch, dtype) and viewed at
the current batch size b, so the last, smaller minibatch needs nothing new:
    ACTS  a_1 ... a_L (b, n_l), the layers' outputs, one after another.  a_0, the
          minibatch x[idx], is never copied: the products that use it read the rows of x
          through idx (gemm's a_rows), and layer 0's forward packs them into PX for dW_0.
    DZ_A, DZ_B  deltas dL/dz of two adjacent layers (ping-pong), the top layer's in DZ_A
    PA, PB  gemm's packing buffers; PA also carries dz^T from the delta product that
          computes dz to the weight gradient that uses it next (products.py)
    PX    x[idx] packed by layer 0's forward for dW_0, in training steps (kept_x)
    DM    laid out as ACTS: f'(a_l) / (1 - p_l) or 0 for the layers under dropout
          (kernels/dropout.py), read by the delta products; one element when no layer has dropout
"""
import numpy as np
from numba import njit

from .._config import INLINE_JIT, MR
from .._memory import aligned_empty
from .dropout import DROP_KEY, DROP_THRESHOLD  # noqa: F401  (meta's last two columns)
from .gemm import packed_size, panel_width

N_IN, N_OUT, W_OFF, B_OFF, ACT = 0, 1, 2, 3, 4   # meta's columns, then DROP_THRESHOLD, DROP_KEY
META_COLUMNS = 7
ACTS, DZ_A, DZ_B, PA, PB, PX, DM = 0, 1, 2, 3, 4, 5, 6   # the workspace's buffers, in order


def buffer_sizes(sizes, b_max, dtype, dropout):
    """Elements of each workspace buffer (ACTS, ..., DM) for a network of layer widths
    sizes = [n_0, ..., n_L] at minibatches of up to b_max rows; ``dropout``: whether a
    layer has dropout.  The packing buffers hold the operands gemm packs in a training
    step: op(A) = dz^T (dW; also dz_prev^T, from the delta product) in PA, and op(B) =
    W^T (forward), a_in (dW) and W (dx) in PB; layer 0's a_in, x[idx], in PX."""
    pack, nr = packed_size.py_func, panel_width.py_func(np.dtype(dtype))
    pairs = list(zip(sizes[:-1], sizes[1:]))
    acts = b_max * sum(sizes[1:])
    dz = b_max * max(sizes[1:])
    pa = max(pack(n_out, b_max, MR) for n_in, n_out in pairs)
    pb = max(pack(n, k, nr) for l, (n_in, n_out) in enumerate(pairs)
             for n, k in [(n_out, n_in), (n_in, b_max) if l > 0 else (0, 0), (n_in, n_out)])
    px = pack(sizes[0], b_max, nr)
    return acts, dz, dz, pa, pb, px, acts if dropout else 1


def make_workspace(sizes, b_max, dtype, dropout):
    """(buffers, stats): the workspace buffers (see top), aligned (_memory.py), and stats
    (2, b_max) float64 for per-sample losses and hits."""
    buffers = tuple(aligned_empty(max(n, 1), dtype) for n in buffer_sizes(sizes, b_max, dtype, dropout))
    return buffers, aligned_empty((2, b_max), np.float64)


@njit(**INLINE_JIT)
def weight_of(flat, meta, l):
    """Layer l's weight (n_out, n_in) in flat (params or grads)."""
    n_in, n_out, w_off = meta[l, N_IN], meta[l, N_OUT], meta[l, W_OFF]
    return flat[w_off : w_off + n_out * n_in].reshape((n_out, n_in))


@njit(**INLINE_JIT)
def bias_of(flat, meta, l):
    """Layer l's bias (n_out,) in flat (params or grads)."""
    return flat[meta[l, B_OFF] : meta[l, B_OFF] + meta[l, N_OUT]]


@njit(**INLINE_JIT)
def kept_x(ws, meta, b):
    """The view of PX that layer 0's forward packs x[idx] into at batch b, for dW_0
    (buffer_sizes makes PX large enough for every b up to the workspace's)."""
    return ws[PX][:packed_size(meta[0, N_IN], b, panel_width(ws[PX]))]
