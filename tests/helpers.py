import numpy as np

import fastbp

from fastbp.kernels.optim import HYPER_SIZE, STEPS
from fastbp.kernels.step import threading_for, train_step


def gradients(model, X, y, idx=None, step=0):
    """Loss (mean) and the flat gradient of the model on the rows idx (default: all) of
    (X, y), without an update; dropout draws the masks of step ``step``."""
    X = model.check_X(X)
    y = model.check_y(y, X.shape[0])
    idx = np.arange(X.shape[0], dtype=np.int64) if idx is None else np.asarray(idx, dtype=np.int64)
    ws, stats = model.workspace(idx.shape[0])
    state = np.zeros((2, model.n_params), model.dtype)
    hyper = np.zeros(HYPER_SIZE)  # kind 0: no update
    hyper[STEPS] = step
    loss, _ = train_step(X, y, idx, model.params, model.grads, state, hyper, model.meta,
                         model._out_code, ws, stats, threading_for(model.meta, idx.shape[0]))
    return loss / idx.shape[0], model.grads.copy()


def targets(output, n, k, rng):
    if output == "softmax":
        return rng.integers(0, k, size=n)
    if output == "sigmoid":
        return rng.integers(0, 2, size=(n, k)).astype(float)
    return rng.standard_normal((n, k))


def mpi_job_model(dtype, mode):
    """The model and optimizer of a tests/mpi_job.py run (test_distributed.py builds the
    same for one process); mode "dropout" adds dropout and a per-step cosine schedule."""
    if mode == "dropout":
        return (fastbp.MLP([64, 32, 10], dtype=dtype, seed=3, dropout=0.2),
                fastbp.SGD(lr=fastbp.CosineDecay(0.3, epochs=24, warmup_epochs=4, unit="step"),
                           momentum=0.9))
    return fastbp.MLP([64, 32, 10], dtype=dtype, seed=3), fastbp.SGD(lr=0.3, momentum=0.9)


def mpi_job_estimator(distributed=None):
    """The estimator of a tests/mpi_job.py "estimator" run: scikit-learn's L2 term, Adam's
    per-step epsilon and early stopping all go through the data-parallel step."""
    return fastbp.MLPClassifier(hidden_layer_sizes=(16,), alpha=0.01, batch_size=50, max_iter=4,
                                early_stopping=True, n_iter_no_change=50, random_state=0,
                                dtype="float64", distributed=distributed)


def run_all(jobs, timeout):
    """{key: (argv, env, cwd)} -> {key: subprocess.CompletedProcess}, the processes run at
    the same time.  The per-level runs of test_isa.py and test_reliability_run.py are
    mostly Numba compiling on one core: side by side on the two cores of CI, they take
    about half the time they take one after the other."""
    import subprocess
    procs = {key: subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for key, (argv, env, cwd) in jobs.items()}
    out = {}
    try:
        for key, p in procs.items():
            stdout, stderr = p.communicate(timeout=timeout)
            out[key] = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.communicate()
    return out
