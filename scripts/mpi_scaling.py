"""Scale-out on one machine: 1 process x 2 threads against 2 MPI ranks x 1 thread, the
ranks with the reduction overlapped with the backward pass and without (FASTBP_MPI_OVERLAP=0).

    python scripts/mpi_scaling.py [--configs M,L] [--rounds 5] [--epochs 2]
    python scripts/mpi_scaling.py --arithmetic    # the README's when-it-pays table

Each round runs both set-ups as fresh processes, interleaved, on random data of the
benchmark configuration's shape (benchmarks/common.py), float32; each reports samples/s
of its last epoch (the first includes loading the compile cache).  Prints the median over
rounds, the ratio, and the bytes all-gathered per step against the compute per step.
Run it on an otherwise idle machine.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from benchmarks.common import CONFIGS  # noqa: E402

WORKER = r"""
import json, sys, time
import numpy as np
import fastbp
sizes, batch, n, epochs, dist = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
X = rng.standard_normal((n, sizes[0]), dtype=np.float32)
y = rng.integers(0, sizes[-1], n)
model = fastbp.MLP(list(sizes), activation="relu", seed=0, n_threads=None if dist else 2)
h = model.fit(X, y, epochs=epochs, batch_size=batch, optimizer=fastbp.SGD(lr=0.01), verbose=0,
              distributed="mpi" if dist else None)
rank = 0
if dist:
    from mpi4py import MPI
    rank = MPI.COMM_WORLD.Get_rank()
if rank == 0:
    print("RESULT", h.history["samples_per_second"][-1], flush=True)
"""


def run(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=dict(os.environ, **(env or {})))
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{r.stderr[-2000:]}")
    return float(next(s for s in r.stdout.splitlines() if s.startswith("RESULT")).split()[1])


def step_model(sizes, batch, gbit, ranks=2, flops=200e9, itemsize=4):
    """Seconds of a data-parallel step on ``ranks`` machines of ``flops`` each, linked at
    ``gbit`` Gbit/s, with and without the overlap, and of the step on one machine: each
    rank computes its shard's forward pass, then per layer from the top the weight
    gradient and (above layer 0) the delta; a layer's gradient (weights + bias) goes on
    the link when it is computed, one reduction after another (a ring all-reduce moves
    2 (R - 1) / R of the bytes); without the overlap the whole buffer goes after the
    backward pass.  Returns (one machine, overlapped, not overlapped)."""
    layers = list(zip(sizes[:-1], sizes[1:]))
    per_rank = batch / ranks
    work = lambda rows, n_in, n_out: 2 * rows * n_in * n_out / flops   # noqa: E731
    bytes_per_second = gbit / 8 * 1e9 / (2 * (ranks - 1) / ranks)
    one = sum(2 * work(batch, a, b) for a, b in layers) + sum(work(batch, a, b) for a, b in layers[1:])
    t = link = sum(work(per_rank, a, b) for a, b in layers)          # forward
    for l in range(len(layers) - 1, -1, -1):
        a, b = layers[l]
        t += work(per_rank, a, b)                                      # dW_l, db_l
        link = max(link, t) + itemsize * (a * b + b) / bytes_per_second
        if l > 0:
            t += work(per_rank, a, b)                                  # the delta to layer l - 1
    flat = t + itemsize * sum(a * b + b for a, b in layers) / bytes_per_second
    return one, max(t, link), flat


def arithmetic():
    """When scale-out pays, by the arithmetic of step_model: 2 machines of 200 GFLOP/s."""
    print("speed-up of 2 machines over one (float32, 200 GFLOP/s each): overlapped / not overlapped")
    print(f"{'config':6} {'parameters':>11} {'MB/step':>8} {'compute ms':>10} " +
          " ".join(f"{str(g) + ' Gbit/s':>16}" for g in (10, 25, 100)))
    for cfg in ("S", "M", "MB", "L", "XL"):
        sizes, batch, _ = CONFIGS[cfg]
        params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        cells = []
        for gbit in (10, 25, 100):
            one, over, flat = step_model(sizes, batch, gbit)
            cells.append(f"{one / over:.2f}x / {one / flat:.2f}x")
        print(f"{cfg:6} {params:>11,} {params * 4 / 1e6:>8.2f} {step_model(sizes, batch, 10)[0] * 1e3:>10.3f} " +
              " ".join(f"{c:>16}" for c in cells))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="M,L")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--arithmetic", action="store_true", help="print the when-it-pays table and stop")
    args = p.parse_args()
    if args.arithmetic:
        return arithmetic()
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit("no mpiexec: pip install 'fastbp[mpi]'")
    import fastbp
    print(f"fastbp {fastbp.__version__}; CPU: see `fastbp info`; {os.cpu_count()} CPUs; float32, "
          f"relu, SGD; median of {args.rounds} interleaved rounds")
    print(f"{'config':6} {'1 x 2 threads':>14} {'2 ranks x 1':>12} {'ratio':>6} {'no overlap':>11} "
          f"{'ratio':>6} {'overlap gain':>12} {'bytes/step':>11} {'MFLOP/step':>11}")
    for cfg in args.configs.split(","):
        sizes, batch, n = CONFIGS[cfg]
        job = json.dumps([sizes, batch, n, args.epochs, False])
        job_mpi = json.dumps([sizes, batch, n, args.epochs, True])
        one, two, flat = [], [], []
        for _ in range(args.rounds):
            one.append(run([sys.executable, "-c", WORKER, job]))
            two.append(run([mpiexec, "-n", "2", sys.executable, "-c", WORKER, job_mpi]))
            flat.append(run([mpiexec, "-n", "2", sys.executable, "-c", WORKER, job_mpi],
                            {"FASTBP_MPI_OVERLAP": "0"}))
        params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        flops = 6 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))  # fwd + 2 bwd products
        a, b, c = statistics.median(one), statistics.median(two), statistics.median(flat)
        print(f"{cfg:6} {a:>14,.0f} {b:>12,.0f} {b / a:>6.2f} {c:>11,.0f} {c / a:>6.2f} "
              f"{100 * (b / c - 1):>+11.1f}% {params * 4:>11,} {flops / 1e6:>11,.0f}")


if __name__ == "__main__":
    main()
