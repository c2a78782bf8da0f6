"""Files survive crashes and files from elsewhere are data: stale temporaries, directory
fsync, writers killed at random moments, and a fuzzed loader (issue 17)."""
import errno
import fcntl
import os
import stat
import threading
from io import BytesIO

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

import fastbp
from fastbp import files, io

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _temporaries(folder):
    return sorted(p.name for p in folder.glob(".fastbp-*.tmp"))


# -- temporaries of writers that died -----------------------------------------------------
def test_next_write_removes_temporaries_of_dead_writers(tmp_path):
    # what a writer killed mid-write leaves behind: an unlocked .fastbp-*.tmp
    for name in (".fastbp-k1ll3d.tmp", ".fastbp-dead00.tmp"):
        (tmp_path / name).write_bytes(b"half a model")
    other = tmp_path / "fastbp-not-ours.tmp"          # not our pattern: kept
    other.write_bytes(b"x")
    fastbp.MLP([3, 2, 2]).save(tmp_path / "m.npz")
    assert _temporaries(tmp_path) == []
    assert other.exists() and fastbp.load(tmp_path / "m.npz").sizes == [3, 2, 2]


def test_a_live_writers_temporary_is_never_removed(tmp_path):
    live = tmp_path / ".fastbp-alive1.tmp"
    live.write_bytes(b"being written")
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)          # as the writer does from creation to rename
        io.atomic_write(tmp_path / "a.txt", lambda f: f.write(b"new"))
        assert _temporaries(tmp_path) == [live.name]
    finally:
        os.close(fd)
    io.atomic_write(tmp_path / "a.txt", lambda f: f.write(b"newer"))   # lock gone: removed
    assert _temporaries(tmp_path) == [] and (tmp_path / "a.txt").read_bytes() == b"newer"


def test_links_and_folders_named_like_temporaries_are_left_alone(tmp_path):
    target = tmp_path / "precious"
    target.write_bytes(b"keep me")
    os.symlink(target, tmp_path / ".fastbp-link.tmp")
    (tmp_path / ".fastbp-dir.tmp").mkdir()
    io.atomic_write(tmp_path / "a.txt", lambda f: f.write(b"x"))
    assert target.read_bytes() == b"keep me"
    assert (tmp_path / ".fastbp-link.tmp").is_symlink() and (tmp_path / ".fastbp-dir.tmp").is_dir()


def test_concurrent_writers_never_remove_each_others_temporaries(tmp_path):
    # 4 threads writing into one folder: each one's cleanup runs while the others write
    errors = []

    def writer(k):
        try:
            for i in range(40):
                io.atomic_write(tmp_path / f"f{k}.bin", lambda f: f.write(bytes([k, i]) * 5000))
        except Exception as exc:   # pragma: no cover - the assertion below reports it
            errors.append(exc)
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [(tmp_path / f"f{k}.bin").read_bytes()[:2] for k in range(4)] == [bytes([k, 39]) for k in range(4)]
    assert _temporaries(tmp_path) == []


def test_write_retries_when_its_new_temporary_is_removed_before_it_is_locked(tmp_path, monkeypatch):
    # the race a cleaner can win: it removes the file between mkstemp and the writer's flock
    real = io.tempfile.mkstemp
    calls = []

    def mkstemp(**kw):
        fd, name = real(**kw)
        if not calls:
            os.unlink(name)            # what a cleaner that got there first does
        calls.append(name)
        return fd, name
    monkeypatch.setattr(io.tempfile, "mkstemp", mkstemp)
    io.atomic_write(tmp_path / "a.txt", lambda f: f.write(b"ok"))
    assert len(calls) == 2 and (tmp_path / "a.txt").read_bytes() == b"ok"


