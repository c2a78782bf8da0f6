"""Every tunable of fastbp in one place: compiler flags, tile sizes, thresholds.

Tile sizes change only how work is split; the order in which each sum is accumulated
depends on the micro-kernel and ``KC`` alone, so results never depend on the thread
count or on ``MC``/``NC``.
"""

# LLVM fast-math flags we need: reassociation lets LLVM vectorise reductions, contraction
# turns a*b+c into one FMA.  Not "nnan"/"ninf": those would let the compiler assume NaN
# and Inf never occur and silently break non-finite checks.
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}

# Only the entry points called from Python (kernels/step.py: train_steps, train_step,
# eval_batch, predict_batch) are cached on disk; the kernels they call are compiled into
# them.  A cached function compiled in a process that had loaded its callees from the
# cache refers to them by symbol names of another process, and a third process that loads
# it crashes (seen: eval_batch and train_step segfaulted; numba issue #10128 is the same
# family).  Entry points compiled with all their callees are self-contained.
KERNEL_JIT = dict(cache=False, fastmath=FASTMATH, error_model="numpy")
ENTRY_JIT = dict(KERNEL_JIT, cache=True)

# Micro-kernel: MR rows of A against NR rows of B, MR*NR scalar accumulators in registers.
MR = 4
NR = 4
# Cache blocking of the reduction axis: KC elements of a row (4 KiB of float32) stay hot
# while a tile of C is computed.
KC = 1024
# A task of the parallel loop computes an MC x NC tile of C.
MC = 64
NC = 64
# Products whose reduction axis is shorter than SMALL_K use the row-streaming form
# (gemm_nn) instead of the dot-product micro-kernel; its tasks are NN_ROWS x NN_COLS of c.
# Measured (1 thread, dx of a 10-wide output layer, 128 x 256): 11 -> 37 GFLOP/s; at
# k = 32 the dot-product form is still ahead (28 vs 25).
SMALL_K = 16
NN_ROWS = 16
NN_COLS = 256
# Packing (transpose) tasks cover this many rows of the source.
TRANSPOSE_ROWS = 256
# Products with fewer floating-point operations than this run serially: starting a
# parallel region costs microseconds, more than a tiny layer takes.
SERIAL_FLOPS = 1 << 18
# Element-wise passes (gather, transpose, loss) with fewer elements than this run serially.
SERIAL_ELEMENTS = 1 << 15
# Rows of X handled per compiled call in predict/evaluate.
PREDICT_CHUNK = 4096
