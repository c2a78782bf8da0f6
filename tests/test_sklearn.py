"""scikit-learn compatibility of fastbp.MLPClassifier / MLPRegressor."""
import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_diabetes, load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastbp  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
from fastbp import MLPClassifier, MLPRegressor  # noqa: E402

# Checks scikit-learn itself marks optional for estimators, each with our reason.
EXPECTED_FAILED = {
    # with minibatches, a weight of 2 is not two copies of a sample (the copies change how
    # the data falls into batches); scikit-learn runs this check on its MLP only with the
    # full-batch lbfgs solver, which fastbp does not have
    "check_sample_weight_equivalence_on_dense_data":
        "minibatch solvers: weight 2 differs from a repeated sample",
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED


SMALL = dict(hidden_layer_sizes=(10,), max_iter=100, learning_rate_init=0.01, random_state=0)


@parametrize_with_checks([MLPClassifier(**SMALL), MLPRegressor(**SMALL)],
                         expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X, y / 100.0


def _pair(cls_sk, cls_fb, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = cls_sk(random_state=0, **kw).fit(X, y)
        b = cls_fb(random_state=0, dtype="float64", **kw).fit(X, y)
    return a, b


@pytest.mark.parametrize("kw", [
    dict(solver="sgd", learning_rate="constant", learning_rate_init=0.1, momentum=0.0),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.2, nesterovs_momentum=False),
    dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.05, n_iter_no_change=1, tol=0.5),
    dict(solver="adam", alpha=0.01, batch_size=64),
    dict(solver="adam", early_stopping=True, activation="logistic"),
    dict(solver="adam", activation="tanh", shuffle=False),
])
def test_classifier_follows_sklearn_in_float64(digits, kw):
    """Same data, hyper-parameters and seed: scikit-learn's weights and loss curve to rounding."""
    X, y = digits
    a, b = _pair(SkMLPClassifier, MLPClassifier, X, y, hidden_layer_sizes=(12, 7), max_iter=6, **kw)
    assert b.n_iter_ == a.n_iter_ and b.t_ == a.t_
    np.testing.assert_allclose(b.loss_curve_, a.loss_curve_, rtol=1e-10)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(wb, wa, rtol=1e-9, atol=1e-12)
    assert b.validation_scores_ == a.validation_scores_
    np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), atol=1e-10)


@pytest.mark.parametrize("target", ["binary", "multilabel"])
def test_binary_and_multilabel_follow_sklearn(digits, target):
    X, y = digits
    yy = y > 4 if target == "binary" else np.stack([y % 2, y > 5, y == 3], 1)
    a, b = _pair(SkMLPClassifier, MLPClassifier, X, yy, hidden_layer_sizes=(8,), max_iter=4,
                 solver="sgd", alpha=0.01)
    np.testing.assert_allclose(b.loss_curve_, a.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), atol=1e-10)
    np.testing.assert_array_equal(b.predict(X), a.predict(X))
    assert b.out_activation_ == a.out_activation_ == "logistic"


@pytest.mark.parametrize("n_outputs", [1, 2])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_regressor_follows_sklearn(diabetes, n_outputs, solver):
    X, y = diabetes
    yy = y if n_outputs == 1 else np.stack([y, -0.5 * y], 1)
    a, b = _pair(SkMLPRegressor, MLPRegressor, X, yy, hidden_layer_sizes=(8,), max_iter=5,
                 solver=solver, alpha=0.1, learning_rate_init=0.01)
    np.testing.assert_allclose(b.loss_curve_, a.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(b.predict(X), a.predict(X), rtol=1e-9, atol=1e-12)
    assert b.predict(X).shape == yy.shape


def test_string_labels_and_dataframe(digits):
    pd = pytest.importorskip("pandas")
    X, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    df = pd.DataFrame(X, columns=[f"px{i}" for i in range(X.shape[1])])
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=60, learning_rate_init=0.01,
                        random_state=0).fit(df, names[y])
    assert list(clf.classes_) == sorted(names)
    assert list(clf.feature_names_in_) == list(df.columns)
    assert clf.predict(df).dtype == names.dtype
    assert clf.score(df, names[y]) > 0.9
    proba = clf.predict_proba(df)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(clf.predict_log_proba(df), np.log(proba), rtol=1e-6)


def test_pipeline_gridsearch_n_jobs_2(digits):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=40, learning_rate_init=0.02,
                                                          random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(8,), (16,)]}, cv=2, n_jobs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, y)
    assert grid.best_score_ > 0.7
    assert grid.score(X, y) > 0.8


