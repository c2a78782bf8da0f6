"""Gradients checked three ways: finite differences, a worked example, and XOR learning."""
import numpy as np
import pytest
from helpers import gradients, targets

import fastbp
import naive
from fastbp.kernels import gemm as G
from fastbp.kernels import python_callable
from fastbp.kernels.gemm import AS_IS, EPI_NONE, THREADED, TO_PACK

ACTS = ["sigmoid", "tanh", "relu", "identity"]
OUTPUTS = ["softmax", "sigmoid", "identity"]


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("output", OUTPUTS)
def test_finite_differences(activation, output, rng):
    """Central differences in float64: relative error < 1e-6 for every activation x output."""
    model = fastbp.MLP([5, 7, 4, 3], activation=activation, output=output, dtype="float64", seed=3)
    X = rng.standard_normal((6, 5))
    y = targets(output, 6, 3, rng)
    _, g = gradients(model, X, y)
    fd = np.empty_like(g)
    h = 1e-6
    for i in range(model.n_params):
        keep = model.params[i]
        model.params[i] = keep + h
        up = model.evaluate(X, y)["loss"]
        model.params[i] = keep - h
        down = model.evaluate(X, y)["loss"]
        model.params[i] = keep
        fd[i] = (up - down) / (2 * h)
    rel = np.linalg.norm(g - fd) / max(np.linalg.norm(g) + np.linalg.norm(fd), 1e-300)
    assert rel < 1e-6, rel
    assert np.linalg.norm(g) > 1e-3  # the check is not vacuous


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("rows", ["all", "slice", "shuffled"])
def test_backward_matches_naive_chain_rule(dtype, activation, output, rows, rng):
    """The whole compiled backward pass against the layer-by-layer NumPy chain rule,
    on widths that are no multiple of any tile.  The minibatch's rows are read from X
    in place: all of them, a slice (rows 5..81 of a taller X whose other rows would
    change the result), or shuffled."""
    sizes = [17, 37, 13, 3]
    model = fastbp.MLP(sizes, activation=activation, output=output, dtype=dtype, seed=1)
    X = rng.standard_normal((77, 17)).astype(dtype)
    y = targets(output, 77, 3, rng)
    if rows == "all":
        loss, g = gradients(model, X, y)
    elif rows == "slice":
        pad = lambda a, s: np.concatenate([a[-5:] * s, a, a[:4] * s])  # noqa: E731
        loss, g = gradients(model, pad(X, 3), pad(y, 1), idx=np.arange(5, 82))
    else:
        loss, g = gradients(model, X, y, idx=rng.permutation(77))
    _, loss_ref, dws, dbs, _ = naive.network_gradients(
        X, model.check_y(y, 77), [l.weight for l in model.layers], [l.bias for l in model.layers],
        activation, output)
    rtol = 1e-4 if dtype == "float32" else 1e-10
    assert loss == pytest.approx(loss_ref, rel=rtol)
    off = 0
    for dw, db in zip(dws, dbs):
        for ref in (dw.ravel(), db):
            got = g[off:off + ref.size]
            np.testing.assert_allclose(got, ref, rtol=0, atol=rtol * (np.abs(ref).max() + 1e-3))
            off += ref.size
    assert off == model.n_params


def test_chain_rule_worked_example():
    """f = w*x + b at w = -2, x = 5, b = 3: f = -7, df/dw = 5, df/dx = -2, df/db = 1."""
    model = fastbp.MLP([1, 1], output="identity", dtype="float64")
    model.layers[0].weight = [[-2.0]]
    model.layers[0].bias = [3.0]
    x = np.array([[5.0]])
    f = model.predict(x)
    assert f[0, 0] == -7.0
    # With the target f - 1/2, the squared error L = (f - t)^2 has dL/df = 2 (f - t) = 1,
    # so the gradients the kernels return are df/dw and df/db themselves.
    _, g = gradients(model, x, np.array([[-7.5]]))
    dw, db = g
    assert (dw, db) == (5.0, 1.0)
    # df/dx is the delta the backward pass hands down: dx = dz W, with dz = dL/df = 1.
    dz = np.array([[1.0]])
    dx = np.empty((1, 1))
    no_rows = np.empty(0, np.int64)
    pb = np.empty(python_callable(G.packed_size)(1, 1, python_callable(G.panel_width)(dx)))  # W packed: one panel
    none = np.empty(0)
    python_callable(G.gemm)(dz, AS_IS, no_rows, model.layers[0].weight, AS_IS, dx, (none, pb), (TO_PACK, TO_PACK),
                            EPI_NONE, 0, none, dx[:0], (none, none, none), THREADED)
    assert dx[0, 0] == -2.0


def test_chain_rule_through_a_hidden_layer():
    """Same example one layer deeper: an identity layer h = x in front, so df/dx reaches
    the first layer's bias gradient: dL/db_0 = df/dh = w = -2, dL/dW_0 = df/dh * x = -10."""
    model = fastbp.MLP([1, 1, 1], activation="identity", output="identity", dtype="float64")
    model.layers[0].weight, model.layers[0].bias = [[1.0]], [0.0]
    model.layers[1].weight, model.layers[1].bias = [[-2.0]], [3.0]
    _, g = gradients(model, np.array([[5.0]]), np.array([[-7.5]]))
    w0, b0, w1, b1 = g
    assert (w1, b1) == (5.0, 1.0)
    assert (w0, b0) == (-10.0, -2.0)


def test_xor():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0], dtype=np.float32)
    model = fastbp.MLP([2, 4, 1], activation="sigmoid", output="sigmoid", seed=0)
    model.fit(X, y, epochs=2000, batch_size=4, optimizer=fastbp.SGD(lr=2.0, momentum=0.9), verbose=0)
    p = model.predict(X)[:, 0]
    assert np.all((p > 0.5) == (y > 0.5)), p
    assert model.evaluate(X, y)["accuracy"] == 1.0
