"""gemm against gemm in one process: the three products of a dense layer (forward, dW, dx)
with gemm as it is ("base") and with some of gemm's module constants set otherwise
("new"), the two called in turn, round after round; prints each one's median GFLOP/s and
the median over the rounds of the base/new time ratio (above 1: new is faster).

On a shared machine, separate processes differ by several per cent from one another
(the neighbours' load changes the clock); calls paired in one process see the same
machine, which makes a 2 % difference measurable (docs/performance.md).  The constants
are those of the gemm module (KC, MC, NC, SLAB_BYTES, ...; see variant).  Both
variants must give the same bits, as every tiling does.

    python scripts/ab_gemm.py --layer 512,4096,4096 --set SLAB_BYTES=1152921504606846976
    python scripts/ab_gemm.py --layer 512,1024,1024 --set KC=256 --set MC=96
"""
import argparse
import statistics
import time
import types

import numpy as np
from numba import njit

from fastbp import _config
from fastbp._memory import aligned_empty
from fastbp.kernels import gemm as G
from fastbp.kernels import python_callable
from fastbp.kernels.activations import SIGMOID


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layer", required=True, help="batch,n_out,n_in of the dense layer")
    p.add_argument("--set", action="append", default=[], metavar="NAME=INT",
                   help="a constant of fastbp.kernels.gemm for the 'new' variant (repeatable)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args()


def variant(overrides):
    """gemm compiled from its source with some of the globals of its module replaced, and
    with it every kernel of that module it calls (they read the same globals: KC
    through k_block, MC and NC in _tile), callable from Python.  Kernels of other modules
    (the micro-kernel, the epilogue's activations) are shared: MR and NR_VECS, which shape
    the micro-kernel's text, cannot be overridden here."""
    for name in overrides:
        if name not in vars(G):
            raise SystemExit(f"--set {name}: fastbp.kernels.gemm has no global {name}")
    env = dict(vars(G), **overrides)
    for name, obj in vars(G).items():
        py = getattr(obj, "py_func", None)
        if py is not None and py.__module__ == G.__name__:
            options = {k: v for k, v in obj.targetoptions.items() if k != "nopython"}
            if name == "gemm":       # the entry point: with the wrapper Python calls
                options.update(no_cpython_wrapper=False, no_cfunc_wrapper=False)
            env[name] = njit(**options)(types.FunctionType(py.__code__, env, py.__name__, py.__defaults__))
    return env["gemm"]


def products(batch, n_out, n_in, dtype, rng):
    """{name: (flops, call(gemm), output)} for the layer's three products, as a training step
    runs them below the top layer: the forward reads x in place and packs W^T; dW has dz^T
    packed already (by the delta product of the layer above), computes db from it and packs
    x; dx packs W and leaves dz_prev^T packed for the layer below."""
    def filled(shape):
        a = aligned_empty(shape, dtype)
        a[...] = rng.random(shape)
        return a
    x, w, bias, dz, a_in = filled((batch, n_in)), filled((n_out, n_in)), filled(n_out), filled((batch, n_out)), \
        filled((batch, n_in))
    nr = G.panel_width.py_func(np.empty(0, dtype))
    pb = aligned_empty(max(G.packed_size.py_func(n_out, n_in, nr), G.packed_size.py_func(n_in, n_out, nr),
                           G.packed_size.py_func(n_in, batch, nr)), dtype)
    pa = aligned_empty(G.packed_size.py_func(n_in, batch, _config.MR), dtype)
    # dW's op(A) = dz^T packed, as a training step has it from the delta product above
    # (kernels/products.py: dz_packed), but for the top layer's; db from the packed panels
    dz_t = aligned_empty(G.packed_size.py_func(n_out, batch, _config.MR), dtype)
    z, dw, db, dx = (aligned_empty(s, dtype) for s in [(batch, n_out), (n_out, n_in), n_out, (batch, n_in)])
    none, rows, act = bias[:0], np.empty(0, np.int64), np.int64(SIGMOID)
    unpacked = (G.TO_PACK, G.TO_PACK)
    flops = 2 * batch * n_out * n_in
    # (packed once here, with gemm as it is: an earlier product's work in a training step)
    python_callable(G.gemm)(dz, G.TRANSPOSED, rows, x, G.AS_IS, dw, (dz_t, pb), unpacked, G.EPI_NONE, act, none,
                            dw[:0], (db, none, none), G.THREADED)
    return {
        "forward": (flops, lambda g: g(x, G.AS_IS, rows, w, G.TRANSPOSED, z, (pa, pb), unpacked, G.EPI_BIAS_ACT, act,
                                       bias, z[:0], (none, none, none), G.THREADED), z),
        "dW": (flops, lambda g: g(dz, G.TRANSPOSED, rows, x, G.AS_IS, dw, (dz_t, pb), (G.PACKED, G.TO_PACK), G.EPI_NONE,
                                  act, none, dw[:0], (db, none, none), G.THREADED), dw),
        "dx": (flops, lambda g: g(dz, G.AS_IS, rows, w, G.AS_IS, dx, (pa, pb), unpacked, G.EPI_DACT, act, none, a_in,
                                  (none, none, pa), G.THREADED), dx),
    }


def main():
    a = parse()
    if a.threads:
        import fastbp
        fastbp.set_num_threads(a.threads)
    overrides = {}
    for s in a.set:
        name, _, value = s.partition("=")
        overrides[name] = int(value)
    batch, n_out, n_in = (int(v) for v in a.layer.split(","))
    dtype = np.dtype(a.dtype)
    variants = {"base": variant({}), "new": variant(overrides)}
    print(f"layer batch {batch}, {n_out} x {n_in}, {a.dtype}, level {_config.ISA}, new: "
          f"{', '.join(a.set) or 'as base'}; median of {a.rounds} paired rounds")
    print(f"{'product':8} {'m x n x k':>18} {'base GF/s':>10} {'new GF/s':>10} {'base/new time':>14}")
    for name, (flops, call, out) in products(batch, n_out, n_in, dtype, np.random.default_rng(0)).items():
        bits = {}
        for v, g in variants.items():
            call(g)
            bits[v] = out.copy()
        if not np.array_equal(bits["base"], bits["new"]):
            raise SystemExit(f"{name}: the two variants give different results")
        times = {v: [] for v in variants}
        for r in range(a.rounds):
            for v in (["base", "new"] if r % 2 == 0 else ["new", "base"]):
                t = time.perf_counter()
                call(variants[v])
                times[v].append(time.perf_counter() - t)
        shape = {"forward": (batch, n_out, n_in), "dW": (n_out, n_in, batch), "dx": (batch, n_in, n_out)}[name]
        ratio = statistics.median(b / n for b, n in zip(times["base"], times["new"]))
        print(f"{name:8} {'x'.join(map(str, shape)):>18} "
              + " ".join(f"{flops / statistics.median(times[v]) / 1e9:>10.1f}" for v in variants) + f" {ratio:>13.3f}x")


if __name__ == "__main__":
    main()
