"""Data-parallel training over MPI ranks (mpi4py): ``fit(..., distributed="mpi")`` and
``mpiexec -n N fastbp train``.

Every rank holds the whole training set (the same file, or a memmap of it) and the same
model.  Rank 0's weights, optimizer state and random state are broadcast at the start, so
every rank draws the same shuffled order; each global minibatch of ``batch_size`` rows is
cut into one contiguous shard per rank.  A step is then:

1. each rank's compiled forward pass and loss over its shard (``forward_loss``), then its
   backward pass a layer per compiled call from the top (``backward_step``), giving the
   mean gradient of its b_r rows, scaled by b_r / B so that the shards' gradients add up
   to the global minibatch's mean gradient;
2. the gradients of all ranks added up, each element in rank order (a reduce-scatter by
   ``Ialltoall``, each rank adding the ranks' copies of its part in order 0, 1, ..., then
   an ``Iallgather`` of the sums): the bytes of a ring all-reduce, and a fixed order, so
   the run is bit-identical from run to run and equals a one-process run with batch B up
   to rounding.  Each layer's gradient starts its reduce-scatter as soon as its backward
   call returns, so the messages move while the layers below are computed;
3. the same optimizer update on every rank (``update_step``), so weights and optimizer
   state stay identical without being sent again.

Only rank 0 shows progress, writes checkpoints and files, and saves; validation rows are
sharded and their loss and hits summed the same way.  Every wait on another rank has a
deadline (``FASTBP_MPI_TIMEOUT`` seconds, default 600), and a rank that fails stops the
whole job (``MPI.Abort``) instead of leaving the others waiting for ever.
"""
import math
import os
import sys
import time
import zlib

import numpy as np

# the variables MPI launchers set in each rank's environment (MPICH/Hydra, Open MPI, PMIx)
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE")


class DistributedError(RuntimeError):
    """Ranks disagree (data, model, fastbp version) or one stopped answering."""


def launched_ranks():
    """How many ranks the MPI launcher started this process among (1 when not launched by
    mpiexec), read from its environment without importing MPI."""
    for var in _SIZE_VARS:
        value = os.environ.get(var)
        if value and value.isdigit():
            return int(value)
    return 1


