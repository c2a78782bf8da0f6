"""Model files: an .npz archive of plain arrays plus a JSON header; never pickle.

Layout (format version 2)
-------------------------
An uncompressed ``.npz`` (zip) archive holding only numeric or fixed-width string arrays,
read back with ``allow_pickle=False``:

``header``
    uint8 array: UTF-8 JSON object with
    ``format``          "fastbp-model"
    ``format_version``  2 (files of version 1 are still read)
    ``fastbp_version``  the version that wrote the file
    ``kind``            "mlp" or "estimator"
    ``config``          architecture: sizes, activation, output, dtype, seed, dropout
    ``optimizer``       optimizer name, hyper-parameters and step count, or null
    ``rng_state``       state of the model's random generator (numpy PCG64), so shuffles
                        continue where they left off
    ``epoch``           training epochs completed over the model's life
    ``dropout_seed``    the seed of the dropout masks (the model's seed, or one drawn once)
    ``training``        for checkpoints: epoch reached in the run, its target, the RNG state
                        at the start of the run and the history so far; else null
    ``estimator``       for MLPClassifier / MLPRegressor: class, parameters and fitted
                        attributes; else null
    ``arrays``          for every other array: shape, dtype and SHA-256 of its bytes
``header_sha256``
    uint8 array: the hex SHA-256 of the ``header`` bytes
``params``
    the flat parameter buffer (each layer's weight (n_out, n_in) in C order, then its bias)
``optimizer_state``
    (2, n_params) optimizer state (momentum buffer or Adam's moments), when there is one
``classes``
    an estimator's ``classes_`` (numbers or fixed-width strings), when it has them

Every byte of the header and of every array is covered by a checksum, so a file that is
truncated or altered raises ``ModelFileError`` instead of loading wrong weights.  A file
from elsewhere is data, never code: the archive and the .npy headers are checked by
``_npzread`` without numpy's evaluating parser, no size is believed before it is matched
with the bytes really there, the header is bounded before it is parsed, every field is
type-checked, and non-finite parameters are refused; any damage, crafted or not, is a
``ModelFileError`` naming what is wrong (scripts/fuzz_loader.py counts the outcomes).

Writes go to a temporary ``.fastbp-*.tmp`` file in the same folder, locked by its writer,
are fsync'ed, renamed over the target, and the folder is fsync'ed, so a crash never leaves a
half-written file where a good one was, and the new name survives a power cut; the next
write into the folder removes temporaries whose writer died (scripts/kill_writes.py).
"""
import errno
import hashlib
import json
import os
import re
import reprlib
import stat
import tempfile

try:
    import fcntl
except ImportError:     # Windows: no flock, so temporaries of dead writers stay
    fcntl = None

import numpy as np

from . import _npzread as _npz
from ._validation import all_finite, check_int

FORMAT = "fastbp-model"
FORMAT_VERSION = 2


class ModelFileError(ValueError):
    """The file is not a fastbp model, is damaged, or is of a format this version cannot read."""


