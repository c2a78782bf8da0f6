"""Every kernel against its slow, obvious reference (tests/naive.py), on awkward shapes."""
import numpy as np
import pytest
from conftest import tol

import naive
from fastbp._config import (BY_COLUMNS_BYTES, KC, MC, MR, NC, NR_VECS, ONE_PHASE_FLOPS, SERIAL_ELEMENTS, SLAB_BYTES,
                            VEC_BYTES)
from fastbp.kernels import activations as A
from fastbp.kernels import layout
from fastbp.kernels import gemm as G
from fastbp.kernels import loss as L
from fastbp.kernels import optim as O
from fastbp.kernels import python_callable
from fastbp.kernels.gemm import (AS_IS, EPI_BIAS_ACT, EPI_DACT, EPI_NONE, PACKED, SERIAL_ONLY, THREADED, TO_PACK,
                                 TRANSPOSED)

# The kernels, compiled so that the tests can call them from Python (fastbp/kernels/__init__.py)
gemm, pack = python_callable(G.gemm), python_callable(G.pack)
packed_size, panel_width = python_callable(G.packed_size), python_callable(G.panel_width)
output_loss, output_function, update = (python_callable(k) for k in (L.output_loss, L.output_function, O.update))

DTYPES = [np.float32, np.float64]
# (m, n, k): ones, odd sizes, not multiples of the MR x NR block (6 x 16 or 12 x 32), the
# MC x NC tile or the k block.  From (255, 37, 300) on, products of SERIAL_FLOPS or more
# (the parallel path) but for (9, 6, KC + 7).  (130, 300, 600) has a grid of 3 x 3 tiles
# and a reduction of BY_COLUMNS_BYTES or more: its tasks run down the columns of tiles
# (gemm's by_columns).  (10, 101, KC + 9) and (9, 6, KC + 7) cross a k block boundary
# in both dtypes, m <= 2 MR: B read in place but for its ragged last panel, the first on
# the parallel path.  The last: a column slab of op(B) over SLAB_BYTES, so one tile taller
# than MC, whose k-block loop runs outside its blocks of MC rows.  (130, 300, 600), with
# op(A) as stored, runs in one phase (gemm's one_phase: below ONE_PHASE_FLOPS, with more
# op(B) to pack than SERIAL_ELEMENTS, in several strips of columns); with op(A) to pack,
# in two.
K_TALL = SLAB_BYTES // (4 * NC) + 5   # k of a float32 column slab over SLAB_BYTES: a tile taller than MC
SHAPES = [(1, 1, 1), (3, 1, 17), (1, 3, 255), (17, 3, 5), (3, 17, 257), (77, 13, 37),
          (255, 37, 300), (130, 300, 600), (10, 101, KC + 9), (9, 6, KC + 7),
          (100, 20, K_TALL)]
ACTS = ["identity", "sigmoid", "tanh", "relu"]
# Over ONE_PHASE_FLOPS, yet in one phase on two threads (gemm's large_ok: eight strips of
# NC columns, several k blocks at every level, a strip of c under TALL_C_BYTES)
LARGE_ONE_PHASE = (256, 8 * NC, KC + 76)


@pytest.mark.parametrize("dtype", DTYPES)
def test_shapes_take_every_path_of_the_tiling(dtype):
    """SHAPES keeps covering the tiling it is meant to, whatever the level's tile sizes
    (see above): a grid of several tiles each way, B read in place on the parallel path
    across a k block boundary, a tile taller than MC, one phase below ONE_PHASE_FLOPS and
    above it (LARGE_ONE_PHASE)."""
    size = np.dtype(dtype).itemsize
    assert any(m <= 2 * MR and k > KC and 2 * m * n * k >= G.SERIAL_FLOPS for m, n, k in SHAPES)
    assert any(m > MC and n > NC and k * size >= BY_COLUMNS_BYTES for m, n, k in SHAPES)
    assert any(m > MC and k * NC * size > SLAB_BYTES for m, n, k in SHAPES)
    m, n, k = LARGE_ONE_PHASE
    assert 2 * m * n * k >= ONE_PHASE_FLOPS and k > KC and m * NC * size <= G.TALL_C_BYTES
    nr = NR_VECS * VEC_BYTES // size
    assert any(G.SERIAL_FLOPS <= 2 * m * n * k < ONE_PHASE_FLOPS and -(-n // nr) * nr * k >= SERIAL_ELEMENTS
               and n > 2 * nr for m, n, k in SHAPES)


def _close(got, ref, dtype, scale=None):
    scale = np.abs(ref).max() + 1e-30 if scale is None else scale
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol(dtype) * max(scale, 1.0) * 10)


