"""The compile cache: stamped with every kernel source, and never a reason to crash."""
import os
import subprocess
import sys

import fastbp
from fastbp import _cache


def test_stamp_covers_config_and_every_kernel_module():
    kernels = {f for f in os.listdir(os.path.join(_cache._PKG, "kernels")) if f.endswith(".py")}
    assert {os.path.basename(s) for s in _cache._SOURCES} >= kernels | {"_config.py"}


def test_stamp_changes_with_numbas_code_generation_settings():
    """Code compiled under NUMBA_BOUNDSCHECK=1, NUMBA_OPT=0 or NUMBA_ENABLE_PROFILING=1 is
    slower code (bounds checks, no optimisation, debug information): it must not load in a
    process without them, which Numba's own key (signature and CPU) would let it do."""
    code = "from fastbp import _cache; print(_cache.STAMP)"
    base = {k: v for k, v in os.environ.items() if k not in ("NUMBA_BOUNDSCHECK", "NUMBA_OPT",
                                                              "NUMBA_ENABLE_PROFILING")}

    def stamp(**env):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                           env=dict(base, **env))
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()
    plain = stamp()
    assert plain == stamp()
    others = [stamp(NUMBA_BOUNDSCHECK="1"), stamp(NUMBA_OPT="0"), stamp(NUMBA_ENABLE_PROFILING="1")]
    assert len({plain, *others}) == 4


def test_falls_back_when_a_cache_folder_cannot_be_written(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    good = tmp_path / "ok"
    monkeypatch.setattr(_cache, "_candidates", lambda: iter([str(blocker / "x"), str(good)]))
    assert _cache._choose_dir() == str(good)
    monkeypatch.setattr(_cache, "_candidates", lambda: iter([str(blocker / "x")]))
    assert os.path.isdir(_cache._choose_dir())          # a fresh temporary folder


def test_kernels_are_cached_in_the_chosen_folder():
    fastbp.MLP([3, 2]).predict([[0.0, 1.0, 2.0]])
    folder = _cache.cache_dir()
    assert folder and any(f.endswith(".nbi") for f in os.listdir(folder))


def test_cache_folder_from_the_environment(tmp_path):
    """FASTBP_CACHE_DIR is used when writable; an unwritable one is skipped, not fatal.
    The training step is among what is cached (a kernel that held a ctypes pointer once
    made Numba decline to cache it, and every process compiled it anew)."""
    code = ("import fastbp, fastbp._cache as c, numpy as np\n"
            "fastbp.MLP([2, 2], seed=0).fit(np.eye(2), [0, 1], epochs=1, verbose=0)\n"
            "print(c.cache_dir())\n")
    for folder, expect in [(tmp_path / "kc", str(tmp_path / "kc")), ("/proc/no/such", None)]:
        env = dict(os.environ, FASTBP_CACHE_DIR=str(folder))
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=600, env=env)
        assert r.returncode == 0, r.stderr
        if expect:
            assert r.stdout.strip() == expect
            assert any(f.startswith("step.train_steps-") and f.endswith(".nbi") for f in os.listdir(expect))
            assert "Cannot cache" not in r.stderr, r.stderr[-2000:]
        else:
            assert r.stdout.strip() != str(folder)


def test_processes_sharing_a_cache_do_not_crash(tmp_path):
    """Each process compiles part of the kernels and loads what others cached.  With every
    kernel cached on its own, an entry point compiled where its callees came from the cache
    segfaulted in the next process (eval_batch, train_step); entry points are now cached
    with their kernels compiled in."""
    steps = [
        "m.fit(X, y, epochs=1, verbose=0)",                           # compiles the train path
        "m.evaluate(X, y); m.predict(X)",                               # loads it, compiles eval
        "m.evaluate(X, y); m.predict(X); m.fit(X, y, epochs=1, verbose=0); "
        "from helpers import gradients; gradients(m, X, y)",           # loads everything
    ]
    env = dict(os.environ, FASTBP_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.path.dirname(__file__))
    for step in steps:
        code = ("import numpy as np, fastbp\n"
                "X = np.random.default_rng(0).random((40, 5)); y = np.arange(40) % 3\n"
                "m = fastbp.MLP([5, 7, 3], seed=0)\n" + step + "\nprint('ok')\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=600, env=env)
        assert r.returncode == 0 and r.stdout.strip() == "ok", (step, r.returncode, r.stderr[-2000:])


def test_a_kernel_numba_will_not_cache_warns_instead_of_crashing():
    """Numba declines to cache a function with dynamic globals (seen when a kernel
    called numba.get_num_threads()) and names the source file in its warning; our
    locator once lacked that attribute, and the declined cache raised AttributeError."""
    import types

    import pytest
    from numba.core import caching
    from numba.core.errors import NumbaWarning

    from fastbp.kernels.step import train_steps
    impl = caching.CompileResultCacheImpl(train_steps.py_func)
    assert isinstance(impl.locator, _cache.FastbpLocator)
    declined = types.SimpleNamespace(lifted=(), library=types.SimpleNamespace(has_dynamic_globals=True),
                                     fndesc=types.SimpleNamespace(qualname="train_steps"))
    with pytest.warns(NumbaWarning, match="dynamic globals"):
        assert impl.check_cachable(declined) is False


def test_warmup_compiles_both_specialisations_of_every_entry_point():
    """warmup() covers tiny networks (gemm's SERIAL_ONLY: no parallel loop compiled) and
    larger ones (THREADED): each entry point has a float32 signature of each kind."""
    from numba import types

    from fastbp.kernels.step import eval_batch, predict_batch, train_steps
    seconds = fastbp.warmup(dtypes=("float32",))
    assert set(seconds) == {"float32"}
    for entry in (train_steps, eval_batch, predict_batch):
        kinds = {sig[-1] == types.none for sig in entry.signatures if sig[0].dtype == types.float32}
        assert kinds == {True, False}, (entry, entry.signatures)


def test_cache_never_lives_in_the_package_folder(monkeypatch, tmp_path):
    """Issue 15: a cache in site-packages/fastbp/ outlived `pip install .` and shadowed a
    later editable install.  Without FASTBP_CACHE_DIR every candidate is outside the
    package, and two installs get different folders."""
    monkeypatch.delenv("FASTBP_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    chosen = _cache._choose_dir()
    for path in [*_cache._candidates(), chosen]:
        assert not os.path.abspath(path).startswith(_cache._PKG + os.sep), path
    assert chosen.startswith(str(tmp_path)) and chosen.endswith(_cache._install_key())
    monkeypatch.setattr(_cache, "_PKG", "/some/other/site-packages/fastbp")
    assert _cache._install_key() not in chosen
