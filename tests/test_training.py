"""The model and trainer: learning, determinism, validation, callbacks, dtypes, errors."""
import numpy as np
import pytest

import fastbp
import naive
from fastbp import trainer


@pytest.fixture(scope="module")
def digits():
    X, y = fastbp.load_digits()
    perm = np.random.default_rng(0).permutation(len(X))
    return X, y, perm[:1400], perm[1400:]


def test_digits_reaches_95_percent(digits):
    X, y, tr, te = digits
    model = fastbp.MLP([64, 32, 10], activation="sigmoid", seed=0)
    h = model.fit(X[tr], y[tr], epochs=20, batch_size=32,
                  optimizer=fastbp.SGD(lr=0.5, momentum=0.9), verbose=0)
    assert model.evaluate(X[te], y[te])["accuracy"] >= 0.95
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert len(h.history["samples_per_second"]) == 20


def _train_weights(n_threads, dtype, digits, optimizer):
    X, y, tr, _ = digits
    model = fastbp.MLP([64, 96, 48, 10], activation="tanh", dtype=dtype, seed=7)
    # batch 256 and these widths take the parallel paths of every kernel
    model.fit(X[tr].astype(dtype), y[tr], epochs=2, batch_size=256, optimizer=optimizer,
              verbose=0, n_threads=n_threads)
    return model.params.copy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_weights_any_thread_count(dtype, digits):
    if fastbp._threads.max_threads() < 2:
        pytest.skip("needs 2 threads")
    one = _train_weights(1, dtype, digits, fastbp.SGD(lr=0.2, momentum=0.9))
    two = _train_weights(2, dtype, digits, fastbp.SGD(lr=0.2, momentum=0.9))
    again = _train_weights(2, dtype, digits, fastbp.SGD(lr=0.2, momentum=0.9))
    assert one.tobytes() == two.tobytes() == again.tobytes()
    adam1 = _train_weights(1, dtype, digits, fastbp.Adam(lr=0.01))
    adam2 = _train_weights(2, dtype, digits, fastbp.Adam(lr=0.01))
    assert adam1.tobytes() == adam2.tobytes()
    assert one.tobytes() != adam1.tobytes()


def test_tiny_network_compiled_without_threads_trains_the_same(digits, monkeypatch):
    """A network whose every product is below SERIAL_FLOPS trains with gemm's SERIAL_ONLY
    specialisation (no parallel loop compiled); forcing THREADED gives the same weights."""
    from fastbp.kernels.gemm import SERIAL_ONLY, THREADED
    from fastbp.kernels.step import threading_for
    X, y, tr, _ = digits

    def weights():
        model = fastbp.MLP([64, 32, 10], seed=3)
        model.fit(X[tr], y[tr], epochs=2, batch_size=32, optimizer=fastbp.SGD(lr=0.3, momentum=0.9), verbose=0)
        return model.params.copy(), model.meta

    serial, meta = weights()
    assert threading_for(meta, 32) is SERIAL_ONLY
    assert threading_for(meta, 512) is THREADED     # 2 * 512 * 64 * 32 flops: above SERIAL_FLOPS
    monkeypatch.setattr(trainer, "threading_for", lambda meta, b: THREADED)
    threaded, _ = weights()
    assert serial.tobytes() == threaded.tobytes()


def test_different_seeds_differ():
    a = fastbp.MLP([4, 3, 2], seed=1).params
    b = fastbp.MLP([4, 3, 2], seed=2).params
    assert not np.array_equal(a, b)


