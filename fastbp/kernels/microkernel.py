"""The matrix product's micro-kernel, written out for the level's MR x NR_VECS shape.

An MR x NR block of C must live in MR * NR_VECS named vector variables (LLVM keeps local
variables in registers, never a small array), so each shape is its own function text.
Rather than keep one hand-written copy per level, the few functions that name one
variable per row or per vector are generated here from their shape; at avx2 (6 x 2) the
micro-kernel reads:

    def _micro(kc, a, ao, step, pb, bo, bs, acc):
        w = lanes(pb)
        a0, a1, a2, a3, a4, a5 = ao
        c0_0, c0_1, ..., c5_1 = acc           # zeros, or the block of C so far (_load_block)
        for p in range(kc):
            b0 = vload(pb, bo + 0 * w)        # B[p, 0:w]
            b1 = vload(pb, bo + 1 * w)        # B[p, w:2w]
            x = vbroadcast(a, a0)             # A[0, p] in every lane
            c0_0 = vfma(x, b0, c0_0)          # c[0, :] += A[0, p] * B[p, :]
            c0_1 = vfma(x, b1, c0_1)
            ...                               # rows 1 to 5 alike
            a0 += step
            ...
            bo += bs
        return c0_0, c0_1, ..., c5_1

``print(fastbp.kernels.microkernel.SOURCE)`` shows the text of the running level.
Each element of C is one chain of fused multiply-adds over the whole reduction axis, in
order (a later k block goes on from the stored partial sum, it does not start a new
one), so its bits depend neither on MR, NR nor KC, and every level computes the same C.
Loading the partial sums is a function of its own (_load_block), outside the
micro-kernel: the micro-kernel must stay small, since LLVM inlines it into every caller.
"""
import linecache

from .._config import LEAF_JIT, MR, NR_VECS, STRICT_LEAF_JIT
from . import jit
from .simd import lanes, vbroadcast, vfma, vload, vload_part, vstore, vstore_part, vzero


@jit(**LEAF_JIT)
def _load_part(c, off, n):
    """The vector c.flat[off : off + lanes], of which only the first n lanes (n may be <= 0
    or past lanes) are read; the others are zero.  Never reads past n."""
    if n >= lanes(c):
        return vload(c, off)
    return vload_part(c, off, n)         # one masked load


@jit(**LEAF_JIT)
def _store_part(c, off, n, v):
    """c.flat[off : off + n] = the first n lanes of v (all of them when n >= lanes)."""
    if n >= lanes(c):
        vstore(c, off, v)
    else:
        vstore_part(c, off, n, v)        # one masked store


def _each_valid_row(mr, nv, indent, statement):
    """The statement for each vector h of each row r of the block, rows r > 0 under
    `if mr > r:` (row 0 always exists)."""
    lines = []
    for r in range(mr):
        if r > 0:
            lines.append(f"{indent}if mr > {r}:")
        lines += [indent + ("    " if r > 0 else "") + statement.format(r=r, h=h) for h in range(nv)]
    return lines


def _generate_block(mr, nv, suffix):
    """The text of the functions that name one variable per vector of the block: the
    micro-kernel, and loading, zeroing and storing its accumulators (names + suffix)."""
    rows, vecs = range(mr), range(nv)
    acc = [f"c{r}_{h}" for r in rows for h in vecs]
    a = [f"a{r}" for r in rows]
    L = []
    # -- the micro-kernel
    L.append(f"def _micro{suffix}(kc, a, ao, step, pb, bo, bs, acc):")
    L.append(f'    """c[{mr} rows, {nv} vectors] = acc + sum over kc values of p of A[r, p] B[p, :]:')
    L.append("    A[r, p] = a[ao[r] + p*step] (A in place, step 1, or a packed panel, step MR), B[p, :] =")
    L.append("    pb[bo + p*bs :] (a packed panel, bs = NR, or op(B) in place, bs = its row length).  acc:")
    L.append("    zeros (the first k block) or the block of C so far (_load_block).  Returns the")
    L.append('    accumulators, row by row, for _store_block."""')
    L.append("    w = lanes(pb)")
    L.append(f"    {', '.join(a)}, = ao")
    L.append(f"    {', '.join(acc)}, = acc")
    L.append("    for p in range(kc):")
    for h in vecs:
        L.append(f"        b{h} = vload(pb, bo + {h} * w)")
    for r in rows:
        L.append(f"        x = vbroadcast(a, a{r})")
        for h in vecs:
            L.append(f"        c{r}_{h} = vfma(x, b{h}, c{r}_{h})")
    for r in rows:
        L.append(f"        a{r} += step")
    L.append("        bo += bs")
    L.append(f"    return {', '.join(acc)}")
    L.append("")
    # -- the block so far, for a later k block to go on from
    L.append(f"def _load_block{suffix}(c, co, ldc, mr, nr):")
    L.append('    """The micro-kernel\'s accumulators from rows r < mr of C (nr columns), zeros elsewhere."""')
    L.append("    w = lanes(c)")
    L.append(f"    if mr == {mr} and nr >= {nv} * w:    # a whole block: whole vectors, no tests")
    L.append(f"        return ({', '.join(f'vload(c, co + {r} * ldc + {h} * w)' for r in rows for h in vecs)},)")
    L.append(f"    {' = '.join(acc)} = vzero(c)")
    L += _each_valid_row(mr, nv, "    ", "c{r}_{h} = _load_part(c, co + {r} * ldc + {h} * w, nr - {h} * w)")
    L.append(f"    return {', '.join(acc)}")
    L.append("")
    L.append(f"def _zero_block{suffix}(c):")
    L.append('    """The micro-kernel\'s accumulators, all zero (the first k block)."""')
    L.append("    z = vzero(c)")
    L.append(f"    return {', '.join('z' for _ in acc)}")
    L.append("")
    # -- storing the block
    L.append(f"def _store_block{suffix}(c, co, ldc, mr, nr, acc):")
    L.append('    """Rows r < mr of the micro-kernel\'s block of C (nr columns each) = its accumulators."""')
    L.append("    w = lanes(c)")
    L.append(f"    if mr == {mr} and nr >= {nv} * w:    # a whole block: whole vectors, no tests")
    for r in rows:
        for h in vecs:
            L.append(f"        vstore(c, co + {r} * ldc + {h} * w, acc[{r * nv + h}])")
    L.append("        return")
    L += _each_valid_row(mr, nv, "    ", "_store_part(c, co + {r} * ldc + {h} * w, nr - {h} * w, acc[{r} * %d + {h}])" % nv)
    L.append("")
    return L


