"""exp(x) and tanh(x) in a form LLVM can vectorise.

``math.exp`` compiles to a call into the C library, one element at a time: in a sigmoid
layer the exponentials cost as much as the matrix product.  This version is branch-free
arithmetic (Cephes' range reduction and approximants), so the epilogue loops that apply
it run on vector registers:

    x = n ln2 + r,  |r| <= ln2 / 2      (n = round(x / ln2); ln2 split in two parts)
    exp(x) = 2^n * exp(r)               (exp(r): a polynomial, Cephes' in float32, the
                                         Taylor series to r^13 in float64: no division)

2^n is built directly from its bits.  x is clamped to the range where 2^n is a normal
number (about [-87, 88] in float32, [-708, 709] in float64): exp of less is about 1e-38
(1e-308) instead of a subnormal or 0.  Within 2 ulp (tests/test_kernels.py; float64 within 1
over [-700, 700]); NaN propagates.
"""
import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from .._config import STRICT_FASTMATH

# Without "reassoc": with it (and "nsz") LLVM rewrites the range reduction and the
# approximants, and exp(694) came out 209 ulp off (exp(100) 18).  Each flag's own
# instructions keep it when LLVM inlines them into a caller compiled with all of them.
_JIT_OPTIONS = dict(fastmath=STRICT_FASTMATH, error_model="numpy")


@intrinsic
def _pow2(typingctx, n):
    """2.0**n for an integral float n in the normal exponent range, built from its bits."""
    if n not in (types.float32, types.float64):
        return None
    bits, mant, bias = (32, 23, 127) if n == types.float32 else (64, 52, 1023)

    def codegen(context, builder, signature, args):
        ity = ir.IntType(bits)
        i = builder.fptosi(args[0], ity)
        i = builder.add(i, ir.Constant(ity, bias))
        i = builder.shl(i, ir.Constant(ity, mant))
        return builder.bitcast(i, context.get_value_type(signature.return_type))

    return n(n), codegen


def exp(x):
    """exp(x); inside compiled code, the vectorisable version below."""
    return math.exp(x)


def _constants(dt):
    # NumPy scalars of the dtype: a Python float in float32 code makes Numba compute in float64
    c = dict(lo=-87.0, hi=88.0, log2e=1.4426950408889634, half=0.5, one=1.0, two=2.0,
             ln2_hi=0.693359375, ln2_lo=-2.12194440e-4)
    if dt == np.float64:
        c.update(lo=-708.0, hi=709.0, ln2_hi=6.93145751953125e-1, ln2_lo=1.42860682030941723212e-6)
    return {k: dt(v) for k, v in c.items()}


_F32 = _constants(np.float32)
_F64 = _constants(np.float64)
# float32: Cephes expf polynomial, exp(r) = 1 + r + r^2 (P0 r^5 + ... + P5)
_P32 = [np.float32(v) for v in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)]
# float64: exp(r) = 1 + r + r^2 (1/2! + r/3! + ... + r^11/13!), the Taylor series to r^13
# (the first term left out, r^14/14!, is below 5e-18 at |r| <= ln2/2).  Cephes' Pade form
# needs a division, which on 512-bit vectors of float64 is the slowest instruction of the
# sigmoid (two divisions: 1.26 ns per element, 1.05 of them for exp; this form: see
# docs/performance.md, "The exp").
_C64 = [np.float64(1.0 / math.factorial(i)) for i in range(13, 1, -1)]     # 1/13!, ..., 1/2!


@overload(exp, jit_options=_JIT_OPTIONS)
def _exp_impl(x):
    if x not in (types.float32, types.float64):
        return None
    c = _F32 if x == types.float32 else _F64
    lo, hi, log2e, half, one = c["lo"], c["hi"], c["log2e"], c["half"], c["one"]
    ln2_hi, ln2_lo = c["ln2_hi"], c["ln2_lo"]
    if x == types.float32:
        p0, p1, p2, p3, p4, p5 = _P32

        def exp32(x):
            x = x if not x < lo else lo      # clamp, written so NaN passes through
            x = x if not x > hi else hi
            n = np.floor(x * log2e + half)  # a float of x's dtype
            r = x - n * ln2_hi - n * ln2_lo  # x - n ln2, in two steps for accuracy
            p = (((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5) * (r * r) + r + one
            return p * _pow2(n)
        return exp32

    c13, c12, c11, c10, c9, c8, c7, c6, c5, c4, c3, c2 = _C64

    def exp64(x):
        x = x if not x < lo else lo
        x = x if not x > hi else hi
        n = np.floor(x * log2e + half)  # a float of x's dtype
        r = x - n * ln2_hi - n * ln2_lo
        q = ((((((((((c13 * r + c12) * r + c11) * r + c10) * r + c9) * r + c8) * r + c7) * r + c6) * r + c5)
              * r + c4) * r + c3) * r + c2
        return (q * (r * r) + r + one) * _pow2(n)
    return exp64


def tanh(x):
    """tanh(x); inside compiled code, the vectorisable version below."""
    return math.tanh(x)


# Cephes tanhf / tanh: |x| < 0.625: x + x^3 P(x^2) (float32 a polynomial, float64 P / Q);
# else 1 - 2 / (exp(2|x|) + 1) with the sign of x.  Both are computed and one is selected,
# branch-free, so the loops vectorise; math.tanh is a C call per element (a float32
# forward 1024x256x256 with tanh took 956 us against 549 with the sigmoid).
_T32 = [np.float32(v) for v in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                                1.33314422036e-1, -3.33332819422e-1)]
_TP64 = [np.float64(v) for v in (-9.64399179425052238628e-1, -9.92877231001918586564e1,
                                 -1.61468768441708447952e3)]
_TQ64 = [np.float64(v) for v in (1.12811678491632931402e2, 2.23548839060100448583e3,
                                 4.84406305325125486048e3)]


@overload(tanh, jit_options=_JIT_OPTIONS)
def _tanh_impl(x):
    if x not in (types.float32, types.float64):
        return None
    c = _F32 if x == types.float32 else _F64
    one, two = c["one"], c["two"]
    cut = (np.float32 if x == types.float32 else np.float64)(0.625)
    if x == types.float32:
        t0, t1, t2, t3, t4 = _T32

        def tanh32(x):
            a = abs(x)
            b = one - two / (exp(a + a) + one)   # exp clamps: +-1 for large |x|; NaN passes through
            big = b if x > 0 else -b
            z = x * x                            # below: odd in x, so -0.0 keeps its sign
            small = ((((t0 * z + t1) * z + t2) * z + t3) * z + t4) * z * x + x
            return small if a < cut else big
        return tanh32

    p0, p1, p2 = _TP64
    q0, q1, q2 = _TQ64

    def tanh64(x):
        a = abs(x)
        b = one - two / (exp(a + a) + one)
        big = b if x > 0 else -b
        z = x * x
        small = x * z * (((p0 * z + p1) * z + p2) / (((z + q0) * z + q1) * z + q2)) + x
        return small if a < cut else big
    return tanh64
