#!/usr/bin/env python
"""Side-by-side training throughput: fastbp against the peers a user would otherwise pick.

Trains each configuration of docs/benchmarks.md (sigmoid hidden layers, softmax
cross-entropy, plain SGD) for one epoch of the same random data with fastbp and every
peer importable here: NumPy by hand (BLAS products, the same math), PyTorch (CPU), JAX
(jit-compiled step) and scikit-learn's MLPClassifier (solver sgd).  Warm-up epochs are
excluded; repetitions are interleaved (each round runs every framework once) so slow
minutes hit everyone alike.  Prints the median samples/s, achieved GFLOP/s, the share of
the machine's GEMM roof and fastbp's ratio to each peer.  The roof (OpenBLAS's product of
two 1024 x 1024 matrices) is measured in every round too, before the frameworks run, and
each configuration's share is of the median roof of its own rounds: on a shared machine
one measurement at the start said more about that moment than about the machine.

    python scripts/bench_compare.py --configs S,M,MB,L,XL --dtype float32 --threads 2 --repeat 5

A configuration is one of docs/benchmarks.md's names or a shape, SIZES@BATCH[xSAMPLES]
(``--configs M,784-300-100-10@128``: other widths and depths beside the nearest name).

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (set on some of our machines for old OpenBLAS
builds) force NumPy's and scikit-learn's OpenBLAS onto its AVX2 kernel, which understates
the roof and those peers on AVX-512 CPUs: this script drops both from its own
environment before NumPy loads (--keep-openblas-env keeps them) and prints which OpenBLAS
kernel ran (threadpoolctl) and fastbp's instruction-set level (FASTBP_ISA forces one).
"""
import argparse
import os
import sys
import time
import warnings

LR = 0.01


def flops_per_sample(sizes):
    pairs = list(zip(sizes[:-1], sizes[1:]))
    fwd = 2 * sum(i * o for i, o in pairs)
    return fwd + fwd + 2 * sum(i * o for i, o in pairs[1:])


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="S,M,MB,L,XL")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--peers", default="numpy,torch,jax,sklearn",
                   help="comma-separated subset of numpy,torch,jax,sklearn")
    p.add_argument("--keep-openblas-env", action="store_true",
                   help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (by default unset for this run)")
    return p.parse_args()


args = parse()
if not args.keep_openblas_env:    # before NumPy loads OpenBLAS, which reads them once
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        os.environ.pop(var, None)
# Thread counts must be fixed before the libraries start their pools.
os.environ.setdefault("NUMBA_NUM_THREADS", str(max(args.threads, 1)))
if args.threads == 1:
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402

import fastbp  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from benchmarks.common import shape  # noqa: E402  (docs/benchmarks.md's configurations: one table)

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


# --------------------------------------------------------------------------- runners
# Each runner is built once per configuration and returns a function that trains one
# epoch and returns only when the work is done.

def make_fastbp(sizes, batch, X, y, dtype):
    model = fastbp.MLP(sizes, activation="sigmoid", output="softmax", dtype=dtype, seed=0)
    opt = fastbp.SGD(lr=LR)

    def epoch():
        model.fit(X, y, epochs=1, batch_size=batch, optimizer=opt, shuffle=False, verbose=0)
    return epoch


def make_numpy(sizes, batch, X, y, dtype):
    """NumPy by hand: BLAS products, in-place updates, preallocated nothing fancy."""
    rng = np.random.default_rng(0)
    Ws = [rng.uniform(-1, 1, (o, i)).astype(dtype) * np.sqrt(6 / (i + o)).astype(dtype)
          for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(o, dtype) for o in sizes[1:]]
    n = X.shape[0]

    def epoch():
        for s in range(0, n, batch):
            xb, yb = X[s:s + batch], y[s:s + batch]
            m = xb.shape[0]
            acts = [xb]
            for l, (W, b) in enumerate(zip(Ws, bs)):
                z = acts[-1] @ W.T
                z += b
                if l < len(Ws) - 1:
                    np.negative(z, out=z)
                    np.exp(z, out=z)
                    z += 1
                    np.reciprocal(z, out=z)
                acts.append(z)
            z = acts[-1]
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)
            z[np.arange(m), yb] -= 1
            dz = z / m
            for l in range(len(Ws) - 1, -1, -1):
                a_in = acts[l]
                gW = dz.T @ a_in
                gb = dz.sum(axis=0)
                if l > 0:
                    dz = (dz @ Ws[l]) * a_in * (1 - a_in)
                Ws[l] -= LR * gW
                bs[l] -= LR * gb
    return epoch


def make_torch(sizes, batch, X, y, dtype):
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tdtype = torch.float32 if dtype == "float32" else torch.float64
    layers = []
    for l, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(i, o, dtype=tdtype))
        if l < len(sizes) - 2:
            layers.append(torch.nn.Sigmoid())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    n = X.shape[0]

    def epoch():
        for s in range(0, n, batch):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xt[s:s + batch]), yt[s:s + batch])
            loss.backward()
            opt.step()
    return epoch


