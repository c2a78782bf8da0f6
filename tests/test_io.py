"""Model files: round trips, and clear errors for damaged, altered, foreign or newer files."""
import hashlib
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import fastbp
from fastbp import io

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def data():
    X, y = fastbp.load_digits()
    return X[:300], y[:300]


@pytest.fixture
def saved(tmp_path, data):
    X, y = data
    model = fastbp.MLP([64, 10, 10], seed=1)
    model.fit(X, y, epochs=2, optimizer=fastbp.Adam(lr=0.01), verbose=0)
    path = tmp_path / "m.npz"
    model.save(path)
    return model, path


def test_roundtrip_keeps_everything(saved, data):
    model, path = saved
    again = fastbp.load(path)
    assert again.get_config() == model.get_config()
    assert np.array_equal(again.params, model.params)
    assert np.array_equal(again.optimizer.state, model.optimizer.state)
    assert again.optimizer.steps == model.optimizer.steps
    assert again.rng.bit_generator.state == model.rng.bit_generator.state
    assert again.epoch == 2
    X, y = data                                  # and training continues identically
    model.fit(X, y, epochs=1, verbose=0)
    again.fit(X, y, epochs=1, verbose=0)
    assert np.array_equal(again.params, model.params)


def test_file_is_plain_arrays_and_json(saved):
    _, path = saved
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"header", "header_sha256", "params", "optimizer_state"}
        header = json.loads(z["header"].tobytes())
    assert header["format"] == "fastbp-model" and header["format_version"] == io.FORMAT_VERSION
    assert header["fastbp_version"] == fastbp.__version__
    assert header["config"]["sizes"] == [64, 10, 10]
    assert header["optimizer"]["name"] == "adam"


