#!/usr/bin/env python
"""Time to first result: a new process runs `import fastbp` and one epoch of config S.

Cold: a fresh, empty compile cache (FASTBP_CACHE_DIR in a new temporary folder), so every
kernel compiles.  Warm: the same folder again, so every kernel loads from disk.  Each
figure is the median of --repeat new processes (the cold one needs a new folder each time).

Config S's products are all small, so it trains with the kernels compiled without threads
(kernels/step.py's threading_for).  --sizes and --batch time another network instead, e.g.
one that compiles the threaded kernels:

    python scripts/first_call.py --repeat 3
    python scripts/first_call.py --repeat 3 --sizes 64,256,10 --batch 128
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import time
t0 = time.perf_counter()
import numpy as np
import fastbp
t1 = time.perf_counter()
X = np.random.default_rng(0).random((20000, SIZES[0]), dtype=np.float32)
y = np.arange(20000) % SIZES[-1]
model = fastbp.MLP(SIZES, seed=0)
t2 = time.perf_counter()
model.fit(X, y, epochs=1, batch_size=BATCH, optimizer=fastbp.SGD(lr=0.01), verbose=0)
t3 = time.perf_counter()
print(f"{t1 - t0:.3f} {t3 - t2:.3f} {t3 - t0:.3f}")
"""


def run(cache, sizes, batch):
    env = dict(os.environ, FASTBP_CACHE_DIR=cache)
    code = f"SIZES = {sizes!r}\nBATCH = {batch!r}\n" + CHILD
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return [float(v) for v in out.stdout.split()]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--sizes", default="64,32,10", help="layer sizes (default: config S)")
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    name = "S" if (sizes, args.batch) == ([64, 32, 10], 32) else f"{sizes} at batch {args.batch}"
    cold, warm = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(run(cache, sizes, args.batch))
            warm.append(run(cache, sizes, args.batch))
    for kind, rows in (("cold cache", cold), ("warm cache", warm)):
        imp, fit, total = (statistics.median(col) for col in zip(*rows))
        print(f"{kind}: import {imp:.2f} s + one epoch of {name} {fit:.2f} s = {total:.2f} s "
              f"(median of {len(rows)}; totals {', '.join(f'{r[2]:.2f}' for r in rows)})")


if __name__ == "__main__":
    main()
