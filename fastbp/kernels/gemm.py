"""The one matrix product of fastbp, with fused epilogues, and its packing.

Every product in backpropagation is ``C = op(A) op(B)``, op(A) (m x k), op(B) (k x n),
where an operand is used as stored or transposed:

    forward   z  = x  W^T      A = x  (batch, n_in)          B = W^T  (W stored (n_out, n_in))
    weights   dW = dz^T x      A = dz^T (dz stored (batch, n_out))    B = x  (batch, n_in)
    deltas    dx = dz W        A = dz (batch, n_out)         B = W    (n_out, n_in)

First op(B) is packed (copied once, O(k n), against the product's O(m n k)) into panels
of NR columns in the order the micro-kernel reads them,
``pb[(jp * k + p) * NR + r] = op(B)[p, jp * NR + r]``, zero-padded past the last column.
Then the "outer-product" micro-kernel (microkernel.py) keeps an MR x NR block of C in
vector registers: for each p it loads NR values of B (NR_VECS vectors), broadcasts each
of the MR values A[i, p] (read in place, with strides, so A needs no packing), and does
MR x NR_VECS fused multiply-adds.  Nothing is summed across the lanes of a vector.  MR,
NR_VECS and the vector width are the instruction-set level's (_config.LEVELS).

The reduction axis runs in blocks of KC (each KC x NR panel of B is read from L1 or L2),
and a task of the parallel loop computes a tile of C (see _tile), then its epilogue (bias
+ activation, or the activation's derivative) while the tile is still in cache.  Each
element of C is one chain of fused multiply-adds over p = 0, 1, ..., k-1 (a k block goes
on from the partial sum the block before stored), so results depend neither on the
thread count nor on the tile sizes nor on the level.
"""
import warnings

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.core.errors import NumbaPerformanceWarning
from numba.extending import intrinsic
from .._numba_compat import launch_threads

from .._config import (BY_COLUMNS_BYTES, INLINE_JIT, KC, KERNEL_JIT, LEAF_JIT, MC, MR, NC, NR_VECS, ONE_PHASE_FLOPS,
                       SERIAL_ELEMENTS, SERIAL_FLOPS, SLAB_BYTES, TALL_C_BYTES, VEC_BYTES)
from . import CompiledOnly, jit
from .activations import IDENTITY, MASKED, RELU, SIGMOID, TANH, activate, derivative, sigmoid
from .microkernel import (a_offsets, load_block, load_block_1, micro, micro_1, panel_sums, store_block,
                          store_block_1, zero_block, zero_block_1)
from .simd import (lanes, vector_width, vload, vload_block, vload_part, vload_rows, vstore, vstore_block,
                   vstore_part, vtranspose, vzero)

# Flags and codes are NumPy scalars, not Python constants: Numba types a Python constant
# passed to another compiled function as a literal, and compiles the callee once per value.
# The epilogue: what is done to a tile of c = op(a) op(b) while it is in cache.
EPI_NONE = np.int64(0)      # c = a b
EPI_BIAS_ACT = np.int64(1)  # c = f(a b + bias)        forward of a dense layer
EPI_DACT = np.int64(2)      # c = (a b) * f'(ref)       delta passed down: dz_prev = (dz W) * f'(a_prev)
                            #                           (act MASKED: c = (a b) * ref, kernels/dropout.py)
# How an operand is stored.
AS_IS = np.bool_(False)
TRANSPOSED = np.bool_(True)
# Whether a packing buffer already holds its operand, packed by an earlier product (gemm's `packed`).
TO_PACK = np.bool_(False)
PACKED = np.bool_(True)
A_PANEL = np.int64(MR)      # MR as an argument (a Python int would be a literal: another compile of pack)
# gemm's last argument, `threaded`.  THREADED: products of SERIAL_FLOPS or more run in
# parallel.  SERIAL_ONLY (None): every product runs serially, and Numba prunes the branch
# `threaded is None` as it compiles, so that specialisation has no parallel loop in it at
# all: a network whose products are all below SERIAL_FLOPS (step.py's threading_for) never
# starts a parallel region, and compiles seconds sooner without one (docs/performance.md,
# "Compile time and caching").
THREADED = np.bool_(True)
SERIAL_ONLY = None