def test_last_partial_batch_is_trained_like_the_reference(rng):
    """10 samples, batch 4: steps on rows 0-3, 4-7 and the partial 8-9, as plain SGD by hand."""
    X = rng.standard_normal((10, 5))
    y = rng.integers(0, 3, size=10)
    model = fastbp.MLP([5, 6, 3], activation="tanh", dtype="float64", seed=0)
    ws = [l.weight.copy() for l in model.layers]
    bs = [l.bias.copy() for l in model.layers]
    model.fit(X, y, epochs=1, batch_size=4, shuffle=False, optimizer=fastbp.SGD(lr=0.3), verbose=0)
    for s in (0, 4, 8):
        _, _, dws, dbs, _ = naive.network_gradients(X[s:s + 4], y[s:s + 4].astype(float), ws, bs,
                                                    "tanh", "softmax")
        ws = [w - 0.3 * d for w, d in zip(ws, dws)]
        bs = [b - 0.3 * d for b, d in zip(bs, dbs)]
    for layer, w, b in zip(model.layers, ws, bs):
        np.testing.assert_allclose(layer.weight, w, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.bias, b, rtol=1e-12, atol=1e-12)


def test_float32_in_float32_out_without_copy(digits):
    X, y, tr, _ = digits
    Xtr = np.ascontiguousarray(X[tr])
    model = fastbp.MLP([64, 8, 10], seed=0)
    assert model.check_X(Xtr) is Xtr                 # no copy of float32 C-contiguous input
    model.fit(Xtr, y[tr], epochs=1, verbose=0)
    assert model.params.dtype == np.float32
    assert all(l.weight.dtype == np.float32 and l.bias.dtype == np.float32 for l in model.layers)
    assert model.predict(Xtr[:3]).dtype == np.float32
    assert np.shares_memory(model.layers[0].weight, model.params)


def test_validation_split_is_seeded_and_fair():
    X = np.linspace(0, 1, 200, dtype=np.float32).reshape(100, 2)
    y = np.repeat([0, 1], 50)                        # sorted by class
    m1 = fastbp.MLP([2, 3, 2], seed=5)
    train_rows, (_, yv, val_rows) = trainer._split(m1, X, m1.check_y(y, 100), None, 0.2)
    assert len(val_rows) == 20 and len(train_rows) == 80
    assert set(train_rows).isdisjoint(val_rows) and len(set(train_rows) | set(val_rows)) == 100
    assert set(yv[val_rows, 0]) == {0.0, 1.0}        # both classes held out
    m2 = fastbp.MLP([2, 3, 2], seed=5)
    assert np.array_equal(trainer._split(m2, X, m2.check_y(y, 100), None, 0.2)[1][2], val_rows)
    h = fastbp.MLP([2, 3, 2], seed=5).fit(X, y, epochs=2, validation_split=0.2, verbose=0)
    assert set(h.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "epoch_time",
                              "samples_per_second"}


def test_validation_data(digits):
    X, y, tr, te = digits
    model = fastbp.MLP([64, 16, 10], seed=0)
    h = model.fit(X[tr], y[tr], epochs=2, validation_data=(X[te], y[te]), verbose=0)
    assert h.history["val_loss"][-1] == pytest.approx(model.evaluate(X[te], y[te])["loss"])


class Recorder(fastbp.Callback):
    def on_train_begin(self, logs=None):
        self.params, self.logs = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.params.append(self.model.params.copy())
        self.logs.append(dict(logs))


@pytest.mark.parametrize("patience,epochs", [(1, 40), (100, 6)])
def test_early_stopping_restores_best_weights(patience, epochs, digits):
    """With patience 100 over 6 epochs it never fires, and the best weights still come back."""
    X, y, tr, te = digits
    rec = Recorder()
    stop = fastbp.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    model = fastbp.MLP([64, 16, 10], seed=0)
    # a large learning rate makes the validation loss bounce, so "best" is not "last"
    h = model.fit(X[tr], y[tr], epochs=epochs, batch_size=16, optimizer=fastbp.SGD(lr=3.0),
                  validation_data=(X[te], y[te]), callbacks=[rec, stop], verbose=0)
    val = [l["val_loss"] for l in rec.logs]
    best = int(np.argmin(val))
    assert np.array_equal(model.params, rec.params[best])
    if patience == 1:
        assert len(h.epoch) < epochs and stop.stopped_epoch == len(h.epoch) - 1
    else:
        assert len(h.epoch) == epochs and stop.stopped_epoch is None


