#!/usr/bin/env python
"""Per-kernel throughput, so a regression can be traced to its kernel.

For each layer of a configuration of docs/benchmarks.md it times, separately and after a
warm-up call: the forward product with its fused bias + sigmoid epilogue, the packing
transposes of the backward pass, the weight-gradient product, the product that passes the
delta down (fused activation derivative), the bias gradient, the loss kernel and the
optimizer update over the whole parameter buffer.  Reports the median of --repeat runs
in microseconds and GFLOP/s.

    python scripts/bench_kernels.py --configs M,L --dtype float32 --threads 2

``--dropout 0.2`` also times whole training steps of each configuration with dropout 0.2
on every hidden layer against none, and prints the cost of dropout per step (the mask
pass after each hidden layer's forward product, the masked delta epilogue).
``--only-steps`` skips the per-kernel table (with --dropout or --awkward).
"""
import argparse
import os
import sys
import time

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--configs", default="S,M,MB,L")
p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
p.add_argument("--threads", type=int, default=os.cpu_count())
p.add_argument("--repeat", type=int, default=7)
p.add_argument("--awkward", action="store_true",
               help="also time whole training steps on awkward widths (100-37-13, batch 77) "
                    "against the nearest tile-friendly ones (widths multiples of NR = 16, batch of "
                    "MR = 6: 96-32-16, batch 78)")
p.add_argument("--dropout", type=float, default=None, metavar="P",
               help="also time whole training steps with dropout P on the hidden layers against "
                    "none, per configuration: the cost of dropout per step")
p.add_argument("--only-steps", action="store_true", help="skip the per-kernel table")
args = p.parse_args()
os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))

import numpy as np  # noqa: E402

import fastbp  # noqa: E402
from fastbp.kernels import activations as A  # noqa: E402
from fastbp.kernels import gemm as G  # noqa: E402
from fastbp.kernels import loss as L  # noqa: E402
from fastbp.kernels import optim as O  # noqa: E402
from fastbp.kernels import python_callable  # noqa: E402
from fastbp.kernels.gemm import (A_PANEL, AS_IS, EPI_BIAS_ACT, EPI_DACT, EPI_NONE, THREADED, TO_PACK,  # noqa: E402
                                 TRANSPOSED)
from fastbp.kernels.layout import PA, PB, PX, buffer_sizes  # noqa: E402  (the workspace's own sizing)
from fastbp.kernels.optim import HYPER_SIZE, KIND, LR, SGD  # noqa: E402
from fastbp._config import MR  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from benchmarks.common import CONFIGS  # noqa: E402  (docs/benchmarks.md's configurations: one table)

# The kernels, compiled so that this script can call them from Python (fastbp/kernels/__init__.py)
gemm, pack, panel_width = (python_callable(k) for k in (G.gemm, G.pack, G.panel_width))
output_loss, update = python_callable(L.output_loss), python_callable(O.update)
ALL = np.empty(0, np.int64)   # gemm's a_rows: every row, in order
UNPACKED = (TO_PACK, TO_PACK)   # gemm's packed: nothing packed before



def timeit(fn, repeat):
    fn()
    inner = 1
    while True:  # enough calls per sample to last >= 2 ms
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        if time.perf_counter() - t > 2e-3 or inner > 1 << 16:
            break
        inner *= 4
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t) / inner)
    return float(np.median(samples))