_JIT = KERNEL_JIT
_LEAF = LEAF_JIT


@intrinsic
def set_parallel_chunksize(typingctx, n):
    """numba.set_parallel_chunksize(n) (returns the previous size), calling Numba's C
    function by its symbol name, as Numba's own parallel loops do.  Numba's overload calls
    it through a ctypes pointer, and a function that holds one cannot be cached on disk
    (train_steps would be compiled anew in every process)."""
    if not isinstance(n, types.Integer):
        return None
    launch_threads()             # registers the symbol

    def codegen(context, builder, signature, args):
        # declared as Numba's parallel loops declare them (one module may hold both)
        i64 = ir.IntType(64)
        get = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, []), "get_parallel_chunksize")
        put = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i64]),
                                             "set_parallel_chunksize")
        before = builder.call(get, [])
        builder.call(put, [context.cast(builder, args[0], signature.args[0], types.int64)])
        return before

    return types.int64(n), codegen


@intrinsic
def num_threads(typingctx):
    """numba.get_num_threads(), called by its symbol name as set_parallel_chunksize is:
    Numba's overload goes through a ctypes pointer, which would make gemm's callers
    uncachable."""
    launch_threads()             # registers the symbol

    def codegen(context, builder, signature, args):
        # declared as Numba's parallel loops declare it (one module may hold both)
        get = cgutils.get_or_insert_function(builder.module, ir.FunctionType(cgutils.intp_t, []), "get_num_threads")
        return builder.call(get, [])

    return types.int64(), codegen


