"""A few SIMD vector operations for Numba, so the matrix product can keep a block of C
in vector registers (the "outer-product" micro-kernel of GotoBLAS / BLIS).

LLVM vectorises a loop by itself, but only its innermost loop, and it cannot keep an
accumulator that lives in memory in a register.  The outer-product micro-kernel needs
MR x NR accumulators that stay in registers across the whole reduction loop, so it
spells them out as local variables of a vector type: ``Vec`` is one machine vector
(``VEC_BYTES`` wide, set by the instruction-set level: 16 float32 or 8 float64 lanes at
avx512, 8 or 4 at avx2) and the functions below are the few instructions the kernels
need.  They are ordinary LLVM vector instructions, so LLVM still allocates registers and
schedules them; on a machine with narrower vectors it splits them.

The loops LLVM vectorises by itself (epilogues, losses, the optimizer update) follow the
level too: LLVM prefers 256-bit vectors on most AVX-512 CPUs, so every function that
uses a vector instruction below, or calls ``vector_width()``, is marked with the function
attributes "prefer-vector-width" and "min-legal-vector-width" of the level's width.

Every load and store takes a flat element offset into a C-contiguous array's buffer and
does no bounds or negative-index check: the callers guarantee the offsets are in range.
"""
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, models, register_model

from .._config import VEC_BYTES
from .._numba_compat import add_string_attribute


class Vec(types.Type):
    """One SIMD vector of `lanes` values of `dtype`."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = VEC_BYTES // (dtype.bitwidth // 8)
        super().__init__(name=f"Vec({dtype} x {self.lanes})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        elem = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(elem, fe_type.lanes))


_WIDTH_ATTRIBUTES = (f'"prefer-vector-width"="{VEC_BYTES * 8}"', f'"min-legal-vector-width"="{VEC_BYTES * 8}"')


def _mark_width(builder):
    """Tell LLVM the vector width of the function being built (see top)."""
    attrs = builder.function.attributes
    for a in _WIDTH_ATTRIBUTES:
        if a not in attrs:
            add_string_attribute(attrs, a)


@intrinsic
def vector_width(typingctx):
    """Mark the calling function with the level's vector width (does nothing at run time)."""
    def codegen(context, builder, sig, args):
        _mark_width(builder)
        return context.get_dummy_value()
    return types.none(), codegen


def _is_float_array(arr):
    """Flat offsets mean something only in a C-contiguous buffer: other arrays do not type."""
    return isinstance(arr, types.Array) and arr.dtype in (types.float32, types.float64) and arr.layout == "C"


def _pointer(context, builder, arrty, arr, offset, offty, count=1):
    """Address of element `offset` of the array's buffer, which the caller reads or writes
    `count` elements from.  Unchecked, but where Numba compiles bounds checks in
    (NUMBA_BOUNDSCHECK=1, the reliability tests): there both ends of the access are
    checked against the buffer's size, as Numba checks an index (an IndexError)."""
    ary = context.make_array(arrty)(context, builder, arr)
    off = context.cast(builder, offset, offty, types.intp)
    if context.enable_boundscheck:
        cgutils.do_boundscheck(context, builder, off, ary.nitems)
        cgutils.do_boundscheck(context, builder, builder.add(off, ir.Constant(off.type, count - 1)), ary.nitems)
    return builder.gep(ary.data, [off])


@intrinsic
def lanes(typingctx, arr):
    """Number of lanes of a vector of arr's dtype (a compile-time constant)."""
    if not _is_float_array(arr):
        return None
    n = Vec(arr.dtype).lanes

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, n)
    return types.intp(arr), codegen


@intrinsic
def vzero(typingctx, arr):
    """A vector of zeros of arr's dtype."""
    if not _is_float_array(arr):
        return None
    vt = Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_width(builder)
        return ir.Constant(context.get_value_type(vt), None)
    return vt(arr), codegen