def _rewrite(path, change):
    """Rewrite the archive with change(dict of name -> bytes) applied."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    change(members)
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)


def _npy(a):
    import io as _io
    buf = _io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _header(members):
    import io as _io
    return json.loads(np.load(_io.BytesIO(members["header.npy"])).tobytes())


def _set_header(members, header, fix_digest=True):
    blob = json.dumps(header).encode()
    members["header.npy"] = _npy(np.frombuffer(blob, np.uint8))
    if fix_digest:
        members["header_sha256.npy"] = _npy(np.frombuffer(hashlib.sha256(blob).hexdigest().encode(), np.uint8))


@pytest.mark.parametrize("cut", [0, 10, 0.5, -30])
def test_truncated_file(saved, cut):
    _, path = saved
    data = path.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (cut if cut >= 0 else len(data) + cut)
    path.write_bytes(data[:n])
    with pytest.raises(fastbp.ModelFileError):
        fastbp.load(path)


def test_flipped_byte_in_weights(saved):
    _, path = saved

    def flip(m):
        b = bytearray(m["params.npy"])
        b[-5] ^= 0x40
        m["params.npy"] = bytes(b)
    _rewrite(path, flip)
    with pytest.raises(fastbp.ModelFileError, match="checksum mismatch in 'params'"):
        fastbp.load(path)


def test_altered_optimizer_state(saved):
    _, path = saved

    def change(m):
        import io as _io
        a = np.load(_io.BytesIO(m["optimizer_state.npy"]))
        m["optimizer_state.npy"] = _npy(a * 2)
    _rewrite(path, change)
    with pytest.raises(fastbp.ModelFileError, match="optimizer_state"):
        fastbp.load(path)


def test_altered_header(saved):
    _, path = saved

    def change(m):
        h = _header(m)
        h["config"]["activation"] = "relu"
        _set_header(m, h, fix_digest=False)
    _rewrite(path, change)
    with pytest.raises(fastbp.ModelFileError, match="header checksum"):
        fastbp.load(path)


def test_newer_format_version(saved):
    _, path = saved

    def change(m):
        h = _header(m)
        h["format_version"] = io.FORMAT_VERSION + 1
        _set_header(m, h)
    _rewrite(path, change)
    with pytest.raises(fastbp.ModelFileError, match="upgrade fastbp"):
        fastbp.load(path)


def test_not_a_fastbp_file(tmp_path):
    for name, write in [("a.npz", lambda p: np.savez(p, X=np.zeros(3))),
                        ("b.npy", lambda p: np.save(p, np.zeros(3))),
                        ("c.txt", lambda p: p.write_text("hello")),
                        ("d.npz", lambda p: p.write_bytes(b""))]:
        p = tmp_path / name
        write(p)
        with pytest.raises(fastbp.ModelFileError, match="not a"):
            fastbp.load(p)
    with pytest.raises(FileNotFoundError):
        fastbp.load(tmp_path / "missing.npz")


def test_pickled_arrays_are_never_read(saved):
    _, path = saved

    def change(m):
        buf = __import__("io").BytesIO()
        np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
        m["params.npy"] = buf.getvalue()
    _rewrite(path, change)
    with pytest.raises(fastbp.ModelFileError):
        fastbp.load(path)


def test_version_1_files_still_load(tmp_path, saved):
    model, _ = saved
    path = tmp_path / "v1.npz"
    header = {"format": "fastbp-model", "format_version": 1, "fastbp_version": "0.1.0",
              "config": model.get_config(), "params_sha256": io._sha256(model.params),
              "optimizer": None}
    np.savez(path, header=np.frombuffer(json.dumps(header).encode(), np.uint8), params=model.params)
    assert np.array_equal(fastbp.load(path).params, model.params)


def test_atomic_write_keeps_the_old_file_on_failure(saved, monkeypatch):
    model, path = saved
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".fastbp-*"))


def test_estimator_save_load(tmp_path, data):
    pytest.importorskip("sklearn")
    X, y = data
    names = np.array(list("abcdefghij"))
    for est in (fastbp.MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0,
                                     solver="sgd").fit(X, names[y]),
                fastbp.MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
                .fit(X, np.stack([y % 2, y > 4], 1)),
                fastbp.MLPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0,
                                    dtype="float64").fit(X, y / 10.0)):
        path = tmp_path / "est.npz"
        est.save(path)
        again = type(est).load(path)
        assert type(again) is type(est)
        assert again.get_params() == est.get_params()
        np.testing.assert_array_equal(again.predict(X), est.predict(X))
        assert again.loss_curve_ == est.loss_curve_ and again.n_iter_ == est.n_iter_
        # training continues exactly as it would have
        est.partial_fit(X, est.predict(X))
        again.partial_fit(X, again.predict(X))
        np.testing.assert_array_equal(again.model_.params, est.model_.params)
    with pytest.raises(fastbp.ModelFileError, match="not a MLPClassifier"):
        fastbp.MLPClassifier.load(path)


_IO_ALONE = r"""
import importlib.util, sys, types
# fastbp/__init__.py imports every module; a bare package object stands in for it, so that
# what is imported below is io.py's own imports and nothing else
pkg = types.ModuleType("fastbp")
pkg.__path__ = list(importlib.util.find_spec("fastbp").submodule_search_locations)
pkg.__version__ = "0"
sys.modules["fastbp"] = pkg
import fastbp.io as io
header, arrays = io.read(sys.argv[1])
own = ("format", "format_version", "fastbp_version", "arrays")    # what write adds itself
header = {k: v for k, v in header.items() if k not in own}
io.write(sys.argv[2], header, arrays)
assert io.read(sys.argv[2])[0]["estimator"] == header["estimator"]
print(" ".join(sorted(m for m in sys.modules if m.startswith("fastbp"))))
"""


def test_io_is_the_format_only(tmp_path):
    """io.py reads and writes any fastbp file without importing a class of fastbp's (the
    classes import io, never the other way round: no import cycle through it)."""
    import os
    fixture = os.path.join(os.path.dirname(__file__), "data", "clf_sgd.npz")
    out = subprocess.run([sys.executable, "-c", _IO_ALONE, fixture, str(tmp_path / "x.npz")],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["fastbp", "fastbp._npzread", "fastbp._validation", "fastbp.io"]
    # and no import of another module of fastbp's hides in a function
    import ast
    tree = ast.parse(open(io.__file__).read())
    relative = {(n.module, tuple(a.name for a in n.names)) for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.level > 0}
    assert relative == {(None, ("_npzread",)), ("_validation", ("all_finite",)),
                        (None, ("__version__",))}
