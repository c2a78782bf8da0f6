"""The asv suite must not rot: run every benchmark of benchmarks/ once, on tiny sizes.

asv reports a benchmark that raises as "failed" in a results table nobody may read, and
silently never runs a method whose name lacks a prefix it knows.  This test fails on
both, with fastbp and numpy alone (asv itself is not needed).  FASTBP_BENCH_TINY=1 makes
every configuration tiny (benchmarks/common.py), so the whole suite runs in seconds once
Numba's cache is warm.
"""
import glob
import importlib
import inspect
import itertools
import math
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIXES = ("time_", "timeraw_", "track_", "peakmem_", "mem_")
HOOKS = {"setup", "teardown", "setup_cache"}
MODULES = sorted(os.path.splitext(os.path.basename(p))[0]
                 for p in glob.glob(os.path.join(ROOT, "benchmarks", "bench_*.py")))


def _import(name):
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    return importlib.import_module("benchmarks." + name)


def _classes():
    out = []
    for name in MODULES:
        mod = _import(name)
        for cname, cls in vars(mod).items():
            if inspect.isclass(cls) and cls.__module__ == mod.__name__ and not cname.startswith("_"):
                out.append(cls)
    return out


def _methods(cls):
    return sorted(n for n in dir(cls) if n.startswith(PREFIXES) and callable(getattr(cls, n)))


def _grid(cls):
    params = getattr(cls, "params", [])
    if not params:
        return [()]
    if not isinstance(params[0], (list, tuple)):
        params = [params]
    return list(itertools.product(*params))


def _cases():
    for cls in _classes():
        for combo in _grid(cls):
            yield pytest.param(cls, combo, id=f"{cls.__module__.split('.')[-1]}.{cls.__name__}"
                                               f"[{'-'.join(map(str, combo))}]")


def test_modules_found():
    assert {"bench_train", "bench_kernels", "bench_large"} <= set(MODULES)


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_every_method_is_collected(cls):
    """Each public method is a benchmark asv will run (or a hook); each track_ has a unit."""
    public = [n for n, _ in inspect.getmembers(cls, callable) if not n.startswith("_")]
    stray = [n for n in public if n not in HOOKS and not n.startswith(PREFIXES)]
    assert not stray, f"{cls.__name__}: methods asv would silently skip: {stray}"
    assert _methods(cls), f"{cls.__name__} has no benchmark"
    names = getattr(cls, "param_names", [])
    assert len(names) == len(_grid(cls)[0]), f"{cls.__name__}: param_names do not match params"
    for n in _methods(cls):
        if n.startswith("track_"):
            unit = getattr(getattr(cls, n), "unit", None) or getattr(cls, "unit", None)
            assert unit, f"{cls.__name__}.{n} needs a unit"


@pytest.mark.parametrize("cls, combo", list(_cases()))
def test_benchmark_runs(cls, combo, monkeypatch):
    """setup, every benchmark method once, teardown.  NotImplementedError in setup (asv's
    way to skip) counts as a failure here: on the current tree every combination must run."""
    monkeypatch.setenv("FASTBP_BENCH_TINY", "1")
    bench = cls()
    if hasattr(bench, "setup"):
        bench.setup(*combo)
    try:
        for name in _methods(cls):
            value = getattr(bench, name)(*combo)
            if name.startswith("track_"):
                assert isinstance(value, (int, float)) and math.isfinite(value), (name, value)
                assert value > 0, (name, value)
    finally:
        if hasattr(bench, "teardown"):
            bench.teardown(*combo)


def test_asv_check():
    """asv's own static check (names, params, signatures), when asv is installed."""
    pytest.importorskip("asv")
    import subprocess
    proc = subprocess.run([sys.executable, "-m", "asv", "check", "-E", f"existing:{sys.executable}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "No problems found" in proc.stdout, proc.stdout + proc.stderr


def test_shape_names_and_specs():
    common = _import("common")
    assert common.shape("M") == common.CONFIGS["M"]
    assert common.shape("784-300-100-10@128x20000") == ((784, 300, 100, 10), 128, 20000)
    assert common.shape("100-37-13@77") == ((100, 37, 13), 77, 8192)
    for bad in ["Q", "784@128", "784-10", "784-0-10@128", "784-10@256x100"]:
        with pytest.raises(ValueError, match="configuration"):
            common.shape(bad)