def _sha256(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


# -- atomic writes ----------------------------------------------------------------------
# A writer holds an exclusive flock on its temporary file from just after creating it until
# after the rename; the kernel drops the lock when the writer dies, however it dies (SIGKILL
# included; no lock outlives a reboot either).  So a temporary of ours that can be locked belongs to a dead writer and
# is removed by the next write into the folder; one that is locked is never touched.  Why a
# lock and not the writer's pid in the name: a pid says nothing across containers (pid
# namespaces) or machines sharing a folder, and pids are reused; a lock is held exactly as
# long as its holder lives, on every local file system and on NFS.  Why not O_TMPFILE +
# linkat: Linux only, not on every file system, and linkat cannot replace the target, so a
# named temporary (and a window to leave it behind) would remain.
_TMP_PREFIX, _TMP_SUFFIX = ".fastbp-", ".tmp"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _same_file(path, fd):
    """True when path (not followed if a link) is still the file open as fd."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _remove_stale_temporaries(folder):
    """Remove the ``.fastbp-*.tmp`` files in ``folder`` left by writers that died (no lock on
    them); return how many were removed.  Anything that cannot be opened, locked or removed
    (another user's file, a link, a file system without locks) is left alone."""
    if fcntl is None:
        return 0
    try:
        names = [e.name for e in os.scandir(folder)
                 if e.name.startswith(_TMP_PREFIX) and e.name.endswith(_TMP_SUFFIX)]
    except OSError:
        return 0
    removed = 0
    for name in names:
        tmp = os.path.join(folder, name)
        try:
            fd = os.open(tmp, os.O_RDONLY | _NOFOLLOW)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue               # locked: its writer is alive
            # still the file we locked (not renamed into place or replaced meanwhile)
            if _same_file(tmp, fd):
                os.unlink(tmp)
                removed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _locked_temporary(folder):
    """(fd, name) of a new temporary file in folder, flock'ed by this writer."""
    for _ in range(100):
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX, dir=folder)
        if fcntl is None:
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a cleaner looks at the new file
        except OSError:
            return fd, tmp                  # no locks here: cleaners cannot lock it either
        # a cleaner may have locked and removed it between mkstemp and flock: then retry
        if _same_file(tmp, fd):
            return fd, tmp
        os.close(fd)
    raise OSError(f"could not create a temporary file in {folder}: each one was removed "
                  "before it could be locked")


def _fsync_folder(folder):
    """Make a rename in folder durable (what databases do after renaming a file)."""
    try:
        dfd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return                      # e.g. Windows, where a folder cannot be opened
    try:
        os.fsync(dfd)
    except OSError as exc:
        # file systems that cannot sync a folder say so with EINVAL; anything else (EIO)
        # means the new name may not be on disk, which the caller must hear about
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(dfd)


def atomic_write(path, write):
    """Call write(fileobj) on a temporary file next to path, fsync it, rename it to path,
    then fsync the folder.  Temporaries of writers that died are removed first."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(folder)
    fd, tmp = _locked_temporary(folder)
    try:
        with os.fdopen(fd, "wb") as f:     # closing it, after the rename, drops the lock
            write(f)
            f.flush()
            os.fsync(f.fileno())
            # mkstemp creates the file 0600; give it the mode a plain open() would (0666 & ~umask)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            if fcntl is not None:          # rename under the lock (Windows cannot rename
                os.replace(tmp, path)      # an open file, and has no flock anyway)
        if fcntl is None:
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)


# -- writing ----------------------------------------------------------------------------
def _write(path, header, arrays):
    from . import __version__
    header = dict(format=FORMAT, format_version=FORMAT_VERSION, fastbp_version=__version__,
                  **header)
    header["arrays"] = {name: {"shape": list(a.shape), "dtype": a.dtype.str, "sha256": _sha256(a)}
                        for name, a in arrays.items()}
    blob = json.dumps(header).encode("utf-8")
    out = dict(arrays)
    out["header"] = np.frombuffer(blob, dtype=np.uint8)
    out["header_sha256"] = np.frombuffer(hashlib.sha256(blob).hexdigest().encode("ascii"),
                                         dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **out))


# (model attribute, array name): class labels and input scaling set by `fastbp train`
_DATA_ATTRS = (("classes_", "labels"), ("input_mean", "input_mean"), ("input_std", "input_std"),
               ("held_out_rows", "held_out_rows"))


def _model_parts(model, training=None):
    arrays = {"params": model.params}
    opt = None
    if model.optimizer is not None and model.optimizer.state is not None:
        arrays["optimizer_state"] = model.optimizer.state
        opt = dict(model.optimizer.get_config(), steps=model.optimizer.steps)
    # what the command line learnt from the data: class labels (any dtype) and the
    # training split's feature mean/std; a model trained from Python has none
    for name, key in _DATA_ATTRS:
        if getattr(model, name, None) is not None:
            arrays[key] = np.asarray(getattr(model, name))
    header = {"kind": "mlp", "config": model.get_config(), "optimizer": opt,
              "rng_state": model.rng.bit_generator.state, "epoch": int(getattr(model, "epoch", 0)),
              "dropout_seed": model.dropout_seed,
              "training": training, "estimator": None}
    return header, arrays


def save(model, path, training=None):
    """Write an MLP (and its optimizer state, RNG state, epoch count) to ``path``.

    Parameters
    ----------
    model : MLP
        The model.
    path : str or os.PathLike
        Destination, written atomically.
    training : dict or None
        Checkpoint information (see the module docstring); None for a plain model file.
    """
    header, arrays = _model_parts(model, training)
    _write(path, header, arrays)


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def save_estimator(est, path):
    """Write a fitted ``MLPClassifier`` / ``MLPRegressor`` to ``path`` (no pickle)."""
    header, arrays = _model_parts(est._model)
    params = {k: _jsonable(v) for k, v in est.get_params(deep=False).items()}
    if not (params["random_state"] is None or isinstance(params["random_state"], int)):
        params["random_state"] = None   # a RandomState object has no plain-data form
    fitted = {}
    for name in ("n_iter_", "t_", "loss_", "loss_curve_", "best_loss_", "validation_scores_",
                 "best_validation_score_", "n_features_in_", "n_layers_", "n_outputs_",
                 "out_activation_", "_no_improvement_count"):
        if hasattr(est, name):
            value = getattr(est, name)
            fitted[name] = [_jsonable(v) for v in value] if isinstance(value, list) else _jsonable(value)
    if hasattr(est, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(v) for v in est.feature_names_in_]
    opt = est._optimizer
    arrays["optimizer_state"] = opt.state
    header["optimizer"] = dict(name=type(opt).__name__, lr=opt.lr, steps=opt.steps,
                               scale=opt.scale, **{k: v for k, v in opt.get_config().items()
                                                   if k not in ("name", "lr")})
    if hasattr(est, "classes_"):
        classes = np.asarray(est.classes_)
        if classes.dtype == object:
            if not all(isinstance(c, str) for c in classes):
                raise ValueError("classes_ of mixed or object types cannot be saved without "
                                 "pickle; use numbers or strings as labels")
            classes = classes.astype(str)
        arrays["classes"] = classes
        fitted["label_type"] = est._label_binarizer.y_type_
    header["kind"] = "estimator"
    header["estimator"] = {"class": type(est).__name__, "params": params, "fitted": fitted}
    _write(path, header, arrays)


# -- reading ----------------------------------------------------------------------------
# Nothing in a file is trusted: the archive and every .npy header are checked by _npzread
# before any data is read (no allocation larger than the file), the JSON header is bounded
# in length and nesting and its checksum verified before it is parsed, every field the
# loader uses is type- and range-checked before use, declared sizes are matched against the
# arrays really there before a model is allocated, and non-finite parameters are refused.
# Fields the loader does not know are ignored, so newer optional keys do not break it.
MAX_HEADER_BYTES = 64 << 20     # a checkpoint's history of 100,000 epochs is about 12 MB
MAX_JSON_DEPTH = 64             # fastbp's headers nest 5 deep
MAX_LAYERS = 4096
_BIG = (1 << 62)
# a JSON string; it also matches an unterminated one (to the end), so scanning stays linear
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\[\s\S][^"\\]*)*(?:"|\\?\Z)')
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlong = 40
_SHORT.maxlevel = 3


def _bounded_int(text):
    if len(text) > 64:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def _parse_header(path, blob):
    """The JSON header, its length and nesting depth checked before it is parsed."""
    if len(blob) > MAX_HEADER_BYTES:
        raise ModelFileError(f"{path}: the header is {len(blob)} bytes, over the limit of "
                             f"{MAX_HEADER_BYTES}")
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: the header is not UTF-8 text (the file is damaged)") from None
    skeleton = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8", "replace"), np.uint8)
    steps = ((skeleton == 91) | (skeleton == 123)).astype(np.int64) - ((skeleton == 93) | (skeleton == 125))
    depth = int(steps.cumsum().max()) if steps.size else 0
    if depth > MAX_JSON_DEPTH:
        raise ModelFileError(f"{path}: the header nests {depth} levels deep, more than the "
                             f"{MAX_JSON_DEPTH} a model file can have (the file is damaged or crafted)")
    try:
        return json.loads(text, parse_int=_bounded_int)
    except ValueError as exc:
        raise ModelFileError(f"{path}: the header is not valid JSON ({exc}; the file is damaged)") from None


def _field(path, where, value, kind, low=None, high=None, optional=False):
    """value checked to be of kind ("int", "real", "str", "dict", "list") and in [low, high]."""
    if value is None and optional:
        return None
    ok = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "real": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "str": lambda v: isinstance(v, str), "dict": lambda v: isinstance(v, dict),
          "list": lambda v: isinstance(v, list)}[kind](value)
    if ok and low is not None and not low <= value <= high:
        ok = False
    if not ok:
        want = {"int": "an integer", "real": "a number", "str": "a string", "dict": "an object",
                "list": "a list"}[kind] + (f" in [{low}, {high}]" if low is not None else "")
        raise ModelFileError(f"{path}: {where} must be {want}, got {_SHORT.repr(value)}")
    return value


def _list_of(path, where, value, kind, optional=False):
    if _field(path, where, value, "list", optional=optional) is not None:
        for i, v in enumerate(value):
            _field(path, f"{where}[{i}]", v, kind)
    return value


def _check_rng_state(path, where, state):
    """A numpy PCG64 state, tried on a throwaway generator first."""
    _field(path, where, state, "dict")
    try:
        np.random.PCG64().state = state
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as exc:
        raise ModelFileError(f"{path}: {where} is not a valid random-generator state ({exc})") from None
    return state


def _check_finite(path, name, a):
    if a.dtype.kind == "f" and not all_finite(a):
        raise ModelFileError(f"{path}: array {name!r} holds NaN or infinite values (the file "
                             "is damaged, or was saved from a diverged model)")


def _read(path):
    """(header, arrays) of a fastbp file, every checksum verified."""
    path = os.fspath(path)
    with open(path, "rb") as f:      # FileNotFoundError passes through
        magic = f.read(4)
        if magic != b"PK\x03\x04":
            # np.load would suggest allow_pickle=, wrong advice for a CSV or any non-model file
            raise ModelFileError(f"{path} is not a fastbp model file (not an .npz archive; model "
                                 "files are written by fastbp train, MLP.save or an estimator's save)")
        try:
            z, members = _npz.open_archive(f, os.fstat(f.fileno()).st_size)
        except _npz.DamagedArchive as exc:
            raise ModelFileError(f"{path} is not a readable fastbp model file: {exc}") from None
        with z:
            return _read_members(path, z, members)


def _read_members(path, z, members):
    def read(name):
        try:
            return _npz.read_member(z, members[name])
        except _npz.DamagedArchive as exc:
            raise ModelFileError(f"{path} is not a readable fastbp model file: {exc}") from None

    if "header" not in members or "params" not in members:
        raise ModelFileError(f"{path} is not a fastbp model file (no header/params)")
    m = members["header"]
    if m.dtype != np.uint8 or len(m.shape) != 1 or m.nbytes > MAX_HEADER_BYTES:
        raise ModelFileError(f"{path} is not a fastbp model file (bad header array: "
                             f"{m.shape} {m.dtype})")
    blob = read("header").tobytes()
    digest = None
    if "header_sha256" in members:    # format 2: check the header's bytes before parsing them
        d = members["header_sha256"]
        if d.dtype != np.uint8 or d.shape != (64,):
            raise ModelFileError(f"{path}: the header checksum is not a SHA-256 ({d.shape} {d.dtype})")
        digest = read("header_sha256").tobytes()
        if digest != hashlib.sha256(blob).hexdigest().encode("ascii"):
            raise ModelFileError(f"{path}: header checksum mismatch (the file was altered or damaged)")
    header = _parse_header(path, blob)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a fastbp model file")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path} has an invalid format version {_SHORT.repr(version)}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {version}, written by fastbp "
                             f"{_SHORT.repr(header.get('fastbp_version', '?'))}; this fastbp "
                             f"reads up to {FORMAT_VERSION}: upgrade fastbp")
    names = set(members) - {"header", "header_sha256"}
    if version == 1:
        params = read("params")
        if _sha256(params) != header.get("params_sha256"):
            raise ModelFileError(f"{path}: parameter checksum mismatch (the file was altered or damaged)")
        return header, {name: params if name == "params" else read(name) for name in names}
    if digest is None:
        raise ModelFileError(f"{path}: header checksum missing (the file was altered or damaged)")
    described = header.get("arrays")
    if not isinstance(described, dict) or set(described) != names:
        raise ModelFileError(f"{path}: the arrays in the file do not match its header")
    for name in sorted(names):       # every declaration checked before any data is read
        d, m = described[name], members[name]
        if (not isinstance(d, dict) or d.get("shape") != list(m.shape)
                or d.get("dtype") != m.dtype.str or not isinstance(d.get("sha256"), str)):
            raise ModelFileError(f"{path}: array {name!r} has shape {m.shape} {m.dtype.str}, the "
                                 f"header says {_SHORT.repr(d)}")
    arrays = {}
    for name in sorted(names):
        arrays[name] = read(name)
        if _sha256(arrays[name]) != described[name]["sha256"]:
            raise ModelFileError(f"{path}: checksum mismatch in {name!r} (the file was altered or damaged)")
    return header, arrays


def _check_config(path, header):
    """(config, number of parameters) of the header's architecture, every field checked."""
    config = _field(path, "config", header.get("config"), "dict")
    sizes = _field(path, "config.sizes", config.get("sizes"), "list")
    if not 2 <= len(sizes) <= MAX_LAYERS + 1:
        raise ModelFileError(f"{path}: config.sizes has {len(sizes)} entries, not 2 to {MAX_LAYERS + 1}")
    for i, s in enumerate(sizes):
        _field(path, f"config.sizes[{i}]", s, "int", 1, 1 << 31)
    activation = config.get("activation")
    if not isinstance(activation, str):
        _list_of(path, "config.activation", activation, "str")
    _field(path, "config.output", config.get("output"), "str")
    if config.get("dtype") not in ("float32", "float64"):
        raise ModelFileError(f"{path}: config.dtype must be 'float32' or 'float64', got "
                             f"{_SHORT.repr(config.get('dtype'))}")
    _field(path, "config.seed", config.get("seed"), "int", 0, 1 << 128, optional=True)
    return config, sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def _check_state(path, name, state, model):
    if state.shape != (2, model.n_params) or state.dtype != model.dtype:
        raise ModelFileError(f"{path}: optimizer state has shape {state.shape} {state.dtype}, "
                             f"expected {(2, model.n_params)} {model.dtype}")
    _check_finite(path, name, state)


def _check_data_attr(path, key, a, sizes):
    """Labels, input scaling and held-out rows stored by `fastbp train`."""
    if key == "labels":
        ok = a.ndim == 1 and a.shape[0] == sizes[-1]
    elif key in ("input_mean", "input_std"):
        ok = a.dtype.kind == "f" and a.shape == (sizes[0],)
        _check_finite(path, key, a)
        if ok and key == "input_std" and not np.all(a != 0):
            raise ModelFileError(f"{path}: array 'input_std' holds zeros")
    else:
        ok = a.dtype.kind in "iu" and a.ndim == 1 and a.shape[0] >= 1 and a.min() >= 0
    if not ok:
        raise ModelFileError(f"{path}: array {key!r} has shape {a.shape} {a.dtype}, which does "
                             f"not fit a {'-'.join(map(str, sizes))} model")


def _build_model(path, header, arrays):
    from . import optimizers
    from .model import MLP
    config, n_params = _check_config(path, header)
    params = arrays["params"]
    # declared sizes against the array really there, before the model allocates anything
    if params.shape != (n_params,) or params.dtype != np.dtype(config["dtype"]):
        raise ModelFileError(f"{path}: config.sizes {config['sizes']} need {n_params} "
                             f"{config['dtype']} parameters; the file holds {params.shape} "
                             f"{params.dtype}")
    _check_finite(path, "params", params)
    kind = header.get("kind", "mlp")
    if kind not in ("mlp", "estimator"):
        raise ModelFileError(f"{path}: kind must be 'mlp' or 'estimator', got {_SHORT.repr(kind)}")
    try:
        model = MLP(config["sizes"], activation=config.get("activation", "sigmoid"),
                    output=config["output"], dtype=config["dtype"], seed=config.get("seed"),
                    dropout=config.get("dropout", 0.0))
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} has an invalid model description: {exc}") from None
    # the model's seed (bounded as config.seed) or, without one, drawn below 2^63
    dropout_seed = _field(path, "dropout_seed", header.get("dropout_seed"), "int", 0, 1 << 128,
                          optional=True)
    if dropout_seed is not None:
        model.dropout_seed = dropout_seed
    model.params[:] = params
    if header.get("rng_state") is not None:
        model.rng.bit_generator.state = _check_rng_state(path, "rng_state", header["rng_state"])
    model.epoch = _field(path, "epoch", header.get("epoch"), "int", 0, _BIG, optional=True) or 0
    if kind == "mlp":
        for name, key in _DATA_ATTRS:
            if key in arrays:
                _check_data_attr(path, key, arrays[key], model.sizes)
                setattr(model, name, arrays[key])
    opt = header.get("optimizer")
    opt_state = arrays.get("optimizer_state")
    if opt is not None and opt_state is not None and kind == "mlp":
        opt = dict(_field(path, "optimizer", opt, "dict"))
        steps = _field(path, "optimizer.steps", opt.pop("steps", 0), "int", 0, 1 << 53)
        try:
            optimizer = optimizers.get(opt)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path} has an invalid optimizer description: {exc}") from None
        _check_state(path, "optimizer_state", opt_state, model)
        optimizer.bind(model.params)[...] = opt_state
        optimizer.steps = steps
        model.optimizer = optimizer
    return model