@intrinsic
def vload(typingctx, arr, offset):
    """The vector arr.flat[offset : offset + lanes]."""
    if not _is_float_array(arr) or not isinstance(offset, types.Integer):
        return None
    vt = Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_width(builder)
        ptr = _pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1], vt.lanes)
        vptr = builder.bitcast(ptr, context.get_value_type(vt).as_pointer())
        return builder.load(vptr, align=arr.dtype.bitwidth // 8)
    return vt(arr, offset), codegen


@intrinsic
def vbroadcast(typingctx, arr, offset):
    """A vector with arr.flat[offset] in every lane."""
    if not _is_float_array(arr) or not isinstance(offset, types.Integer):
        return None
    vt = Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_width(builder)
        ptr = _pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        x = builder.load(ptr)
        vty = context.get_value_type(vt)
        v = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
        mask = ir.Constant(ir.VectorType(ir.IntType(32), vt.lanes), [0] * vt.lanes)
        return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), mask)
    return vt(arr, offset), codegen


@intrinsic
def vfma(typingctx, x, y, acc):
    """x * y + acc, lane by lane, as one fused multiply-add."""
    if not (isinstance(x, Vec) and x == y == acc):
        return None

    def codegen(context, builder, sig, args):
        _mark_width(builder)
        vty = args[0].type
        bits = 32 if isinstance(vty.element, ir.FloatType) else 64
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                             f"llvm.fma.v{vty.count}f{bits}")
        return builder.call(fma, args)
    return x(x, y, acc), codegen


@intrinsic
def vadd(typingctx, x, y):
    """x + y, lane by lane."""
    if not (isinstance(x, Vec) and x == y):
        return None

    def codegen(context, builder, sig, args):
        _mark_width(builder)
        return builder.fadd(args[0], args[1])
    return x(x, y), codegen


@intrinsic
def vstore(typingctx, arr, offset, v):
    """arr.flat[offset : offset + lanes] = v."""
    if not (_is_float_array(arr) and isinstance(offset, types.Integer) and v == Vec(arr.dtype)):
        return None

    def codegen(context, builder, sig, args):
        _mark_width(builder)
        ptr = _pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1], sig.args[2].lanes)
        vptr = builder.bitcast(ptr, context.get_value_type(sig.args[2]).as_pointer())
        builder.store(args[2], vptr, align=arr.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(arr, offset, v), codegen


def _lane_mask(builder, lanes, n):
    """The <lanes x i1> mask of the lanes r < n (n an intp; none when n <= 0, all past lanes)."""
    nt = n.type
    index = ir.Constant(ir.VectorType(nt, lanes), list(range(lanes)))
    splat = builder.shuffle_vector(
        builder.insert_element(ir.Constant(ir.VectorType(nt, lanes), ir.Undefined), n, ir.Constant(ir.IntType(32), 0)),
        ir.Constant(ir.VectorType(nt, lanes), ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))
    return builder.icmp_signed("<", index, splat)


def _masked_pointer(context, builder, sig, args, lanes):
    """(vector pointer, mask) of a partial access of the first n lanes from element offset:
    the bounds check (when compiled in) covers only the elements accessed."""
    arrty, offty, nty = sig.args[0], sig.args[1], sig.args[2]
    n = context.cast(builder, args[2], nty, types.intp)
    count = builder.select(builder.icmp_signed(">", n, ir.Constant(n.type, lanes)), ir.Constant(n.type, lanes), n)
    ary = context.make_array(arrty)(context, builder, args[0])
    off = context.cast(builder, args[1], offty, types.intp)
    if context.enable_boundscheck:
        with builder.if_then(builder.icmp_signed(">", count, ir.Constant(n.type, 0))):
            cgutils.do_boundscheck(context, builder, off, ary.nitems)
            cgutils.do_boundscheck(context, builder, builder.sub(builder.add(off, count), ir.Constant(n.type, 1)),
                                   ary.nitems)
    return builder.gep(ary.data, [off]), _lane_mask(builder, lanes, n)


def _masked_name(op, vty):
    bits = 32 if isinstance(vty.element, ir.FloatType) else 64
    return f"llvm.masked.{op}.v{vty.count}f{bits}.p0"


@intrinsic
def vload_part(typingctx, arr, offset, n):
    """The vector of arr.flat[offset : offset + n] in its first n lanes and zeros in the
    others (n <= 0: all zeros; n >= lanes: a whole vector): one masked load, which reads
    nothing past the n elements."""
    if not (_is_float_array(arr) and isinstance(offset, types.Integer) and isinstance(n, types.Integer)):
        return None
    vt = Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_width(builder)
        vty = context.get_value_type(vt)
        ptr, mask = _masked_pointer(context, builder, sig, args, vt.lanes)
        vptr = builder.bitcast(ptr, vty.as_pointer())
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vptr.type, ir.IntType(32), mask.type, vty]), _masked_name("load", vty))
        return builder.call(fn, [vptr, ir.Constant(ir.IntType(32), arr.dtype.bitwidth // 8), mask, ir.Constant(vty, None)])
    return vt(arr, offset, n), codegen


@intrinsic
def vstore_part(typingctx, arr, offset, n, v):
    """arr.flat[offset : offset + n] = the first n lanes of v (n <= 0: nothing; n >= lanes:
    the whole vector): one masked store, which writes nothing past the n elements."""
    if not (_is_float_array(arr) and isinstance(offset, types.Integer) and isinstance(n, types.Integer)
            and v == Vec(arr.dtype)):
        return None

    def codegen(context, builder, sig, args):
        _mark_width(builder)
        vty = args[3].type
        ptr, mask = _masked_pointer(context, builder, sig, args, sig.args[3].lanes)
        vptr = builder.bitcast(ptr, vty.as_pointer())
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vty, vptr.type, ir.IntType(32), mask.type]),
            _masked_name("store", vty))
        builder.call(fn, [args[3], vptr, ir.Constant(ir.IntType(32), arr.dtype.bitwidth // 8), mask])
        return context.get_dummy_value()
    return types.none(arr, offset, n, v), codegen


@intrinsic
def sload(typingctx, arr, offset):
    """The scalar arr.flat[offset]."""
    if not _is_float_array(arr) or not isinstance(offset, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1]))
    return arr.dtype(arr, offset), codegen


@intrinsic
def sstore(typingctx, arr, offset, x):
    """arr.flat[offset] = x (a scalar of arr's dtype)."""
    if not (_is_float_array(arr) and isinstance(offset, types.Integer) and x == arr.dtype):
        return None

    def codegen(context, builder, sig, args):
        builder.store(args[2], _pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1]))
        return context.get_dummy_value()
    return types.none(arr, offset, x), codegen


