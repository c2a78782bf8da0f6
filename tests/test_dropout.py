"""Dropout on hidden layers: masks drawn in the compiled step, the same mask in backward,
off in predict, deterministic across threads and step groupings, kept in files and exports."""
import numpy as np
import pytest
from helpers import gradients, targets

import fastbp
import naive
from fastbp import _epoch
from fastbp.kernels import dropout as D


def _masks(model, b, step):
    return [naive.dropout_mask(model.dropout_seed, l, step, b, n, p)
            for l, (n, p) in enumerate(zip(model.sizes[1:-1], model.hidden_dropout))]


def _check_against_naive(model, X, y, idx, step, rtol):
    loss, g = gradients(model, X, y, idx=idx, step=step)
    b = idx.shape[0]
    _, loss_ref, dws, dbs, _ = naive.network_gradients(
        X[idx], model.check_y(y, X.shape[0])[idx], [l.weight for l in model.layers],
        [l.bias for l in model.layers], model.hidden_activations[0], model.output,
        masks=_masks(model, b, step), rates=model.hidden_dropout)
    assert loss == pytest.approx(loss_ref, rel=rtol)
    off = 0
    for dw, db in zip(dws, dbs):
        for ref in (dw.ravel(), db):
            np.testing.assert_allclose(g[off:off + ref.size], ref, rtol=0,
                                       atol=rtol * (np.abs(ref).max() + 1e-3))
            off += ref.size


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("b", [1, 3, 17])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_forward_backward_match_naive_with_the_same_masks(dtype, b, activation, rng):
    """Hidden widths 17, 1 and 3 (no multiple of a tile), batches of 1, 3 and 17 rows
    shuffled out of X, per-layer rates, a step other than 0: the kernel's gradient equals
    the NumPy chain rule given the masks the reference draws by itself."""
    model = fastbp.MLP([5, 17, 1, 3, 4], activation=activation, dtype=dtype, seed=11,
                       dropout=[0.5, 0.25, 0.5], output="softmax")
    X = rng.standard_normal((20, 5)).astype(dtype)
    y = targets("softmax", 20, 4, rng)
    idx = rng.permutation(20)[:b].astype(np.int64)
    _check_against_naive(model, X, y, idx, step=7, rtol=1e-4 if dtype == "float32" else 1e-10)


def test_masks_change_with_the_step_and_the_seed():
    m = naive.dropout_mask
    assert not np.array_equal(m(0, 0, 1, 8, 64, 0.5), m(0, 0, 2, 8, 64, 0.5))
    assert not np.array_equal(m(0, 0, 1, 8, 64, 0.5), m(1, 0, 1, 8, 64, 0.5))
    assert not np.array_equal(m(0, 0, 1, 8, 64, 0.5), m(0, 1, 1, 8, 64, 0.5))
    assert m(0, 0, 1, 8, 64, 0.0).all()
    # the kernel's key is the reference's (its first mix): the same masks, not just similar ones
    with np.errstate(over="ignore"):
        ref = naive._splitmix(naive._splitmix(np.uint64(5)) + np.uint64(3) * np.uint64(D.GAMMA))
    assert D.layer_key(5, 2) % (1 << 64) == int(ref)


def test_gradients_by_central_differences_with_a_fixed_mask(rng):
    """float64: the loss under the masks of step 3 (fixed by the step count), perturbed
    parameter by parameter, against the kernel's gradient."""
    model = fastbp.MLP([5, 7, 6, 3], activation="tanh", dtype="float64", seed=3, dropout=0.4)
    X = rng.standard_normal((6, 5))
    y = targets("softmax", 6, 3, rng)
    _, g = gradients(model, X, y, step=3)
    fd = np.empty_like(g)
    h = 1e-6
    for i in range(model.n_params):
        keep = model.params[i]
        model.params[i] = keep + h
        up = gradients(model, X, y, step=3)[0]
        model.params[i] = keep - h
        down = gradients(model, X, y, step=3)[0]
        model.params[i] = keep
        fd[i] = (up - down) / (2 * h)
    rel = np.linalg.norm(g - fd) / (np.linalg.norm(g) + np.linalg.norm(fd))
    assert rel < 1e-6, rel
    assert np.linalg.norm(g) > 1e-3
    # on one row, the units dropped get no gradient on their incoming weights, the others do
    _, g1 = gradients(model, X[:1], y[:1], step=3)
    w0 = g1[:35].reshape(7, 5)
    kept = _masks(model, 1, 3)[0][0]
    assert kept.any() and not kept.all()
    assert np.all(w0[~kept] == 0) and np.all(np.abs(w0[kept]).sum(axis=1) > 0)


def test_kept_fraction_and_predict_is_mask_free(rng):
    p = 0.3
    model = fastbp.MLP([8, 256, 3], activation="tanh", dtype="float64", seed=2, dropout=p)
    X = rng.standard_normal((400, 8))
    y = targets("softmax", 400, 3, rng)
    gradients(model, X, y, step=1)
    from fastbp.kernels.layout import ACTS
    acts = model.workspace(400)[0][ACTS][:400 * 256]
    kept = np.count_nonzero(acts) / acts.size
    assert abs(kept - (1 - p)) < 0.01, kept                   # 102400 draws: 4.5 sigma
    # the kept units are scaled by 1 / (1 - p): their mean matches the undropped mean
    plain = fastbp.MLP([8, 256, 3], activation="tanh", dtype="float64", seed=2)
    plain.params[:] = model.params
    a = np.tanh(X @ model.layers[0].weight.T + model.layers[0].bias)
    np.testing.assert_allclose(acts.reshape(400, 256)[acts.reshape(400, 256) != 0],
                               (a / (1 - p))[acts.reshape(400, 256) != 0], rtol=1e-12)
    # predict and evaluate use every unit, unscaled, and give the same answer every time
    first = model.predict(X)
    np.testing.assert_array_equal(first, model.predict(X))
    np.testing.assert_array_equal(first, plain.predict(X))
    assert model.evaluate(X, y) == plain.evaluate(X, y)