# fitted attributes of an estimator: (kind, optional) of each known one
_FITTED = {"n_iter_": ("int", False), "t_": ("int", False), "_no_improvement_count": ("int", False),
           "loss_": ("real", True), "best_loss_": ("real", True),
           "best_validation_score_": ("real", True), "n_features_in_": ("int", False),
           "n_layers_": ("int", False), "n_outputs_": ("int", False)}
_LABEL_TYPES = ("binary", "multiclass", "multilabel-indicator")
_OTHER_FITTED = re.compile(r"[a-z][a-z0-9_]{0,63}_\Z")   # public fitted names of newer versions


def _check_fitted(path, fitted, cls, model):
    """The estimator's fitted attributes, checked against each other and the network."""
    fitted = dict(_field(path, "estimator.fitted", fitted, "dict"))
    for name, (kind, optional) in _FITTED.items():
        if name in fitted:
            low, high = (0, _BIG) if kind == "int" else (None, None)
            _field(path, f"estimator.fitted.{name}", fitted[name], kind, low, high, optional)
    for name in ("loss_curve_", "validation_scores_"):
        _list_of(path, f"estimator.fitted.{name}", fitted.get(name), "real", optional=True)
    names = fitted.pop("feature_names_in_", None)
    _list_of(path, "estimator.fitted.feature_names_in_", names, "str", optional=True)
    expected = {"n_features_in_": model.sizes[0], "n_layers_": len(model.sizes),
                "n_outputs_": model.sizes[-1],
                "out_activation_": {"softmax": "softmax", "sigmoid": "logistic",
                                    "identity": "identity"}[model.output]}
    if names is not None:
        expected["feature_names_in_"] = model.sizes[0]
    for name, value in expected.items():
        got = len(names) if name == "feature_names_in_" else fitted.get(name)
        if got != value:
            raise ModelFileError(f"{path}: estimator.fitted.{name} is {_SHORT.repr(got)}, but the "
                                 f"network ({'-'.join(map(str, model.sizes))} {model.output}) "
                                 f"needs {value!r}")
    for name in list(fitted):
        if name not in _FITTED and name not in expected and name not in (
                "loss_curve_", "validation_scores_", "label_type") and (
                not _OTHER_FITTED.match(name) or hasattr(cls, name)):
            del fitted[name]   # never let a file set a method or a private attribute
    return fitted, names


