"""Every tunable of fastbp in one place: compiler flags, tile sizes, thresholds.

Tile sizes change only how work is split; the order in which each sum is accumulated
depends on the micro-kernel and ``KC_BYTES`` alone, so results never depend on the thread
count or on ``MC``/``NC``.
"""

# LLVM fast-math flags we need: reassociation lets LLVM vectorise reductions, contraction
# turns a*b+c into one FMA.  Not "nnan"/"ninf": those would let the compiler assume NaN
# and Inf never occur and silently break non-finite checks.
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}

# Only the entry points called from Python (kernels/step.py: train_steps,
# eval_batch, predict_batch) are cached on disk; the kernels they call are compiled into
# them.  A cached function compiled in a process that had loaded its callees from the
# cache refers to them by symbol names of another process, and a third process that loads
# it crashes (seen: eval_batch and train_step segfaulted; numba issue #10128 is the same
# family).  Entry points compiled with all their callees are self-contained.
_BASE_JIT = dict(cache=False, fastmath=FASTMATH, error_model="numpy")
# (Python calls the entry points through Numba's CPython wrapper; the C-callable wrapper
# Numba also builds by default would be compiled, and never called.)
ENTRY_JIT = dict(_BASE_JIT, cache=True, no_cfunc_wrapper=True)
# Kernels called only from other compiled code are compiled without the wrappers that
# let Python (or C) call them: each wrapper was lowered and compiled to machine code once
# per kernel, 3-4 s of a cold first fit.  kernels/__init__.py's decorator makes a Python
# call of such a kernel raise (Numba itself would crash); tests and benchmarks call one
# through kernels.python_callable(kernel).
KERNEL_JIT = dict(_BASE_JIT, no_cpython_wrapper=True, no_cfunc_wrapper=True)
# Numba inlines these into their caller's IR, so they are never compiled on their own
# where they are used; they keep the wrapper, which costs nothing until Python calls them.
INLINE_JIT = dict(_BASE_JIT, inline="always")
# Leaf kernels called per block, per row or per chunk: no reference counting of the
# arrays they are passed or take views of.  With it, every view and every array passed
# on was an atomic increment and decrement of a counter that all threads share: about
# 24 per micro-kernel call, 70 ns a call (the cache line bounces between the cores).
# Only for functions that allocate nothing and return no array (the caller keeps every
# array alive for them).
LEAF_JIT = dict(KERNEL_JIT, _nrt=False)

# Bytes in one SIMD vector (kernels/simd.py): 32, AVX2's 256 bits, 8 float32 or 4 float64.
# (LLVM splits wider vectors on AVX2, and prefers 256-bit ones on AVX-512 machines too.)
VEC_BYTES = 32
# Where the buffers the kernels stream through start (_memory.py): on a cache-line boundary.
ALIGN_BYTES = 64
# Micro-kernel (kernels/gemm.py): an MR x NR block of C in MR * NR_VECS vector registers,
# NR = NR_VECS vectors wide (16 float32 or 8 float64 columns).  6 x 2 = 12 accumulators,
# 2 vectors of B and one broadcast of A: 15 of AVX2's 16 vector registers.
MR = 6
NR_VECS = 2
# Cache blocking.  The reduction axis is cut into blocks of KC_BYTES (512 float32, 256
# float64): a packed panel of B, KC x NR, stays in L1 while the micro-kernel sweeps the
# MR-row slivers of an MC x KC block of A, which stays in L2.  A task of the parallel
# loop computes a tile of C of at most MC x NC (gemm.py's _tile deals the MR-row slivers and
# NR-column panels out evenly to the tiles).  MC is a multiple of MR, NC of NR.
KC_BYTES = 2048
MC = 48
NC = 128
# Products with fewer floating-point operations than this run serially: starting a
# parallel region costs microseconds, more than a tiny layer takes.
SERIAL_FLOPS = 1 << 18
# Element-wise passes (gather, packing, loss) with fewer elements than this run serially.
SERIAL_ELEMENTS = 1 << 15
# Rows of X handled per compiled call in predict/evaluate.
PREDICT_CHUNK = 4096
