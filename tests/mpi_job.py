"""Run under mpiexec by tests/test_distributed.py: a data-parallel fit, saved by rank 0.

    mpiexec -n 2 python tests/mpi_job.py OUT.npz DTYPE [dropout|estimator|killed|raises|hangs|mismatch]
"""
import os
import sys

import numpy as np

import fastbp
from helpers import mpi_job_estimator, mpi_job_model

out, dtype = sys.argv[1], sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 else ""
from mpi4py import MPI  # noqa: E402


rank = MPI.COMM_WORLD.Get_rank()
X, y = fastbp.load_digits()
X, y = X[:500], y[:500]
if mode == "mismatch" and rank == 1:
    X = X[:499]
    y = y[:499]
# the ranks group their steps into compiled calls differently (fastbp/_epoch.py sizes the groups
# by measured time): one step per call on rank 1, many on rank 0
import fastbp._epoch  # noqa: E402
fastbp._epoch.SECONDS_PER_CALL = 1e-9 if rank == 1 else 10.0
if mode == "estimator":   # MLPClassifier(distributed="mpi")
    est = mpi_job_estimator("mpi").fit(X, y)
    if rank == 0:
        np.savez(out, params=est.model_.params, loss=np.array(est.loss_curve_),
                 val_loss=np.array(est.validation_scores_))
    sys.exit(0)
model, optimizer = mpi_job_model(dtype, mode)
callbacks = []
if mode == "killed" and rank == 1:     # as the OOM killer or a lost node would
    callbacks = [fastbp.LambdaCallback(on_epoch_end=lambda epoch, logs: os.kill(os.getpid(), 9))]
if mode == "raises" and rank == 1:     # an error on one rank only
    def fail(epoch, logs):
        raise OSError("disk full on rank 1")
    callbacks = [fastbp.LambdaCallback(on_epoch_end=fail)]
if mode == "hangs" and rank == 1:      # alive but silent: only rank 0's deadline helps
    import time
    callbacks = [fastbp.LambdaCallback(on_epoch_end=lambda epoch, logs: time.sleep(300))]
history = model.fit(X, y, epochs=3, batch_size=50, optimizer=optimizer,
                    validation_split=0.2, verbose=0, distributed="mpi", callbacks=callbacks)
if rank == 0:
    np.savez(out, params=model.params, loss=np.array(history.history["loss"]),
             val_loss=np.array(history.history["val_loss"]))