def main():
    fastbp.set_num_threads(min(args.threads, fastbp._threads.max_threads()))
    dt = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    print(f"dtype {dt.name}, threads {fastbp.get_num_threads()}, median of {args.repeat}")
    print(f"{'config':6} {'layer':>14} {'kernel':22} {'us':>10} {'GFLOP/s':>8}")
    for cfg in args.configs.split(","):
        sizes, b, _ = CONFIGS[cfg]
        total = 0.0
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            x = rng.random((b, n_in)).astype(dt)
            w = (rng.standard_normal((n_out, n_in)) * 0.05).astype(dt)
            bias = np.zeros(n_out, dt)
            z = np.empty((b, n_out), dt)
            dz = rng.standard_normal((b, n_out)).astype(dt)
            dw = np.empty((n_out, n_in), dt)
            db = np.empty(n_out, dt)
            dx = np.empty((b, n_in), dt)
            # pa also takes dx^T packed (the dx product's epilogue), the layer below's dz^T
            sizes_pa_pb = buffer_sizes([n_out, n_in, n_out], b, dt, False)
            pa, pb = np.empty(sizes_pa_pb[PA], dt), np.empty(sizes_pa_pb[PB], dt)
            none = pa[:0]
            nr = panel_width(pb)
            flops = 2.0 * b * n_in * n_out
            # Each product packs its operand B first, and the top layer's dW its dz^T; "packing"
            # times that.  Below the top, dz^T was packed by the dx product above (as in a step).
            # Layer 0's forward packs x for its dW (which packs nothing of x: b_packed).
            top = l == len(sizes) - 2
            if not top:
                pa[:] = rng.standard_normal(pa.size).astype(dt)
            kept = np.empty(buffer_sizes([n_in, n_out], b, dt, False)[PX], dt)
            fwd_kept = kept if l == 0 else none
            rows = np.arange(b, dtype=np.int64) if l == 0 else ALL   # layer 0 reads x[idx] (keeping it)
            dw_pb = kept if l == 0 else pb
            dw_packed = (np.bool_(not top), np.bool_(l == 0))   # (dz^T, x): packed by the products before
            tests = [
                ("forward (bias+sigmoid)",
                 lambda: gemm(x, AS_IS, rows, w, TRANSPOSED, z, (pa, pb), UNPACKED, EPI_BIAS_ACT, A.SIGMOID, bias,
                              z[:0], (none, fwd_kept, none), THREADED),
                 flops),
                ("  of which packing", lambda: pack(w, TRANSPOSED, nr, pb), 0),
                ("dW = dz^T x, db",
                 lambda: gemm(dz, TRANSPOSED, ALL, x, AS_IS, dw, (pa, dw_pb), dw_packed, EPI_NONE, 0, none, dw[:0],
                              (db, none, none), THREADED), flops),
                # (x packed unless layer 0's, or read in place: n_out <= 2 MR, gemm.py)
                ("  of which packing", lambda: (pack(dz, AS_IS, A_PANEL, pa) if top else None,
                                                pack(x, AS_IS, nr, pb) if l > 0 and n_out > 2 * MR else None), 0),
            ]
            if l > 0:
                tests += [("dx = (dz W) f'(a)",
                           lambda: gemm(dz, AS_IS, ALL, w, AS_IS, dx, (pa, pb), UNPACKED, EPI_DACT, A.SIGMOID, none,
                                        x, (none, none, pa), THREADED),
                           flops),
                          ("  of which packing", lambda: pack(w, AS_IS, nr, pb), 0)]
            for name, fn, f in tests:
                t = timeit(fn, args.repeat)
                if not name.startswith(" "):
                    total += t
                print(f"{cfg:6} {f'{n_in}x{n_out}':>14} {name:22} {t * 1e6:10.1f} "
                      f"{'' if not f else f'{f / t / 1e9:8.1f}'}")
        n_out = sizes[-1]
        z = rng.standard_normal((b, n_out)).astype(dt)
        y = rng.integers(0, n_out, size=(b, 1)).astype(dt)
        idx = np.arange(b, dtype=np.int64)
        dz = np.empty_like(z)
        stats = np.empty((2, b))
        t = timeit(lambda: output_loss(z.copy(), y, idx, dz, stats, 0), args.repeat)
        total += t
        print(f"{cfg:6} {'output':>14} {'softmax cross-entropy':22} {t * 1e6:10.1f}")
        n_params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
        params = rng.standard_normal(n_params).astype(dt)
        grads = rng.standard_normal(n_params).astype(dt)
        state = np.zeros((2, n_params), dt)
        hyper = np.zeros(HYPER_SIZE)
        hyper[KIND], hyper[LR] = SGD, 1e-6
        t = timeit(lambda: update(params, grads, state, hyper, True), args.repeat)
        total += t
        print(f"{cfg:6} {f'{n_params} params':>14} {'SGD update':22} {t * 1e6:10.1f}")
        fps = 2 * sum(i * o for i, o in zip(sizes[:-1], sizes[1:])) * 2 + 2 * sum(
            i * o for i, o in zip(sizes[1:-1], sizes[2:]))
        print(f"{cfg:6} {'sum':>14} {'one minibatch':22} {total * 1e6:10.1f} {fps * b / total / 1e9:8.1f}"
              f"   -> {b / total:,.0f} samples/s")


