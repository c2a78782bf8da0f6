"""fit on an iterable of (X, y) chunks: the same weights as one array in the same order."""
import numpy as np
import pytest

import fastbp

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = fastbp.load_digits()
    return X[:300], y[:300]


def test_chunks_give_the_weights_of_one_array(digits):
    X, y = digits
    ref = fastbp.MLP([64, 32, 10], seed=0)
    h_ref = ref.fit(X, y, epochs=2, batch_size=32, shuffle=False, optimizer=fastbp.Adam(lr=0.01), verbose=0)
    bounds = [0, 70, 71, 150, 300]   # chunks that do not line up with the batches of 32
    chunks = [(X[a:b], y[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    for data in (chunks, lambda: iter(chunks)):
        model = fastbp.MLP([64, 32, 10], seed=0)
        h = model.fit(data, epochs=2, batch_size=32, optimizer=fastbp.Adam(lr=0.01), verbose=0)
        np.testing.assert_array_equal(model.params, ref.params)
        assert h.history["loss"] == pytest.approx(h_ref.history["loss"], rel=1e-12)
        assert h.history["accuracy"] == h_ref.history["accuracy"]


def test_stream_errors(digits):
    X, y = digits
    once = ((X[a:a + 100], y[a:a + 100]) for a in range(0, 300, 100))
    with pytest.raises(ValueError, match="gave no samples in epoch 2"):
        fastbp.MLP([64, 32, 10]).fit(once, epochs=2, verbose=0)
    with pytest.raises(ValueError, match="chunk 1 X has 3 features"):
        fastbp.MLP([64, 32, 10]).fit([(X, y), (np.zeros((2, 3)), [0, 1])], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="does not take validation_data"):
        fastbp.MLP([64, 32, 10]).fit([(X, y)], validation_data=(X, y), verbose=0)