NO_ROWS = np.empty(0, np.int64)


UNPACKED = (TO_PACK, TO_PACK)


def _product(a, a_t, b, b_t, c, epilogue, act, bias=None, ref=None, sums=None, a_rows=NO_ROWS, threaded=THREADED):
    """gemm with packing buffers of exactly the documented sizes (so an overrun shows);
    EPI_DACT also packs c^T into pa, which is returned."""
    m, n = c.shape
    k = a.shape[0] if a_t else a.shape[1]
    pa = np.empty(packed_size(m, k, MR) if a_t else packed_size(n, m, MR) if epilogue == EPI_DACT else 0, c.dtype)
    pb = np.empty(packed_size(n, k, panel_width(c)), c.dtype)
    none = np.empty(0, c.dtype)
    gemm(a, a_t, a_rows, b, b_t, c, (pa, pb), UNPACKED, epilogue, act, none if bias is None else bias,
         c[:0] if ref is None else ref, (none if sums is None else sums, none, pa if epilogue == EPI_DACT else none),
         threaded)
    return pa


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_plain(dtype, m, n, k, rng):
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    for a_t, b_t in [(AS_IS, AS_IS), (TRANSPOSED, AS_IS), (AS_IS, TRANSPOSED), (TRANSPOSED, TRANSPOSED)]:
        c = np.full((m, n), np.nan, dtype)
        sums = np.full(m, np.nan, dtype)  # (op(a) packed only): the row sums of op(a)
        _product(a.T.copy() if a_t else a, a_t, b.T.copy() if b_t else b, b_t, c, EPI_NONE, 0, sums=sums)
        assert c.dtype == dtype
        _close(c, ref, dtype, scale=np.sqrt(k) * 3)
        if a_t:
            _close(sums, a.astype(np.float64).sum(axis=1), dtype, scale=np.sqrt(k) * 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_reads_picked_rows_in_place(dtype, m, n, k, rng):
    """op(a) = a[a_rows] (forward of layer 0: x[idx]): rows picked from a taller array,
    shuffled and repeated, equal the product of the copy."""
    big_a = rng.standard_normal((2 * m + 3, k)).astype(dtype)
    a_rows = rng.integers(0, big_a.shape[0], size=m).astype(np.int64)
    b = rng.standard_normal((k, n)).astype(dtype)
    ref = big_a[a_rows].astype(np.float64) @ b.astype(np.float64)
    c = np.full((m, n), np.nan, dtype)
    _product(big_a, AS_IS, b, AS_IS, c, EPI_NONE, 0, a_rows=a_rows)
    _close(c, ref, dtype, scale=np.sqrt(k) * 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(255, 37, 300), (130, 100, 600), LARGE_ONE_PHASE])