def test_callback_can_stop_training():
    X = np.random.default_rng(0).standard_normal((20, 3))
    y = np.arange(20) % 2
    stopper = fastbp.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(stopper.model, "stop_training", epoch == 2))
    h = fastbp.MLP([3, 2], seed=0).fit(X, y, epochs=10, callbacks=[stopper], verbose=0)
    assert h.epoch == [0, 1, 2]


def test_threads_restored_after_error():
    if fastbp._threads.max_threads() < 2:
        pytest.skip("needs 2 threads")
    fastbp.set_num_threads(2)

    class Boom(fastbp.Callback):
        def on_epoch_end(self, epoch, logs=None):
            assert fastbp.get_num_threads() == 1
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fastbp.MLP([3, 2], seed=0).fit(np.zeros((4, 3)), [0, 1, 0, 1], epochs=1,
                                       callbacks=[Boom()], n_threads=1, verbose=0)
    assert fastbp.get_num_threads() == 2


def test_divergence_raises_instead_of_silent_nan():
    X = np.random.default_rng(0).standard_normal((64, 4)) * 1e3
    y = np.random.default_rng(1).standard_normal((64, 1)) * 1e3
    model = fastbp.MLP([4, 8, 1], activation="identity", output="identity", seed=0)
    with pytest.raises(FloatingPointError, match="diverged"):
        model.fit(X, y, epochs=50, optimizer=fastbp.SGD(lr=10.0), verbose=0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(sizes=[3]), "at least an input and an output"),
    (dict(sizes=[3, 0, 2]), r"sizes\[1\] must be >= 1"),
    (dict(sizes=[3, 2.5]), r"sizes\[1\] must be an integer"),
    (dict(sizes=[3, 2], activation="softplus"), "activation must be one of"),
    (dict(sizes=[3, 2], output="softmax2"), "output must be one of"),
    (dict(sizes=[3, 1], output="softmax"), "softmax output needs at least 2"),
    (dict(sizes=[3, 2], dtype="int32"), "dtype must be"),
    (dict(sizes=[3, 2], seed=-1), "seed must be >= 0"),
])
def test_bad_model_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fastbp.MLP(**kwargs)


@pytest.mark.parametrize("X,y,kwargs,match", [
    (np.zeros((4, 2)), [0, 1, 0, 1], {}, "X has 2 features, but the model expects 3"),
    (np.zeros(4), [0, 1, 0, 1], {}, "X must be 2-D"),
    (np.full((4, 3), np.nan), [0, 1, 0, 1], {}, "X contains NaN"),
    (np.zeros((4, 3)), [0, 1, 0, 5], {}, "y contains class label 5, but the output layer has 2"),
    (np.zeros((4, 3)), [0, 1, 0], {}, "y has 3 samples but X has 4"),
    (np.zeros((4, 3)), [0, 1, 0.5, 1], {}, "integer class labels"),
    (np.array([["a"] * 3] * 4), [0, 1, 0, 1], {}, "X must hold numbers"),
    (np.zeros((4, 3)), [0, 1, 0, 1], dict(epochs=-1), "epochs must be >= 0"),
    (np.zeros((4, 3)), [0, 1, 0, 1], dict(batch_size=0), "batch_size must be >= 1"),
    (np.zeros((4, 3)), [0, 1, 0, 1], dict(validation_split=1.0), "validation_split must be"),
    (np.zeros((4, 3)), [0, 1, 0, 1], dict(n_threads=99), "n_threads must be between 1 and"),
    (np.zeros((4, 3)), [0, 1, 0, 1], dict(optimizer="rmsprop"), "optimizer must be one of"),
    (np.zeros((4, 3)), [0, 1, 0, 1], dict(verbose=5), "verbose must be 0, 1 or 2"),
    (np.zeros((4, 3)), [0, 1, 0, 1], dict(callbacks=[print]), "callbacks must be"),
])
def test_bad_fit_arguments(X, y, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fastbp.MLP([3, 2], seed=0).fit(X, y, **{"verbose": 0, **kwargs})


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=0), "lr must be > 0"), (dict(lr=float("nan")), "lr must be finite"),
    (dict(momentum=1.0), "momentum must be < 1"), (dict(nesterov=True), "nesterov=True needs"),
    (dict(weight_decay=-1), "weight_decay must be >= 0"),
])
def test_bad_optimizer_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fastbp.SGD(**kwargs)