def _generate(mr, nv):
    """The text of the shape's functions: the block's for NR_VECS vectors, and again for one
    vector (names ending in _1) when NR_VECS > 1, for a last panel of at most one vector
    of columns (the output layer's 10 classes: half the multiply-adds of a whole panel)."""
    rows = range(mr)
    L = _generate_block(mr, nv, "")
    if nv > 1:
        L += _generate_block(mr, 1, "_1")
    # -- where the rows of A start
    L.append("def _a_offsets(a_packed, a_rows, i, mr, k, k0):")
    L.append('    """ao[r], where row i + r of A starts at column k0 (see _micro): a packed panel')
    L.append("    (A[i + r, p] = a[i*k + p*MR + r]), or read in place, through the row map a_rows unless")
    L.append('    it is empty.  Rows past mr repeat the last valid one (computed, never stored)."""')
    L.append("    if a_packed:")
    L.append("        o = i * k + k0 * MR")
    L.append(f"        return ({', '.join(f'o + {r}' for r in rows)},)")
    L.append("    if a_rows.shape[0] > 0:")
    L.append(f"        return ({', '.join(f'a_rows[i + min({r}, mr - 1)] * k + k0' for r in rows)},)")
    L.append("    o = i * k + k0")
    L.append(f"    return ({', '.join(f'o + min({r}, mr - 1) * k' for r in rows)},)")
    L.append("")
    # -- row sums of a packed panel of A
    L.append("def _panel_sums(out, k, j0, nj, sums):")
    L.append('    """sums[j0 + r] = sum over p, in order, of out[p*MR + r], r < nj: the row sums of op(A)')
    L.append("    from its packed panel (the bias gradient db = sum over the batch of dz).  MR named")
    L.append("    sums side by side, each in order (strict: no reassociation, so no vector-wide partial")
    L.append('    sums); a loop over r with the sum inside compiles to 500 instructions of vector code."""')
    L.append("    zero = out.dtype.type(0)")
    L.append(f"    {' = '.join(f's{r}' for r in rows)} = zero")
    L.append("    for p in range(k):")
    L.append("        q = p * MR")
    for r in rows:
        L.append(f"        s{r} += out[q + {r}]")
    L.append("    for r in range(nj):")
    L.append(f"        sums[j0 + r] = ({', '.join(f's{r}' for r in rows)},)[r]")
    return "\n".join(L) + "\n"


SOURCE = _generate(MR, NR_VECS)
_FILE = f"<fastbp micro-kernel {MR}x{NR_VECS}>"
# registered with linecache so that tracebacks and Numba's messages can show the lines
linecache.cache[_FILE] = (len(SOURCE), None, SOURCE.splitlines(True), _FILE)
_namespace = dict(MR=MR, lanes=lanes, vload=vload, vstore=vstore, vbroadcast=vbroadcast, vfma=vfma, vzero=vzero,
                  _load_part=_load_part, _store_part=_store_part)
exec(compile(SOURCE, _FILE, "exec"), _namespace)

# The micro-kernel and the functions it calls are compiled as functions of their own,
# not inlined by Numba (inline="always"): each inlined copy would be type-inferred and
# compiled again, seconds of the first call.  LLVM still inlines them where they are used.
micro = jit(**LEAF_JIT)(_namespace["_micro"])
store_block = jit(**LEAF_JIT)(_namespace["_store_block"])
load_block = jit(**LEAF_JIT)(_namespace["_load_block"])
zero_block = jit(**LEAF_JIT)(_namespace["_zero_block"])
# one vector of columns (NR_VECS > 1; at NR_VECS = 1 these are the same functions)
_one = "_1" if NR_VECS > 1 else ""
micro_1 = jit(**LEAF_JIT)(_namespace["_micro" + _one]) if _one else micro
store_block_1 = jit(**LEAF_JIT)(_namespace["_store_block" + _one]) if _one else store_block
load_block_1 = jit(**LEAF_JIT)(_namespace["_load_block" + _one]) if _one else load_block
zero_block_1 = jit(**LEAF_JIT)(_namespace["_zero_block" + _one]) if _one else zero_block
a_offsets = jit(**LEAF_JIT)(_namespace["_a_offsets"])
panel_sums = jit(**STRICT_LEAF_JIT)(_namespace["_panel_sums"])
