"""fastbp against fastbp: two source trees (e.g. a `git worktree` of the commit before and
this checkout) trained on the benchmark configurations, a fresh process per tree and
round, the trees alternating, the rounds interleaved; prints each tree's median samples/s
and the ratio.  Each process trains every configuration (sigmoid hidden layers, softmax,
SGD, 2 threads, float32 by default): a warm-up epoch, then 3 timed epochs (their median).
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are dropped (nothing here uses BLAS; for symmetry
with bench_compare.py).  Each tree gets its own compile cache under /tmp.

    git worktree add --detach ../base HEAD~1
    python scripts/ab_compare.py --trees base=../base,new=. --rounds 5
"""
import argparse, json, os, statistics, subprocess, sys
WORKER = r'''
import json, sys, time
import numpy as np
import fastbp
cfgs, dtype = json.loads(sys.argv[1]), sys.argv[2]
fastbp.set_num_threads(2)
out = {}
for cfg, (sizes, batch, n) in cfgs.items():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], size=n).astype(np.int64)
    model = fastbp.MLP(list(sizes), activation="sigmoid", output="softmax", dtype=dtype, seed=0)
    opt = fastbp.SGD(lr=0.01)
    fit = lambda: model.fit(X, y, epochs=1, batch_size=batch, optimizer=opt, shuffle=False, verbose=0)
    fit()
    ts = []
    for _ in range(3):
        time.sleep(0.1)
        t = time.perf_counter(); fit(); ts.append(time.perf_counter() - t)
    out[cfg] = n / sorted(ts)[1]
print("RESULT " + json.dumps(out))
'''
p = argparse.ArgumentParser()
p.add_argument("--trees", required=True)
p.add_argument("--rounds", type=int, default=5)
p.add_argument("--configs", default="S,M,MB,L,XL")
p.add_argument("--dtype", default="float32")
a = p.parse_args()
trees = dict(t.split("=") for t in a.trees.split(","))
# resolved here, so a tree from before benchmarks.common.shape still runs every shape
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from benchmarks.common import shape  # noqa: E402
shapes = json.dumps({c: shape(c) for c in a.configs.split(",")})
res = {name: {c: [] for c in a.configs.split(",")} for name in trees}
for r in range(a.rounds):
    for name, path in (list(trees.items()) if r % 2 == 0 else list(trees.items())[::-1]):
        path = os.path.abspath(path)
        env = dict(os.environ, PYTHONPATH=path, FASTBP_CACHE_DIR=f"/tmp/abcache-{name}")
        env.pop("OPENBLAS_CORETYPE", None); env.pop("OPENBLAS_L2_SIZE", None)
        pr = subprocess.run([sys.executable, "-c", WORKER, shapes, a.dtype], env=env, cwd=path,
                            capture_output=True, text=True)
        if pr.returncode:
            sys.exit(pr.stderr[-3000:])
        got = json.loads(next(l for l in pr.stdout.splitlines() if l.startswith("RESULT"))[7:])
        for c, v in got.items():
            res[name][c].append(v)
        print(f"round {r + 1} {name}: " + "  ".join(f"{c} {v:,.0f}" for c, v in got.items()), flush=True)
names = list(trees)
print(f"\nmedian samples/s over {a.rounds} interleaved rounds, {a.dtype}, 2 threads")
print(f"{'config':6} " + " ".join(f"{n:>12}" for n in names) + f" {names[1] + '/' + names[0]:>12}")
for c in a.configs.split(","):
    m = [statistics.median(res[n][c]) for n in names]
    print(f"{c:6} " + " ".join(f"{v:>12,.0f}" for v in m) + f" {m[1] / m[0]:>11.3f}x")
