"""Model files: an .npz archive of plain arrays plus a JSON header; never pickle.

Layout (format version 1):
    header   uint8 array: UTF-8 JSON {"format": "fastbp-model", "format_version": 1,
             "fastbp_version", "config": {...}, "params_sha256", "optimizer": {...} or null}
    params   the flat parameter buffer (weights of each layer, then its bias)
    optimizer_state   (2, n_params) optimizer state, when the model has an optimizer
Writes go to a temporary file in the same folder, are fsync'ed, then renamed over the
target, so a crash never leaves a half-written file where a good one was.
"""
import hashlib
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "fastbp-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """The file is not a fastbp model, is damaged, or is of a format this version cannot read."""


def _sha256(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def atomic_write(path, write):
    """Call write(fileobj) on a temporary file next to path, fsync, then rename it to path."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastbp-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save(model, path):
    from . import __version__
    arrays = {"params": model.params}
    opt = None
    if model.optimizer is not None and model.optimizer.state is not None:
        arrays["optimizer_state"] = model.optimizer.state
        opt = dict(model.optimizer.get_config(), steps=model.optimizer.steps)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "fastbp_version": __version__,
              "config": model.get_config(), "params_sha256": _sha256(model.params),
              "optimizer": opt}
    arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path):
    """Read a model written by ``MLP.save``.  Raises ModelFileError for anything else."""
    from . import optimizers
    from .model import MLP
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "header" not in z.files or "params" not in z.files:
                raise ModelFileError(f"{path} is not a fastbp model file (no header/params)")
            header = json.loads(bytes(z["header"]).decode("utf-8"))
            params = z["params"]
            opt_state = z["optimizer_state"] if "optimizer_state" in z.files else None
    except FileNotFoundError:
        raise
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is not a readable fastbp model file: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a fastbp model file")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {version!r}; this fastbp reads up to "
                             f"{FORMAT_VERSION}: upgrade fastbp")
    try:
        config = header["config"]
        model = MLP(config["sizes"], activation=config["activation"], output=config["output"],
                    dtype=config["dtype"], seed=config.get("seed"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} has an invalid model description: {exc}") from None
    if params.shape != model.params.shape or params.dtype != model.params.dtype:
        raise ModelFileError(f"{path}: parameters have shape {params.shape} {params.dtype}, "
                             f"expected {model.params.shape} {model.params.dtype}")
    if _sha256(params) != header.get("params_sha256"):
        raise ModelFileError(f"{path}: parameter checksum mismatch (the file was altered or damaged)")
    model.params[:] = params
    opt = header.get("optimizer")
    if opt is not None and opt_state is not None:
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