def step_seconds(sizes, b, dt, repeat, dropout=0.0):
    """Seconds per whole training step (forward, loss, backward, SGD update) at batch b."""
    from fastbp.kernels.step import threading_for, train_steps
    model = fastbp.MLP(sizes, dtype=dt, seed=0, dropout=dropout)
    n = b * 64
    X = np.random.default_rng(0).random((n, sizes[0])).astype(dt)
    y = model.check_y(np.arange(n) % sizes[-1], n)
    ws, stats = model.workspace(b)
    opt = fastbp.SGD(lr=1e-3)
    state = opt.bind(model.params)
    hyper = np.zeros(HYPER_SIZE)
    opt.set_hyper(hyper)
    order = np.arange(n, dtype=np.int64)
    return timeit(lambda: train_steps(X, y, order, 0, n, b, model.params, model.grads, state, hyper,
                                      model.meta, model._out_code, ws, stats, np.zeros(64), True,
                                      threading_for(model.meta, b)),
                  repeat) / 64


def step_gflops(sizes, b, dt, repeat):
    """GFLOP/s of whole training steps (forward, loss, backward, SGD update) at batch b."""
    t = step_seconds(sizes, b, dt, repeat)
    pairs = list(zip(sizes[:-1], sizes[1:]))
    flops = b * (4 * sum(i * o for i, o in pairs) + 2 * sum(i * o for i, o in pairs[1:]))
    return flops / t / 1e9


def awkward(dt, repeat):
    print(f"\nwhole training steps, {np.dtype(dt).name}, threads {fastbp.get_num_threads()}")
    rows = [("awkward", [100, 37, 13], 77), ("tile-friendly", [96, 32, 16], 78),
            ("tile-friendly", [112, 48, 16], 78)]
    rates = []
    for name, sizes, b in rows:
        g = step_gflops(sizes, b, dt, repeat)
        rates.append(g)
        print(f"{name:14} {'-'.join(map(str, sizes)):>12} batch {b:4}: {g:6.2f} GFLOP/s")
    print(f"awkward / nearest tile-friendly (96-32-16 @ 78): {rates[0] / rates[1]:.2f}")


def dropout_cost(p, dt, repeat):
    """Whole training steps of each configuration with dropout p on the hidden layers
    against none; steps alternate between the two models so drift hits both alike."""
    print(f"\ndropout {p:g} on every hidden layer, whole training steps, {np.dtype(dt).name}, "
          f"threads {fastbp.get_num_threads()}")
    print(f"{'config':6} {'batch':>6} {'none us':>10} {'dropout us':>11} {'cost us':>9} {'cost':>7}")
    for cfg in args.configs.split(","):
        sizes, b, _ = CONFIGS[cfg]
        plain, dropped = [], []
        for _ in range(3):
            plain.append(step_seconds(sizes, b, dt, repeat))
            dropped.append(step_seconds(sizes, b, dt, repeat, dropout=p))
        t0, t1 = float(np.median(plain)), float(np.median(dropped))
        print(f"{cfg:6} {b:6} {t0 * 1e6:10.1f} {t1 * 1e6:11.1f} {(t1 - t0) * 1e6:9.1f} {(t1 / t0 - 1):7.1%}")


if __name__ == "__main__":
    if not args.only_steps:
        main()
    else:
        fastbp.set_num_threads(min(args.threads, fastbp._threads.max_threads()))
    if args.awkward:
        awkward(args.dtype, args.repeat)
    if args.dropout is not None:
        if not 0 < args.dropout < 1:
            p.error(f"--dropout must be in (0, 1), got {args.dropout}")
        dropout_cost(args.dropout, args.dtype, args.repeat)
