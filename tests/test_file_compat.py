"""Files written by an older fastbp (tests/data/, made by make_fixtures.py) still load, with
the writer's weights, fields and predictions."""
import json
import os
import warnings

import numpy as np
import pytest

import fastbp

DATA = os.path.join(os.path.dirname(__file__), "data")


def _fixture(name):
    with np.load(os.path.join(DATA, name + ".expected.npz"), allow_pickle=False) as z:
        expected = dict(z)
    with open(os.path.join(DATA, name + ".expected.json")) as f:
        fields = json.load(f)
    return os.path.join(DATA, name + ".npz"), expected, fields


def _check_mlp(model, expected, fields):
    assert type(model) is fastbp.MLP
    assert model.get_config() == fields["config"]
    np.testing.assert_array_equal(model.params, expected["params"])
    np.testing.assert_allclose(model.predict(expected["X"]), expected["predict"], rtol=1e-5, atol=1e-6)
    assert model.epoch == fields["epoch"]
    assert model.dropout_seed == fields["dropout_seed"]
    assert model.rng.bit_generator.state == fields["rng_state"]
    if fields["optimizer"] is None:
        assert model.optimizer is None
    else:
        opt = model.optimizer
        assert dict(opt.get_config(), steps=opt.steps) == fields["optimizer"]
        np.testing.assert_array_equal(opt.state, expected["optimizer_state"])


@pytest.mark.parametrize("name", ["mlp_adam", "mlp_cli"])
def test_old_mlp_files_load(name):
    path, expected, fields = _fixture(name)
    model = fastbp.load(path)
    _check_mlp(model, expected, fields)
    if name == "mlp_cli":
        assert model.classes_.tolist() == fields["classes_"]
        for key in ("input_mean", "input_std", "held_out_rows"):
            np.testing.assert_array_equal(getattr(model, key), expected[key])


def test_old_checkpoint_loads_and_resumes():
    path, expected, fields = _fixture("checkpoint")
    _check_mlp(fastbp.load(path), expected, fields)
    model, training = fastbp.files.read_checkpoint(path)
    _check_mlp(model, expected, fields)
    assert (training["epoch"], training["epochs"]) == (3, 3)
    assert training["history"] == fields["history"]
    assert [c["class"] for c in training["callbacks"]] == ["EarlyStopping"]
    # a resumed run at its last epoch restores the weights and the history, training nothing
    again = fastbp.MLP([4, 3, 2], output="sigmoid", seed=2, dropout=0.25)
    X = expected["X"]
    history = again.fit(X, np.zeros((X.shape[0], 2), np.float32), epochs=3, resume=path,
                        optimizer=fastbp.SGD(lr=0.1, momentum=0.9), verbose=0,
                        callbacks=[fastbp.EarlyStopping(patience=5, monitor="loss")])
    np.testing.assert_array_equal(again.params, expected["params"])
    assert history.history == fields["history"]["history"]


@pytest.mark.parametrize("name", ["clf_sgd", "reg_adam", "clf_strings"])
def test_old_estimator_files_load(name):
    pytest.importorskip("sklearn")
    path, expected, fields = _fixture(name)
    cls = getattr(fastbp, fields["class"])
    est = cls.load(path)
    assert type(est) is cls and type(fastbp.load(path)) is cls
    params = dict(fields["params"], hidden_layer_sizes=tuple(fields["params"]["hidden_layer_sizes"]))
    assert est.get_params() == dict(cls().get_params(), **params)   # newer parameters: defaults
    assert (est.n_iter_, est.t_, est.loss_curve_) == (fields["n_iter_"], fields["t_"], fields["loss_curve_"])
    np.testing.assert_array_equal(est.model_.params, expected["params"])
    opt = est._optimizer
    assert dict(opt.get_config(), steps=opt.steps, scale=opt.scale) == fields["optimizer"]
    np.testing.assert_array_equal(opt.state, expected["optimizer_state"])
    X = expected["X"]
    # The file's weights are loaded bit for bit (above); what the network computes from
    # them may move by a few ulp of its dtype when a kernel gets more accurate (the exp
    # did, 3bd591b: softmax outputs moved by 1 ulp of float32).
    rtol = 8 * np.finfo(est.model_.params.dtype).eps
    if "classes_" in fields:
        assert est.classes_.tolist() == fields["classes_"]
        np.testing.assert_array_equal(est.predict(X), expected["predict"])
        np.testing.assert_allclose(est.predict_proba(X), expected["predict_proba"], rtol=rtol, atol=1e-12)
    else:
        np.testing.assert_allclose(est.predict(X), expected["predict"], rtol=rtol, atol=1e-12)
    with warnings.catch_warnings():       # and it trains on
        warnings.simplefilter("ignore")
        est.partial_fit(X, est.predict(X))
    assert est._optimizer.steps > fields["optimizer"]["steps"]


@pytest.mark.parametrize("name", ["clf_sgd", "reg_adam"])
def test_files_name_no_private_class(name, tmp_path):
    """What a file names is the format's: the optimizer's public name and the estimator's
    public class, never a private class of fastbp's (older files wrote "_SkSGD")."""
    pytest.importorskip("sklearn")
    path, _, fields = _fixture(name)
    est = getattr(fastbp, fields["class"]).load(path)
    est.save(tmp_path / "again.npz")
    with np.load(tmp_path / "again.npz", allow_pickle=False) as z:
        header = json.loads(z["header"].tobytes())
    assert header["optimizer"]["name"] == est.solver
    assert header["estimator"]["class"] == fields["class"]
    assert "_Sk" not in json.dumps(header)
    again = type(est).load(tmp_path / "again.npz")
    assert dict(again._optimizer.get_config(), steps=again._optimizer.steps,
                scale=again._optimizer.scale) == fields["optimizer"]
