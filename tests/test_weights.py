"""fit(sample_weight=..., class_weight=...): Keras's semantics, sum_i w_i l_i / b."""
import numpy as np
import pytest

import fastbp
from fastbp import _validation as V
from fastbp.kernels.optim import HYPER_SIZE
from fastbp.kernels.step import threading_for, train_step
from helpers import targets
from naive import network_gradients

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_weighted_gradient_is_weighted_sum_of_per_sample_gradients(output):
    rng = np.random.default_rng(0)
    model = fastbp.MLP([5, 7, 4, 3], activation="tanh", output=output, dtype="float64", seed=3)
    X = rng.standard_normal((6, 5))
    y = model.check_y(targets(output, 6, 3, rng), 6)
    w = np.array([0.0, 1.0, 2.5, 0.5, 3.0, 1.0])
    yw = np.column_stack([y, w])
    idx = np.arange(6, dtype=np.int64)
    ws, stats = model.workspace(6)
    loss, _ = train_step(X, yw, idx, model.params, model.grads, np.zeros((2, model.n_params)),
                         np.zeros(HYPER_SIZE), model.meta, model._out_code, ws, stats, threading_for(model.meta, 6))
    weights = [l.weight for l in model.layers]
    biases = [l.bias for l in model.layers]
    expected_g = np.zeros(model.n_params)
    expected_loss = 0.0
    for i in range(6):
        _, li, dws, dbs, _ = network_gradients(X[i:i + 1], y[i:i + 1], weights, biases, "tanh", output)
        expected_g += w[i] * np.concatenate([np.r_[dw.ravel(), db] for dw, db in zip(dws, dbs)]) / 6
        expected_loss += w[i] * li
    np.testing.assert_allclose(model.grads, expected_g, rtol=1e-10, atol=1e-12)
    assert loss == pytest.approx(expected_loss, rel=1e-10)
    assert np.abs(expected_g).max() > 1e-3


@pytest.fixture(scope="module")
def digits():
    X, y = fastbp.load_digits()
    return X[:300], y[:300]


def _fit(digits, **kw):
    model = fastbp.MLP([64, 32, 10], seed=0)
    h = model.fit(*digits, epochs=2, verbose=0, **kw)
    return model, h


def test_unit_weights_change_nothing_and_class_weight_is_sample_weight(digits):
    X, y = digits
    plain, hp = _fit(digits)
    ones, ho = _fit(digits, sample_weight=np.ones(len(y)))
    np.testing.assert_array_equal(ones.params, plain.params)
    assert ho.history["loss"] == hp.history["loss"]
    table = {c: 1.0 + 0.25 * c for c in range(10)}
    a, _ = _fit(digits, class_weight=table)
    b, _ = _fit(digits, sample_weight=np.array([table[c] for c in y]))
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, plain.params)


def test_balanced_matches_sklearn_compute_class_weight(digits):
    cw = pytest.importorskip("sklearn.utils.class_weight", reason="scikit-learn is not installed")
    X, y = digits
    y = y.copy()
    y[y == 3] = 4   # class 3 absent, class 4 twice as common
    w = V.sample_weights(None, "balanced", y.reshape(-1, 1).astype(float), 10, "softmax")
    present = np.unique(y)
    expected = cw.compute_class_weight("balanced", classes=present, y=y)
    np.testing.assert_allclose(w, expected[np.searchsorted(present, y)])


@pytest.mark.parametrize("kw, message", [
    ({"sample_weight": np.ones(3)}, r"sample_weight must have shape \(300,\)"),
    ({"sample_weight": -np.ones(300)}, "finite weights >= 0"),
    ({"class_weight": "auto"}, "class_weight must be a dict or 'balanced'"),
    ({"class_weight": {12: 1.0}}, "class_weight key 12 is not a class label 0..9"),
    ({"class_weight": [1, 2]}, "class_weight must be a dict or 'balanced'"),
])
def test_weight_errors(digits, kw, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fastbp.MLP([64, 32, 10]).fit(*digits, epochs=1, verbose=0, **kw)