# (fastbp's own gemm silences this warning as it compiles; the copy Python can call does not)
@pytest.mark.filterwarnings("ignore:\\s*The keyword argument 'parallel=True' was specified")
def test_serial_only_gemm_matches_threaded(dtype, m, n, k, rng):
    """SERIAL_ONLY (compiled without the parallel loop) runs the same tasks one after
    another: the same results as THREADED, bit for bit, on products large enough that
    THREADED runs them in parallel.  LARGE_ONE_PHASE: THREADED in strips of columns,
    SERIAL_ONLY in tiles."""
    x = rng.standard_normal((m, k)).astype(dtype)
    w = rng.standard_normal((n, k)).astype(dtype)
    dz = rng.standard_normal((m, n)).astype(dtype)
    a_prev = rng.random((m, k)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    assert 2 * m * n * k >= G.SERIAL_FLOPS
    results = {}
    for threaded in (THREADED, SERIAL_ONLY):
        z, dw, db, dx = (np.full(shape, np.nan, dtype) for shape in [(m, n), (n, k), (n,), (m, k)])
        _product(x, AS_IS, w, TRANSPOSED, z, EPI_BIAS_ACT, A.SIGMOID, bias=bias, threaded=threaded)
        _product(dz, TRANSPOSED, x, AS_IS, dw, EPI_NONE, 0, sums=db, threaded=threaded)
        pa = _product(dz, AS_IS, w, AS_IS, dx, EPI_DACT, A.SIGMOID, ref=a_prev, threaded=threaded)
        results[threaded is SERIAL_ONLY] = (z, dw, db, dx, pa)
    for threaded_result, serial_result in zip(results[False], results[True]):
        assert not np.isnan(serial_result).any()
        np.testing.assert_array_equal(serial_result, threaded_result)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_forward_keeps_its_rows_for_the_weight_gradient(dtype, m, n, k, rng):
    """Layer 0: the forward product packs the rows of x it reads (a_kept), and dW_0
    (b_packed) uses them: the same results as without, bit for bit."""
    big_x = rng.standard_normal((2 * m + 3, k)).astype(dtype)
    rows = rng.integers(0, big_x.shape[0], size=m).astype(np.int64)
    w = rng.standard_normal((n, k)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    nr = panel_width(big_x)
    kept = np.full(packed_size(k, m, nr), np.nan, dtype)
    c, c_ref = np.full((m, n), np.nan, dtype), np.full((m, n), np.nan, dtype)
    pb = np.empty(packed_size(n, k, nr), dtype)
    none = np.empty(0, dtype)
    gemm(big_x, AS_IS, rows, w, TRANSPOSED, c, (none, pb), UNPACKED, EPI_BIAS_ACT, A.SIGMOID, bias, c[:0],
         (none, kept, none), THREADED)
    _product(big_x, AS_IS, w, TRANSPOSED, c_ref, EPI_BIAS_ACT, A.SIGMOID, bias=bias, a_rows=rows)
    np.testing.assert_array_equal(c, c_ref)
    np.testing.assert_array_equal(kept, naive.pack_panels(big_x[rows], nr))
    # without a row map (not a training step's layer 0) it keeps nothing
    untouched = np.full_like(kept, np.nan)
    gemm(big_x[rows], AS_IS, NO_ROWS, w, TRANSPOSED, c, (none, pb), UNPACKED, EPI_BIAS_ACT, A.SIGMOID, bias, c[:0],
         (none, untouched, none), THREADED)
    np.testing.assert_array_equal(c, c_ref)
    assert np.isnan(untouched).all()
    dz = rng.standard_normal((m, n)).astype(dtype)         # dW_0 = dz^T x[rows]: (n, k), reduction over m
    dw, db = np.full((n, k), np.nan, dtype), np.full(n, np.nan, dtype)
    dw_ref, db_ref = np.full((n, k), np.nan, dtype), np.full(n, np.nan, dtype)
    pa = np.empty(packed_size(n, m, MR), dtype)
    gemm(dz, TRANSPOSED, NO_ROWS, big_x, AS_IS, dw, (pa, kept), (TO_PACK, PACKED), EPI_NONE, 0, none, dw[:0],
         (db, none, none), THREADED)
    _product(dz, TRANSPOSED, big_x[rows], AS_IS, dw_ref, EPI_NONE, 0, sums=db_ref)
    np.testing.assert_array_equal(dw, dw_ref)
    np.testing.assert_array_equal(db, db_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
# (130, 300, 600): in one phase (SHAPES); (100, 20, 1029): a tile taller than MC, its
# epilogue run block by block of MC rows
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (17, 3, 255), (77, 13, 37), (255, 37, 300), (130, 300, 600),
                                   (100, 20, K_TALL)])
def test_dense_forward_fused(dtype, act, m, n, k, rng):
    x = rng.standard_normal((m, k)).astype(dtype)
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    c = np.empty((m, n), dtype)
    _product(x, AS_IS, w, TRANSPOSED, c, EPI_BIAS_ACT, A.CODES[act], bias=bias)
    _close(c, naive.dense_forward(x, w, bias, act), dtype, scale=3.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (3, 17, 257), (255, 37, 300), (77, 600, 3), (130, 300, 10),
                                   (130, 300, 600), (100, 20, K_TALL)])
