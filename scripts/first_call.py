#!/usr/bin/env python
"""Time to first result: a new process runs `import fastbp` and one epoch of config S.

Cold: a fresh, empty compile cache (FASTBP_CACHE_DIR in a new temporary folder), so every
kernel compiles.  Warm: the same folder again, so every kernel loads from disk.  Each
figure is the median of --repeat new processes (the cold one needs a new folder each time).

    python scripts/first_call.py --repeat 3
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
X = np.random.default_rng(0).random((20000, 64), dtype=np.float32)
y = np.arange(20000) % 10
model = fastbp.MLP([64, 32, 10], seed=0)
t2 = time.perf_counter()
model.fit(X, y, epochs=1, batch_size=32, optimizer=fastbp.SGD(lr=0.01), verbose=0)
t3 = time.perf_counter()
print(f"{t1 - t0:.3f} {t3 - t2:.3f} {t3 - t0:.3f}")
"""


def run(cache):
    env = dict(os.environ, FASTBP_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return [float(v) for v in out.stdout.split()]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    cold, warm = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(run(cache))
            warm.append(run(cache))
    for name, rows in (("cold cache", cold), ("warm cache", warm)):
        imp, fit, total = (statistics.median(col) for col in zip(*rows))
        print(f"{name}: import {imp:.2f} s + one epoch of S {fit:.2f} s = {total:.2f} s "
              f"(median of {len(rows)}; totals {', '.join(f'{r[2]:.2f}' for r in rows)})")


if __name__ == "__main__":
    main()