def _check_classes(path, classes, label_type, n_outputs):
    if label_type not in _LABEL_TYPES:
        raise ModelFileError(f"{path}: estimator.fitted.label_type must be one of {_LABEL_TYPES}, "
                             f"got {_SHORT.repr(label_type)}")
    if classes is None or classes.ndim != 1:
        raise ModelFileError(f"{path}: a classifier needs a one-dimensional 'classes' array")
    n = classes.shape[0]
    if not ((label_type == "binary" and n_outputs == 1 and n in (1, 2))
            or (label_type != "binary" and n == n_outputs and n >= 2)):
        raise ModelFileError(f"{path}: {n} classes ({label_type}) do not fit {n_outputs} outputs")


def _build_estimator(path, header, arrays, model):
    from sklearn.preprocessing import LabelBinarizer

    from . import sklearn as sk
    info = _field(path, "estimator", header.get("estimator"), "dict")
    classes = {"MLPClassifier": sk.MLPClassifier, "MLPRegressor": sk.MLPRegressor}
    if not isinstance(info.get("class"), str) or info["class"] not in classes:
        raise ModelFileError(f"{path}: estimator.class must be one of {sorted(classes)}, got "
                             f"{_SHORT.repr(info.get('class'))}")
    cls = classes[info["class"]]
    params = dict(_field(path, "estimator.params", info.get("params"), "dict"))
    try:
        if isinstance(params.get("hidden_layer_sizes"), list):
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        est = cls(**params)
        est._validate_params()      # scikit-learn's own constraints on every parameter
        if est.n_threads is not None:   # which let True through as an integer
            check_int("n_threads", est.n_threads, low=1)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} has invalid estimator parameters: {exc}") from None
    fitted, names = _check_fitted(path, info.get("fitted"), cls, model)
    opt = dict(_field(path, "optimizer", header.get("optimizer"), "dict"))
    try:
        kind = opt.pop("name")
        scale = _field(path, "optimizer.scale", opt["scale"], "real", 1e-300, 1e300)
        if kind == "_SkSGD":
            optimizer = sk._SkSGD(opt["lr"], opt["momentum"], opt["nesterov"], scale)
        elif kind == "_SkAdam":
            optimizer = sk._SkAdam(opt["lr"], opt["betas"][0], opt["betas"][1], opt["eps"], scale)
        else:
            raise ValueError(f"unknown optimizer {_SHORT.repr(kind)}")
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path} has an invalid estimator optimizer: {exc!r}") from None
    optimizer.steps = _field(path, "optimizer.steps", opt.get("steps"), "int", 0, 1 << 53)
    state = arrays.get("optimizer_state")
    if state is not None:
        _check_state(path, "optimizer_state", state, model)
        optimizer.bind(model.params)[...] = state
    else:
        optimizer.bind(model.params)
    label_type = fitted.pop("label_type", None)
    if cls is sk.MLPClassifier:
        _check_classes(path, arrays.get("classes"), label_type, model.sizes[-1])
    for key, value in fitted.items():
        setattr(est, key, value)
    if names is not None:
        est.feature_names_in_ = np.asarray(names, dtype=object)
    if cls is sk.MLPClassifier:
        lb = LabelBinarizer()
        lb.classes_ = arrays["classes"]
        lb.y_type_ = label_type
        lb.sparse_input_ = False
        est._label_binarizer = lb
        est.classes_ = lb.classes_
    est._model = model
    model.n_threads = est.n_threads
    est._optimizer = optimizer
    est._best_params = model.params.copy()
    return est


