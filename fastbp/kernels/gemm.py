"""The one matrix product of fastbp, with fused epilogues, and the packing helpers.

Every product in backpropagation is written as ``c[i, j] = sum_k a[i, k] * b[j, k]``
("A times B transposed"), where both operands are read along their contiguous last axis:

    forward   z  = x  W^T      a = x (batch, n_in),   b = W   (n_out, n_in)
    weights   dW = dz^T x      a = dz^T (n_out, batch), b = x^T (n_in, batch)  (packed)
    deltas    dx = dz W        a = dz (batch, n_out), b = W^T (n_in, n_out)    (packed)

Packing (a transpose into a workspace) costs O(batch * width), tiny next to the
O(batch * n_in * n_out) product, and lets one register-blocked loop serve all three.

The micro-kernel holds an MR x NR block of c in MR*NR scalar accumulators (registers);
LLVM vectorises the k loop because fast-math reassociation is allowed.  Edge blocks
clamp their row indices to the last valid row (recomputing it) and store only valid
rows, so there is one code path for every shape.
"""
import numpy as np
from numba import njit, prange

from .._config import (KERNEL_JIT, KC, MC, MR, NC, NN_COLS, NN_ROWS, NR, SERIAL_ELEMENTS, SERIAL_FLOPS,
                       TRANSPOSE_ROWS)
from .activations import SIGMOID, activate, derivative, sigmoid

# Epilogue codes are NumPy integers, not Python ints: Numba types a Python int constant
# passed to another compiled function as a literal, and compiled gemm_nt once per code
# (three 3.5 s compiles instead of one).
EPI_NONE = np.int64(0)      # c = a b^T
EPI_BIAS_ACT = np.int64(1)  # c = f(a b^T + bias)          forward of a dense layer
EPI_DACT = np.int64(2)      # c = (a b^T) * f'(ref)         delta passed down: dz_prev = (dz W) * f'(a_prev)

_JIT = KERNEL_JIT

assert MR == 4 and NR == 4, "the micro-kernel below is written out for 4 x 4"


@njit(**_JIT)
def _micro_tile(a, b, c, i0, i1, j0, j1, k0, k1, first):
    """c[i0:i1, j0:j1] (+)= a[i0:i1, k0:k1] b[j0:j1, k0:k1]^T, in 4 x 4 register blocks."""
    zero = c.dtype.type(0)
    kn = k1 - k0
    for i in range(i0, i1, MR):
        # rows of the block; past the edge, repeat the last valid row (stored nowhere).
        # Row views over [k0, k1) let the k loop start at 0, so LLVM knows the index is
        # never negative and emits contiguous vector loads instead of gathers.
        x0r = a[i, k0:k1]
        x1r = a[min(i + 1, i1 - 1), k0:k1]
        x2r = a[min(i + 2, i1 - 1), k0:k1]
        x3r = a[min(i + 3, i1 - 1), k0:k1]
        for j in range(j0, j1, NR):
            y0r = b[j, k0:k1]
            y1r = b[min(j + 1, j1 - 1), k0:k1]
            y2r = b[min(j + 2, j1 - 1), k0:k1]
            y3r = b[min(j + 3, j1 - 1), k0:k1]
            c00 = c01 = c02 = c03 = zero
            c10 = c11 = c12 = c13 = zero
            c20 = c21 = c22 = c23 = zero
            c30 = c31 = c32 = c33 = zero
            for k in range(kn):
                x0 = x0r[k]
                x1 = x1r[k]
                x2 = x2r[k]
                x3 = x3r[k]
                y0 = y0r[k]
                y1 = y1r[k]
                y2 = y2r[k]
                y3 = y3r[k]
                c00 += x0 * y0
                c01 += x0 * y1
                c02 += x0 * y2
                c03 += x0 * y3
                c10 += x1 * y0
                c11 += x1 * y1
                c12 += x1 * y2
                c13 += x1 * y3
                c20 += x2 * y0
                c21 += x2 * y1
                c22 += x2 * y2
                c23 += x2 * y3
                c30 += x3 * y0
                c31 += x3 * y1
                c32 += x3 * y2
                c33 += x3 * y3
            nr = min(NR, j1 - j)
            _store_row(c, i, j, nr, first, c00, c01, c02, c03)
            if i + 1 < i1:
                _store_row(c, i + 1, j, nr, first, c10, c11, c12, c13)
            if i + 2 < i1:
                _store_row(c, i + 2, j, nr, first, c20, c21, c22, c23)
            if i + 3 < i1:
                _store_row(c, i + 3, j, nr, first, c30, c31, c32, c33)