def test_targets_for_sigmoid_and_identity_outputs(rng):
    X = rng.standard_normal((30, 4))
    model = fastbp.MLP([4, 5, 2], output="sigmoid", seed=0)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        model.fit(X, np.full((30, 2), 2.0), verbose=0)
    with pytest.raises(ValueError, match=r"must have shape \(30, 2\)"):
        model.fit(X, np.zeros(30), verbose=0)
    h = model.fit(X, (X[:, :2] > 0).astype(float), epochs=2, verbose=0)
    assert 0 <= h.history["accuracy"][-1] <= 1
    reg = fastbp.MLP([4, 1], output="identity", dtype="float64", seed=0)
    h = reg.fit(X, X[:, 0] * 2 + 1, epochs=200, batch_size=10, verbose=0)
    assert "accuracy" not in h.history and h.history["loss"][-1] < 1e-3


def test_predict_matches_naive_forward_in_chunks(rng):
    model = fastbp.MLP([6, 9, 4], activation="relu", dtype="float64", seed=2)
    X = rng.standard_normal((23, 6))
    out, _, _, _, _ = naive.network_gradients(X, np.zeros((23, 1)), [l.weight for l in model.layers],
                                              [l.bias for l in model.layers], "relu", "softmax")
    np.testing.assert_allclose(model.predict(X), out, rtol=1e-12)
    np.testing.assert_allclose(model.predict(X, batch_size=5), out, rtol=1e-12)
    assert np.array_equal(model.predict_classes(X), out.argmax(1))


def test_save_and_load_roundtrip(tmp_path, digits):
    X, y, tr, te = digits
    model = fastbp.MLP([64, 12, 10], activation="relu", seed=4)
    model.fit(X[tr], y[tr], epochs=2, optimizer=fastbp.Adam(lr=0.01), verbose=0)
    path = tmp_path / "m.npz"
    model.save(path)
    again = fastbp.load(path)
    assert again.sizes == model.sizes and again.activation == "relu"
    assert np.array_equal(again.params, model.params)
    assert np.array_equal(again.predict(X[te]), model.predict(X[te]))
    assert np.array_equal(again.optimizer.state, model.optimizer.state)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(fastbp.ModelFileError):
        fastbp.load(path)


def test_progress_output(capsys):
    X = np.zeros((8, 3))
    y = [0, 1] * 4
    fastbp.MLP([3, 2], seed=0).fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""
    fastbp.MLP([3, 2], seed=0).fit(X, y, epochs=2, verbose=1)   # not a terminal: a line per epoch
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("Epoch 2/2") and "loss" in lines[1]


@pytest.mark.parametrize("shuffle", [False, True])
def test_read_only_inputs_train_like_writable_ones(shuffle, rng):
    """Unshuffled minibatches are read from X in place; a read-only X (a memory map, a
    shared array) must work the same as a writable copy."""
    X = rng.standard_normal((40, 4)).astype(np.float32)
    y = rng.integers(0, 2, size=40)
    frozen = X.copy()
    frozen.flags.writeable = False
    weights = []
    for data in (X, frozen):
        model = fastbp.MLP([4, 3, 2], dtype="float32", seed=0)
        model.fit(data, y, epochs=2, batch_size=8, shuffle=shuffle, verbose=0)
        weights.append(model.params.copy())
    assert weights[0].tobytes() == weights[1].tobytes()
    assert not np.array_equal(weights[0], fastbp.MLP([4, 3, 2], dtype="float32", seed=0).params)
