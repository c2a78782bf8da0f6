"""Leaving fastbp: PyTorch state dicts and modules, ONNX graphs run by onnxruntime."""
import numpy as np
import pytest

import fastbp

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def trained():
    X, y = fastbp.load_digits()
    model = fastbp.MLP([64, 32, 10], activation="tanh", seed=0)
    model.fit(X[:300], y[:300], epochs=2, verbose=0)
    return model, X[300:400]


def test_state_dict_names_and_round_trip(trained):
    model, X = trained
    sd = model.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert sd["0.weight"].shape == (32, 64) and sd["2.bias"].shape == (10,)
    other = model.state_dict()
    other["0.bias"][0] += 1.0   # copies: the model is untouched
    assert model.layers[0].bias[0] == sd["0.bias"][0] != other["0.bias"][0]
    back = fastbp.MLP.from_state_dict(sd, activation="tanh")
    assert back.sizes == [64, 32, 10]
    np.testing.assert_array_equal(back.params, model.params)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))


@pytest.mark.parametrize("state, message", [
    ({"0.weight": np.zeros((3, 2))}, "no pair '0.weight' and '0.bias'"),
    ({"0.weight": np.zeros((3, 2)), "0.bias": np.zeros(2)}, r"must be \(n_out, n_in\)"),
    ({"0.weight": np.zeros((3, 2)), "0.bias": np.zeros(3), "2.weight": np.zeros((2, 4)),
      "2.bias": np.zeros(2)}, "takes 4 inputs, but the layer before gives 3"),
    ({"fc.weight": np.zeros((3, 2)), "fc.bias": np.zeros(3)}, "must look like '0.weight'"),
    ([1, 2], "must be a mapping"),
])
def test_from_state_dict_errors(state, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fastbp.MLP.from_state_dict(state)


def test_torch_round_trip(trained):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'fastbp[interop]')")
    model, X = trained
    module = model.to_torch()
    assert [type(m).__name__ for m in module] == ["Linear", "Tanh", "Linear", "Softmax"]
    with torch.no_grad():
        p_torch = module(torch.from_numpy(X.astype(np.float32))).numpy()
    np.testing.assert_allclose(p_torch, model.predict(X), atol=1e-6)
    assert set(module.state_dict()) == set(model.state_dict())
    back = fastbp.from_torch(module)
    assert back.activation == ["tanh"] and back.output == "softmax"
    np.testing.assert_allclose(back.predict(X), model.predict(X), atol=1e-6)


def test_from_torch_module_built_in_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'fastbp[interop]')")
    torch.manual_seed(0)
    nn = torch.nn
    module = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4), nn.Sigmoid(), nn.Linear(4, 2))
    model = fastbp.from_torch(module)
    assert model.sizes == [5, 6, 4, 2] and model.activation == ["relu", "sigmoid"]
    assert model.output == "identity"
    X = np.random.default_rng(0).standard_normal((9, 5)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(model.predict(X), expected, atol=1e-6)
    # a Dropout right after a Linear: an identity activation with dropout (test_dropout.py has more)
    assert fastbp.from_torch(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Linear(2, 2))).dropout == [0.5]
    with pytest.raises(ValueError, match="Dropout after the last Linear layer is not supported"):
        fastbp.from_torch(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)))
    with pytest.raises(ValueError, match=r"module\[2\] \(Dropout\) must follow a Linear layer"):
        fastbp.from_torch(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Dropout(0.5), nn.Linear(2, 2)))
    with pytest.raises(ValueError, match=r"module\[1\] is a BatchNorm1d"):
        fastbp.from_torch(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 2)))
    with pytest.raises(TypeError, match="must be a torch.nn.Sequential"):
        fastbp.from_torch(nn.Linear(2, 2))


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_onnx_export_runs_in_onnxruntime(tmp_path, output):
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'fastbp[interop]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'fastbp[interop]')")
    model = fastbp.MLP([5, 6, 4, 3], activation=["relu", "identity"], output=output, seed=1)
    path = tmp_path / "m.onnx"
    model.export_onnx(path)
    onnx.checker.check_model(onnx.load(str(path)))
    X = np.random.default_rng(2).standard_normal((11, 5)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(["Y"], {"X": X})
    np.testing.assert_allclose(y, model.predict(X), atol=1e-5)


def test_onnx_digits_network_matches_predict(tmp_path, trained):
    pytest.importorskip("onnx", reason="onnx is not installed (pip install 'fastbp[interop]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'fastbp[interop]')")
    model, X = trained
    model.export_onnx(tmp_path / "d.onnx")
    (y,) = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"]).run(None, {"X": X})
    np.testing.assert_allclose(y, model.predict(X), atol=1e-5)
    assert (y.argmax(1) == model.predict_classes(X)).all()


def test_cli_export_and_estimator_to_onnx(tmp_path, trained, capsys):
    pytest.importorskip("onnx", reason="onnx is not installed (pip install 'fastbp[interop]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'fastbp[interop]')")
    pytest.importorskip("sklearn", reason="scikit-learn is not installed")
    from fastbp.cli import main
    model, X = trained
    model.save(tmp_path / "m.npz")
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")]) == 0
    assert "wrote" in capsys.readouterr().out
    (y,) = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"X": X})
    np.testing.assert_allclose(y, model.predict(X), atol=1e-5)
    assert main(["export", str(tmp_path / "missing.npz"), str(tmp_path / "x.onnx")]) == 2

    Xd, yd = fastbp.load_digits()
    clf = fastbp.MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(Xd[:300], yd[:300])
    clf.to_onnx(tmp_path / "c.onnx")
    (p,) = ort.InferenceSession(str(tmp_path / "c.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"X": Xd[300:400].astype(np.float32)})
    np.testing.assert_allclose(p, clf.predict_proba(Xd[300:400]), atol=1e-5)
    assert (clf.classes_[p.argmax(1)] == clf.predict(Xd[300:400])).all()


def test_exports_of_a_standardised_model_take_raw_features(tmp_path, trained):
    """A model carrying input_mean/input_std (fastbp train --standardize) predicts on raw
    features; its torch module (scaling folded into the first Linear) and its ONNX graph
    (Sub, Div in front) must too."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'fastbp[interop]')")
    pytest.importorskip("onnx", reason="onnx is not installed (pip install 'fastbp[interop]')")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'fastbp[interop]')")
    model, X = trained
    scaled = fastbp.MLP.from_state_dict(model.state_dict(), activation="tanh")
    scaled.input_mean = X.mean(axis=0, dtype=np.float64) + 1.0
    scaled.input_std = X.std(axis=0, dtype=np.float64) + 0.5
    expected = scaled.predict(X)
    assert not np.allclose(expected, model.predict(X), atol=1e-3)   # the scaling matters
    with torch.no_grad():
        p_torch = scaled.to_torch()(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(p_torch, expected, atol=1e-6)
    scaled.export_onnx(tmp_path / "s.onnx")
    (y,) = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"]).run(None, {"X": X})
    np.testing.assert_allclose(y, expected, atol=1e-5)