def threads_per_rank(world):
    """This machine's cores shared out among the ranks running on it (at least 1)."""
    return max(1, (os.cpu_count() or 1) // world.local)


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("distributed='mpi' needs mpi4py and an MPI library: "
                          "pip install 'fastbp[mpi]'") from None
    return MPI


def library():
    """(MPI library version line, ranks in COMM_WORLD), or None without mpi4py."""
    try:
        MPI = _mpi()
    except ImportError:
        return None
    return " ".join(MPI.Get_library_version().splitlines()[0].split()), MPI.COMM_WORLD.Get_size()


# A wait polls without sleeping for this long: the partner of a step's reduction is
# usually a fraction of a millisecond behind, and a sleep would add its whole granularity
# to every wait of every step (docs/distributed.md, "Figures").
_SPIN_SECONDS = 0.005


class World:
    """COMM_WORLD with deadlines on every wait and the reductions training needs."""

    def __init__(self, timeout=None):
        self.MPI = _mpi()
        self.comm = self.MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        # ranks on this machine, which share its cores
        self.local = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED).Get_size()
        if timeout is None:
            timeout = float(os.environ.get("FASTBP_MPI_TIMEOUT", "600"))
        self.timeout = timeout
        self._work = {}   # (length, dtype) -> the reduction's buffers, made once

    # -- waiting with a deadline -----------------------------------------------------------
    def wait(self, request, what):
        """Wait for a non-blocking operation; after ``timeout`` seconds, stop the job with
        a message naming what was awaited (a rank that died or hangs)."""
        if request.Test():
            return
        start = time.monotonic()
        deadline = start + self.timeout
        spins = 0
        while not request.Test():
            spins += 1
            if spins % 64 == 0:
                now = time.monotonic()
                if now - start > _SPIN_SECONDS:   # a partner far behind: yield the core
                    time.sleep(0.0002)
                if now > deadline:
                    self.abort(f"no answer from every rank within {self.timeout:g} s while "
                               f"{what}; a rank has died or hangs (FASTBP_MPI_TIMEOUT sets the limit)")

    def abort(self, message):
        print(f"fastbp (rank {self.rank} of {self.size}): {message}; stopping all ranks",
              file=sys.stderr, flush=True)
        # the launcher tears the job down at once: give it time to forward the line first
        time.sleep(0.5)
        self.comm.Abort(1)

    def allgather_obj(self, value, what):
        buf = np.empty((self.size, _OBJ_BYTES), dtype=np.uint8)
        self.wait(self.comm.Iallgather(np.frombuffer(_pad(value), dtype=np.uint8), buf), what)
        return [bytes(row).rstrip(b"\0").decode() for row in buf]

    def bcast(self, array, what):
        self.wait(self.comm.Ibcast(array, root=0), what)

    def sum_in_rank_order(self, buf, what, key=None):
        """buf (1-D) replaced, on every rank, by the sum over ranks of every rank's buf,
        each element added in rank order 0, 1, ..., size - 1.  A reduce-scatter in that
        order and an all-gather, as a ring all-reduce moves: each rank sends and receives
        2 (size - 1) / size of the buffer, and owns the sum of one slice of it."""
        pending = self.start_sum(buf, what, key)
        self.add_own_slice(pending)
        self.finish_sum(pending)

    def start_sum(self, buf, what, key=None):
        """Post the first half of sum_in_rank_order (the reduce-scatter) without waiting;
        add_own_slice and finish_sum complete it.  ``key`` names the buffer's reduction
        buffers (made once, reused every step); two sums in flight need two keys."""
        n, size = buf.shape[0], self.size
        key = (key, n, buf.dtype.str)
        if key not in self._work:
            part = -(-n // size)
            self._work[key] = tuple(np.zeros((size, part), dtype=buf.dtype) for _ in range(3))
        send, recv, out = self._work[key]
        send.reshape(-1)[:n] = buf
        # recv[r] = rank r's copy of the slice this rank owns
        return [buf, what, recv, out, self.comm.Ialltoall(send, recv)]

    def add_own_slice(self, pending):
        """Wait for the reduce-scatter, add the ranks' copies of this rank's slice in rank
        order, and post the all-gather of the sums."""
        buf, what, recv, out, request = pending
        self.wait(request, what)
        mine = recv[0].copy()
        for r in range(1, self.size):
            mine += recv[r]
        pending[4] = self.comm.Iallgather(mine, out)

    def finish_sum(self, pending):
        """Wait for the all-gather and write the sums into the buffer."""
        buf, what, recv, out, request = pending
        self.wait(request, what)
        buf[:] = out.reshape(-1)[:buf.shape[0]]

    @staticmethod
    def progress(pending):
        """Let MPI move the posted operations on (without an MPI call, an MPI library
        that has no progress thread moves a large message only while it is waited on)."""
        for p in pending:
            p[4].Test()


_OBJ_BYTES = 4096


def _pad(text):
    raw = text.encode()
    if len(raw) > _OBJ_BYTES:   # (never cut: a cut JSON text would not parse on the other side)
        raise DistributedError(f"a start-up message of {len(raw)} bytes is over {_OBJ_BYTES}")
    return raw + b"\0" * (_OBJ_BYTES - len(raw))


def _fingerprint(X):
    """A CRC of up to 64 rows from the start, middle and end of X: tells different data
    files apart without reading a memmap in full."""
    n = X.shape[0]
    rows = np.unique(np.r_[0:min(n, 22), n // 2:min(n, n // 2 + 21), max(0, n - 21):n])
    return zlib.crc32(np.ascontiguousarray(X[rows]).tobytes())


def start(world, model, X, y, batch_size, epochs, optimizer, state):
    """Check that every rank runs the same job, then give every rank rank 0's weights,
    optimizer state and random state.  Raises DistributedError on every rank alike."""
    from . import __version__
    import json
    mine = {"fastbp": __version__, "model": json.dumps(model.get_config(), sort_keys=True),
            "X": f"{X.shape} {X.dtype} crc {_fingerprint(X)}",
            "y": f"{y.shape} {y.dtype} crc {_fingerprint(y.reshape(y.shape[0], -1))}",
            "batch_size": str(batch_size), "epochs": str(epochs),
            "optimizer": json.dumps(optimizer.get_config(), sort_keys=True)}
    keys = sorted(mine)
    theirs = world.allgather_obj(json.dumps([mine[k] for k in keys]), "checking the ranks agree")
    first = json.loads(theirs[0])
    for r, text in enumerate(theirs[1:], start=1):
        values = json.loads(text)
        for k, a, b in zip(keys, first, values):
            if a != b:
                raise DistributedError(f"rank {r} differs from rank 0 in {k}: {b} against {a}; "
                                       "every rank must run the same fastbp, model and data")
    world.bcast(model.params, "broadcasting rank 0's weights")
    world.bcast(state, "broadcasting rank 0's optimizer state")
    rng = np.frombuffer(_pad(json.dumps(model.rng.bit_generator.state)), dtype=np.uint8).copy()
    world.bcast(rng, "broadcasting rank 0's random state")
    model.rng.bit_generator.state = json.loads(bytes(rng).rstrip(b"\0").decode())
    steps = np.array([optimizer.steps, model.epoch], dtype=np.int64)
    world.bcast(steps, "broadcasting rank 0's step count")
    optimizer.steps, model.epoch = int(steps[0]), int(steps[1])


def _shard(world, n):
    """The rows [lo, hi) of n that this rank takes: contiguous, sizes differing by at most 1."""
    lo = world.rank * n // world.size
    return lo, (world.rank + 1) * n // world.size


# FASTBP_MPI_OVERLAP=0: reduce the whole gradient after the backward pass instead of a
# layer's gradient as soon as it is computed (for scripts/mpi_scaling.py's comparison)
OVERLAP = os.environ.get("FASTBP_MPI_OVERLAP", "1") != "0"


def run_steps(world, x, y, order, start_row, stop, batch_size, model, state, hyper, ws, stats,
              step_loss, threaded):
    """The minibatches order[start_row:stop] of batch_size rows, data-parallel: what
    kernels.step.train_steps does in one process, with the same results and protocol.
    A step: the forward pass and loss over this rank's shard, then the backward pass a
    layer at a time from the top; each layer's gradient starts its reduction across the
    ranks as soon as it is computed, while the layers below are computed (OVERLAP), and
    the update waits for them all.  Each minibatch's loss and hits are added up over the
    ranks too, so every rank holds the same numbers (step_loss, the return value) and
    takes the same decisions: a minibatch whose loss is not finite stops the call before
    its update on every rank (_epoch.checked_steps then acts alike everywhere).
    Returns (loss sum, hits) over all ranks."""
    from .kernels.layout import B_OFF, N_OUT, W_OFF
    from .kernels.optim import STEPS, STOPPED_AT
    from .kernels.step import backward_step, forward_loss, update_step
    meta, params, grads = model.meta, model.params, model.grads
    n_layers = meta.shape[0]
    # layer l's gradient is grads[meta[l, W_OFF] : meta[l, B_OFF] + n_out]: its weights, then its bias
    spans = [(int(meta[l, W_OFF]), int(meta[l, B_OFF] + meta[l, N_OUT])) for l in range(n_layers)]
    pair = np.zeros(2, dtype=np.float64)
    total = total_hits = 0.0
    hyper[STOPPED_AT] = 0.0
    for j, s in enumerate(range(start_row, stop, batch_size)):
        batch = order[s:min(s + batch_size, stop)]
        lo, hi = _shard(world, batch.shape[0])
        rows = batch[lo:hi]
        what = f"adding the gradients of step {int(hyper[STEPS]) + 1}"
        pair[:] = 0.0
        if hi > lo:   # the step's count and the shard's first row, as train_steps's forward sees them
            pair[:] = forward_loss(x, y, rows, params, meta, model._out_code, ws, stats,
                                   np.int64(hyper[STEPS] + 1), np.int64(lo), threaded)
        pending = [world.start_sum(pair, "adding up losses", "loss")]
        share = grads.dtype.type((hi - lo) / batch.shape[0])   # the shard's part of the mean
        for l in range(n_layers - 1, -1, -1):
            a, b = spans[l]
            if hi > lo:
                backward_step(x, rows, params, grads, meta, ws, np.int64(l), threaded)
                grads[a:b] *= share
            else:                # a minibatch smaller than the ranks: this rank has no rows
                grads[a:b] = 0
            if OVERLAP:
                pending.append(world.start_sum(grads[a:b], what, l))
                world.progress(pending)
        if not OVERLAP:
            pending.append(world.start_sum(grads, what, "all"))
        for p in pending:
            world.add_own_slice(p)
        for p in pending:
            world.finish_sum(p)
        loss, hits = float(pair[0]), float(pair[1])
        step_loss[j] = loss
        if not math.isfinite(loss):                # diverged, on every rank alike
            hyper[STOPPED_AT] = j + 1
            return total + loss, total_hits
        if not update_step(params, grads, state, hyper, meta, np.int64(batch.shape[0])):   # would diverge
            hyper[STOPPED_AT] = j + 1
            return total + math.nan, total_hits
        total += loss
        total_hits += hits
    return total, total_hits


def add_up(world, *values):
    """The sums over ranks of a few numbers (float64), added in rank order."""
    buf = np.array(values, dtype=np.float64)
    world.sum_in_rank_order(buf, "adding up losses")
    return tuple(float(v) for v in buf)


def evaluate_rows(world, model, X, y, rows):
    """model._evaluate_rows over all ranks: each scores a contiguous shard of rows, and the
    loss and hit sums are added in rank order."""
    n = rows.shape[0]
    lo, hi = _shard(world, n)
    loss = hits = 0.0
    if hi > lo:
        part = model._evaluate_rows(X, y, rows[lo:hi])
        loss, hits = part["loss"] * (hi - lo), part.get("accuracy", 0.0) * (hi - lo)
    sums = add_up(world, loss, hits)
    result = {"loss": sums[0] / n}
    if model.output != "identity":
        result["accuracy"] = sums[1] / n
    return result