def test_pickle_and_joblib_rebuild_the_model(digits, tmp_path):
    joblib = pytest.importorskip("joblib")
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, y)
    for clone_ in (pickle.loads(pickle.dumps(clf)),
                   joblib.load(joblib.dump(clf, tmp_path / "m.joblib")[0])):
        np.testing.assert_array_equal(clone_.predict_proba(X), clf.predict_proba(X))
        w = clone_.model_.layers[0].weight
        assert np.shares_memory(w, clone_.model_.params)     # layer views rebuilt, not copies
        clone_.partial_fit(X, y)                                # and it still trains


def test_partial_fit_equals_one_epoch_of_fit(digits):
    X, y = digits
    kw = dict(hidden_layer_sizes=(8,), random_state=0, solver="sgd", momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(max_iter=1, **kw).fit(X, y)
    b = MLPClassifier(**kw).partial_fit(X, y, classes=np.unique(y))
    np.testing.assert_array_equal(a.model_.params, b.model_.params)


def test_random_state_fixes_everything(digits):
    X, y = digits
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=3, early_stopping=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(**kw).fit(X, y)
        b = MLPClassifier(**kw).fit(X, y)
    np.testing.assert_array_equal(a.model_.params, b.model_.params)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_steps_grouped_into_calls_change_nothing(digits, monkeypatch, solver):
    """The estimators run many minibatches per compiled call (fastbp/_epoch.py) with
    scikit-learn's per-step L2 coefficient and Adam epsilon computed inside: one call per
    minibatch and as many as the cap allows give the same weights and loss curve."""
    from fastbp import _epoch
    X, y = digits
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0, alpha=0.01, batch_size=100,
              solver=solver, dtype="float64")
    runs = []
    for seconds in (1e-9, 1e9):
        monkeypatch.setattr(_epoch, "SECONDS_PER_CALL", seconds)
        runs.append(MLPClassifier(**kw).fit(X, y))
    np.testing.assert_array_equal(runs[0].model_.params, runs[1].model_.params)
    assert runs[0].loss_curve_ == runs[1].loss_curve_


def test_coefs_layout_and_setter(digits):
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(64, 8), (8, 10)]
    assert [b.shape for b in clf.intercepts_] == [(8,), (10,)]
    clf.coefs_ = [np.zeros((64, 8)), np.ones((8, 10))]
    assert (clf.model_.layers[1].weight == 1).all()


@pytest.mark.parametrize("param, value, match", [
    ("hidden_layer_sizes", (0,), "hidden_layer_sizes"),
    ("activation", "softplus", "activation"),
    ("solver", "lbfgs", "solver"),
    ("alpha", -1.0, "alpha"),
    ("momentum", 1.0, "momentum"),
    ("dtype", "float16", "dtype"),
    ("batch_size", 0, "batch_size"),
])
def test_bad_parameters_name_the_argument(digits, param, value, match):
    X, y = digits
    with pytest.raises(ValueError, match=match):
        MLPClassifier(max_iter=1, **{param: value}).fit(X, y)


def test_bad_input_is_refused(digits):
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=1)
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(np.full_like(X, np.nan), y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :10])
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=np.unique(y))


def test_estimators_are_exported_lazily():
    import subprocess
    import sys
    code = "import sys, fastbp; assert 'sklearn' not in sys.modules; fastbp.MLPRegressor; " \
           "assert 'sklearn' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert fastbp.MLPClassifier is MLPClassifier


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_sample_weight_follows_sklearn(digits, diabetes, kind):
    """scikit-learn's MLP fit(sample_weight=...): its weights and loss curve to rounding."""
    X, y = digits if kind == "classifier" else diabetes
    cls_sk, cls_fb = (SkMLPClassifier, MLPClassifier) if kind == "classifier" else (SkMLPRegressor, MLPRegressor)
    sw = np.random.default_rng(0).uniform(0.0, 3.0, X.shape[0])
    kw = dict(hidden_layer_sizes=(8,), max_iter=4, solver="adam", alpha=0.01, batch_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = cls_sk(random_state=0, **kw).fit(X, y, sample_weight=sw)
        b = cls_fb(random_state=0, dtype="float64", **kw).fit(X, y, sample_weight=sw)
        c = cls_fb(random_state=0, dtype="float64", **kw).fit(X, y)
    np.testing.assert_allclose(b.loss_curve_, a.loss_curve_, rtol=1e-10)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(wb, wa, rtol=1e-9, atol=1e-12)
    assert not np.allclose(c.coefs_[0], b.coefs_[0])   # the weights did something
    with pytest.raises(ValueError, match="early_stopping"):
        cls_fb(early_stopping=True).fit(X, y, sample_weight=sw)