@njit(inline="always", **_JIT)
def _store_row(c, i, j, nr, first, v0, v1, v2, v3):
    """Write (first k block) or add (later k blocks) the nr valid values of one block row."""
    if first:
        c[i, j] = v0
        if nr > 1:
            c[i, j + 1] = v1
        if nr > 2:
            c[i, j + 2] = v2
        if nr > 3:
            c[i, j + 3] = v3
    else:
        c[i, j] += v0
        if nr > 1:
            c[i, j + 1] += v1
        if nr > 2:
            c[i, j + 2] += v2
        if nr > 3:
            c[i, j + 3] += v3


@njit(**_JIT)
def _epilogue(c, bias, ref, epilogue, act, i0, i1, j0, j1):
    """The tile's finishing pass while it is still in cache.  Row views starting at 0 and
    the activation branch taken outside the inner loop let LLVM vectorise each loop."""
    one = c.dtype.type(1)
    if epilogue == EPI_BIAS_ACT:
        b = bias[j0:j1]
        for i in range(i0, i1):
            row = c[i, j0:j1]
            if act == SIGMOID:
                for j in range(row.shape[0]):
                    row[j] = sigmoid(row[j] + b[j], one)                      # a = f(z + b)
            else:
                for j in range(row.shape[0]):
                    row[j] = activate(row[j] + b[j], act, one)
    elif epilogue == EPI_DACT:
        for i in range(i0, i1):
            row = c[i, j0:j1]
            a = ref[i, j0:j1]
            if act == SIGMOID:
                for j in range(row.shape[0]):
                    row[j] = row[j] * (a[j] * (one - a[j]))                   # dz = da * a (1 - a)
            else:
                for j in range(row.shape[0]):
                    row[j] = row[j] * derivative(a[j], act, one)              # dz = da * f'(z)


