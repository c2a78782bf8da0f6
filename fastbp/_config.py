"""Every tunable of fastbp in one place: compiler flags, tile sizes, thresholds.

Tile sizes and the instruction-set level change only how work is split and how wide
each instruction is, never the order in which a sum that reaches the weights is
accumulated: results depend neither on the thread count nor on the level.
"""
from . import _isa
from ._numba_compat import NO_NRT

# LLVM fast-math flags we need: reassociation lets LLVM vectorise reductions, contraction
# turns a*b+c into one FMA.  Not "nnan"/"ninf": those would let the compiler assume NaN
# and Inf never occur and silently break non-finite checks.
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}

# Only the entry points called from Python (kernels/step.py: train_steps,
# eval_batch, predict_batch) are cached on disk; the kernels they call are compiled into
# them.  A cached function compiled in a process that had loaded its callees from the
# cache refers to them by symbol names of another process, and a third process that loads
# it crashes (numba issue #10128's family).  Entry points compiled with all their callees
# are self-contained (tests/test_cache.py shares a cache between processes).
_BASE_JIT = dict(cache=False, fastmath=FASTMATH, error_model="numpy")
# (Python calls the entry points through Numba's CPython wrapper; the C-callable wrapper
# Numba also builds by default would be compiled, and never called.)
ENTRY_JIT = dict(_BASE_JIT, cache=True, no_cfunc_wrapper=True)
# Kernels called only from other compiled code are compiled without the wrappers that
# let Python (or C) call them: each wrapper is lowered and compiled to machine code once
# per kernel, for nothing (seconds of a cold first fit; docs/performance.md).
# kernels/__init__.py's decorator makes a Python call of such a kernel raise (Numba itself
# would crash); tests and benchmarks call one through kernels.python_callable(kernel).
KERNEL_JIT = dict(_BASE_JIT, no_cpython_wrapper=True, no_cfunc_wrapper=True)
# Numba inlines these into their caller's IR, so they are never compiled on their own
# where they are used; they keep the wrapper, which costs nothing until Python calls them.
INLINE_JIT = dict(_BASE_JIT, inline="always")
# Leaf kernels called per block, per row or per chunk: no reference counting of the
# arrays they are passed or take views of.  With it, every view and every array passed
# on is an atomic increment and decrement of a counter that all threads share, whose
# cache line bounces between the cores.  Only for functions that allocate nothing and
# return no array (the caller keeps every array alive for them).
LEAF_JIT = dict(KERNEL_JIT, **NO_NRT)
# Reductions whose result reaches the weights (the bias gradient's row sums, softmax's
# denominator): without "reassoc", so LLVM keeps each sum in source order instead of
# splitting it into as many partial sums as a vector has lanes, which would make the bits
# depend on the vector width (the level).
STRICT_FASTMATH = FASTMATH - {"reassoc"}
STRICT_LEAF_JIT = dict(LEAF_JIT, fastmath=STRICT_FASTMATH)

