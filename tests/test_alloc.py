"""No allocation per minibatch once warm: Numba's runtime counts every allocation."""
import os
import subprocess
import sys

CODE = """
import numpy as np, fastbp
from numba.core.runtime import rtsys
from fastbp.kernels.optim import HYPER_SIZE
from fastbp.kernels.step import threading_for, train_steps
X = np.random.default_rng(0).random((640, 64)).astype(np.float32)
y = np.arange(640) % 10
for dtype, sizes, batch in [("float32", [64, 40, 10], 32), ("float64", [64, 300, 10], 128)]:
    m = fastbp.MLP(sizes, dtype=dtype, seed=0)   # the first SERIAL_ONLY, the second THREADED
    Xd = X.astype(dtype)
    m.fit(Xd, y, epochs=1, batch_size=batch, verbose=0)
    yy = m.check_y(y, len(X)); ws, stats = m.workspace(batch)
    hyper = np.zeros(HYPER_SIZE); m.optimizer.set_hyper(hyper)
    order = np.arange(len(X), dtype=np.int64)
    counts = []
    for n_steps in (1, 2, 640 // batch):
        before = rtsys.get_allocation_stats().alloc
        train_steps(Xd, yy, order, 0, n_steps * batch, batch, m.params, m.grads, m.optimizer.state,
                    hyper, m.meta, m._out_code, ws, stats, np.zeros(n_steps), True, threading_for(m.meta, batch))
        counts.append(rtsys.get_allocation_stats().alloc - before)
    print(dtype, *counts)
"""


def test_training_steps_allocate_nothing_per_minibatch():
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert [l.split()[0] for l in lines] == ["float32", "float64"], r.stdout
    for line in lines:
        dtype, *counts = line.split()
        one, two, many = map(int, counts)
        # what a call allocates (wrapping its array arguments) does not grow with the steps
        assert one == two == many, line