# -- the rename is made durable -------------------------------------------------------------
def test_atomic_write_fsyncs_the_file_then_renames_then_fsyncs_the_folder(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(a, b):
        events.append("rename")
        real_replace(a, b)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    fastbp.MLP([3, 2, 2]).save(tmp_path / "m.npz")
    assert events == ["fsync file", "rename", "fsync folder"]


def test_a_failing_folder_fsync_is_reported_unless_unsupported(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync_fails(code):
        def fsync(fd):
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise OSError(code, os.strerror(code))
            real_fsync(fd)
        return fsync
    monkeypatch.setattr(os, "fsync", fsync_fails(errno.EINVAL))   # cannot sync folders here
    io.atomic_write(tmp_path / "a.txt", lambda f: f.write(b"1"))
    monkeypatch.setattr(os, "fsync", fsync_fails(errno.EIO))      # the disk failed
    with pytest.raises(OSError, match="Input/output error"):
        io.atomic_write(tmp_path / "a.txt", lambda f: f.write(b"2"))


# -- writers killed at random moments ---------------------------------------------------------
def _script(name):
    import importlib.util
    path = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kill = _script("kill_writes")
fuzz = _script("fuzz_loader")


@pytest.mark.parametrize("kind, n", [("checkpoint", 50), ("save", 25), ("estimator", 25)])
def test_sigkilled_writers_leave_a_loadable_file_and_no_temporaries(tmp_path, kind, n):
    # scripts/kill_writes.py with fewer trials: one warm process forks each writer
    pytest.importorskip("sklearn")
    out = kill.trials(kind, n, np.random.default_rng(17), str(tmp_path), max_delay=0.03)
    assert [name for name, k in out.items() if name.startswith("FAIL") and k] == []
    loaded = sum(k for name, k in out.items() if name.startswith("loads"))
    assert loaded == n
    # some kills landed inside a write, so the clean-up was exercised
    assert sum(k for name, k in out.items() if "temporary was left" in name) > 0
    assert _temporaries(tmp_path) == []


# -- the loader, fuzzed --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    pytest.importorskip("sklearn")
    folder = tmp_path_factory.mktemp("bases")
    paths = fuzz.make_bases(str(folder))
    return folder, {b: (p, open(p, "rb").read()) for b, p in paths.items()}


def _outcome(folder, base, data):
    path = folder / "case.npz"
    path.write_bytes(data)
    return fuzz.outcome(str(path), base)


def _edit(bases, base, change):
    """The base file's bytes after change(header dict) (or change(parts) for whole archives),
    every checksum recomputed so that the checks pass and only the edit is wrong."""
    parts = fuzz.members(bases[1][base][1])
    return fuzz.build(fuzz.with_header(parts, change(fuzz.header_of(parts))))


def _refused(bases, base, data, match):
    folder = bases[0]
    with pytest.raises(fastbp.ModelFileError, match=match) as info:
        (folder / "case.npz").write_bytes(data)
        if base == "checkpoint":
            files.read_checkpoint(folder / "case.npz")
        fastbp.load(folder / "case.npz")
    assert info.value.__cause__ is None      # a named check, not the backstop
    return info.value


# one regression test per class of exception the fuzz run let out
def test_member_that_is_not_npy_was_attribute_error(bases):
    parts = fuzz.members(bases[1]["mlp"][1])
    parts["params.npy"] = b"just bytes"
    _refused(bases, "mlp", fuzz.build(parts), "member 'params.npy' is not an .npy array")


def test_huge_declared_sizes_are_refused_before_allocating_was_memory_error(bases):
    import tracemalloc
    data = _edit(bases, "mlp", lambda h: {**h, "config": {**h["config"], "sizes": [4, 10 ** 7, 2]}})
    assert len(data) < 4000
    tracemalloc.start()
    try:
        _refused(bases, "mlp", data, r"config.sizes \[4, 10000000, 2\] need 70000002 float32 "
                                     r"parameters; the file holds \(53,\)")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20          # the old loader allocated 840 MiB here


def test_infinite_and_huge_numbers_were_overflow_error(bases):
    _refused(bases, "mlp", _edit(bases, "mlp", lambda h: {**h, "epoch": float("inf")}),
             r"epoch must be an integer in \[0, \d+\], got inf")
    _refused(bases, "mlp", _edit(bases, "mlp", lambda h: {**h, "config": {**h["config"], "sizes": [4, 2 ** 62, 2]}}),
             r"config.sizes\[1\] must be an integer in \[1, 2147483648\]")


def test_damaged_npy_header_was_tokenize_error(bases):
    parts = fuzz.members(bases[1]["mlp"][1])
    raw = parts["params.npy"]
    parts["params.npy"] = raw.replace(b"{'descr'", b"{{{{'descr'", 1)[:len(raw)]
    _refused(bases, "mlp", fuzz.build(parts), "member 'params.npy' has a damaged .npy header")


def test_wrong_type_was_value_error(bases):
    _refused(bases, "mlp", _edit(bases, "mlp", lambda h: {**h, "epoch": "x"}),
             r"epoch must be an integer in \[0, \d+\], got 'x'")


def test_wrong_type_was_type_error(bases):
    _refused(bases, "mlp", _edit(bases, "mlp", lambda h: {**h, "optimizer": {**h["optimizer"], "steps": []}}),
             r"optimizer.steps must be an integer in \[0, \d+\], got \[\]")


def test_deep_nesting_is_refused_before_parsing_was_recursion_error(bases):
    parts = fuzz.members(bases[1]["mlp"][1])
    data = fuzz.build(fuzz.with_header(parts, blob=fuzz.deep(100_000).encode()))
    _refused(bases, "mlp", data, "the header nests 100000 levels deep, more than the 64")


def test_short_list_was_index_error(bases):
    _refused(bases, "regressor",
             _edit(bases, "regressor", lambda h: {**h, "optimizer": {**h["optimizer"], "betas": []}}),
             "invalid estimator optimizer")


def test_missing_section_was_key_error(bases):
    _refused(bases, "classifier",
             _edit(bases, "classifier", lambda h: {k: v for k, v in h.items() if k != "estimator"}),
             "estimator must be an object, got None")
    _refused(bases, "checkpoint",
             _edit(bases, "checkpoint", lambda h: {**h, "training": {**h["training"], "rng_state_start": {}}}),
             "training.rng_state_start is not a valid random-generator state")


def test_nonfinite_parameters_are_refused_even_with_checksums_rebuilt(bases):
    parts = fuzz.members(bases[1]["mlp"][1])
    for name in ("params", "optimizer_state"):
        a = np.load(BytesIO(parts[name + ".npy"]))
        a.flat[3] = np.nan
        _refused(bases, "mlp", fuzz.build(fuzz.with_array(parts, name, a)),
                 f"array '{name}' holds NaN or infinite values")


def test_zip_bomb_object_arrays_and_oversized_declarations(bases):
    parts = fuzz.members(bases[1]["mlp"][1])
    _refused(bases, "mlp", fuzz.build(parts, compress={"params.npy"}),
             "member 'params.npy' is compressed")
    _refused(bases, "mlp", fuzz.build(fuzz.with_array(parts, "params", np.array([object()]))),
             "dtype '|O'; model files hold only plain numbers")
    for label, data in fuzz.declared_size_cases(bases[1]["mlp"][1]).items():
        _refused(bases, "mlp", data, "declares .* bytes, more than the file")


def test_files_that_loaded_and_then_broke_predict(bases):
    _refused(bases, "classifier", _edit(bases, "classifier", lambda h: {
        **h, "estimator": {**h["estimator"], "params": {**h["estimator"]["params"], "n_threads": "x"}}}),
        "invalid estimator parameters: The 'n_threads' parameter")
    _refused(bases, "classifier", _edit(bases, "classifier", lambda h: {
        **h, "estimator": {**h["estimator"], "fitted": {**h["estimator"]["fitted"], "label_type": "weird"}}}),
        "label_type must be one of")
    est = fastbp.MLPClassifier.load(bases[1]["classifier"][0])
    data = _edit(bases, "classifier", lambda h: {
        **h, "estimator": {**h["estimator"], "fitted": {**h["estimator"]["fitted"], "predict": 1}}})
    (bases[0] / "case.npz").write_bytes(data)
    again = fastbp.load(bases[0] / "case.npz")       # a file cannot replace a method
    X = np.zeros((2, est.n_features_in_))
    assert np.array_equal(again.predict(X), est.predict(X))


def test_every_named_and_array_case_is_refused_or_loads_and_predicts(bases):
    # the script's deterministic cases (what it runs before its random ones), on three bases
    folder = bases[0]
    outcomes = set()
    for base in ("mlp", "checkpoint", "classifier"):
        parts = fuzz.members(bases[1][base][1])
        cases = {**fuzz.named_cases(parts), **fuzz.array_cases(parts)}
        for label, case in cases.items():
            got, message = _outcome(folder, base, case if isinstance(case, bytes) else fuzz.build(case))
            assert got in ("ModelFileError", "loaded, predicts"), (base, label, got, message)
            outcomes.add(got)
    assert outcomes == {"ModelFileError", "loaded, predicts"}



@st.composite
def _mutations(draw, bases):
    base = draw(st.sampled_from(["mlp", "checkpoint", "classifier"]))
    data = bases[1][base][1]
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "header"]))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 3))):
            data = fuzz.flip(data, draw(st.integers(0, len(data) - 1)), draw(st.integers(0, 7)))
    elif kind == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif kind == "insert":
        data = fuzz.insert(data, draw(st.integers(0, len(data))), draw(st.binary(min_size=1, max_size=64)))
    else:
        parts = fuzz.members(data)
        header = fuzz.header_of(parts)
        path = draw(st.sampled_from([p for p in fuzz.header_paths(header) if p]))
        value = draw(st.sampled_from(fuzz.EVIL) | st.integers() | st.floats() | st.text(max_size=8)
                     | st.lists(st.integers(-2, 2 ** 40), max_size=4) | st.none())
        data = fuzz.build(fuzz.with_header(parts, fuzz.set_path(header, path, value)))
    return base, kind, data