def test_delta_passed_down_fused(dtype, act, m, n, k, rng):
    dz = rng.standard_normal((m, k)).astype(dtype)
    w = rng.standard_normal((k, n)).astype(dtype)       # W as stored, (n_out, n_in)
    a_prev = naive.activate(rng.standard_normal((m, n)), act).astype(dtype)
    out = np.empty((m, n), dtype)
    pa = _product(dz, AS_IS, w, AS_IS, out, EPI_DACT, A.CODES[act], ref=a_prev)
    ref = (dz.astype(np.float64) @ w.astype(np.float64)) * naive.derivative_from_output(
        a_prev.astype(np.float64), act)
    _close(out, ref, dtype, scale=np.sqrt(k) * 3)
    # ... and out^T packed into pa, as the weight gradient below it reads dz^T: that
    # product (a_packed) gives what it gives when it packs dz^T itself.
    np.testing.assert_array_equal(pa, naive.pack_panels(out, MR))
    a_in = rng.standard_normal((m, 5)).astype(dtype)
    dw, db = np.full((n, 5), np.nan, dtype), np.full(n, np.nan, dtype)
    dw_ref, db_ref = np.full((n, 5), np.nan, dtype), np.full(n, np.nan, dtype)
    pb = np.empty(packed_size(5, m, panel_width(dw)), dtype)
    none = np.empty(0, dtype)
    gemm(out, TRANSPOSED, NO_ROWS, a_in, AS_IS, dw, (pa, pb), (PACKED, TO_PACK), EPI_NONE, 0, none, dw[:0],
         (db, none, none), THREADED)
    _product(out, TRANSPOSED, a_in, AS_IS, dw_ref, EPI_NONE, 0, sums=db_ref)
    np.testing.assert_array_equal(dw, dw_ref)
    np.testing.assert_array_equal(db, db_ref)


def test_sigmoid_is_stable_for_large_inputs():
    for dtype in DTYPES:
        z = np.array([[-1000.0, -90.0, 0.0, 90.0, 1000.0]], dtype)
        c = np.empty_like(z)
        _product(np.ones((1, 1), dtype), AS_IS, np.zeros((1, 5), dtype), AS_IS, c, EPI_BIAS_ACT, A.SIGMOID,
                 bias=z[0])
        assert np.all(np.isfinite(c))
        np.testing.assert_allclose(c[0], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-30)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n", [(1, 1), (3, 17), (255, 37), (300, 130)])
def test_packing_helpers(dtype, m, n, rng):
    src = rng.standard_normal((m, n)).astype(dtype)
    nr = NR_VECS * VEC_BYTES // np.dtype(dtype).itemsize      # NR: the level's NR_VECS vectors
    assert nr == panel_width(src)
    # S = src^T: panels of w rows of src; S = src: panels of w columns of src.
    for w in (MR, nr):
        for S, transposed in [(src.T, TRANSPOSED), (src, AS_IS)]:
            k, cols = S.shape
            dst = np.full(packed_size(cols, k, w), np.nan, dtype)
            pack(src, transposed, w, dst)
            np.testing.assert_array_equal(dst, naive.pack_panels(S, w))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
@pytest.mark.parametrize("b,k", [(1, 2), (3, 17), (255, 10), (300, 130)])
def test_output_loss(dtype, output, b, k, rng):
    n = b + 5
    z_full = (rng.standard_normal((b, k)) * 4).astype(dtype)
    if output == "softmax":
        y = rng.integers(0, k, size=(n, 1)).astype(dtype)
    elif output == "sigmoid":
        y = rng.integers(0, 2, size=(n, k)).astype(dtype)
    else:
        y = rng.standard_normal((n, k)).astype(dtype)
    idx = rng.permutation(n)[:b].astype(np.int64)
    z = z_full.copy()
    dz = np.empty_like(z)
    stats = np.empty((2, b))
    loss, hits = output_loss(z, y, idx, dz, stats, L.CODES[output])
    out_ref, loss_ref, dz_ref, hits_ref = naive.output_and_loss(z_full, y[idx], output)
    # absolute error scales with the logits (log-sum-exp minus z_y cancels)
    np.testing.assert_allclose(loss / b, loss_ref, rtol=tol(dtype) * 10,
                               atol=tol(dtype) * np.abs(z_full).max())
    _close(dz, dz_ref, dtype, scale=1.0 / b)
    _close(z, out_ref, dtype, scale=1.0)
    assert hits == pytest.approx(hits_ref, abs=1e-9)
    z2 = z_full.copy()
    output_function(z2, L.CODES[output])
    _close(z2, out_ref, dtype, scale=1.0)