def _guarded(path, read):
    """read(), any failure to read an opened file turned into a ModelFileError.  The checks
    above name what is wrong; this is the backstop for anything they did not foresee (the
    fuzz script counts how often it fires: the cause is kept as __cause__).  A MemoryError
    passes: every size was checked against the file, so it means a genuine lack of memory."""
    try:
        return read()
    except (ModelFileError, MemoryError, OSError):
        raise
    except Exception as exc:
        raise ModelFileError(f"{os.fspath(path)} could not be read as a fastbp model file "
                             f"({type(exc).__name__}: {exc})") from exc


def load(path):
    """Read a file written by ``MLP.save`` or an estimator's ``save``.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    MLP, MLPClassifier or MLPRegressor

    Raises
    ------
    ModelFileError
        The file is not a fastbp model file, is truncated, altered or crafted (any field of
        the wrong type or out of range, sizes that do not match its arrays, non-finite
        parameters), or has a newer format.
    OSError
        The file cannot be opened or read (FileNotFoundError: there is no such file).
    """
    def read():
        header, arrays = _read(path)
        model = _build_model(path, header, arrays)
        if header.get("kind", "mlp") == "estimator":
            return _build_estimator(path, header, arrays, model)
        return model
    return _guarded(path, read)


def _check_training(path, training):
    """A checkpoint's training information, every field the trainer uses checked."""
    _field(path, "training", training, "dict")
    epoch = _field(path, "training.epoch", training.get("epoch"), "int", 0, _BIG)
    _field(path, "training.epochs", training.get("epochs"), "int", epoch, _BIG)
    _check_rng_state(path, "training.rng_state_start", training.get("rng_state_start"))
    history = _field(path, "training.history", training.get("history"), "dict", optional=True)
    if history is not None:
        _list_of(path, "training.history.epoch", history.get("epoch", []), "int")
        series = _field(path, "training.history.history", history.get("history", {}), "dict")
        for key, values in series.items():
            _list_of(path, f"training.history.history[{_SHORT.repr(key)}]", values, "real")
    start = _field(path, "training.optimizer_start", training.get("optimizer_start"), "dict",
                   optional=True)
    if start is not None:
        from . import optimizers
        try:
            optimizers.get(start)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: training.optimizer_start is not a valid optimizer "
                                 f"({exc})") from None
    saved = _list_of(path, "training.callbacks", training.get("callbacks"), "dict", optional=True)
    for i, entry in enumerate(saved or []):     # each callback checks its own state's fields
        _field(path, f"training.callbacks[{i}].class", entry.get("class"), "str")
        _field(path, f"training.callbacks[{i}].state", entry.get("state"), "dict")
    return training


def read_checkpoint(path):
    """(model, training info) from a checkpoint written by ``MLP.fit(checkpoint=...)``."""
    def read():
        header, arrays = _read(path)
        if header.get("kind", "mlp") != "mlp" or not isinstance(header.get("training"), dict):
            raise ModelFileError(f"{path} is a fastbp model file but not a training checkpoint")
        return _build_model(path, header, arrays), _check_training(path, header["training"])
    return _guarded(path, read)
