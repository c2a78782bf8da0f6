"""Instruction-set levels: chosen from the host or FASTBP_ISA, the same bits at every level,
512-bit code where the level says so, a cache stamp per level, and the kernel, gradient and
training tests at every level.  A level the CPU lacks still runs (LLVM splits its vectors)."""
import json
import os
import subprocess
import sys

import pytest
from helpers import run_all

from fastbp import _config, _isa

LEVELS = list(_isa.LEVEL_NAMES)
TESTS = os.path.dirname(os.path.abspath(__file__))

# train_steps' fused multiply-adds counted by register width, as `fma` (both scripts below)
_COUNT_FMA = r"""
asm = re.findall(r"vfmadd\d+p[sd]\s+[^\n]*", "".join(train_steps.inspect_asm().values()))
fma = {w: sum(f"%{w}" in f for f in asm) for w in ("xmm", "ymm", "zmm")}
"""

# Trains a few networks (every activation, both dtypes, dropout with a per-step schedule, a
# threaded product whose reduction crosses a k block at every level) and prints the level, a hash of the weights, the
# losses, and the fused multiply-adds of train_steps' machine code by register width.
_WORKLOAD = r"""
import hashlib, json, re
import numpy as np
import fastbp
from fastbp import _config
from fastbp.kernels.step import train_steps
rng = np.random.default_rng(0)
out = {"level": _config.ISA, "runs": []}
for dtype in ("float32", "float64"):
    for act in ("sigmoid", "tanh", "relu"):
        X = rng.standard_normal((300, 37)).astype(dtype); y = rng.integers(0, 5, 300)
        m = fastbp.MLP([37, 33, 5], activation=act, dtype=dtype, seed=1)
        h = m.fit(X, y, epochs=2, batch_size=64, optimizer=fastbp.Adam(1e-2), verbose=0)
        out["runs"].append([dtype, act, hashlib.sha256(m.params.tobytes()).hexdigest(), h.history["loss"]])
    # dropout's masks and masked deltas, and a per-step schedule evaluated in the compiled loop
    m = fastbp.MLP([37, 33, 5], activation="tanh", dtype=dtype, seed=1, dropout=0.3)
    sched = fastbp.CosineDecay(1e-2, epochs=8, warmup_epochs=2, unit="step")
    h = m.fit(X, y, epochs=2, batch_size=64, optimizer=fastbp.Adam(sched), verbose=0)
    out["runs"].append([dtype, "dropout", hashlib.sha256(m.params.tobytes()).hexdigest(), h.history["loss"]])
    X = rng.standard_normal((300, 600)).astype(dtype); y = rng.integers(0, 10, 300)
    m = fastbp.MLP([600, 70, 10], dtype=dtype, seed=1)
    h = m.fit(X, y, epochs=1, batch_size=150, optimizer=fastbp.SGD(0.1, momentum=0.9), verbose=0)
    out["runs"].append([dtype, "wide", hashlib.sha256(m.params.tobytes()).hexdigest(), h.history["loss"]])
""" + _COUNT_FMA + r"""
out["fma"] = fma
print(json.dumps(out))
"""

# The same count of fused multiply-adds by register width, from train_steps compiled (never
# run) for one training signature (float32): under NUMBA_CPU_NAME / NUMBA_CPU_FEATURES of an AVX-512
# CPU, this shows the avx512 level's machine code on a host that lacks AVX-512 (where the
# level runs split into the host's 256-bit instructions, and its code could not execute).
_ASM_ONLY = r"""
import json, re
import numpy as np
import fastbp
from fastbp.kernels.optim import HYPER_SIZE
from fastbp.kernels.step import threading_for, train_steps
from numba import typeof
m = fastbp.MLP([600, 70, 10], seed=1)
X = np.zeros((300, 600), np.float32); y = m.check_y(np.arange(300) % 10, 300)
ws, stats = m.workspace(150)
opt = fastbp.SGD(0.1, momentum=0.9); state = opt.bind(m.params)
hyper = np.zeros(HYPER_SIZE); opt.set_hyper(hyper)
args = (X, y, np.arange(300, dtype=np.int64), 0, 300, 150, m.params, m.grads, state, hyper, m.meta,
        m._out_code, ws, stats, np.zeros(2), True, threading_for(m.meta, 150))
train_steps.compile(tuple(typeof(a) for a in args))
""" + _COUNT_FMA + r"""
print(json.dumps(fma))
"""
# An AVX-512 CPU that LLVM tunes to prefer 256-bit vectors (as it does most of them)
ASM_AVX512 = "avx512 compiled for an AVX-512 CPU"
AVX512_CPU = {"NUMBA_CPU_NAME": "skylake-avx512", "NUMBA_CPU_FEATURES": "+avx512f,+avx512vl,+avx512bw,+avx512dq"}