def _fit(n_threads, seconds=None, monkeypatch=None, epochs=2):
    X, y = fastbp.load_digits()
    if seconds is not None:
        monkeypatch.setattr(_epoch, "SECONDS_PER_CALL", seconds)
    model = fastbp.MLP([64, 256, 10], activation="relu", seed=4, dropout=0.5)
    # batch 300 x 256 units: the dropout pass and the products run on several threads
    model.fit(X[:600], y[:600], epochs=epochs, batch_size=300, optimizer=fastbp.SGD(lr=0.1, momentum=0.9),
              verbose=0, n_threads=n_threads)
    return model


def test_same_seed_same_weights_on_1_and_2_threads_and_any_grouping(monkeypatch):
    one = _fit(1)
    two = _fit(2)
    np.testing.assert_array_equal(one.params, two.params)
    single_steps = _fit(2, 1e-12, monkeypatch)   # one step per compiled call
    many_steps = _fit(2, 1e6, monkeypatch)       # as many steps per call as allowed
    np.testing.assert_array_equal(single_steps.params, one.params)
    np.testing.assert_array_equal(many_steps.params, one.params)
    no_dropout = fastbp.MLP([64, 256, 10], activation="relu", seed=4)
    X, y = fastbp.load_digits()
    no_dropout.fit(X[:600], y[:600], epochs=2, batch_size=300, optimizer=fastbp.SGD(lr=0.1, momentum=0.9),
                   verbose=0)
    assert not np.array_equal(no_dropout.params, one.params)   # dropout did something


@pytest.mark.parametrize("dropout, message", [
    (1.0, r"dropout must be a number in \[0, 1\)"),
    (-0.1, r"dropout must be a number in \[0, 1\)"),
    ("0.2", r"dropout must be a number"),
    (True, r"dropout must be a number"),
    ([0.1], "dropout lists one rate per hidden layer: the model has 2 hidden layers, got 1"),
    ([0.1, 1.5], r"dropout\[1\] must be a number in \[0, 1\)"),
])
def test_bad_dropout_is_refused(dropout, message):
    with pytest.raises(ValueError, match=message):
        fastbp.MLP([4, 5, 6, 2], dropout=dropout)


def test_dropout_in_files_summary_and_repr(tmp_path):
    model = fastbp.MLP([6, 5, 4, 3], activation="relu", dropout=[0.2, 0.0], seed=None)
    model.fit(np.random.default_rng(0).random((20, 6)), np.arange(20) % 3, epochs=1, verbose=0)
    model.save(tmp_path / "m.npz")
    again = fastbp.load(tmp_path / "m.npz")
    assert again.dropout == [0.2, 0.0] and again.get_config()["dropout"] == [0.2, 0.0]
    assert again.dropout_seed == model.dropout_seed            # seed None: the drawn one is kept
    np.testing.assert_array_equal(again.meta, model.meta)
    text = model.summary(print_fn=None)
    assert "dropout_0 (p=0.2)" in text and "dropout_1" not in text
    assert "dropout=[0.2, 0.0]" in repr(model)
    assert "dropout" not in repr(fastbp.MLP([2, 3, 2]))


def test_torch_export_maps_dropout_and_onnx_ignores_it(tmp_path, rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    model = fastbp.MLP([6, 5, 4, 3], activation="tanh", dropout=[0.25, 0.5], seed=1)
    module = model.to_torch()
    kinds = [type(m).__name__ for m in module]
    assert kinds == ["Linear", "Tanh", "Dropout", "Linear", "Tanh", "Dropout", "Linear", "Softmax"]
    assert [m.p for m in module if isinstance(m, torch.nn.Dropout)] == [0.25, 0.5]
    assert list(model.state_dict()) == list(module.state_dict())   # names follow the module
    X = rng.standard_normal((7, 6)).astype("float32")
    module.eval()
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(X)).numpy(), model.predict(X), atol=1e-6)
    back = fastbp.from_torch(module)
    assert back.dropout == [0.25, 0.5]
    np.testing.assert_array_equal(back.params, model.params)
    pytest.importorskip("onnx", reason="onnx is not installed")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    model.export_onnx(tmp_path / "m.onnx")
    import onnx
    ops = [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    assert "Dropout" not in ops
    out = ort.InferenceSession(str(tmp_path / "m.onnx")).run(["Y"], {"X": X})[0]
    np.testing.assert_allclose(out, model.predict(X), atol=1e-5)


@pytest.mark.parametrize("seed", [2**63 - 1, 2**100])
def test_large_dropout_seeds_survive_a_file(tmp_path, seed):
    """A seed drawn for seed=None lies anywhere below 2^63 (it once failed to load above
    2^62, half the time); a seed given may be larger still."""
    model = fastbp.MLP([6, 5, 3], dropout=0.2, seed=seed)
    model.save(tmp_path / "m.npz")
    assert fastbp.load(tmp_path / "m.npz").dropout_seed == seed
