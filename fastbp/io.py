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
    ``config``          architecture: sizes, activation, output, dtype, seed
    ``optimizer``       optimizer name, hyper-parameters and step count, or null
    ``rng_state``       state of the model's random generator (numpy PCG64), so shuffles
                        continue where they left off
    ``epoch``           training epochs completed over the model's life
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
truncated or altered raises ``ModelFileError`` instead of loading wrong weights.  Writes go
to a temporary file in the same folder, are fsync'ed, then renamed over the target, so a
crash never leaves a half-written file where a good one was.
"""
import errno
import hashlib
import json
import os
import stat
import tempfile
import zipfile

try:
    import fcntl
except ImportError:     # Windows: no flock, so temporaries of dead writers stay
    fcntl = None

import numpy as np

FORMAT = "fastbp-model"
FORMAT_VERSION = 2


class ModelFileError(ValueError):
    """The file is not a fastbp model, is damaged, or is of a format this version cannot read."""


def _sha256(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


# -- atomic writes ----------------------------------------------------------------------
# A writer holds an exclusive flock on its temporary file from just after creating it until
# after the rename; the kernel drops the lock when the writer dies, however it dies (SIGKILL,
# power loss aside).  So a temporary of ours that can be locked belongs to a dead writer and
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


def remove_stale_temporaries(folder):
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
    remove_stale_temporaries(folder)
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
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ModelFileError(f"{path} is not a fastbp model file (a bare .npy array)")
        with z:
            if "header" not in z.files or "params" not in z.files:
                raise ModelFileError(f"{path} is not a fastbp model file (no header/params)")
            arrays = {name: z[name] for name in z.files}
    except FileNotFoundError:
        raise
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, UnicodeDecodeError,
            NotImplementedError, RuntimeError) as exc:
        raise ModelFileError(f"{path} is not a readable fastbp model file: {exc}") from None
    blob = arrays.pop("header")
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise ModelFileError(f"{path} is not a fastbp model file (bad header array)")
    blob = blob.tobytes()
    try:
        header = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelFileError(f"{path}: the header is not valid JSON (the file is damaged)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a fastbp model file")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {version}, written by fastbp "
                             f"{header.get('fastbp_version', '?')}; this fastbp reads up to "
                             f"{FORMAT_VERSION}: upgrade fastbp")
    if version == 1:
        if _sha256(arrays["params"]) != header.get("params_sha256"):
            raise ModelFileError(f"{path}: parameter checksum mismatch (the file was altered or damaged)")
        return header, arrays
    digest = arrays.pop("header_sha256", None)
    if digest is None or digest.tobytes() != hashlib.sha256(blob).hexdigest().encode("ascii"):
        raise ModelFileError(f"{path}: header checksum mismatch (the file was altered or damaged)")
    described = header.get("arrays")
    if not isinstance(described, dict) or set(described) != set(arrays):
        raise ModelFileError(f"{path}: the arrays in the file do not match its header")
    for name, a in arrays.items():
        d = described[name]
        if not isinstance(d, dict) or list(a.shape) != d.get("shape") or a.dtype.str != d.get("dtype"):
            raise ModelFileError(f"{path}: array {name!r} has shape {a.shape} {a.dtype}, the header "
                                 f"says {d}")
        if _sha256(a) != d.get("sha256"):
            raise ModelFileError(f"{path}: checksum mismatch in {name!r} (the file was altered or damaged)")
    return header, arrays


def _build_model(path, header, arrays):
    from . import optimizers
    from .model import MLP
    try:
        config = header["config"]
        model = MLP(config["sizes"], activation=config["activation"], output=config["output"],
                    dtype=config["dtype"], seed=config.get("seed"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} has an invalid model description: {exc}") from None
    params = arrays["params"]
    if params.shape != model.params.shape or params.dtype != model.params.dtype:
        raise ModelFileError(f"{path}: parameters have shape {params.shape} {params.dtype}, "
                             f"expected {model.params.shape} {model.params.dtype}")
    model.params[:] = params
    if header.get("rng_state") is not None:
        try:
            model.rng.bit_generator.state = header["rng_state"]
        except (TypeError, ValueError, KeyError) as exc:
            raise ModelFileError(f"{path} has an invalid RNG state: {exc}") from None
    model.epoch = int(header.get("epoch", 0) or 0)
    for name, key in _DATA_ATTRS:
        if key in arrays and header.get("kind", "mlp") == "mlp":
            setattr(model, name, arrays[key])
    opt = header.get("optimizer")
    opt_state = arrays.get("optimizer_state")
    if opt is not None and opt_state is not None and header.get("kind", "mlp") == "mlp":
        opt = dict(opt)
        steps = opt.pop("steps", 0)
        try:
            optimizer = optimizers.get(opt)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path} has an invalid optimizer description: {exc}") from None
        if opt_state.shape != (2, model.n_params) or opt_state.dtype != model.dtype:
            raise ModelFileError(f"{path}: optimizer state has shape {opt_state.shape}")
        optimizer.bind(model.params)[...] = opt_state
        optimizer.steps = int(steps)
        model.optimizer = optimizer
    return model


def _build_estimator(path, header, arrays, model):
    from sklearn.preprocessing import LabelBinarizer

    from . import sklearn as sk
    info = header["estimator"]
    try:
        cls = {"MLPClassifier": sk.MLPClassifier, "MLPRegressor": sk.MLPRegressor}[info["class"]]
        params = dict(info["params"])
        if isinstance(params.get("hidden_layer_sizes"), list):
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        est = cls(**params)
        fitted = dict(info["fitted"])
        opt = dict(header["optimizer"])
        kind = opt.pop("name")
        if kind == "_SkSGD":
            optimizer = sk._SkSGD(opt["lr"], opt["momentum"], opt["nesterov"], opt["scale"])
        elif kind == "_SkAdam":
            optimizer = sk._SkAdam(opt["lr"], opt["betas"][0], opt["betas"][1], opt["eps"], opt["scale"])
        else:
            raise ValueError(f"unknown optimizer {kind!r}")
        optimizer.steps = int(opt["steps"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} has an invalid estimator description: {exc}") from None
    state = arrays.get("optimizer_state")
    if state is not None:
        if state.shape != (2, model.n_params) or state.dtype != model.dtype:
            raise ModelFileError(f"{path}: optimizer state has shape {state.shape}")
        optimizer.bind(model.params)[...] = state
    else:
        optimizer.bind(model.params)
    label_type = fitted.pop("label_type", None)
    names = fitted.pop("feature_names_in_", None)
    for key, value in fitted.items():
        setattr(est, key, value)
    if names is not None:
        est.feature_names_in_ = np.asarray(names, dtype=object)
    if "classes" in arrays:
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
        The file is not a fastbp model file, is truncated or altered, or has a newer format.
    FileNotFoundError
        There is no such file.
    """
    header, arrays = _read(path)
    model = _build_model(path, header, arrays)
    if header.get("kind", "mlp") == "estimator":
        return _build_estimator(path, header, arrays, model)
    return model


def read_checkpoint(path):
    """(model, training info) from a checkpoint written by ``MLP.fit(checkpoint=...)``."""
    header, arrays = _read(path)
    if header.get("kind", "mlp") != "mlp" or not isinstance(header.get("training"), dict):
        raise ModelFileError(f"{path} is a fastbp model file but not a training checkpoint")
    return _build_model(path, header, arrays), header["training"]
