"""Model files: an .npz archive of plain arrays plus a JSON header; never pickle.

This module is the format only: writing and reading the archive, the header and its
checksums, atomic writes, and the checkers (``field``, ``list_of``, ``check_finite``...)
with which each class reads its own section back.  It imports none of fastbp's classes:
the sections are written and read by their owners, and ``fastbp.load`` (files.py) picks
the reader from the file's ``kind``:

=========================  =======================================================
_mlp_file.py (MLP)         config, rng_state, epoch, dropout_seed, params, the
                           ``fastbp train`` arrays; the optimizer entry and state
                           through optimizers.py (to_file / from_file)
_checkpoint.py (trainer)   training
_estimator_file.py         estimator, the estimator's optimizer entry, classes
=========================  =======================================================

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
    ``optimizer``       the optimizer's config (``name`` "sgd" or "adam", hyper-parameters)
                        and step count, or null; an estimator's adds ``scale`` (files
                        before issue 19 name an estimator's "_SkSGD" / "_SkAdam": still read)
    ``rng_state``       state of the model's random generator (numpy PCG64), so shuffles
                        continue where they left off
    ``epoch``           training epochs completed over the model's life
    ``dropout_seed``    the seed of the dropout masks (the model's seed, or one drawn once)
    ``training``        for checkpoints: epoch reached in the run, its target, the RNG state
                        at the start of the run, the history so far, the optimizer the run
                        started with, callback states; else null
    ``estimator``       for MLPClassifier / MLPRegressor: class (its public name),
                        parameters and fitted attributes; else null
    ``arrays``          for every other array: shape, dtype and SHA-256 of its bytes
``header_sha256``
    uint8 array: the hex SHA-256 of the ``header`` bytes
``params``
    the flat parameter buffer (each layer's weight (n_out, n_in) in C order, then its bias)
``optimizer_state``
    (2, n_params) optimizer state (momentum buffer or Adam's moments), when there is one
``classes``
    an estimator's ``classes_`` (numbers or fixed-width strings), when it has them
``labels``, ``input_mean``, ``input_std``, ``held_out_rows``
    what ``fastbp train`` learnt from its data (class labels, the training split's feature
    mean and std, the rows it held out), when the model has them

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
from ._validation import all_finite

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
def write(path, header, arrays):
    """Write a model file atomically: the format's fields, then ``header`` (the sections
    of the classes the file holds), the ``arrays`` section describing ``arrays`` (name ->
    numeric or fixed-width string array), the header's checksum and the arrays."""
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


# -- reading ----------------------------------------------------------------------------
# Nothing in a file is trusted: the archive and every .npy header are checked by _npzread
# before any data is read (no allocation larger than the file), the JSON header is bounded
# in length and nesting and its checksum verified before it is parsed, every field the
# loader uses is type- and range-checked before use, declared sizes are matched against the
# arrays really there before a model is allocated, and non-finite parameters are refused.
# Fields the loader does not know are ignored, so newer optional keys do not break it.
MAX_HEADER_BYTES = 64 << 20     # a checkpoint's history of 100,000 epochs is about 12 MB
MAX_JSON_DEPTH = 64             # fastbp's headers nest 5 deep
BIG = (1 << 62)                 # the bound of counts (epochs, steps) in a file
# a JSON string; it also matches an unterminated one (to the end), so scanning stays linear
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\[\s\S][^"\\]*)*(?:"|\\?\Z)')
SHORT = reprlib.Repr()
SHORT.maxstring = SHORT.maxother = 60
SHORT.maxlong = 40
SHORT.maxlevel = 3


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


# The checkers below raise a ModelFileError naming the file and the field (``where``).
def field(path, where, value, kind, low=None, high=None, optional=False):
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
        raise ModelFileError(f"{path}: {where} must be {want}, got {SHORT.repr(value)}")
    return value


def list_of(path, where, value, kind, optional=False):
    if field(path, where, value, "list", optional=optional) is not None:
        for i, v in enumerate(value):
            field(path, f"{where}[{i}]", v, kind)
    return value


def check_rng_state(path, where, state):
    """A numpy PCG64 state, tried on a throwaway generator first."""
    field(path, where, state, "dict")
    try:
        np.random.PCG64().state = state
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as exc:
        raise ModelFileError(f"{path}: {where} is not a valid random-generator state ({exc})") from None
    return state


def check_finite(path, name, a):
    if a.dtype.kind == "f" and not all_finite(a):
        raise ModelFileError(f"{path}: array {name!r} holds NaN or infinite values (the file "
                             "is damaged, or was saved from a diverged model)")


def read(path):
    """(header, arrays) of a fastbp file, every checksum verified: the format is checked,
    the sections are the readers' of each class to check (with field, list_of...)."""
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
        raise ModelFileError(f"{path} has an invalid format version {SHORT.repr(version)}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} has format version {version}, written by fastbp "
                             f"{SHORT.repr(header.get('fastbp_version', '?'))}; this fastbp "
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
                                 f"header says {SHORT.repr(d)}")
    arrays = {}
    for name in sorted(names):
        arrays[name] = read(name)
        if _sha256(arrays[name]) != described[name]["sha256"]:
            raise ModelFileError(f"{path}: checksum mismatch in {name!r} (the file was altered or damaged)")
    return header, arrays


def guarded(path, read):
    """read(), any failure to read an opened file turned into a ModelFileError.  The checks
    of the format and of each section name what is wrong; this is the backstop for anything they did not foresee (the
    fuzz script counts how often it fires: the cause is kept as __cause__).  A MemoryError
    passes: every size was checked against the file, so it means a genuine lack of memory."""
    try:
        return read()
    except (ModelFileError, MemoryError, OSError):
        raise
    except Exception as exc:
        raise ModelFileError(f"{os.fspath(path)} could not be read as a fastbp model file "
                             f"({type(exc).__name__}: {exc})") from exc