@njit(**_JIT)
def _tile(a, b, c, bias, ref, epilogue, act, t, n_jt, mc, nc):
    """Task t of the parallel loop: one mc x nc tile of c, all k blocks, then its epilogue."""
    m = a.shape[0]
    n = b.shape[0]
    kk = a.shape[1]
    i0 = (t // n_jt) * mc
    j0 = (t % n_jt) * nc
    i1 = min(m, i0 + mc)
    j1 = min(n, j0 + nc)
    for k0 in range(0, kk, KC):
        _micro_tile(a, b, c, i0, i1, j0, j1, k0, min(kk, k0 + KC), k0 == 0)
    _epilogue(c, bias, ref, epilogue, act, i0, i1, j0, j1)


@njit(parallel=True, **_JIT)
def gemm_nt(a, b, c, bias, ref, epilogue, act):
    """c[i, j] = epilogue(sum_k a[i, k] * b[j, k]);  a (m, k), b (n, k), c (m, n), all C-contiguous.

    bias (n,) is read by EPI_BIAS_ACT and ref (m, n) by EPI_DACT; pass any array otherwise.
    """
    m = a.shape[0]
    n = b.shape[0]
    mc = MC
    nc = NC
    n_jt = (n + nc - 1) // nc
    n_tasks = ((m + mc - 1) // mc) * n_jt
    if 2 * m * n * a.shape[1] < SERIAL_FLOPS:
        for t in range(n_tasks):
            _tile(a, b, c, bias, ref, epilogue, act, t, n_jt, mc, nc)
    else:
        for t in prange(n_tasks):
            _tile(a, b, c, bias, ref, epilogue, act, t, n_jt, mc, nc)


@njit(**_JIT)
def _transpose_tile(src, dst, i0, i1, j0, j1):
    for i in range(i0, i1):
        row = src[i, j0:j1]
        for j in range(j1 - j0):
            dst[j0 + j, i] = row[j]


@njit(parallel=True, **_JIT)
def transpose(src, dst):
    """dst[j, i] = src[i, j]: pack a panel so the next product reads it contiguously.

    Tiles of TRANSPOSE_ROWS rows of src by a few columns: each task writes a few rows of
    dst, one element per src row.  When dst's row stride is a multiple of 4 KiB those dst
    rows share one L1 cache set, so the tile is then 8 columns wide (fits the set's ways)
    instead of 16: 1024 x 1024 float32 took 1.7 ms with 16, 0.54 ms with 8.
    """
    m, n = src.shape
    tj = 8 if (m * src.itemsize) % 4096 == 0 else 16
    n_jt = (n + tj - 1) // tj
    n_tasks = ((m + TRANSPOSE_ROWS - 1) // TRANSPOSE_ROWS) * n_jt
    if m * n < SERIAL_ELEMENTS:
        for t in range(n_tasks):
            i0 = (t // n_jt) * TRANSPOSE_ROWS
            j0 = (t % n_jt) * tj
            _transpose_tile(src, dst, i0, min(m, i0 + TRANSPOSE_ROWS), j0, min(n, j0 + tj))
    else:
        for t in prange(n_tasks):
            i0 = (t // n_jt) * TRANSPOSE_ROWS
            j0 = (t % n_jt) * tj
            _transpose_tile(src, dst, i0, min(m, i0 + TRANSPOSE_ROWS), j0, min(n, j0 + tj))


@njit(**_JIT)
def _nn_tile(a, b, c, i0, i1, j0, j1):
    """c[i0:i1, j0:j1] = a[i0:i1, :] b[:, j0:j1], row by row ("i-k-j"): for each k, add
    a[i, k] times row k of b to row i of c, for 4 rows of c at once, then the leftover rows
    one by one (rows of c are accumulators here, so edge rows cannot be repeated)."""
    zero = c.dtype.type(0)
    nj = j1 - j0
    i = i0
    while i + MR <= i1:
        c0, c1, c2, c3 = c[i, j0:j1], c[i + 1, j0:j1], c[i + 2, j0:j1], c[i + 3, j0:j1]
        for j in range(nj):
            c0[j] = zero
            c1[j] = zero
            c2[j] = zero
            c3[j] = zero
        for k in range(a.shape[1]):
            a0, a1, a2, a3 = a[i, k], a[i + 1, k], a[i + 2, k], a[i + 3, k]
            brow = b[k, j0:j1]
            for j in range(nj):
                c0[j] += a0 * brow[j]
                c1[j] += a1 * brow[j]
                c2[j] += a2 * brow[j]
                c3[j] += a3 * brow[j]
        i += MR
    for r in range(i, i1):
        c0 = c[r, j0:j1]
        for j in range(nj):
            c0[j] = zero
        for k in range(a.shape[1]):
            a0 = a[r, k]
            brow = b[k, j0:j1]
            for j in range(nj):
                c0[j] += a0 * brow[j]


@njit(parallel=True, **_JIT)
def gemm_nn(a, b, c, ref, epilogue, act):
    """c[i, j] = epilogue(sum_k a[i, k] * b[k, j]);  a (m, k), b (k, n), c (m, n).

    For a short reduction axis (k < SMALL_K, e.g. the delta passed down from a 10-class
    output layer, dx = dz W): the dot-product form above would spend its time in
    horizontal sums, while this form streams rows of b with no reduction at all and
    needs no packing.  ``epilogue`` is EPI_NONE or EPI_DACT (with ``ref``).
    """
    m = a.shape[0]
    n = b.shape[1]
    n_jt = (n + NN_COLS - 1) // NN_COLS
    n_tasks = ((m + NN_ROWS - 1) // NN_ROWS) * n_jt
    if 2 * m * n * a.shape[1] < SERIAL_FLOPS:
        for t in range(n_tasks):
            _nn_task(a, b, c, ref, epilogue, act, t, n_jt)
    else:
        for t in prange(n_tasks):
            _nn_task(a, b, c, ref, epilogue, act, t, n_jt)


@njit(**_JIT)
def _nn_task(a, b, c, ref, epilogue, act, t, n_jt):
    i0 = (t // n_jt) * NN_ROWS
    j0 = (t % n_jt) * NN_COLS
    i1 = min(c.shape[0], i0 + NN_ROWS)
    j1 = min(c.shape[1], j0 + NN_COLS)
    _nn_tile(a, b, c, i0, i1, j0, j1)
    _epilogue(c, c[0], ref, epilogue, act, i0, i1, j0, j1)


# Explicit loops below, not array expressions: in a parallel=True function NumPy calls
# become parallel loops themselves, and a parallel sum would depend on the thread count.
@njit(**_JIT)
def _copy_row(x, src, out, dst):
    for k in range(out.shape[1]):
        out[dst, k] = x[src, k]


@njit(**_JIT)
def _row_sum(a, j):
    s = a.dtype.type(0)
    for k in range(a.shape[1]):
        s += a[j, k]
    return s


@njit(parallel=True, **_JIT)
def gather_rows(x, idx, out):
    """out[r, :] = x[idx[r], :]: the minibatch, copied into a contiguous workspace."""
    m, n = out.shape
    if m * n < SERIAL_ELEMENTS:
        for r in range(m):
            _copy_row(x, idx[r], out, r)
    else:
        for r in prange(m):
            _copy_row(x, idx[r], out, r)


@njit(parallel=True, **_JIT)
def row_sums(a, out):
    """out[j] = sum_k a[j, k]: the bias gradient db = sum over the batch of dz (from dz^T)."""
    m, n = a.shape
    if m * n < SERIAL_ELEMENTS:
        for j in range(m):
            out[j] = _row_sum(a, j)
    else:
        for j in prange(m):
            out[j] = _row_sum(a, j)
