"""Interrupted and diverging runs, history independent of timing (issue 17, the runtime part).

Small shapes, few signatures: the compiles are most of the time.
"""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import run_all

import fastbp
from fastbp import _epoch
from fastbp._isa import LEVEL_NAMES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the diverging fits also pass the "100 times the untrained loss" mark on their way
pytestmark = pytest.mark.filterwarnings("ignore::fastbp.DivergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = fastbp.load_digits()
    return X[:512], y[:512]


def _diverging(dtype):
    return fastbp.MLP([64, 16, 10], activation="identity", dtype=dtype, seed=0)


# -- divergence ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_divergence_names_the_step_and_keeps_the_last_finite_weights(digits, dtype):
    X, y = digits
    X = X.astype(dtype)
    model = _diverging(dtype)
    with pytest.raises(fastbp.DivergenceError) as e:
        model.fit(X, y, epochs=5, batch_size=32, shuffle=False, optimizer=fastbp.SGD(lr=1e6), verbose=0)
    err = e.value
    assert isinstance(err, FloatingPointError) and isinstance(err, ValueError)
    assert f"epoch {err.epoch}, minibatch {err.minibatch} of 16" in str(err)
    assert f"keeps the weights after minibatch {err.minibatch - 1}" in str(err)
    assert not math.isfinite(err.loss)
    assert np.isfinite(model.params).all()
    # the same steps, stopped by hand one minibatch earlier, give the same bits
    done = (err.epoch - 1) * 16 + err.minibatch - 1
    assert model.optimizer.steps == done
    ref = _diverging(dtype)
    opt = fastbp.SGD(lr=1e6)
    for _ in range(err.epoch - 1):
        ref.fit(X, y, epochs=1, batch_size=32, shuffle=False, optimizer=opt, verbose=0)
    ref.fit(X[:(err.minibatch - 1) * 32], y[:(err.minibatch - 1) * 32], epochs=1, batch_size=32,
            shuffle=False, optimizer=opt, verbose=0)
    assert np.array_equal(model.params, ref.params)
    # the history records what ran, the partial epoch last
    h = model.history
    assert h.partial == {"epoch": err.epoch - 1, "minibatches": err.minibatch - 1, "of": 16}
    assert len(h.history["loss"]) == err.epoch and all(map(math.isfinite, h.history["loss"]))


def test_terminate_on_nan_stops_cleanly_with_the_same_weights(digits):
    X, y = digits
    kw = dict(epochs=5, batch_size=32, shuffle=False, verbose=0)
    raised = _diverging("float32")
    with pytest.raises(fastbp.DivergenceError) as e:
        raised.fit(X, y, optimizer=fastbp.SGD(lr=1e6), **kw)
    model = _diverging("float32")
    stop = fastbp.TerminateOnNaN()
    seen = []
    h = model.fit(X, y, optimizer=fastbp.SGD(lr=1e6),
                  callbacks=[stop, fastbp.LambdaCallback(on_train_end=lambda logs: seen.append(1))], **kw)
    assert seen == [1] and model.stop_training
    assert (stop.stopped_epoch, stop.stopped_minibatch) == (e.value.epoch, e.value.minibatch)
    assert stop.message == str(e.value)
    assert np.array_equal(model.params, raised.params)
    assert h.partial == raised.history.partial and h.history["loss"] == raised.history.history["loss"]


def test_estimators_keep_the_last_finite_weights(digits):
    X, y = digits
    est = fastbp.MLPRegressor(hidden_layer_sizes=(16,), activation="identity", solver="sgd",
                              learning_rate_init=1e6, max_iter=3, shuffle=False, random_state=0,
                              dtype="float32", batch_size=32)
    with pytest.raises(fastbp.DivergenceError, match=r"epoch 1, minibatch \d+ of 16") as e:
        est.fit(X, y.astype(float))
    # (the loss of the refused minibatch: non-finite, or finite with an update that would not be)
    assert np.isfinite(est._model.params).all()
    assert not math.isfinite(e.value.loss) or "its update made the weights" in str(e.value)
    assert est._optimizer.steps == e.value.minibatch - 1


@pytest.mark.parametrize("opt", [fastbp.SGD(lr=1e30), fastbp.SGD(lr=1e30, momentum=0.9),
                                 fastbp.Adam(lr=1e30)], ids=["sgd", "momentum", "adam"])
def test_an_update_that_would_overflow_is_refused_before_it_is_applied(opt):
    """Finite losses, but an update that would make the float32 weights infinite: the
    compiled loop refuses it (optim.update's check) and stops there, so no copy of the
    weights is needed to keep the last finite ones."""
    from fastbp.kernels.optim import STEPS, STOPPED_AT
    from fastbp.kernels.step import threading_for, train_steps
    rng = np.random.default_rng(0)
    model = fastbp.MLP([3, 2], output="identity", dtype="float32", seed=0)
    X = (rng.standard_normal((8, 3)) * 1e6).astype(np.float32)
    y = model.check_y(rng.standard_normal((8, 2)) * 1e6, 8)
    state = opt.bind(model.params)
    hyper = np.zeros(fastbp.kernels.optim.HYPER_SIZE)
    opt.set_hyper(hyper)
    before = model.params.copy()
    ws, stats = model.workspace(2)
    step_loss = np.zeros(4)
    loss, _ = train_steps(X, y, np.arange(8), 0, 8, 2, model.params, model.grads, state, hyper,
                          model.meta, model._out_code, ws, stats, step_loss, True, threading_for(model.meta, 2))
    j = int(hyper[STOPPED_AT]) - 1
    assert j >= 0 and hyper[STEPS] == j                          # refused, and not counted
    assert math.isfinite(step_loss[j]) and not math.isfinite(loss)   # a finite loss: the update
    assert np.isfinite(model.params).all() and np.isfinite(state).all()
    # the weights are those after step j - 1: the same steps run again stop at the same place
    after = model.params.copy()
    model.params[:] = before
    state[:] = 0
    opt.set_hyper(hyper)
    if j:
        train_steps(X, y, np.arange(8), 0, 2 * j, 2, model.params, model.grads, state, hyper,
                    model.meta, model._out_code, ws, stats, step_loss, True, threading_for(model.meta, 2))
    np.testing.assert_array_equal(model.params, after)
    assert "its update made the weights or the optimizer state non-finite" in \
        _epoch.divergence_message(1, j + 1, 4, step_loss[j], 2)


# -- history independent of timing ---------------------------------------------------------
def test_history_does_not_depend_on_how_minibatches_are_grouped_into_calls(monkeypatch):
    """The number of minibatches per compiled call follows measured time; forced to 1, 3
    and 7 the float64 Adam epoch losses must have the same bits (a per-call sum of the
    losses regrouped them: one ulp in some epochs)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 12))
    y = rng.integers(0, 3, 600)
    monkeypatch.setattr(_epoch, "SECONDS_PER_CALL", 1e9)   # as many as the cap allows
    runs = []
    for cap in (1, 3, 7):
        monkeypatch.setattr(_epoch, "MAX_PER_CALL", cap)
        m = fastbp.MLP([12, 9, 3], activation="tanh", dtype="float64", seed=0)
        h = m.fit(X, y, epochs=8, batch_size=4, optimizer=fastbp.Adam(3e-3), verbose=0)
        runs.append((h.history["loss"], h.history["accuracy"], m.params.copy()))
    for losses, acc, params in runs[1:]:
        assert losses == runs[0][0] and acc == runs[0][1]
        assert np.array_equal(params, runs[0][2])


# -- Ctrl-C --------------------------------------------------------------------------------
def test_sigint_during_fit_returns_at_a_step_boundary_and_resumes_exactly():
    """scripts/sigint_trials.py with a few trials: each child gets SIGINT while it trains
    with validation data and checkpoints; fit must return (no KeyboardInterrupt), with
    finite weights, the partial epoch in the history, and a checkpoint whose resumed run
    equals a run never interrupted, bit for bit."""
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "sigint_trials.py"),
                        "--trials", "3", "--max-delay", "0.6", "--seed", "1"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "FAILED" not in r.stdout and r.stdout.count('"outcome": "interrupted') >= 2, r.stdout


# -- out-of-bounds accesses ruled out --------------------------------------------------------
# Numba checks every index against the array's shape when NUMBA_BOUNDSCHECK=1, except for an
# index written directly in a prange body (seen with Numba 0.6x: not checked there); the
# kernels' prange bodies only call other kernels, whose every access is checked.  The control
# proves the check reaches into gemm's tasks on both the serial and the threaded path: a
# packing buffer 5 elements short must fail there (an IndexError; from a parallel region
# Numba reports it as a SystemError caused by it).  One thread: an IndexError raised on a
# worker thread of a parallel region was lost in 1 of 3 runs; with one, every task runs on
# the calling thread (the same code, the threaded path included).
_BOUNDS_CONTROL = r"""
import numpy as np, fastbp
from fastbp.kernels import gemm as G, python_callable
gemm, packed_size, panel_width = (python_callable(k) for k in (G.gemm, G.packed_size, G.panel_width))
rng = np.random.default_rng(0)
for m, n, k, threaded in [(77, 13, 37, G.SERIAL_ONLY), (255, 370, 300, G.THREADED)]:
    a, b, c = rng.random((m, k)), rng.random((n, k)), np.zeros((m, n))
    pb = np.empty(packed_size(n, k, panel_width(c)) - 5)
    try:
        none = np.empty(0)
        gemm(a, G.AS_IS, np.empty(0, np.int64), b, G.TRANSPOSED, c, (none, pb), (G.TO_PACK, G.TO_PACK), G.EPI_NONE,
             0, none, c[:0], (none, none, none), threaded)
        raise SystemExit(f"an out-of-bounds write went unnoticed ({m}x{n}x{k})")
    except (IndexError, SystemError) as e:
        assert isinstance(e, IndexError) or isinstance(e.__cause__, IndexError), e
# the entry points on awkward shapes: odd widths, a last minibatch of 3 rows, a threaded layer
X = rng.standard_normal((103, 37)).astype("float32"); y = rng.integers(0, 5, 103)
m = fastbp.MLP([37, 33, 300, 5], activation=["tanh", "relu"], seed=1)
m.fit(X, y, epochs=2, batch_size=20, optimizer=fastbp.Adam(1e-2), validation_split=0.1, verbose=0)
assert np.isfinite(m.predict(X, batch_size=7)).all() and np.isfinite(m.evaluate(X, y)["loss"])
print("bounds ok", fastbp._config.ISA)
"""
# the kernel tests of the products (every operand layout and the packed-x epilogue), packing,
# losses and updates at awkward shapes; the fused activation epilogues (forward, delta) run
# in the control's training steps.  The compiles are most of the time.
_BOUNDS_PICK = "gemm_plain or picked_rows or forward_keeps or packing or output_loss or update_matches"


@pytest.fixture(scope="module")
def bounds_runs(tmp_path_factory):
    """At each level (side by side), with Numba's bounds checks compiled in: the control
    above, then the picked kernel tests.  ({level: result} of each.)"""
    tests = os.path.join(ROOT, "tests")
    envs = {level: dict(os.environ, NUMBA_BOUNDSCHECK="1", FASTBP_ISA=level, NUMBA_NUM_THREADS="1",
                        FASTBP_CACHE_DIR=str(tmp_path_factory.mktemp(f"bounds-{level}"))) for level in LEVEL_NAMES}
    control = run_all({level: ([sys.executable, "-W", "ignore", "-c", _BOUNDS_CONTROL], env, None)
                       for level, env in envs.items()}, timeout=900)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", _BOUNDS_PICK,
            os.path.join(tests, "test_kernels.py")]
    picked = run_all({level: (argv, env, tests) for level, env in envs.items()}, timeout=900)
    return control, picked


@pytest.mark.parametrize("level", LEVEL_NAMES)
def test_kernels_stay_in_bounds_at_every_level(level, bounds_runs):
    control, picked = bounds_runs
    r = control[level]
    assert r.returncode == 0 and f"bounds ok {level}" in r.stdout, r.stdout + r.stderr[-3000:]
    r = picked[level]
    assert r.returncode == 0 and " passed" in r.stdout.strip().splitlines()[-1], r.stdout[-4000:] + r.stderr[-2000:]


# -- memory ----------------------------------------------------------------------------------
def test_fit_and_predict_on_a_memmap_make_no_copy(tmp_path):
    """A ~200 MB float32 memmap: fit reads the minibatches' rows in place and predict works
    in chunks, so what NumPy allocates meanwhile (tracemalloc sees every array's buffer) is
    the labels, the shuffled row order and the predictions, nowhere near a copy of X."""
    import tracemalloc
    n, f = 200 * 2**20 // (4 * 784), 784
    path = tmp_path / "x.f32"
    X = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, f))
    rng = np.random.default_rng(0)
    for s in range(0, n, 8192):
        X[s:s + 8192] = rng.random((min(8192, n - s), f), dtype=np.float32)
    X.flush()
    del X
    X = np.memmap(path, dtype=np.float32, mode="r", shape=(n, f))
    y = np.arange(n) % 10
    model = fastbp.MLP([f, 8, 10], seed=0)
    model.fit(np.ascontiguousarray(X[:512]), y[:512], epochs=1, batch_size=256, verbose=0)  # compiled
    model.predict(np.ascontiguousarray(X[:4096]))   # and the workspace of predict's chunks exists
    tracemalloc.start()
    try:
        model.fit(X, y, epochs=1, batch_size=256, verbose=0)
        p = model.predict(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert p.shape == (n, 10) and np.isfinite(p).all()
    assert peak < 16 * 2**20, f"{peak / 2**20:.1f} MiB allocated while training on a {X.nbytes / 2**20:.0f} MiB memmap"


# -- threads and processes -------------------------------------------------------------------
def test_threads_fork_and_loky_workers_give_the_results_of_a_fit_alone():
    """scripts/concurrency.py, one epoch per fit: four threads with 2 kernel threads each, a
    fork child of a process that trained, loky workers; each equal to the fit alone."""
    pytest.importorskip("joblib")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "concurrency.py"), "--epochs", "1",
                        "--timeout", "120"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "4/4 equal" in r.stdout and "equal to the fit alone: True" in r.stdout, r.stdout
