"""Which instruction-set level the kernels are built for, read from the host CPU.

A level fixes the width of the SIMD vectors the kernels use and the shape of the matrix
product's micro-kernel (``_config.LEVELS``):

    avx512   64-byte vectors, 32 vector registers   (AVX-512F: Intel Xeon since Skylake-SP,
                                                      AMD Zen 4 and Zen 5)
    avx2     32-byte vectors, 16 vector registers   (AVX2 and FMA: x86-64 since Haswell / Zen)
    sse      16-byte vectors, 16 vector registers   (anything else: older x86-64, ARM NEON)

The host's features are LLVM's (``llvmlite.binding.get_host_cpu_features``), the same
that Numba compiles for.  ``FASTBP_ISA=avx512|avx2|sse`` forces a level, for tests and
benchmarks; a level wider than the host still runs, since LLVM splits each vector
operation into the host's narrower ones (slower, same results).
"""
import os

LEVEL_NAMES = ("avx512", "avx2", "sse")


def host_features():
    """The host CPU's features as LLVM names them ({'avx2': True, ...})."""
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    return dict(llvm.get_host_cpu_features())


def host_level(features=None):
    """(level, reason) that the host's own features give."""
    f = host_features() if features is None else features
    if f.get("avx512f"):
        return "avx512", "the host has AVX-512F"
    if f.get("avx2") and f.get("fma"):
        return "avx2", "the host has AVX2 and FMA, no AVX-512F"
    return "sse", "the host has neither AVX-512F nor AVX2 with FMA"


def choose(environ=os.environ, features=None):
    """(level, reason): FASTBP_ISA if set, else the host's own level."""
    forced = environ.get("FASTBP_ISA", "").strip().lower()
    if forced:
        if forced not in LEVEL_NAMES:
            raise ValueError(f"FASTBP_ISA={environ['FASTBP_ISA']!r} is not an instruction-set level; "
                             f"use one of {', '.join(LEVEL_NAMES)} (or unset it to let the host decide)")
        native, _ = host_level(features)
        return forced, f"forced by FASTBP_ISA (the host's own level is {native})"
    return host_level(features)
