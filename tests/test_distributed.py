"""Data-parallel training over MPI (fastbp/distributed.py), through real `mpiexec -n 2`
runs of tests/mpi_job.py: the same weights as one process, run-to-run bit identity, and a
clear, prompt stop when ranks disagree or one dies."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastbp
from helpers import mpi_job_estimator, mpi_job_model

pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'fastbp[mpi]')")
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
JOB = os.path.join(os.path.dirname(__file__), "mpi_job.py")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'fastbp[mpi]')")


def mpirun(tmp_path, name, dtype, mode="", timeout=300, env=None):
    out = tmp_path / f"{name}.npz"
    r = subprocess.run([MPIEXEC, "-n", "2", sys.executable, JOB, str(out), dtype, mode],
                       capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})))
    return r, out


def one_process(dtype, mode):
    model, optimizer = mpi_job_model(dtype, mode)
    X, y = fastbp.load_digits()
    history = model.fit(X[:500], y[:500], epochs=3, batch_size=50, optimizer=optimizer,
                        validation_split=0.2, verbose=0)
    return model, history


@pytest.mark.parametrize("dtype, tol, mode", [("float64", 1e-5, ""), ("float32", 1e-4, ""),
                                              ("float64", 1e-5, "dropout")])
def test_two_ranks_equal_one_process(tmp_path, dtype, tol, mode):
    """Also with dropout (each shard's masks are the ones its rows get in one process) and
    a per-step schedule (the update applies it as train_steps does)."""
    r, out = mpirun(tmp_path, "a", dtype, mode)
    assert r.returncode == 0, r.stderr
    got = np.load(out)
    model, history = one_process(dtype, mode)
    scale = np.abs(model.params).max()
    assert np.abs(got["params"] - model.params).max() / scale < tol
    assert not np.array_equal(model.params, fastbp.MLP([64, 32, 10], dtype=dtype, seed=3).params)
    np.testing.assert_allclose(got["loss"], history.history["loss"], rtol=tol)
    np.testing.assert_allclose(got["val_loss"], history.history["val_loss"], rtol=tol)
    if dtype == "float64" and not mode:   # bit-identical from run to run, and when each
        # layer's gradient is reduced after the backward pass instead of during it
        r, again = mpirun(tmp_path, "b", dtype, env={"FASTBP_MPI_OVERLAP": "0"})
        assert r.returncode == 0, r.stderr
        np.testing.assert_array_equal(np.load(again)["params"], got["params"])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_two_ranks_estimator_equals_one_process(tmp_path):
    """MLPClassifier(distributed="mpi"): the L2 term, Adam's epsilon and early stopping's
    validation scores as in one process."""
    r, out = mpirun(tmp_path, "e", "float64", "estimator")
    assert r.returncode == 0, r.stderr
    got = np.load(out)
    X, y = fastbp.load_digits()
    est = mpi_job_estimator().fit(X[:500], y[:500])
    assert np.abs(got["params"] - est.model_.params).max() / np.abs(est.model_.params).max() < 1e-5
    np.testing.assert_allclose(got["loss"], est.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(got["val_loss"], est.validation_scores_, rtol=1e-5)


def test_ranks_with_different_data_are_refused(tmp_path):
    r, out = mpirun(tmp_path, "m", "float64", "mismatch", timeout=120)
    assert r.returncode != 0 and not out.exists()
    assert "rank 1 differs from rank 0 in X: (499, 64)" in r.stderr


@pytest.mark.parametrize("mode, says", [
    ("killed", "Killed (signal 9)"),                      # mpiexec reports a killed rank
    ("raises", "fastbp (rank 1 of 2): OSError: disk full on rank 1; stopping all ranks"),
    ("hangs", "fastbp (rank 0 of 2): no answer from every rank within 5 s"),
])
def test_a_failed_rank_stops_the_job_promptly(tmp_path, mode, says):
    """Rank 1 dies, raises or hangs after its first epoch: the job ends with a message
    naming what happened, well before the test's 120 s limit (the deadline is 5 s)."""
    r, out = mpirun(tmp_path, mode, "float64", mode, timeout=120, env={"FASTBP_MPI_TIMEOUT": "5"})
    assert r.returncode != 0 and not out.exists()
    assert says.lower() in (r.stdout + r.stderr).lower(), r.stdout + r.stderr


def test_mpiexec_fastbp_train(tmp_path):
    """`mpiexec -n 2 fastbp train`: rank 0 alone prints and saves; info names the library."""
    fastbp_cmd = shutil.which("fastbp", path=os.path.dirname(sys.executable))
    out = tmp_path / "m.npz"
    r = subprocess.run([MPIEXEC, "-n", "2", fastbp_cmd, "train", "--epochs", "2", "--verbose", "0",
                        "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("data-parallel over 2 MPI ranks") == 1, r.stdout
    assert r.stdout.count("saved model to") == 1
    held = next(s for s in r.stdout.splitlines() if s.startswith("held-out accuracy:")).split()[2]
    assert float(held) > 0.8
    model = fastbp.load(out)
    X, y = fastbp.load_digits()
    rows = model.held_out_rows
    assert f"{model.evaluate(X[rows], y[rows])['accuracy']:.4f}" == held
    r = subprocess.run([MPIEXEC, "-n", "2", fastbp_cmd, "info"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "2 rank(s)" in r.stdout