def _run_update(kind, p, g, state, steps, **h):
    hyper = np.zeros(O.HYPER_SIZE)
    for t in range(1, steps + 1):
        hyper[:] = 0
        hyper[O.KIND], hyper[O.LR] = kind, h["lr"]
        hyper[O.MOMENTUM], hyper[O.WEIGHT_DECAY] = h.get("momentum", 0), h.get("weight_decay", 0)
        hyper[O.NESTEROV] = h.get("nesterov", 0)
        if kind == O.ADAM:
            b1, b2 = h["betas"]
            hyper[O.BETA1], hyper[O.BETA2], hyper[O.EPS] = b1, b2, h["eps"]
            hyper[O.STEP_SIZE] = h["lr"] / (1 - b1 ** t)
            hyper[O.BC2_SQRT] = np.sqrt(1 - b2 ** t)
        update(p, g[t - 1], state, hyper, True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 17, 4097, 40000])
@pytest.mark.parametrize("momentum,nesterov,wd", [(0.0, False, 0.0), (0.9, False, 0.0),
                                                  (0.9, True, 0.01), (0.5, False, 0.1)])
def test_sgd_update_matches_torch_formulas(dtype, size, momentum, nesterov, wd, rng):
    steps = 3
    p = rng.standard_normal(size).astype(dtype)
    g = rng.standard_normal((steps, size)).astype(dtype)
    state = np.zeros((2, size), dtype)
    ref, buf = p.astype(np.float64), None
    for t in range(steps):
        ref, buf = naive.sgd_step(ref, g[t].astype(np.float64), buf, 0.1, momentum, nesterov, wd,
                                  first=t == 0)
    _run_update(O.SGD, p, g, state, steps, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    _close(p, ref, dtype, scale=3.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 17, 40000])