# The instruction-set level (_isa.py: the host's, or FASTBP_ISA) and its shapes.
#   VEC_BYTES  bytes in one SIMD vector (kernels/simd.py): 8 float32 or 4 float64 lanes
#              at 32 bytes.
#   MR x NR_VECS  the micro-kernel (kernels/gemm.py): an MR x NR block of C in
#              MR * NR_VECS vector registers, NR = NR_VECS vectors wide, plus NR_VECS
#              vectors of B and one broadcast of A, within the register file.
#   KC         the reduction axis is cut into blocks of KC values, of either dtype: the
#              packed KC x NR panel of B that the micro-kernel streams while it sweeps the
#              MR-row slivers of an MC x KC block of A (in L2) then has the same size in
#              bytes at float32 and float64 (NR is half as many float64s).
#   MC x NC    at most one tile of C per task of the parallel loop (gemm.py's _tile deals
#              the slivers and panels out evenly); MC a multiple of MR, NC of NR (float32).
# Each element of C is one chain of fused multiply-adds over the whole reduction, in
# order, whatever the shapes: every level gives the same bits (gemm.py).
LEVELS = {
    # 32 registers: 12 x 2 = 24 accumulators, 2 vectors of B, 1 broadcast (27).  The
    # 128 KiB panel of B (1024 x 32 float32, 1024 x 16 float64) outgrows L1 (as 512 x 32
    # did); KC = 1024 is still faster than 512, by 4-12 % on the products of M, MB, L and
    # XL, and than 1024 float32 / 512 float64 by 0-11 % at float64: each micro-kernel
    # call's set-up is shared by more work (docs/performance.md, "Tiling and threading").
    "avx512": dict(VEC_BYTES=64, MR=12, NR_VECS=2, KC=1024, MC=48, NC=128),
    # 16 registers: 6 x 2 = 12 accumulators, 2 of B, 1 broadcast (15).
    "avx2": dict(VEC_BYTES=32, MR=6, NR_VECS=2, KC=512, MC=48, NC=128),
    # 16 registers (SSE; NEON has 32 but its FMA throughput is the limit): as AVX2.
    "sse": dict(VEC_BYTES=16, MR=6, NR_VECS=2, KC=512, MC=48, NC=64),
}
ISA, ISA_REASON = _isa.choose()
VEC_BYTES = LEVELS[ISA]["VEC_BYTES"]
MR = LEVELS[ISA]["MR"]
NR_VECS = LEVELS[ISA]["NR_VECS"]
KC = LEVELS[ISA]["KC"]
MC = LEVELS[ISA]["MC"]
NC = LEVELS[ISA]["NC"]
# A column slab of op(B) (k x NC) larger than SLAB_BYTES is read from memory again by
# every tile of MC rows down its column (with the tile's rows of A it outgrows L2): gemm
# then makes tiles of up to TALL_C_BYTES of C instead, and each KC x NC block of op(B)
# serves all their rows from L2 (kernels/gemm.py's _tile).  Measured on a Xeon with 2 MiB
# of L2 per core: 512 x 4096 x 4096 products 8-10 % faster, k = 1536 and 2048 2-5 %,
# k = 1024 (a 512 KiB slab) no faster (docs/performance.md, "Tiling and threading").
SLAB_BYTES = 1 << 19
TALL_C_BYTES = 1 << 19
# Reductions of at least BY_COLUMNS_BYTES run their tasks down the columns of tiles, shorter
# ones along the rows (kernels/gemm.py's _tile).
BY_COLUMNS_BYTES = 2048
# Where the buffers the kernels stream through start (_memory.py): on a cache-line boundary.
ALIGN_BYTES = 64
# Products with fewer floating-point operations than this run serially: starting a
# parallel region costs microseconds, more than a small layer takes.  Measured on the
# Xeon (avx512, scripts/ab_gemm.py): M's output layer (2 x 128 x 10 x 256 = 655k flops)
# 1.2-1.9x faster serial, 1.3M break-even, 5.2M (MB's output layer) 1.2-1.7x faster on
# two threads (docs/performance.md, "Tiling and threading").
SERIAL_FLOPS = 1 << 20
# Element-wise passes (gather, packing, loss) with fewer elements than this run serially.
SERIAL_ELEMENTS = 1 << 15
# Products with fewer floating-point operations than this, whose packing of op(B) would be
# a parallel phase of its own, run in one phase: each task packs the panels of op(B) that
# only it reads, then computes its strip of columns of C (kernels/gemm.py).  Each parallel
# region costs 7-10 us here (waking the other thread, joining), about a tenth of such a
# product.  Measured on the Xeon (avx512, scripts/ab_gemm.py): M's products (128 x 256 x 256,
# 128 x 256 x 784) 1.13-1.31x faster, 512 x 256 x 256 1.00-1.15x; MB's 1024 x 256 x 256
# forward and dx 0.97x (docs/performance.md, "Tiling and threading").  Larger products run
# in one phase too when they have at least four strips of NC columns per thread, evenly
# (L, XL: gemm's large_ok; their panels of op(B) are then packed into L2, not to memory).
ONE_PHASE_FLOPS = 1 << 27
# Rows of X handled per compiled call in predict/evaluate.
PREDICT_CHUNK = 4096