# _epilogue stores a row of a packed panel of MR values as whole vectors: what runs past
# the row must fit in the next row's place, which is written right after.
assert all(-(-MR // w) * w - MR <= MR for w in (VEC_BYTES // 4, VEC_BYTES // 8)), "MR too small for the vectors"


@jit(**_JIT)
def panel_width(c):
    """NR: columns of C per micro-kernel call, NR_VECS vectors of c's dtype.  (Also
    called from Python, as panel_width.py_func, with a dtype for c: kernels/layout.py.)"""
    return NR_VECS * (VEC_BYTES // c.itemsize)


@jit(**_JIT)
def k_block(c):
    """KC: length of a block of the reduction axis, the same for both dtypes (_config)."""
    return KC


@jit(**_JIT)
def packed_size(n, k, w):
    """Elements of op(B) (k x n) packed into panels of w columns (also called from
    Python, as packed_size.py_func: kernels/layout.py)."""
    return (n + w - 1) // w * w * k


# -- packing --------------------------------------------------------------------------
# Inlined into its two callers' IR: compiled on its own it was a call per row of a panel (2
# vectors at S) with the ragged test inside it, where LLVM now hoists the test out of the
# row loop (config S 4-5 % faster on Zen 4, docs/performance.md).
@njit(**INLINE_JIT)
def _panel_row(src, so, nj, dst, do, w):
    """dst[do : do + w] = src[so : so + nj], zeros after (nj <= w, w a multiple of the
    vector): whole vectors, and masked loads of the values a ragged panel has."""
    v = lanes(dst)
    if nj >= w:
        for h in range(0, w, v):
            vstore(dst, do + h, vload(src, so + h))
    else:
        for h in range(0, w, v):
            vstore(dst, do + h, vload_part(src, so + h, nj - h))


@jit(**_LEAF)
def _pack_panel(src, transposed, k, n, w, dst, jp, sums):
    """Panel jp: dst[(jp*k + p)*w + r] = S[p, jp*w + r], zero past n, where S (k x n) is
    src or, when transposed, src^T (src is n x k).  Unless sums is empty (then w = MR),
    also sums[jp*w + r] = sum over p of S[p, jp*w + r], p in order, from the panel in cache."""
    vector_width()
    zero = dst.dtype.type(0)
    j0 = jp * w
    nj = min(w, n - j0)
    out = dst[jp * k * w: (jp + 1) * k * w]
    s = src.reshape(src.size)
    if transposed:               # column r of the panel is row j0 + r of src
        p0 = 0
        v = lanes(dst)
        if w % v == 0:
            # lanes x lanes blocks: load `lanes` rows of src, transpose in registers, store
            # `lanes` rows of the panel; past row n of src (a ragged last panel: the output
            # layer's few rows of W) the block's rows are zeros.
            while p0 + v <= k:
                for h in range(0, w, v):
                    if h + v <= nj:
                        block = vload_block(src, (j0 + h) * k + p0, k)   # src[j0+h+i, p0:p0+v]
                    elif h < nj:
                        block = vload_rows(src, (j0 + h) * k + p0, k, nj - h)
                    else:
                        block = vload_rows(src, p0, k, 0)   # zeros (its loads, of row 0, unused)
                    vstore_block(out, p0 * w + h, w, vtranspose(block))  # out[p0+i, h:h+v]
                p0 += v
        for r in range(nj):      # what is left: element by element
            row = src[j0 + r, p0:k]
            col = out[p0 * w + r:]
            for q in range(k - p0):
                col[q * w] = row[q]
    elif w == NR_VECS * lanes(dst):   # row p of the panel: row p of S, NR_VECS vectors
        for p in range(k):
            _panel_row(src, p * n + j0, nj, out, p * w, w)
    elif nj == w and w == MR:    # row p of the panel: MR values of row p of S (a top layer's
        for p in range(k):       # dz^T: the general copy below is the slow path)
            sp = p * n + j0
            for r in range(MR):
                out[p * MR + r] = s[sp + r]
    else:                        # row p of the panel: nj values of row p of S, zeros after
        for p in range(k):
            sp = p * n + j0
            for r in range(w):
                out[p * w + r] = s[sp + r] if r < nj else zero
    if transposed and nj < w:    # zero padding past the last column (of the rows left)
        for p in range(p0, k):
            for r in range(nj, w):
                out[p * w + r] = zero
    if sums.shape[0] > 0:        # (panels of A: w = MR)
        panel_sums(out, k, j0, nj, sums)


@jit(parallel=True, **_JIT)
def pack(src, transposed, w, dst):
    """Pack S = src (k x n), or src^T when transposed, into panels of w columns (see top):
    gemm's packing on its own, for the tests and the kernel benchmark."""
    if transposed:
        n, k = src.shape
    else:
        k, n = src.shape
    for jp in prange((n + w - 1) // w):
        # (prange's index is unsigned: the cast keeps one signature of _pack_panel)
        _pack_panel(src, transposed, k, n, w, dst, np.int64(jp), dst[:0])


# -- the product ----------------------------------------------------------------------
@jit(**_LEAF)
def _epilogue(c, epi, i0, i1, j0, j1):
    """The finishing pass over rows i0:i1, columns j0:j1 of a tile while they are still in
    cache (L1: _tile calls it per block of MC rows), epi = (epilogue, act, bias, ref,
    c_kept) as gemm's.  Row views starting at 0 and the activation branch taken
    outside the inner loop let LLVM vectorise each loop; one loop per activation code
    (identity, sigmoid, tanh, ReLU), each with its function known when compiled: LLVM
    would compile a loop with the run-time code inside once per code, and larger."""
    vector_width()
    epilogue, act, bias, ref, pa = epi
    one = c.dtype.type(1)
    if epilogue == EPI_BIAS_ACT:
        b = bias[j0:j1]
        for i in range(i0, i1):
            row = c[i, j0:j1]
            if act == SIGMOID:
                for j in range(row.shape[0]):
                    row[j] = sigmoid(row[j] + b[j], one)                      # a = f(z + b)
            elif act == TANH:
                for j in range(row.shape[0]):
                    row[j] = activate(row[j] + b[j], TANH, one)
            elif act == RELU:
                for j in range(row.shape[0]):
                    row[j] = activate(row[j] + b[j], RELU, one)
            else:
                for j in range(row.shape[0]):
                    row[j] += b[j]                                             # identity
    elif epilogue == EPI_DACT and act != IDENTITY:                           # (identity: f' = 1)
        for i in range(i0, i1):
            row = c[i, j0:j1]
            a = ref[i, j0:j1]
            if act == SIGMOID:
                for j in range(row.shape[0]):
                    row[j] = row[j] * (a[j] * (one - a[j]))                   # dz = da * a (1 - a)
            elif act == TANH:
                for j in range(row.shape[0]):
                    row[j] = row[j] * derivative(a[j], TANH, one)             # dz = da * f'(z)
            elif act == MASKED:                                                # dropout: ref = f'(a) m / (1 - p)
                for j in range(row.shape[0]):
                    row[j] = row[j] * a[j]
            else:                                                              # ReLU
                for j in range(row.shape[0]):
                    row[j] = row[j] * derivative(a[j], RELU, one)
    if pa.shape[0] > 0:
        # c^T (dz_prev^T) packed for the weight gradient that comes next (its a_packed), from
        # the tile in cache: pa[(j // MR * m + i) * MR + j % MR] = c[i, j], panels of MR
        # columns, zero past column n (written by the tiles that end at n).  A panel that
        # straddles two tiles gets its columns from each.
        m, n = c.shape
        v = lanes(c)
        for q in range(j0 // MR, (j1 + MR - 1) // MR):
            j = q * MR
            o = q * m * MR - j                   # pa[o + i*MR + j + r] = c[i, j + r]
            r0 = max(j0 - j, 0)
            r1 = min(j1 - j, MR)
            # A whole row of the panel is stored as whole vectors of c: the values past
            # it land in the next row's place, written right after, so the last row here
            # (whose next row is another call's) is copied by masked vectors of exactly
            # its values, as are panels shared with another tile (columns r0:r1 of the
            # panel here) and the zeros past column n.
            i_vec = i1 - 1 if r0 == 0 and r1 == MR else i0
            for i in range(i0, i_vec):
                for h in range(0, MR, v):
                    vstore(pa, o + i * MR + j + h, vload(c, i * n + j + h))
            for i in range(i_vec, i1):
                for h in range(0, MR, v):
                    h1 = min(h + v, MR)
                    lo, hi = max(r0, h), min(r1, h1)
                    if hi > lo:
                        vstore_part(pa, o + i * MR + j + lo, hi - lo, vload_part(c, i * n + j + lo, hi - lo))
                    z = max(r1, h)
                    if j1 == n and h1 > z:
                        vstore_part(pa, o + i * MR + j + z, h1 - z, vzero(c))


@jit(**_LEAF)
def _tile(a, a_packed, a_rows, b, b_in_place, pb, c, k, epi, a_kept, t, grid):
    """Task t: one tile of c, all k blocks, and its epilogue (epi, see _epilogue) block by
    block of MC rows as the last k block finishes them, and,
    unless a_kept is empty, the tile's rows of A packed into it (_keep_rows; the n_jt
    tiles of a row of tiles each pack a share of its panels).
    grid = (n_it, n_jt, by_columns): n_it x n_jt tiles, and the order of the tasks.

    Numba's parallel loop gives each thread a run of consecutive tasks.  Along the rows
    (t = it * n_jt + jt) a thread's tiles share a block of rows of A, and every row of
    tiles reads all of op(B); down the columns (t = jt * n_it + it) they share a column
    slab of op(B) (k x NC), and every column of tiles reads all of A.  With MC < NC the
    columns read less, and gemm takes them for reductions of BY_COLUMNS_BYTES or more;
    the small-k products keep the rows (docs/performance.md).

    A tile is at most NC columns wide, and MC rows tall unless op(B)'s column slab
    outgrows L2 (gemm): then tiles are taller, and the k-block loop runs outside the loop
    over the tile's blocks of MC rows, so that each KC x NC block of op(B) comes from
    memory once per tile and serves all its rows from L2."""
    vector_width()
    m, n = c.shape
    n_it, n_jt, by_columns = grid
    nr = panel_width(c)
    kc_max = k_block(c)
    if by_columns:
        it, jt = t % n_it, t // n_it
    else:
        it, jt = t // n_jt, t % n_jt
    # The MR-row slivers of C are dealt out evenly to the n_it rows of tiles, the
    # NR-column panels to the n_jt columns: tiles of nearly equal size, so the parallel
    # loop's even split of the tasks is an even split of the work.
    s_rows = (m + MR - 1) // MR
    s_cols = (n + nr - 1) // nr
    i0 = (it * s_rows // n_it) * MR
    i1 = min(m, ((it + 1) * s_rows // n_it) * MR)
    j0 = (jt * s_cols // n_jt) * nr
    j1 = min(n, ((jt + 1) * s_cols // n_jt) * nr)
    # A packed (panels of MR rows: A[i, p] = a[i*k + p*MR + i % MR]) or read in place,
    # A[i, p] = a[i*k + p], or, unless a_rows is empty, a[a_rows[i]*k + p] (a_offsets)
    for k0 in range(0, k, kc_max):
        kc = min(kc_max, k - k0)
        for ib in range(i0, i1, MC):                               # MC rows of the tile at a time
            for jp in range(j0 // nr, (j1 + nr - 1) // nr):        # a KC x NR panel of B, from L1 or L2
                if b_in_place and (jp + 1) * nr <= n:                # B[p, jp*nr + r] = b[(p * n) + ...]
                    src, bo, bs = b, k0 * n + jp * nr, n
                else:                                                # packed: pb[((jp * k + p) * nr) + r]
                    src, bo, bs = pb, (jp * k + k0) * nr, nr
                for i in range(ib, min(i1, ib + MC), MR):          # ... against each sliver of A
                    mr = min(MR, i1 - i)
                    ao = a_offsets(a_packed, a_rows, i, mr, k, k0)
                    co = i * n + jp * nr
                    ncols = min(nr, n - jp * nr)
                    # The step along p is a constant, one specialisation of micro per layout:
                    # with a run-time step LLVM's unrolled loop keeps a register per row offset
                    # into A and spills; with a constant, A[r, p + 1] is a displacement from A[r, p].
                    # A later k block goes on from the partial sums the block before stored.
                    # A last panel of at most one vector of columns (the output layer's 10
                    # classes, 48 = 32 + 16), with A in place (the forward and delta products):
                    # the one-vector micro-kernel, half the multiply-adds.  (Not for packed A,
                    # the weight gradients: each inlined copy of a micro-kernel costs compile time.)
                    if a_packed or ncols > lanes(c):
                        acc = zero_block(c) if k0 == 0 else load_block(c, co, n, mr, ncols)
                        if a_packed:
                            acc = micro(kc, a, ao, MR, src, bo, bs, acc)
                        else:
                            acc = micro(kc, a, ao, 1, src, bo, bs, acc)
                        store_block(c, co, n, mr, ncols, acc)
                    else:
                        acc1 = zero_block_1(c) if k0 == 0 else load_block_1(c, co, n, mr, ncols)
                        acc1 = micro_1(kc, a, ao, 1, src, bo, bs, acc1)
                        store_block_1(c, co, n, mr, ncols, acc1)
            if k0 + kc >= k:             # the epilogue of the MC rows just finished, from L1
                _epilogue(c, epi, ib, min(i1, ib + MC), j0, j1)
    if k == 0:
        for i in range(i0, i1):
            for j in range(j0, j1):
                c[i, j] = 0
        _epilogue(c, epi, i0, i1, j0, j1)
    if a_kept.shape[0] > 0:              # the rows of A this tile has read, still in cache
        kp = (k + nr - 1) // nr
        _keep_rows(a, a_rows, k, a_kept, m, i0, i1, jt * kp // n_jt, (jt + 1) * kp // n_jt)


@jit(**_LEAF)
def _keep_rows(a, a_rows, k, dst, m, i0, i1, jp0, jp1):
    """Rows i0 <= i < i1 of A (m x k, a[a_rows[i]*k + p]: only through a row map) into
    panels jp0 <= jp < jp1 of dst, A packed as the op(B) of a later product, panels of NR
    columns of A: dst[(jp*m + i)*NR + r] = A[i, jp*NR + r], zero past k.  (Layer 0's
    forward keeps x[idx] for dW_0, which would otherwise pack it from x again, rows
    fetched from memory.)"""
    nr = panel_width(dst)
    for jp in range(jp0, jp1):            # a panel at a time: each written in order
        j = jp * nr
        for i in range(i0, i1):
            _panel_row(a, a_rows[i] * k + j, min(nr, k - j), dst, (jp * m + i) * nr, nr)


@jit(**_LEAF)
def _pack_task(a, b, b_t, packs, sums, a_packed, dims, tasks, t):
    """Packing task t of gemm's packing phase, dims = (m, n, k, nr), tasks = (n_pa, pb0):
    panel t of op(A) when t < n_pa (when a_packed, already in pa: only its sums), else
    panel pb0 + t - n_pa of op(B).  (One call of _pack_panel, not one per operand: each
    call site is another copy of the packing code for LLVM to compile.)"""
    m, n, k, nr = dims
    n_pa, pb0 = tasks
    pa, pb = packs
    if t < n_pa and a_packed:
        panel_sums(pa[t * k * MR:(t + 1) * k * MR], k, t * MR, min(MR, m - t * MR), sums)
        return
    if t < n_pa:                 # op(A)^T = a, stored (k, m): panels of MR columns of a
        src, transposed, cols, w, dst, jp, s = a, AS_IS, m, A_PANEL, pa, t, sums
    else:
        src, transposed, cols, w, dst, jp, s = b, b_t, n, nr, pb, pb0 + t - n_pa, sums[:0]
    _pack_panel(src, transposed, k, cols, w, dst, jp, s)


@jit(**_LEAF)
def _strip_packing(a, b, b_t, packs, sums, a_packed, dims, tasks, t, strips):
    """gemm in one phase: the packing tasks of strip t of `strips` strips of columns
    (the panels of op(B) that _tile's task t reads, dealt out as _tile deals them), and a
    share of the sums of the packed op(A), if any (n_pa tasks)."""
    m, n, k, nr = dims
    n_pa, pb0 = tasks
    s_cols = (n + nr - 1) // nr
    for jp in range(max(t * s_cols // strips, pb0), (t + 1) * s_cols // strips):
        _pack_task(a, b, b_t, packs, sums, a_packed, dims, tasks, n_pa + jp - pb0)
    for q in range(t * n_pa // strips, (t + 1) * n_pa // strips):
        _pack_task(a, b, b_t, packs, sums, a_packed, dims, tasks, q)


class _SerialOnlyAllowed(CompiledOnly):
    """gemm's dispatcher.  Numba warns when a function compiled with parallel=True has no
    parallel loop; gemm's SERIAL_ONLY specialisation has none on purpose, so that warning
    is silenced while gemm compiles (and no other)."""

    def compile(self, sig):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"\s*The keyword argument 'parallel=True' was specified but no "
                                    "transformation", NumbaPerformanceWarning)
            return super().compile(sig)


@jit(dispatcher=_SerialOnlyAllowed, parallel=True, **_JIT)
def gemm(a, a_t, a_rows, b, b_t, c, packs, packed, epilogue, act, bias, ref, kept, threaded):
    """c = epilogue(op(a) op(b)), op(a) (m, k) and op(b) (k, n); c (m, n).  All C-contiguous.
    Backpropagation calls it through its three products (products.py).

    Operands: op(a) = a, or a^T when a_t (a stored (k, m)); op(b) = b, or b^T when b_t (b
    stored (n, k)).  Unless empty, a_rows (m,) picks the rows of a used as stored: op(a) =
    a[a_rows] (the minibatch's rows of x, read where they are: no gathered copy).

    packs = (pa, pb), the packing buffers: pb receives op(b) packed,
    packed_size(n, k, panel_width(c)) elements at least (only its ragged last panel when
    b is read in place), and pa op(a) when a_t, packed_size(m, k, MR) elements.
    packed = (a_packed, b_packed), each TO_PACK or PACKED: PACKED when the buffer already
    holds its operand, written by an earlier product's `kept` (a_packed: a_t only).

    The epilogue (EPI_NONE, EPI_BIAS_ACT, EPI_DACT) with activation code act reads bias
    (n,) (EPI_BIAS_ACT) or ref (m, n) (EPI_DACT); pass empty arrays otherwise.

    kept = (sums, a_kept, c_kept), what the product writes besides c, each skipped when
    empty: sums (m,) the row sums of op(a) (a_t only; the bias gradient); a_kept op(a)
    packed as the op(B) of a later product whose reduction axis is op(a)'s rows
    (packed_size(k, m, panel_width(c)) elements; a not transposed and read through a_rows
    only: layer 0's x[idx] for dW_0); c_kept c^T packed as the op(A) of a later product
    (packed_size(n, m, MR) elements: dz_prev^T for the weight gradient below).

    Two phases of one parallel loop (one parallel kernel for Numba to build): the
    packing tasks, one per panel, then the tiles of c.  A product below ONE_PHASE_FLOPS
    whose packing would be a parallel phase of its own runs in one phase instead: each
    task a strip of columns of c, all its rows, that first packs the panels of op(B) only
    it reads (_strip_packing).  threaded: THREADED, or SERIAL_ONLY for a specialisation
    with no parallel loop (see top).
    """
    vector_width()
    m, n = c.shape
    nr = panel_width(c)
    a_packed, b_packed = packed
    sums, a_kept, c_kept = kept
    if a_t:
        # A[i, p] = a[p, i]: read in place, a row of A would run down a column of a, one
        # cache line per value, so A is packed too, into panels of MR rows: A[i, p] =
        # pa[(i // MR * k + p) * MR + i % MR].
        k = a.shape[0]
        a_in = packs[0]
        n_pa = 0 if a_packed and sums.shape[0] < m else (m + MR - 1) // MR   # (packed: tasks for the sums only)
    else:                        # A[i, p] = a[i, p] (or a[a_rows[i], p]), read in place
        k = a.shape[1]
        a_in = a.reshape(a.size)
        n_pa = 0
    sums = sums[:m] if a_t and sums.shape[0] >= m else sums[:0]
    a_packed = a_packed and a_t
    c_kept = c_kept if c_kept.shape[0] >= packed_size(n, m, MR) else c_kept[:0]
    if a_t or a_rows.shape[0] != m or a_kept.shape[0] < packed_size(k, m, nr):
        a_kept = a_kept[:0]
    # op(B) = b is read in place when at most two slivers of A use each of its panels
    # (the output layer's dW, m = classes): packing would be a full extra pass over b
    # for little reuse.  With more slivers the packed panel, contiguous and in L1, is
    # faster (docs/performance.md, "Packing and alignment").
    b_flat = b.reshape(b.size)
    b_in_place = not b_t and m <= 2 * MR and not b_packed
    n_pb = (n + nr - 1) // nr
    pb0 = 0                      # first panel of op(B) to pack
    if b_in_place:               # only a ragged last panel
        pb0 = n_pb - 1 if n % nr != 0 else n_pb
    elif b_packed:
        pb0 = n_pb
    # Tiles of MC rows, or, when a column slab of op(B) (k x NC) would not stay in L2,
    # tiles of up to TALL_C_BYTES of c (see _tile)
    rows = MC if k * NC * c.itemsize <= SLAB_BYTES else max(MC, TALL_C_BYTES // (NC * c.itemsize))
    grid = ((m + rows - 1) // rows, (n + NC - 1) // NC, k * c.itemsize >= BY_COLUMNS_BYTES)
    small = 2 * m * n * k < SERIAL_FLOPS
    pack_serial = (n_pa * MR + (n_pb - pb0) * nr) * k < SERIAL_ELEMENTS
    # One phase (see above): strips of at most NC columns, as many as a multiple of the
    # thread count (3 strips on 2 threads left one thread idle for a third of the product),
    # and no panel of op(A) to pack (every strip would read them all), only its sums.  A product
    # of ONE_PHASE_FLOPS or more too, when its strips (each a large share of the work) are
    # enough for the tasks handed out one at a time to even out a slowed thread (at least
    # four per thread, split evenly) and, with more than one k block, a strip of c stays
    # within TALL_C_BYTES (its partial sums stay in L2): each strip's panels of op(B) are
    # then packed into L2 and read from there, not written to memory and read back.
    threads = num_threads()
    strips = min(n_pb, (max(grid[1], threads) + threads - 1) // threads * threads)
    large_ok = (strips >= 4 * threads and strips % threads == 0
                and (k <= KC or m * NC * c.itemsize <= TALL_C_BYTES))
    one_phase = (threaded is not None and not small and not pack_serial and (n_pa == 0 or a_packed)
                 and strips >= threads and (2 * m * n * k < ONE_PHASE_FLOPS or large_ok))
    if one_phase:
        grid = (1, strips, False)
    dims, tasks = (m, n, k, nr), (n_pa, pb0)
    epi = (epilogue, act, bias, ref, c_kept)
    # Tasks are handed out one at a time to whichever thread is free (Numba's default
    # splits them into one fixed run per thread): on a shared machine, a thread slowed by
    # another process does not hold the whole product back.  Each task writes its own
    # part of c, so which thread runs it changes no result.
    before = set_parallel_chunksize(1)
    for phase in range(2):
        if phase == 0:
            n_tasks = 0 if one_phase else n_pa + n_pb - pb0
            serial = small or pack_serial or one_phase   # (no parallel region for no task)
        else:
            n_tasks = grid[0] * grid[1]
            serial = small
        if threaded is None or serial:
            for t in range(n_tasks):
                if phase == 0:
                    _pack_task(a, b, b_t, packs, sums, a_packed, dims, tasks, t)
                else:
                    _tile(a_in, a_t, a_rows, b_flat, b_in_place, packs[1], c, k, epi, a_kept, t, grid)
        else:
            # (prange's index is unsigned: np.int64(t) keeps the one signature of each callee)
            for t in prange(n_tasks):
                if phase == 0:
                    _pack_task(a, b, b_t, packs, sums, a_packed, dims, tasks, np.int64(t))
                else:
                    if one_phase:
                        _strip_packing(a, b, b_t, packs, sums, a_packed, dims, tasks, np.int64(t), strips)
                    _tile(a_in, a_t, a_rows, b_flat, b_in_place, packs[1], c, k, epi, a_kept, np.int64(t), grid)
    set_parallel_chunksize(before)
