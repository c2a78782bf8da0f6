"""evaluate(metrics=...) and fit(metrics=...) against scikit-learn.metrics."""
import numpy as np
import pytest

import fastbp

skm = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def digits_model():
    X, y = fastbp.load_digits()
    model = fastbp.MLP([64, 32, 10], seed=0)
    model.fit(X[:300], y[:300], epochs=2, verbose=0)   # weak on purpose: every class counts
    return model, X[300:600], y[300:600]


def test_classification_metrics_match_sklearn(digits_model):
    model, X, y = digits_model
    r = model.evaluate(X, y, metrics=["top_3_accuracy", "top_k_accuracy", "precision", "recall", "f1"])
    p = model.predict(X)
    pred = p.argmax(1)
    assert r["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert r["top_3_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, p, k=3, labels=range(10)))
    assert r["top_k_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, p, k=5, labels=range(10)))
    for name, fn in [("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)]:
        assert r[name] == pytest.approx(fn(y, pred, average="macro", zero_division=0)), name
    assert 0 < r["f1"] < 1 and r["top_3_accuracy"] > r["accuracy"]


def test_roc_auc_r2_mae_match_sklearn():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    t = (X[:, 0] + 0.5 * rng.standard_normal(200) > 0).astype(float)
    clf = fastbp.MLP([5, 1], output="sigmoid", seed=0)
    clf.fit(X, t, epochs=2, verbose=0)
    r = clf.evaluate(X, t, metrics=["roc_auc", "f1"])
    p = clf.predict(X)[:, 0]
    assert r["roc_auc"] == pytest.approx(skm.roc_auc_score(t, p))
    assert r["f1"] == pytest.approx(skm.f1_score(t, p > 0.5, average="macro"))
    Y = np.c_[X[:, 0] + X[:, 1], X[:, 2]]
    reg = fastbp.MLP([5, 2], output="identity", dtype="float64", seed=0)
    reg.fit(X, Y, epochs=3, verbose=0)
    r = reg.evaluate(X, Y, metrics=["r2", "mae"])
    q = reg.predict(X)
    assert r["r2"] == pytest.approx(skm.r2_score(Y, q)) and r["mae"] == pytest.approx(skm.mean_absolute_error(Y, q))


def test_fit_metrics_in_history_and_progress_line(capsys):
    X, y = fastbp.load_digits()
    model = fastbp.MLP([64, 32, 10], seed=0)
    h = model.fit(X[:300], y[:300], epochs=2, verbose=2, metrics=["f1"], validation_data=(X[300:400], y[300:400]))
    assert len(h.history["f1"]) == 2 and len(h.history["val_f1"]) == 2
    assert h.history["val_f1"][-1] == pytest.approx(model.evaluate(X[300:400], y[300:400], metrics=["f1"])["f1"])
    assert "val_f1:" in capsys.readouterr().out


@pytest.mark.parametrize("metrics, output, message", [
    (["r2"], "softmax", "is for regression"),
    (["top_3_accuracy"], "sigmoid", "needs a softmax output"),
    (["auc"], "softmax", "unknown metric 'auc'"),
    ([3], "softmax", "metrics must be names"),
])
def test_metric_errors(metrics, output, message):
    from fastbp import metrics as M
    with pytest.raises((ValueError, TypeError), match=message):
        M.check(metrics, output)


def test_predict_batch_size_gives_same_outputs(digits_model):
    model, X, _ = digits_model
    np.testing.assert_array_equal(model.predict(X, batch_size=7), model.predict(X))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        model.predict(X, batch_size=0)