def _env(level, cache):
    env = dict(os.environ, FASTBP_ISA=level, FASTBP_CACHE_DIR=str(cache))
    env.pop("NUMBA_NUM_THREADS", None)
    return env


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """A compile cache per level, shared by this file's runs at that level (compiles are
    most of their time)."""
    return {level: tmp_path_factory.mktemp(f"cache-{level}") for level in LEVELS}


@pytest.fixture(scope="module")
def runs(caches, tmp_path_factory):
    """The workload at every level, each in a new process with an empty compile cache (so
    the machine code is compiled there and can be inspected), and on a host without
    AVX-512 the avx512 level's code compiled for an AVX-512 CPU (_ASM_ONLY), side by side."""
    jobs = {level: ([sys.executable, "-c", _WORKLOAD], _env(level, caches[level]), None) for level in LEVELS}
    if _isa.host_level()[0] != "avx512":   # avx512's machine code, compiled for an AVX-512 CPU
        jobs[ASM_AVX512] = ([sys.executable, "-c", _ASM_ONLY], dict(_env("avx512", tmp_path_factory.mktemp("asm")),
                                                                   **AVX512_CPU), None)
    done = run_all(jobs, timeout=900)
    out = {}
    for level, r in done.items():
        assert r.returncode == 0, r.stderr[-3000:]
        out[level] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def test_host_decides_and_fastbp_isa_forces():
    assert _isa.host_level({"avx512f": True, "avx2": True, "fma": True})[0] == "avx512"
    assert _isa.host_level({"avx512f": False, "avx2": True, "fma": True})[0] == "avx2"
    assert _isa.host_level({"avx2": True, "fma": False})[0] == "sse"
    assert _isa.host_level({"neon": True})[0] == "sse"
    level, reason = _isa.choose({"FASTBP_ISA": "SSE"}, {"avx512f": True})
    assert level == "sse" and "FASTBP_ISA" in reason and "avx512" in reason
    assert _isa.choose({}, {"avx2": True, "fma": True})[0] == "avx2"
    with pytest.raises(ValueError, match="FASTBP_ISA='avx1024' is not an instruction-set level"):
        _isa.choose({"FASTBP_ISA": "avx1024"}, {})
    assert _config.ISA in LEVELS and _config.MR == _config.LEVELS[_config.ISA]["MR"]


def test_every_level_gives_the_same_weights_bit_for_bit(runs):
    assert [runs[lv]["level"] for lv in LEVELS] == LEVELS
    ref = runs[LEVELS[0]]["runs"]
    assert len(ref) == 10   # 5 networks (one with dropout and a per-step schedule) in each of 2 dtypes
    for level in LEVELS[1:]:
        for got, want in zip(runs[level]["runs"], ref):
            assert got == want, f"{level} differs from {LEVELS[0]} on {want[:2]}"


def test_each_level_compiles_to_its_vector_width(runs):
    """The micro-kernel's fused multiply-adds are on zmm registers at avx512 (LLVM would
    prefer ymm on many AVX-512 CPUs), on ymm at avx2, on xmm at sse.  On a host without
    AVX-512, avx512's code is that compiled for an AVX-512 CPU (_ASM_ONLY)."""
    fma = {lv: runs[lv]["fma"] for lv in LEVELS}
    if ASM_AVX512 in runs:
        fma["avx512"] = runs[ASM_AVX512]
    assert fma["avx512"]["zmm"] >= 24, fma          # at least the 12 x 2 accumulators
    assert fma["avx2"]["zmm"] == 0 and fma["avx2"]["ymm"] >= 12, fma
    assert fma["sse"]["zmm"] == fma["sse"]["ymm"] == 0 and fma["sse"]["xmm"] >= 12, fma


def test_cache_stamp_carries_the_level(tmp_path):
    code = "from fastbp import _cache; print(_cache.STAMP)"
    stamps = {lv: subprocess.run([sys.executable, "-c", code], env=_env(lv, tmp_path), capture_output=True,
                                 text=True, check=True).stdout.strip() for lv in LEVELS}
    assert len(set(stamps.values())) == len(LEVELS), stamps


OTHER_LEVELS = [lv for lv in LEVELS if lv != _config.ISA]


@pytest.fixture(scope="module")
def level_tests(caches, runs):
    """The kernel, SIMD and gradient tests, and the training tests of determinism and of the
    results themselves, again under each level this process does not run (after `runs`,
    whose compiles they reuse; the levels side by side).  (The rest of test_training
    checks the Python layer.)"""
    files = [os.path.join(TESTS, f) for f in ("test_kernels.py", "test_simd.py", "test_gradients.py",
                                              "test_training.py", "test_dropout.py", "test_schedules.py")]
    pick = "not test_training or same_seed or tiny_network or partial_batch or predict_matches or digits_reaches"
    argv = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-k", pick, *files]
    return run_all({level: (argv, _env(level, caches[level]), TESTS) for level in OTHER_LEVELS}, timeout=1500)


@pytest.mark.parametrize("level", OTHER_LEVELS)
def test_kernel_gradient_and_training_tests_pass_at_level(level, level_tests):
    r = level_tests[level]
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout.strip().splitlines()[-1]