def make_jax(sizes, batch, X, y, dtype):
    import jax
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    rng = np.random.default_rng(0)
    params = [(jnp.asarray(rng.uniform(-1, 1, (o, i)).astype(dtype) * np.sqrt(6 / (i + o)).astype(dtype)),
               jnp.zeros(o, dtype)) for i, o in zip(sizes[:-1], sizes[1:])]

    def loss_fn(params, xb, yb):
        a = xb
        for W, b in params[:-1]:
            a = jax.nn.sigmoid(a @ W.T + b)
        W, b = params[-1]
        logits = a @ W.T + b
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    @jax.jit
    def step(params, xb, yb):
        g = jax.grad(loss_fn)(params, xb, yb)
        return [(W - LR * gW, b - LR * gb) for (W, b), (gW, gb) in zip(params, g)]

    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    n = X.shape[0]
    batches = [(Xj[s:s + batch], yj[s:s + batch]) for s in range(0, n, batch)]
    state = {"p": params}

    def epoch():
        p = state["p"]
        for xb, yb in batches:
            p = step(p, xb, yb)
        jax.block_until_ready(p)
        state["p"] = p
    return epoch


def make_sklearn(sizes, batch, X, y, dtype):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=sizes[1:-1], activation="logistic", solver="sgd",
                        learning_rate_init=LR, momentum=0.0, alpha=0.0, batch_size=batch,
                        max_iter=1, shuffle=False, random_state=0, tol=0, n_iter_no_change=10**9)

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
    return epoch


PEERS = {"numpy": (make_numpy, None), "torch": (make_torch, "torch"), "jax": (make_jax, "jax"),
         "sklearn": (make_sklearn, "sklearn")}


ROOF_N = 1024      # the roof: OpenBLAS's product of two ROOF_N x ROOF_N matrices, GFLOP/s,
ROOF_REPEAT = 3    # median of ROOF_REPEAT products after one unmeasured


def gemm_roof(dtype, repeat=ROOF_REPEAT, n=ROOF_N):
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    b = a.copy()
    a @ b
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / np.median(times) / 1e9


def main():
    limit = threadpool_limits(limits=args.threads) if threadpool_limits else None
    fastbp.set_num_threads(min(args.threads, fastbp._threads.max_threads()))
    names = ["fastbp"]
    skipped = []
    for peer in args.peers.split(","):
        module = PEERS[peer][1]
        if module:
            try:
                __import__(module)
            except ImportError:
                skipped.append(peer)
                continue
        names.append(peer)
    if skipped:
        print(f"skipped (not installed): {', '.join(skipped)}")
    from fastbp import _config
    blas = "threadpoolctl not installed"
    try:
        from threadpoolctl import threadpool_info
        blas = "; ".join(f"{i.get('internal_api')} {i.get('version')} kernel {i.get('architecture')}"
                         for i in threadpool_info() if i.get("user_api") == "blas") or "none found"
    except ImportError:
        pass
    print(f"fastbp level {_config.ISA} ({_config.ISA_REASON}); NumPy's BLAS: {blas}; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}")
    print(f"fastbp {fastbp.__version__}, dtype {args.dtype}, threads {args.threads}, repeat {args.repeat}; "
          f"GEMM roof: OpenBLAS {args.dtype} {ROOF_N}^3 in every round (median of {ROOF_REPEAT}), "
          f"each configuration's median of its rounds")
    configs = {cfg: shape(cfg) for cfg in args.configs.split(",")}   # a bad one fails here
    rows = []
    for cfg, (sizes, batch, n) in configs.items():
        rng = np.random.default_rng(1)
        X = rng.standard_normal((n, sizes[0])).astype(args.dtype)
        y = rng.integers(0, sizes[-1], size=n).astype(np.int64)
        runners = {}
        for name in names:
            make = make_fastbp if name == "fastbp" else PEERS[name][0]
            try:
                runners[name] = make(sizes, batch, X, y, args.dtype)
                runners[name]()  # warm-up: compilation, allocation, caches
            except Exception as exc:  # a peer that fails must not hide the others
                print(f"  {cfg}: {name} failed: {exc!r}")
                runners.pop(name, None)
        times = {name: [] for name in runners}
        roofs = []
        for _ in range(args.repeat):
            time.sleep(0.2)
            roofs.append(gemm_roof(args.dtype))
            for name, run in runners.items():
                time.sleep(0.2)  # let the previous framework's spinning worker threads park
                t = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t)
        fps = flops_per_sample(sizes)
        rate = {name: n / np.median(ts) for name, ts in times.items()}
        best_peer = max((r for nm, r in rate.items() if nm != "fastbp"), default=None)
        roof = float(np.median(roofs))
        for name in runners:
            gflops = rate[name] * fps / 1e9
            rows.append((cfg, name, rate[name], gflops, roof, 100 * gflops / roof,
                         rate["fastbp"] / rate[name] if name != "fastbp" else None,
                         rate["fastbp"] / best_peer if name == "fastbp" and best_peer else None,
                         min(times[name]), max(times[name])))
    w = max(6, *map(len, configs))
    print(f"{'config':{w}} {'framework':9} {'samples/s':>11} {'GFLOP/s':>8} {'roof':>6} {'% roof':>7} "
          f"{'fastbp/this':>11} {'fastbp/best':>11}  {'epoch s min..max':>17}")
    for cfg, name, r, g, roof, pct, ratio, best, tmin, tmax in rows:
        print(f"{cfg:{w}} {name:9} {r:11,.0f} {g:8.1f} {roof:6.1f} {pct:6.1f}% "
              f"{'' if ratio is None else f'{ratio:10.2f}x':>11} {'' if best is None else f'{best:10.2f}x':>11}"
              f"  {tmin:7.3f}..{tmax:7.3f}")
    if limit is not None:
        limit.unregister() if hasattr(limit, "unregister") else None


if __name__ == "__main__":
    sys.exit(main())
