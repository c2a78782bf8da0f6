"""Fuzz fastbp's model-file loader with mutated files; print the count of each outcome.

    python scripts/fuzz_loader.py [--cases 10000] [--seed 0] [--timeout 60]

Six valid files (an MLP with Adam state, a checkpoint, a `fastbp train` model with labels
and input scaling, an MLPClassifier, an MLPRegressor, a format-1 file) are mutated: bit
flips (anywhere and in each region: zip headers, .npy headers, array data, central
directory), truncation (at every region boundary, then at random), inserted, deleted and
overwritten bytes, JSON header values of the wrong type or out of range with the checksums
recomputed so that they pass (``sizes=[4, 2**62, 2]``, ``epoch="x"``, ``epoch=inf``,
``optimizer.steps=[]``, ...), a 100,000-deep nested header, non-finite parameters with
checksums rebuilt, member names swapped, duplicated or not ``.npy``, object (pickled)
arrays, edited ``.npy`` headers, sizes declared bigger than the file, and a zip bomb.

Each case is loaded with ``fastbp.load`` (and ``files.read_checkpoint`` for checkpoints, the
estimator's ``load`` for estimators) in a worker process; a file that loads must then
predict.  Allowed outcomes: ``ModelFileError``, or a load whose predict works.  Anything
else (another exception, a predict that fails, a crash, a hang, a peak memory far above
the file's size) is counted as a failure, and the script exits 1.
"""
import argparse
import collections
import hashlib
import io as _io
import json
import math
import os
import resource
import select
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

BASES = ("mlp", "checkpoint", "cli", "classifier", "regressor", "v1")
RSS_LIMIT_MIB = 256     # more growth than this over the worker's baseline is a failure