@intrinsic
def vlane(typingctx, v, i):
    """Lane i of v (for the few stores at the ragged edge of a matrix)."""
    if not (isinstance(v, Vec) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.extract_element(args[0], builder.trunc(
            context.cast(builder, args[1], sig.args[1], types.int64), ir.IntType(32)))
    return v.dtype(v, i), codegen


@intrinsic
def vinsert(typingctx, v, i, x):
    """v with lane i set to x (for the few loads at the ragged edge of a matrix)."""
    if not (isinstance(v, Vec) and isinstance(i, types.Integer) and x == v.dtype):
        return None

    def codegen(context, builder, sig, args):
        return builder.insert_element(args[0], args[2], builder.trunc(
            context.cast(builder, args[1], sig.args[1], types.int64), ir.IntType(32)))
    return v(v, i, x), codegen


def _block_type(arr):
    vt = Vec(arr.dtype)
    return vt, types.UniTuple(vt, vt.lanes)


def _load_block(context, builder, sig, args, rows=None):
    """The lanes x lanes block of vload_block; with `rows` (an LLVM integer), vectors
    i >= rows are zeros, their loads redirected to vector 0 (read, never used)."""
    _mark_width(builder)
    vt = sig.return_type.dtype
    vptr_t = context.get_value_type(vt).as_pointer()
    off0 = context.cast(builder, args[1], sig.args[1], types.intp)
    step = context.cast(builder, args[2], sig.args[2], types.intp)
    zero = ir.Constant(context.get_value_type(vt), None)
    out, off = [], off0
    for i in range(vt.lanes):
        valid = None if rows is None else builder.icmp_signed("<", ir.Constant(rows.type, i), rows)
        at = off if valid is None else builder.select(valid, off, off0)
        ptr = _pointer(context, builder, sig.args[0], args[0], at, types.intp, vt.lanes)
        v = builder.load(builder.bitcast(ptr, vptr_t), align=sig.args[0].dtype.bitwidth // 8)
        out.append(v if valid is None else builder.select(valid, v, zero))
        off = builder.add(off, step)
    return context.make_tuple(builder, sig.return_type, out)


@intrinsic
def vload_block(typingctx, arr, offset, stride):
    """A lanes x lanes block: vector i is arr.flat[offset + i*stride : ... + lanes]."""
    if not (_is_float_array(arr) and isinstance(offset, types.Integer) and isinstance(stride, types.Integer)):
        return None
    bt = _block_type(arr)[1]

    def codegen(context, builder, sig, args):
        return _load_block(context, builder, sig, args)
    return bt(arr, offset, stride), codegen


@intrinsic
def vload_rows(typingctx, arr, offset, stride, rows):
    """vload_block's block with only its first `rows` vectors read, the others zeros (their
    loads redirected to vector 0, which must be readable): the last rows of a matrix,
    whose whole block would reach past its end."""
    if not (_is_float_array(arr) and all(isinstance(t, types.Integer) for t in (offset, stride, rows))):
        return None
    bt = _block_type(arr)[1]

    def codegen(context, builder, sig, args):
        rows = context.cast(builder, args[3], sig.args[3], types.intp)
        return _load_block(context, builder, sig, args, rows)
    return bt(arr, offset, stride, rows), codegen


@intrinsic
def vstore_block(typingctx, arr, offset, stride, block):
    """arr.flat[offset + i*stride : ... + lanes] = block[i] for each vector i of the block."""
    if not (_is_float_array(arr) and isinstance(offset, types.Integer) and isinstance(stride, types.Integer)
            and block == _block_type(arr)[1]):
        return None
    vt = Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_width(builder)
        vptr_t = context.get_value_type(vt).as_pointer()
        off = context.cast(builder, args[1], sig.args[1], types.intp)
        step = context.cast(builder, args[2], sig.args[2], types.intp)
        for i in range(vt.lanes):
            ptr = _pointer(context, builder, sig.args[0], args[0], off, types.intp, vt.lanes)
            builder.store(builder.extract_value(args[3], i), builder.bitcast(ptr, vptr_t),
                          align=arr.dtype.bitwidth // 8)
            off = builder.add(off, step)
        return context.get_dummy_value()
    return types.none(arr, offset, stride, block), codegen


@intrinsic
def vtranspose(typingctx, block):
    """The transpose of a lanes x lanes block (vector i = row i): log2(lanes) rounds of
    shuffles, each swapping the off-diagonal h x h sub-blocks (h = lanes/2, ..., 1)."""
    if not (isinstance(block, types.UniTuple) and isinstance(block.dtype, Vec)
            and block.count == block.dtype.lanes):
        return None
    n = block.count

    def codegen(context, builder, sig, args):
        _mark_width(builder)
        rows = [builder.extract_value(args[0], i) for i in range(n)]
        h = n // 2
        while h >= 1:
            # rows i and i + h (bit h of i clear): in each group of 2h lanes, row i keeps
            # its first h lanes and takes row i+h's first h; row i+h gets both second halves.
            lo = [e if e & h == 0 else n + e - h for e in range(n)]
            hi = [e + h if e & h == 0 else n + e for e in range(n)]
            mask_lo = ir.Constant(ir.VectorType(ir.IntType(32), n), lo)
            mask_hi = ir.Constant(ir.VectorType(ir.IntType(32), n), hi)
            out = list(rows)
            for i in range(n):
                if i & h == 0:
                    out[i] = builder.shuffle_vector(rows[i], rows[i + h], mask_lo)
                    out[i + h] = builder.shuffle_vector(rows[i], rows[i + h], mask_hi)
            rows = out
            h //= 2
        return context.make_tuple(builder, sig.return_type, rows)
    return block(block), codegen