@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_adam_update_matches_torch_formulas(dtype, size, wd, rng):
    steps = 4
    p = rng.standard_normal(size).astype(dtype)
    g = rng.standard_normal((steps, size)).astype(dtype)
    state = np.zeros((2, size), dtype)
    ref, m, v = p.astype(np.float64), 0.0, 0.0
    for t in range(1, steps + 1):
        ref, m, v = naive.adam_step(ref, g[t - 1].astype(np.float64), m, v, t, 0.01, 0.9, 0.999, 1e-8, wd)
    _run_update(O.ADAM, p, g, state, steps, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    _close(p, ref, dtype, scale=3.0)


def test_no_update_leaves_parameters():
    p = np.arange(5.0)
    update(p, np.ones(5), np.zeros((2, 5)), np.zeros(O.HYPER_SIZE), True)
    np.testing.assert_array_equal(p, np.arange(5.0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,momentum", [(O.SGD, 0.0), (O.SGD, 0.9), (O.ADAM, 0.0)])
def test_update_check_finds_a_step_that_would_diverge(dtype, kind, momentum):
    """update(..., apply=False) writes nothing and says whether every new parameter and
    state value would be finite: a non-finite gradient or an overflow anywhere refuses the
    step.  Plain SGD has no state: its (unused) buffer is not looked at."""
    n = 4097
    hyper = np.zeros(O.HYPER_SIZE)
    hyper[O.KIND], hyper[O.LR], hyper[O.MOMENTUM] = kind, 4.0, momentum
    hyper[O.BETA1], hyper[O.BETA2], hyper[O.EPS], hyper[O.STEP_SIZE], hyper[O.BC2_SQRT] = 0.9, 0.999, 1e-8, 0.5, 1.0
    p, g, state = np.linspace(-1, 1, n).astype(dtype), np.full(n, 0.25, dtype), np.zeros((2, n), dtype)
    before = p.copy(), g.copy(), state.copy()
    assert update(p, g, state, hyper, False)
    big = np.finfo(dtype).max
    for pos in (0, n // 2, n - 1):
        for value in (np.nan, np.inf, -big):      # -big: p - 4 g overflows for SGD; v = g^2 for Adam
            g2 = g.copy()
            g2[pos] = value
            assert not update(p, g2, state, hyper, False), (pos, value)
    state[0, 7] = np.inf                          # plain SGD: not a state; otherwise the step is refused
    assert update(p, g, state, hyper, False) == (kind == O.SGD and momentum == 0)
    state[0, 7] = 0
    for a, b in zip((p, g, state), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_finite_finds_every_non_finite_value(dtype):
    """The compiled input check (large arrays): NaN, +inf and -inf anywhere, in the first,
    a middle and the last block; the largest finite value and subnormals pass."""
    from fastbp._validation import _COMPILED_MIN, all_finite
    from fastbp.kernels.finite import BLOCK
    x = np.linspace(-1, 1, _COMPILED_MIN + 3).astype(dtype).reshape(-1, 1)
    x[7] = np.finfo(dtype).max
    x[8] = -np.finfo(dtype).max
    x[9] = np.finfo(dtype).smallest_subnormal
    assert all_finite(x)
    for bad in (np.nan, np.inf, -np.inf):
        for pos in (0, BLOCK - 1, BLOCK, x.size // 2, x.size - 1):
            y = x.copy()
            y[pos] = bad
            assert not all_finite(y), (bad, pos)


def test_compiled_only_kernel_raises_when_python_calls_it():
    """Kernels are compiled without the wrapper Python calls through; Numba would crash on
    such a call (numba issue #2541), ours raise and name the way out."""
    with pytest.raises(TypeError, match="packed_size.*python_callable"):
        G.packed_size(17, 3, 16)
    assert python_callable(G.packed_size)(17, 3, 16) == 32 * 3


@pytest.mark.parametrize("dtype", DTYPES)
def test_workspace_holds_every_product_of_a_step(dtype):
    """kernels/layout.py sizes the packing buffers from gemm's own packed_size and
    panel_width: on awkward widths, at every batch up to the workspace's, each buffer holds
    what gemm packs into it (gemm's docstring) in a training step."""
    sizes, b_max = [37, 1, 300, 13, 5], 23
    n = layout.buffer_sizes(sizes, b_max, dtype, False)
    nr = panel_width(np.empty(0, dtype))
    assert nr == NR_VECS * VEC_BYTES // np.dtype(dtype).itemsize
    for b in range(1, b_max + 1):
        assert n[layout.PX] >= packed_size(sizes[0], b, nr)                      # layer 0's x[idx], for dW_0
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            assert n[layout.PA] >= packed_size(n_out, b, MR)                      # dz^T (dW)
            assert n[layout.PA] >= packed_size(n_in, b, MR) or l == 0             # dz_prev^T (delta_down)
            assert n[layout.PB] >= packed_size(n_out, n_in, nr)                   # W^T (forward)
            assert n[layout.PB] >= packed_size(n_in, b, nr) or l == 0             # a_in (dW)
            assert n[layout.PB] >= packed_size(n_in, n_out, nr) or l == 0         # W (delta_down)
            assert n[layout.ACTS] >= b * sum(sizes[1:]) and n[layout.DZ_A] >= b * n_out


@pytest.mark.parametrize("dtype", DTYPES)
def test_vectorised_exp_and_tanh_are_accurate(dtype):
    """kernels/vexp.py's exp and tanh, branch-free so that epilogues vectorise, within
    4 ulp of float64 NumPy across their range, NaN passed through, tanh(+-inf) = +-1."""
    from numba import njit

    from fastbp._config import FASTMATH
    from fastbp.kernels.vexp import exp, tanh

    @njit(fastmath=FASTMATH, error_model="numpy")
    def apply(x, e, t):
        for i in range(x.shape[0]):
            e[i] = exp(x[i])
            t[i] = tanh(x[i])

    lim = 87.0 if dtype == np.float32 else 700.0          # exp's normal range (vexp's clamp)
    x = np.concatenate([np.linspace(-lim, lim, 20001), np.linspace(-1, 1, 20001), np.geomspace(1e-30, 1, 500),
                        -np.geomspace(1e-30, 1, 500), [0.625, -0.625, 0.6249, 40.0, -40.0]]).astype(dtype)
    e, t = np.empty_like(x), np.empty_like(x)
    apply(x, e, t)
    for got, ref in ((e, np.exp(x.astype(np.float64))), (t, np.tanh(x.astype(np.float64)))):
        ulp = np.abs(got - ref) / np.spacing(np.abs(ref).astype(dtype)).astype(np.float64)
        assert ulp.max() <= 4, (x[ulp.argmax()], ulp.max())   # (measured: at most 2)
    special = np.array([np.nan, np.inf, -np.inf], dtype)
    e, t = np.empty_like(special), np.empty_like(special)
    apply(special, e, t)
    assert np.isnan(e[0]) and np.isnan(t[0])
    assert t[1] == 1 and t[2] == -1