# -- archives -----------------------------------------------------------------------------
def members(data):
    """{member name: bytes} of a (valid) archive, in order."""
    with zipfile.ZipFile(_io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def build(parts, compress=None):
    """An archive of parts, stored as np.savez stores them (or compressed for some)."""
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, b in parts.items():
            z.writestr(name, b, zipfile.ZIP_DEFLATED if compress and name in compress else zipfile.ZIP_STORED)
    return buf.getvalue()


def npy(a):
    buf = _io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def header_of(parts):
    return json.loads(np.load(_io.BytesIO(parts["header.npy"])).tobytes())


def with_header(parts, header=None, blob=None):
    """parts with the JSON header replaced (header dict, or raw bytes) and its checksum fixed."""
    parts = dict(parts)
    blob = json.dumps(header).encode() if blob is None else blob
    parts["header.npy"] = npy(np.frombuffer(blob, np.uint8))
    if "header_sha256.npy" in parts:
        parts["header_sha256.npy"] = npy(np.frombuffer(hashlib.sha256(blob).hexdigest().encode(), np.uint8))
    return parts


def with_array(parts, name, a, declare=True):
    """parts with array `name` replaced by a and, if declare, the header's description of it
    (shape, dtype, checksum) and the header checksum rebuilt to match."""
    parts = dict(parts)
    parts[name + ".npy"] = npy(a)
    header = header_of(parts)
    if declare and "arrays" in header:
        a = np.asarray(a)
        sha = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() if a.dtype != object else "0"
        header["arrays"][name] = {"shape": list(a.shape), "dtype": a.dtype.str, "sha256": sha}
        parts = with_header(parts, header)
    return parts


def regions(data):
    """(kind, start, end) of every region of a valid archive: each member's local zip header,
    .npy header and data, the central directory and its end record."""
    out = []
    with zipfile.ZipFile(_io.BytesIO(data)) as z:
        infos = z.infolist()
        for info in infos:
            name_len = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little")
            extra_len = int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
            start = info.header_offset + 30 + name_len + extra_len
            n = int.from_bytes(data[start + 8:start + 10], "little")
            out += [("zip-local-header", info.header_offset, start),
                    ("npy-header", start, start + 10 + n),
                    ("array-data", start + 10 + n, start + info.file_size)]
        cd = data.find(b"PK\x01\x02", infos[-1].header_offset)
        eocd = data.rfind(b"PK\x05\x06")
        out += [("central-directory", cd, eocd), ("end-record", eocd, len(data))]
    return out


# -- mutations ------------------------------------------------------------------------------
def flip(data, pos, bit):
    b = bytearray(data)
    b[pos % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


def insert(data, pos, blob):
    pos %= len(data) + 1
    return data[:pos] + blob + data[pos:]


def header_paths(value, prefix=()):
    """Every path (tuple of keys and indices) into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from header_paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:4]):
            yield from header_paths(v, prefix + (i,))


def set_path(header, path, value, delete=False):
    header = json.loads(json.dumps(header))
    target = header
    for key in path[:-1]:
        target = target[key]
    if delete and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return header


def deep(n):
    """A JSON text nested n lists deep."""
    return "[" * n + "]" * n


# values of the wrong type or out of range (json.dumps writes inf as Infinity)
EVIL = ["x", "", math.inf, -math.inf, math.nan, -1, 0, 1, 2 ** 62, -2 ** 63, 2 ** 64, 10 ** 7,
        1.5, 1e308, True, False, None, [], {}, [1], [4, 2 ** 62, 2], [4, 10 ** 7, 2], [0],
        ["relu"], {"a": 1}, [[[[[]]]]], "float16", "PCG64", "MLPClassifier", "_SkAdam",
        [None, None], "a" * 5000, [-3, 4]]


def named_cases(parts):
    """The header edits the issue lists and their neighbours, checksums recomputed."""
    h = header_of(parts)
    cases = {}
    if "config" in h:
        for sizes in ([4, 2 ** 62, 2], [4, 10 ** 7, 2], [4, -3, 2], [4], [], [4, 0, 2], "x",
                      [4.0, 3, 2], [True, 3, 2], [2 ** 64, 1]):
            cases[f"sizes={sizes}"] = set_path(h, ("config", "sizes"), sizes)
        for key, value in (("dtype", "float16"), ("dtype", ["float32"]), ("activation", 5),
                           ("activation", ["relu"] * 9), ("output", None), ("seed", -1),
                           ("seed", 1.5)):
            cases[f"config.{key}={value!r}"] = set_path(h, ("config", key), value)
        for value in (1.5, "x", [0.1] * 9, [None], -0.1):
            cases[f"config.dropout={value!r}"] = set_path(h, ("config", "dropout"), value)
        cases["no config"] = set_path(h, ("config",), None, delete=True)
    for value in (-1, "x", 2 ** 64, 1.5, []):
        cases[f"dropout_seed={value!r}"] = set_path(h, ("dropout_seed",), value)
    for value in ("x", math.inf, -1, 2 ** 70, [], 1.5, True):
        cases[f"epoch={value!r}"] = set_path(h, ("epoch",), value)
    if isinstance(h.get("optimizer"), dict):
        for key, value in (("steps", []), ("steps", -5), ("steps", math.inf), ("steps", "7"),
                           ("lr", "x"), ("lr", math.nan), ("name", "rmsprop"), ("betas", []),
                           ("betas", 0.9), ("scale", "x"), ("bogus", 1)):
            cases[f"optimizer.{key}={value!r}"] = set_path(h, ("optimizer", key), value)
        cases["optimizer=[]"] = set_path(h, ("optimizer",), [])
    if "rng_state" in h:
        for value in ({}, [], "x", {"bit_generator": "MT19937"}, None):
            cases[f"rng_state={value!r}"] = set_path(h, ("rng_state",), value)
        cases["rng_state.state.state=2**200"] = set_path(h, ("rng_state", "state", "state"), 2 ** 200)
    if isinstance(h.get("training"), dict):
        for key, value in (("epoch", "x"), ("epoch", 99), ("epochs", -1), ("rng_state_start", {}),
                           ("history", []), ("history", {"history": {"loss": ["x"]}}),
                           ("history", {"epoch": "x"}), ("optimizer_start", {"name": "rmsprop"}),
                           ("optimizer_start", []), ("callbacks", {}), ("callbacks", [{"class": 5}]),
                           ("callbacks", [{"class": "ReduceLROnPlateau", "state": []}])):
            cases[f"training.{key}={value!r}"] = set_path(h, ("training", key), value)
    if isinstance(h.get("estimator"), dict):
        for key, value in (("class", "Pipeline"), ("params", []), ("params", {"bogus": 1}),
                           ("params", {"alpha": -1}), ("params", {"n_threads": "x"}),
                           ("fitted", []), ("fitted", {"n_features_in_": 3}),
                           ("fitted", {"predict": 1}), ("fitted", {"label_type": "weird"})):
            if key in ("params", "fitted") and isinstance(value, dict):
                value = {**h["estimator"][key], **value}
            cases[f"estimator.{key}={value!r}"[:60]] = set_path(h, ("estimator", key), value)
        cases["kind=estimator, no estimator"] = set_path(h, ("estimator",), None, delete=True)
        fitted = h["estimator"]["fitted"]
        for name in ("n_outputs_", "out_activation_", "label_type", "feature_names_in_"):
            if name in fitted:
                cases[f"fitted.{name}=[]"] = set_path(h, ("estimator", "fitted", name), [])
    for key, value in (("kind", "weird"), ("kind", "estimator"), ("format_version", 99),
                       ("format_version", "2"), ("format", "other"), ("arrays", [])):
        cases[f"{key}={value!r}"] = set_path(h, (key,), value)
    out = {name: with_header(parts, header) for name, header in cases.items()}
    out["header nested 100,000 deep"] = with_header(parts, blob=deep(100_000).encode())
    out["epoch nested 100,000 deep"] = with_header(
        parts, blob=json.dumps(h).replace('"epoch": ', '"epoch": ' + deep(100_000) + ", \"_\": ", 1).encode())
    out["epoch with 5,000 digits"] = with_header(
        parts, blob=json.dumps(h).replace('"epoch": ', '"epoch": ' + "9" * 5000 + ", \"_\": ", 1).encode())
    out["header not UTF-8"] = with_header(parts, blob=b"\xff\xfe{}")
    out["header a JSON list"] = with_header(parts, blob=b"[1, 2]")
    out["header unterminated strings"] = with_header(parts, blob=b'{"a": "\\"\\"\\"' * 2000)
    return out


def array_cases(parts, bomb=None):
    """Array-level edits: non-finite values, wrong shapes/dtypes, object arrays, swapped,
    duplicated and non-.npy members, .npy header edits, declared sizes beyond the file."""
    out = {}
    params = np.load(_io.BytesIO(parts["params.npy"]))
    for name in [n[:-4] for n in parts if n[:-4] in ("params", "optimizer_state", "input_mean")]:
        a = np.load(_io.BytesIO(parts[name + ".npy"]))
        for value in (np.nan, np.inf, -np.inf):
            b = a.copy()
            b.flat[len(b.flat) // 2] = value
            out[f"{name} holds {value} (checksums rebuilt)"] = with_array(parts, name, b)
    out["params float16"] = with_array(parts, "params", params.astype(np.float16))
    out["params 2-D"] = with_array(parts, "params", params.reshape(1, -1))
    out["params shortened"] = with_array(parts, "params", params[:-1])
    out["params empty"] = with_array(parts, "params", params[:0])
    out["params complex"] = with_array(parts, "params", params.astype(np.complex64))
    out["params object array"] = with_array(parts, "params", np.array([object()], dtype=object))
    out["params object array, undeclared"] = with_array(parts, "params", np.array([1, "a"], dtype=object), declare=False)
    out["params big-endian"] = with_array(parts, "params", params.astype(params.dtype.newbyteorder(">")))
    out["params structured"] = with_array(parts, "params", np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))
    names = list(parts)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            swapped = dict(parts)
            swapped[names[i]], swapped[names[j]] = parts[names[j]], parts[names[i]]
            out[f"swap {names[i]} and {names[j]}"] = swapped
    out["params not .npy"] = {**parts, "params.npy": b"just some bytes, no .npy magic"}
    out["params renamed params.txt"] = {("params.txt" if n == "params.npy" else n): b for n, b in parts.items()}
    out["extra member evil.npy"] = {**parts, "evil.npy": npy(np.zeros(3))}
    out["extra member ../evil.npy"] = {**parts, "../evil.npy": npy(np.zeros(3))}
    out["no params"] = {n: b for n, b in parts.items() if n != "params.npy"}
    out["no header_sha256"] = {n: b for n, b in parts.items() if n != "header_sha256.npy"}
    raw = parts["params.npy"]
    n = int.from_bytes(raw[8:10], "little")
    text = raw[10:10 + n].decode("latin1")
    for old, new in ((f"({params.shape[0]},)", "(4611686018427387904,)"),
                     (f"({params.shape[0]},)", "(-3,)"), (f"({params.shape[0]},)", "(0, 4611686018427387904)"),
                     (f"({params.shape[0]},)", "(" + "1, " * 40 + ")"),
                     ("'descr': '", "'descr': '|O', 'x': '"), ("False", "Fals"),
                     ("{", "{{{{"), (f"({params.shape[0]},)", "(((((((((((((((((((((((((((((((((")):
        edited = text.replace(old, new, 1)
        edited = (edited.rstrip("\n").ljust(len(text) - 1) + "\n") if len(edited) <= len(text) else edited + "\n"
        body = raw[:8] + len(edited).to_bytes(2, "little") + edited.encode("latin1") + raw[10 + n:]
        out[f"npy header {old!r} -> {new[:20]!r}"] = {**parts, "params.npy": body}
    out["npy header length 65535"] = {**parts, "params.npy": raw[:8] + b"\xff\xff" + raw[10:]}
    out["npy version 9"] = {**parts, "params.npy": raw[:6] + b"\x09" + raw[7:]}
    out["params deflated"] = build(parts, compress={"params.npy"})
    if bomb is not None:
        out["zip bomb: params 1 GiB of zeros deflated"] = bomb
    return out


def declared_size_cases(data):
    """Central-directory sizes patched to claim far more than the file holds."""
    out = {}
    cd = data.find(b"PK\x01\x02")
    for value, label in ((2 ** 32 - 1, "4 GiB"), (2 ** 31, "2 GiB"), (len(data) * 2, "twice the file")):
        b = bytearray(data)
        b[cd + 20:cd + 24] = value.to_bytes(4, "little")   # compressed size
        b[cd + 24:cd + 28] = value.to_bytes(4, "little")   # uncompressed size
        out[f"central directory declares {label}"] = bytes(b)
    return out


def random_case(rng, data, parts, regs):
    """(kind, bytes) of one random mutation."""
    kind = rng.choice(["bitflip", "bitflip-region", "truncate", "insert", "delete", "overwrite",
                       "header-value", "header-drop-key", "header-random-json"],
                      p=[.16, .2, .1, .1, .08, .08, .18, .05, .05])
    if kind == "bitflip":
        out = data
        for _ in range(rng.integers(1, 5)):
            out = flip(out, int(rng.integers(len(out))), int(rng.integers(8)))
        return kind, out
    if kind == "bitflip-region":
        region, start, end = regs[rng.integers(len(regs))]
        if end <= start:
            return kind + ":" + region, data
        return kind + ":" + region, flip(data, int(rng.integers(start, end)), int(rng.integers(8)))
    if kind == "truncate":
        return kind, data[:rng.integers(len(data))]
    if kind == "insert":
        blob = rng.bytes(int(rng.integers(1, 100)))
        return kind, insert(data, int(rng.integers(len(data) + 1)), blob)
    if kind == "delete":
        pos = int(rng.integers(len(data)))
        return kind, data[:pos] + data[pos + int(rng.integers(1, 100)):]
    if kind == "overwrite":
        pos, n = int(rng.integers(len(data))), int(rng.integers(1, 64))
        fill = [rng.bytes(n), b"\x00" * n, b"\xff" * n][rng.integers(3)]
        return kind, (data[:pos] + fill + data[pos + n:])[:len(data)]
    h = header_of(parts)
    if kind == "header-random-json":
        text = json.dumps(h)
        pos = int(rng.integers(len(text)))
        text = text[:pos] + rng.choice(list('{}[]",:0-eE.\\ ntfx')) + text[pos + int(rng.integers(2)):]
        return kind, build(with_header(parts, blob=text.encode()))
    paths = [p for p in header_paths(h) if p]
    path = paths[rng.integers(len(paths))]
    if kind == "header-drop-key":
        return kind, build(with_header(parts, set_path(h, path, None, delete=True)))
    return kind, build(with_header(parts, set_path(h, path, EVIL[rng.integers(len(EVIL))])))


# -- the base files --------------------------------------------------------------------------
def _stateful_callback():
    import fastbp

    class ReduceLROnPlateau(fastbp.Callback):   # a callback state as a run mid-way keeps it
        def get_state(self):
            return {"wait": 1, "best": 0.6}
    return ReduceLROnPlateau()


def make_bases(folder):
    """Write the six valid files; return {base: path}."""
    import warnings

    import fastbp
    from fastbp import History, io, trainer
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    paths = {b: os.path.join(folder, b + ".npz") for b in BASES}
    m = fastbp.MLP([6, 5, 3], activation="tanh", seed=1)
    m.optimizer = fastbp.Adam(lr=0.01)
    m.optimizer.bind(m.params)[...] = np.abs(rng.standard_normal((2, m.n_params)))
    m.optimizer.steps, m.epoch = 7, 3
    m.save(paths["mlp"])
    c = fastbp.MLP([5, 4, 4, 2], activation=["relu", "sigmoid"], output="sigmoid",
                   dtype="float64", seed=2, dropout=[0.2, 0.0])
    c.optimizer = fastbp.SGD(lr=0.1, momentum=0.9, nesterov=True)
    c.optimizer.bind(c.params)
    h = History()
    h.epoch = [0, 1]
    h.history = {"loss": [0.7, 0.6], "accuracy": [0.5, 0.6], "val_loss": [0.8, float("inf")]}
    trainer._save_checkpoint(c, paths["checkpoint"], 2, 5, c.rng.bit_generator.state, h,
                             c.optimizer.get_config(), [_stateful_callback()])
    t = fastbp.MLP([4, 3, 3], seed=3)
    t.classes_ = np.array(["setosa", "versicolor", "virginica"])
    t.input_mean, t.input_std = rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    t.held_out_rows = np.array([0, 5, 9])
    t.save(paths["cli"])
    X = rng.standard_normal((40, 4))
    fastbp.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0, solver="sgd").fit(
        X, np.array(list("abc"))[rng.integers(0, 3, 40)]).save(paths["classifier"])
    fastbp.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(
        X, X[:, 0]).save(paths["regressor"])
    v1 = {"format": "fastbp-model", "format_version": 1, "fastbp_version": "0.1.0",
          "config": t.get_config(), "params_sha256": io._sha256(t.params), "optimizer": None}
    np.savez(paths["v1"], header=np.frombuffer(json.dumps(v1).encode(), np.uint8), params=t.params)
    return paths


def make_bomb(path, parts):
    """A model file whose params member is 1 GiB of zeros deflated to about 1 MB, its
    header describing it consistently (the checksum of 1 GiB of zeros computed once)."""
    n = 1 << 28
    head = npy(np.zeros(0, np.float32)).replace(b"(0,)", f"({n},)".encode())
    head = head[:8] + (len(head) - 10).to_bytes(2, "little") + head[10:]
    sha = hashlib.sha256()
    zeros = bytes(1 << 24)
    for _ in range((n * 4) >> 24):
        sha.update(zeros)
    header = header_of(parts)
    header["config"]["sizes"] = [n // 4 - 1, 3, 1]     # any sizes; the member is refused first
    header["arrays"]["params"] = {"shape": [n], "dtype": "<f4", "sha256": sha.hexdigest()}
    rest = with_header(parts, header)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, b in rest.items():
            if name != "params.npy":
                z.writestr(name, b)
        info = zipfile.ZipInfo("params.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            f.write(head)
            for _ in range((n * 4) >> 24):
                f.write(zeros)


def prepare(folder):
    """Write the base files and the zip bomb into folder (once, before the workers start)."""
    paths = make_bases(folder)
    with open(paths["mlp"], "rb") as f:
        make_bomb(os.path.join(folder, "bomb.npz"), members(f.read()))


def all_cases(folder, n_cases, seed):
    """Yield (case number, base, kind, bytes): the deterministic cases, then random ones."""
    def read(name):
        with open(os.path.join(folder, name + ".npz"), "rb") as f:
            return f.read()
    datas = {b: read(b) for b in BASES}
    partss = {b: members(d) for b, d in datas.items()}
    bomb = read("bomb")
    fixed = []
    for b in BASES:
        data, parts = datas[b], partss[b]
        fixed.append((b, "valid file", data))
        for label, case in named_cases(parts).items():
            fixed.append((b, "named:" + label, build(case)))
        for label, case in array_cases(parts, bomb if b == "mlp" else None).items():
            fixed.append((b, "array:" + label, case if isinstance(case, bytes) else build(case)))
        for label, case in declared_size_cases(data).items():
            fixed.append((b, "declared:" + label, case))
        for region, start, end in regions(data):       # truncation at every region boundary
            for cut in sorted({start, start + 1, (start + end) // 2, end - 1}):
                if 0 <= cut < len(data):
                    fixed.append((b, "truncate-at:" + region, data[:cut]))
    rng = np.random.default_rng(seed)
    regs = {b: regions(d) for b, d in datas.items()}
    for i in range(n_cases):
        if i < len(fixed):
            yield (i, *fixed[i])
        else:
            b = BASES[rng.integers(len(BASES))]
            kind, data = random_case(rng, datas[b], partss[b], regs[b])
            yield i, b, kind, data


# -- loading one case -----------------------------------------------------------------------
def load_and_predict(path, base):
    """Load as the base's kind is loaded, then predict; return "loaded" or raise."""
    import fastbp
    from fastbp import files
    objs = [fastbp.load(path)]
    if base == "checkpoint":
        objs.append(files.read_checkpoint(path)[0])
    if base in ("classifier", "regressor"):
        objs.append({"classifier": fastbp.MLPClassifier, "regressor": fastbp.MLPRegressor}[base].load(path))
    for obj in objs:
        model = obj if isinstance(obj, fastbp.MLP) else obj.model_
        if not np.all(np.isfinite(model.params)):
            raise _PredictFailed("NonFiniteParameters: the file loaded NaN or infinite weights")
        try:
            n_in = obj.sizes[0] if isinstance(obj, fastbp.MLP) else obj.n_features_in_
            X = np.random.default_rng(0).standard_normal((5, n_in))
            obj.predict(X)
            if isinstance(obj, fastbp.MLP) and obj.output != "identity":
                obj.predict_classes(X)
            if isinstance(obj, fastbp.MLPClassifier):
                obj.predict_proba(X)
        except Exception as exc:
            raise _PredictFailed(f"{type(exc).__name__}: {exc}") from exc
    return "loaded, predicts"


class _PredictFailed(Exception):
    pass


def outcome(path, base):
    from fastbp import ModelFileError
    try:
        return load_and_predict(path, base), None
    except _PredictFailed as exc:
        name = str(exc).split(":")[0]
        if name == "NonFiniteParameters":
            return "FAIL: loaded non-finite parameters", str(exc)
        return "FAIL: loaded, then predict raised " + name, str(exc)
    except ModelFileError as exc:
        if exc.__cause__ is not None:   # the loader's backstop: a check is missing
            return f"FAIL: ModelFileError from the backstop ({type(exc.__cause__).__name__})", str(exc)
        return "ModelFileError", str(exc)
    except Exception as exc:
        return f"FAIL: {type(exc).__name__} escaped", f"{type(exc).__name__}: {exc}"


def worker(folder, n_cases, seed, start):
    """Run cases start.. and print one JSON line per case, flushing before and after."""
    import warnings
    warnings.simplefilter("ignore")
    base_rss = None
    path = os.path.join(folder, f"case-{os.getpid()}.npz")
    for i, base, kind, data in all_cases(folder, n_cases, seed):
        if i < start:
            continue
        with open(path, "wb") as f:
            f.write(data)
        print(json.dumps({"start": i}), flush=True)
        result, message = outcome(path, base)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if base_rss is None:
            base_rss = rss
        if rss - base_rss > RSS_LIMIT_MIB:
            result = f"FAIL: peak memory grew by {rss - base_rss:.0f} MiB"
            base_rss = rss
        print(json.dumps({"case": i, "base": base, "kind": kind, "outcome": result,
                          "message": message, "rss": rss}), flush=True)


def run(n_cases, seed, timeout):
    counts, by_kind, examples = collections.Counter(), collections.defaultdict(collections.Counter), {}
    peak = 0.0
    start, t0 = 0, time.time()
    with tempfile.TemporaryDirectory(prefix="fastbp-fuzz-") as folder:
        prepare(folder)
        while start < n_cases:
            proc = subprocess.Popen([sys.executable, __file__, "--worker", "--folder", folder,
                                     "--cases", str(n_cases), "--seed", str(seed), "--start", str(start)],
                                    stdout=subprocess.PIPE, text=True)
            current, last = None, time.time()
            while True:
                ready, _, _ = select.select([proc.stdout], [], [], 1.0)
                if ready:
                    line = proc.stdout.readline()
                    if not line:
                        break
                    rec = json.loads(line)
                    last = time.time()
                    if "start" in rec:
                        current = rec["start"]
                        continue
                    current = None
                    counts[rec["outcome"]] += 1
                    kind = rec["kind"]   # regions kept apart; named and array cases grouped
                    by_kind[kind if kind.startswith(("bitflip-", "truncate-")) else kind.split(":")[0]][rec["outcome"]] += 1
                    peak = max(peak, rec["rss"])
                    if rec["outcome"].startswith("FAIL") and rec["outcome"] not in examples:
                        examples[rec["outcome"]] = f"case {rec['case']} ({rec['base']}, {rec['kind']}): {rec['message']}"
                    start = rec["case"] + 1
                elif current is not None and time.time() - last > timeout:
                    proc.kill()
                    counts[f"FAIL: hang (over {timeout} s)"] += 1
                    break
            proc.wait()
            if current is not None:     # the worker died or hung in this case
                if proc.returncode not in (0, -9):
                    counts[f"FAIL: crash (exit {proc.returncode})"] += 1
                start = current + 1
            elif proc.returncode != 0:
                raise SystemExit(f"worker failed outside a case (exit {proc.returncode})")
            else:
                break
    total = sum(counts.values())
    print(f"{total} mutated files, seed {seed}, {time.time() - t0:.0f} s; worker peak RSS {peak:.0f} MiB")
    print("outcomes:")
    for name, k in counts.most_common():
        print(f"  {k:6d}  {name}")
    print("by mutation:")
    for kind in sorted(by_kind):
        print(f"  {kind:36s} " + ", ".join(f"{o} {k}" for o, k in by_kind[kind].most_common()))
    for name, text in examples.items():
        print(f"first {name}: {text[:300]}")
    return 1 if any(name.startswith("FAIL") for name in counts) else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds one case may take")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.folder, args.cases, args.seed, args.start)
    return run(args.cases, args.seed, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
