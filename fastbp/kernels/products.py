"""The three products of backpropagation, each one call of gemm (gemm.py) with its operands named.

    dense_forward   a = f(x W^T + bias)
    weight_grad     dW = dz^T a_in,  db = sum over the batch of dz
    delta_down      dz_prev = (dz W) * f'(a_in)

Each is inlined into its caller (inline="always"): gemm stays the one compiled product.
``work = (pa, pb, every_row, threaded)`` is what every product of a step shares: gemm's
two packing buffers, an empty row map (int64: every row of the operand, in order) and
gemm's ``threaded``.  Each product also leaves an operand packed for the next one:
dense_forward keeps layer 0's x[rows] for its weight_grad (a_in_kept), and delta_down
leaves dz_prev^T in pa for the weight_grad of the layer below (dz_packed).
"""
import numpy as np
from numba import njit

from .._config import INLINE_JIT
from .activations import IDENTITY
from .gemm import AS_IS, EPI_BIAS_ACT, EPI_DACT, EPI_NONE, TO_PACK, TRANSPOSED, gemm

NO_ACT = np.int64(IDENTITY)   # a NumPy int, as every code gemm is passed (gemm.py's top)


@njit(**INLINE_JIT)
def dense_forward(x, rows, w, bias, act, a, x_kept, work):
    """a = f(x[rows] W^T + bias), w stored (n_out, n_in), rows empty: every row of x.
    Unless x_kept is empty, x[rows] is also packed into it, as weight_grad's a_in_kept."""
    pa, pb, every_row, threaded = work
    none = bias[:0]
    gemm(x, AS_IS, rows, w, TRANSPOSED, a, (pa, pb), (TO_PACK, TO_PACK), EPI_BIAS_ACT, act, bias, a[:0],
         (none, x_kept, none), threaded)


@njit(**INLINE_JIT)
def weight_grad(dz, dz_packed, a_in, a_in_kept, dw, db, work):
    """dW = dz^T a_in and db = sum over the batch of dz.  dz_packed: dz^T is in pa already
    (delta_down's).  a_in_kept: a_in packed by dense_forward (layer 0's x[idx]; a_in is
    then not read), or empty: a_in is packed here into pb."""
    pa, pb, every_row, threaded = work
    none = db[:0]
    a_in_packed = a_in_kept.shape[0] > 0
    gemm(dz, TRANSPOSED, every_row, a_in, AS_IS, dw, (pa, a_in_kept if a_in_packed else pb),
         (dz_packed, a_in_packed), EPI_NONE, NO_ACT, none, dw[:0], (db, none, none), threaded)


@njit(**INLINE_JIT)
def delta_down(dz, w, f_ref, act, dz_prev, work):
    """dz_prev = (dz W) * f'(a_in), w stored (n_out, n_in), f' from f_ref: a_in (act the
    activation that made it), or under dropout f'(a_in) m / (1 - p) (act MASKED,
    kernels/dropout.py).  dz_prev^T is also packed into pa, for weight_grad's dz_packed."""
    pa, pb, every_row, threaded = work
    none = pa[:0]
    gemm(dz, AS_IS, every_row, w, AS_IS, dz_prev, (pa, pb), (TO_PACK, TO_PACK), EPI_DACT, act, none, f_ref,
         (none, none, pa), threaded)