def test_mutated_files_give_model_file_error_or_a_model_that_predicts(bases):
    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(_mutations(bases))
    def check(case):
        base, kind, data = case
        got, message = _outcome(bases[0], base, data)
        assert got in ("ModelFileError", "loaded, predicts"), (base, kind, got, message)
    check()


def test_malformed_callback_state_in_a_checkpoint_is_a_model_file_error(tmp_path):
    """The callbacks' saved counters are data from the file too: a resume with a state of
    the wrong type is refused by name, not a KeyError/TypeError from inside set_state."""
    X, y = fastbp.load_digits()
    X, y = X[:64], y[:64]
    ckpt = tmp_path / "c.npz"
    model = fastbp.MLP([64, 32, 10], seed=0)
    model.fit(X, y, epochs=2, verbose=0, checkpoint=ckpt, callbacks=[fastbp.EarlyStopping("loss", patience=5)])
    parts = fuzz.members(ckpt.read_bytes())
    header = fuzz.header_of(parts)
    entry = header["training"]["callbacks"][0]
    assert entry["class"] == "EarlyStopping" and entry["state"]["wait"] == 0
    for bad in ({"wait": "x", "best": None, "best_epoch": None}, {"best": 1.0}, [1, 2]):
        entry["state"] = bad
        ckpt.write_bytes(fuzz.build(fuzz.with_header(parts, header)))
        # (a list is refused by the loader itself; a dict of the wrong shape by the resume)
        with pytest.raises(fastbp.ModelFileError, match=r"state for EarlyStopping is not valid|"
                                                        r"callbacks\[0\]\.state must be an object"):
            fastbp.MLP([64, 32, 10], seed=0).fit(X, y, epochs=3, verbose=0, resume=ckpt,
                                                  callbacks=[fastbp.EarlyStopping("loss", patience=5)])
