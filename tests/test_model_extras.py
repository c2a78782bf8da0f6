"""summary(), per-layer activations, and the callbacks and learning-rate schedules of issue 18."""
import csv
import math

import numpy as np
import pytest

import fastbp
from fastbp import _config
from naive import dense_forward

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = fastbp.load_digits()
    return X[:300], y[:300]


def test_summary_lists_layers_params_dtype_isa_threads():
    model = fastbp.MLP([64, 32, 10], n_threads=2)
    lines = []
    text = model.summary(print_fn=lines.append)
    assert lines == [text]
    assert "dense_0 (sigmoid)" in text and "(None, 32)" in text and "2,080" in text
    assert "dense_1 (softmax)" in text and "(None, 10)" in text and "330" in text
    assert "Total params: 2,410" in text and 64 * 32 + 32 + 32 * 10 + 10 == 2410
    assert "dtype: float32" in text and f"instruction set: {_config.ISA}" in text and "threads: 2" in text


def test_per_layer_activations_in_forward_and_file(tmp_path):
    model = fastbp.MLP([5, 6, 4, 3], activation=["relu", "tanh"], seed=3)
    assert [l.activation for l in model.layers] == ["relu", "tanh", "softmax"]
    X = np.random.default_rng(0).standard_normal((7, 5))
    a = X
    for layer, act in zip(model.layers[:2], ["relu", "tanh"]):
        a = dense_forward(a, layer.weight, layer.bias, act)
    z = dense_forward(a, model.layers[2].weight, model.layers[2].bias, "identity")
    p = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(model.predict(X), p / p.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "m.npz")
    loaded = fastbp.load(tmp_path / "m.npz")
    assert loaded.activation == ["relu", "tanh"]
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("activation, message", [
    (["relu"], "one name per hidden layer: the model has 2"),
    (["relu", "swish"], r"activation\[1\] must be one of"),
    (3, "activation must be a name or a list"),
])
def test_per_layer_activation_errors(activation, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fastbp.MLP([5, 6, 4, 3], activation=activation)


def test_schedules_values():
    s = fastbp.StepDecay(0.1, step_size=2, factor=0.5)
    assert [s(e) for e in range(5)] == [0.1, 0.1, 0.05, 0.05, 0.025]
    assert fastbp.ExponentialDecay(1.0, 0.9)(3) == pytest.approx(0.729)
    c = fastbp.CosineDecay(1.0, epochs=10, warmup_epochs=2, min_lr=0.1)
    assert [c(0), c(1)] == pytest.approx([1 / 3, 2 / 3])
    assert c(2) == pytest.approx(1.0) and c(10) == pytest.approx(0.1) and c(20) == pytest.approx(0.1)
    assert c(6) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    with pytest.raises(ValueError, match="warmup_epochs"):
        fastbp.CosineDecay(1.0, epochs=3, warmup_epochs=3)


def test_lr_scheduler_sets_lr_each_epoch(digits):
    X, y = digits
    seen = []
    sched = fastbp.LearningRateScheduler(fastbp.StepDecay(0.2, step_size=1, factor=0.5))
    spy = fastbp.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(model.optimizer.lr))
    model = fastbp.MLP([64, 32, 10], seed=0)
    model.fit(X, y, epochs=3, callbacks=[sched, spy], verbose=0)
    assert seen == [0.2, 0.1, 0.05]
    # the same lrs set by hand, epoch by epoch, give the same weights
    ref = fastbp.MLP([64, 32, 10], seed=0)
    opt = fastbp.SGD(lr=0.2)
    for lr in [0.2, 0.1, 0.05]:
        opt.lr = lr
        ref.fit(X, y, epochs=1, optimizer=opt, verbose=0)
    np.testing.assert_array_equal(model.params, ref.params)
    with pytest.raises(ValueError, match=r"schedule\(0\) must be a finite number > 0"):
        fastbp.MLP([64, 32, 10]).fit(X, y, epochs=1, verbose=0,
                                      callbacks=[fastbp.LearningRateScheduler(lambda e: -1.0)])


def test_reduce_lr_on_plateau(digits):
    X, y = digits
    cb = fastbp.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0)
    model = fastbp.MLP([64, 32, 10], seed=0)
    model.fit(X, y, epochs=3, optimizer=fastbp.SGD(lr=0.1), callbacks=[cb], verbose=0)
    # epoch 0 sets best; epochs 1 and 2 cannot improve by 10, so each halves the lr
    assert model.optimizer.lr == pytest.approx(0.025)
    with pytest.raises(ValueError, match="factor must be < 1"):
        fastbp.ReduceLROnPlateau(factor=1.5)


def test_csv_logger_and_model_checkpoint(digits, tmp_path):
    X, y = digits
    log = tmp_path / "log.csv"
    best = str(tmp_path / "b{epoch}.npz")
    every = str(tmp_path / "e{epoch}.npz")
    losses = iter([3.0, 1.0, 2.0, 0.5])
    fake = fastbp.LambdaCallback(on_epoch_end=lambda e, logs: logs.update(fake=next(losses)))
    model = fastbp.MLP([64, 32, 10], seed=0)
    h = model.fit(X, y, epochs=4, verbose=0, callbacks=[
        fake, fastbp.CSVLogger(log), fastbp.ModelCheckpoint(best, monitor="fake", save_best_only=True),
        fastbp.ModelCheckpoint(every, every=2)])
    rows = list(csv.DictReader(open(log)))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert [float(r["loss"]) for r in rows] == pytest.approx(h.history["loss"])
    assert sorted(p.name for p in tmp_path.glob("b*.npz")) == ["b1.npz", "b2.npz", "b4.npz"]
    assert sorted(p.name for p in tmp_path.glob("e*.npz")) == ["e2.npz", "e4.npz"]
    np.testing.assert_array_equal(fastbp.load(tmp_path / "b4.npz").params, model.params)
