"""Where Numba keeps fastbp's compiled kernels, and when they are stale.

Numba's own cache keys a function on its source file alone, so a change to a constant it
imports (a tile size in ``_config.py``, a helper in another kernel module) would load
stale machine code.  Our locator stamps every kernel with a hash of all of fastbp's
kernel sources, and never fails: it uses ``$FASTBP_CACHE_DIR`` if set, else a per-user
cache folder keyed by a hash of the install path (``~/.cache/fastbp/numba/<key>``), else a
temporary one (so a read-only home still works and a cache that cannot be written never
crashes; at worst it recompiles).  It never writes into the package folder.
"""
import hashlib
import os
import secrets
import tempfile

from . import _numba_compat

# Numba numbers the functions it compiles from 1 in every process and writes the number
# into their symbol names ("abi:v<N>"), so cached code written by two processes can define
# one symbol name for two different functions, and a process that loads both calls the
# wrong one (a segfault: numba issue #10128, GridSearchCV workers and subprocesses sharing
# the cache).  Counting from a random 40-bit number makes the names of different
# processes distinct.  Only the names change, not the code.
_numba_compat.renumber_functions(secrets.randbits(40) + 1)

_PKG = os.path.dirname(os.path.abspath(__file__))
# _numba_compat.py holds jit options (NO_NRT) that _config.py passes on to the kernels
_SOURCES = ["_config.py", "_numba_compat.py"] + [os.path.join("kernels", f) for f in
                             sorted(os.listdir(os.path.join(_PKG, "kernels"))) if f.endswith(".py")]


# Numba's settings that change the machine code it writes.  Numba keys a cached function
# on its signature and the CPU only, so code compiled once under NUMBA_BOUNDSCHECK=1 (40 %
# slower M steps), NUMBA_ENABLE_PROFILING=1 (3.5 times the code, 1.7x slower steps) or
# NUMBA_OPT=0 was loaded by every later process that ran without them.
_CODEGEN_SETTINGS = ("OPT", "BOUNDSCHECK", "DEBUGINFO_DEFAULT", "ENABLE_PROFILING", "LOOP_VECTORIZE",
                     "SLP_VECTORIZE", "USING_SVML", "EXTEND_VARIABLE_LIFETIMES")


def _codegen_settings():
    from numba.core import config
    return " ".join(f"{name}={getattr(config, name, None)!r}" for name in _CODEGEN_SETTINGS)


def _stamp():
    from ._config import ISA, LEVELS
    # the instruction-set level too: code built for one level must never load under another
    h = hashlib.sha256(f"fastbp cache 5: entry points only; level {ISA} {sorted(LEVELS[ISA].items())}; "
                       f"{_codegen_settings()}\0".encode())
    for rel in _SOURCES:
        with open(os.path.join(_PKG, rel), "rb") as f:
            h.update(rel.encode() + b"\0" + f.read())
    return h.hexdigest()


STAMP = _stamp()


def _install_key():
    """A short hash of the package folder: two installs (a venv, an editable checkout)
    never share, or fight over, one cache folder."""
    return hashlib.sha256(_PKG.encode()).hexdigest()[:16]


def _candidates():
    # Never inside the package folder: a compile cache left in site-packages/fastbp/ by
    # `pip install .` would outlive a later `pip install -e .` and shadow the editable
    # package as an empty namespace package (issue 15).
    if os.environ.get("FASTBP_CACHE_DIR"):
        yield os.environ["FASTBP_CACHE_DIR"]
    key = _install_key()
    if os.environ.get("NUMBA_CACHE_DIR"):
        yield os.path.join(os.environ["NUMBA_CACHE_DIR"], "fastbp", key)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    yield os.path.join(xdg, "fastbp", "numba", key)
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    yield os.path.join(tempfile.gettempdir(), f"fastbp-numba-cache-{uid}", key)


def _writable(path):
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def _choose_dir():
    for path in _candidates():
        if _writable(path):
            return path
    try:
        return tempfile.mkdtemp(prefix="fastbp-numba-cache-")
    except OSError:
        return None


CACHE_DIR = None  # chosen on first use


class FastbpLocator(_numba_compat.CacheLocator):
    """Numba cache locator for functions defined in fastbp's own files."""

    def __init__(self, py_func, path, py_file):
        self._lineno = py_func.__code__.co_firstlineno
        self._path = path
        self._py_file = py_file   # Numba names it when it declines to cache a function

    def ensure_cache_path(self):
        os.makedirs(self._path, exist_ok=True)

    def get_cache_path(self):
        return self._path

    def get_source_stamp(self):
        return STAMP

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        global CACHE_DIR
        if not os.path.abspath(py_file).startswith(_PKG + os.sep):
            return None
        if CACHE_DIR is None:
            CACHE_DIR = _choose_dir()
        if CACHE_DIR is None:
            return None
        return cls(py_func, CACHE_DIR, py_file)


_numba_compat.register_cache_locator(FastbpLocator)


def cache_dir():
    """The folder holding fastbp's compiled kernels (None before the first kernel loads)."""
    return CACHE_DIR


__all__ = ["STAMP", "cache_dir", "FastbpLocator"]

