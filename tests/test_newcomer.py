"""Issue 15, a newcomer's first hour: each numbered point, through the installed `fastbp`
command where it is a command-line one.  Networks are 64-32-10 on the digits (as the other
CLI tests) or [2, 2, 2], so nothing new compiles."""
import os
import shutil
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastbp

FASTBP = shutil.which("fastbp", path=os.path.dirname(sys.executable)) or shutil.which("fastbp")
NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


def run(*args, cwd=None, env=None):
    assert FASTBP, "the fastbp command is not installed"
    return subprocess.run([FASTBP, *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def digits_csv(tmp_path_factory):
    """The digits as a ';'-delimited CSV with a header, quoted fields and string labels."""
    X, y = fastbp.load_digits()
    path = tmp_path_factory.mktemp("csv") / "digits.csv"
    with open(path, "w") as f:
        f.write(";".join([f"p{i}" for i in range(64)] + ['"digit name"']) + "\n")
        for row, lab in zip(X, y):
            f.write(";".join(f"{v:.4f}" for v in row) + f';"{NAMES[lab]}"\n')
    return path


# 1 -------------------------------------------------------------------------------------
def test_1_cache_is_outside_the_package():
    from fastbp import _cache
    r = run("info")
    assert r.returncode == 0, r.stderr
    line = next(s for s in r.stdout.splitlines() if s.startswith("compile cache:"))
    folder = line.split()[2]
    if not os.environ.get("FASTBP_CACHE_DIR"):
        assert not os.path.abspath(folder).startswith(_cache._PKG + os.sep), folder
    assert not os.path.isdir(os.path.join(_cache._PKG, "__pycache__", "numba"))


# 2, 3, 5, 7 (file mode) ----------------------------------------------------------------
def test_2_3_5_string_labels_stored_scaling_and_held_out(tmp_path, digits_csv):
    model = tmp_path / "m.npz"
    old = os.umask(0o022)
    try:
        r = run("train", "--data", digits_csv, "--epochs", 5, "--verbose", 0, "--standardize",
                "-o", model)
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    assert "10 classes" in r.stdout
    held = next(s for s in r.stdout.splitlines() if s.startswith("held-out accuracy:")).split()[2]
    assert stat.S_IMODE(os.stat(model).st_mode) == 0o644            # 7: the umask's mode
    r = run("predict", model, digits_csv)
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.split()) <= set(NAMES) and r.stdout.split()[0] == "zero"   # 2
    r = run("evaluate", "--held-out", model, digits_csv)            # 3: stored scaling used
    assert r.returncode == 0, r.stderr
    assert f"accuracy: {held}" in r.stdout and "samples: 359" in r.stdout
    m = fastbp.load(model)                                           # and kept for Python
    assert list(m.classes_) == sorted(NAMES) and m.input_mean.shape == (64,)
    # 3: the loaded model scales raw features itself, as training did: the held-out
    # accuracy again from Python, and the same outputs as scaling by hand without it
    X, y = fastbp.load_digits()
    X = np.round(X, 4)                           # the CSV's 4 decimals
    lab = np.searchsorted(m.classes_, NAMES[y])
    rows = m.held_out_rows
    assert f"{m.evaluate(X[rows], lab[rows], metrics=['f1'])['accuracy']:.4f}" == held
    by_hand = (X[rows] - m.input_mean) / m.input_std
    p = m.predict(X[rows])
    m.input_mean = m.input_std = None
    np.testing.assert_array_equal(p, m.predict(by_hand))
    assert not np.array_equal(p, m.predict(X[rows]))                 # scaling mattered
    # --standardize-from replaces the stored scaling (once, not on top of it)
    r = run("evaluate", "--held-out", "--standardize-from", digits_csv, model, digits_csv)
    assert r.returncode == 0, r.stderr
    std = X.std(axis=0, dtype=np.float64)
    m.input_mean, m.input_std = X.mean(axis=0, dtype=np.float64), np.where(std == 0, 1, std)
    assert f"accuracy: {m.evaluate(X[rows], lab[rows])['accuracy']:.4f}" in r.stdout


def test_2_integer_labels_come_back_and_float_targets_are_refused(tmp_path):
    X, y = fastbp.load_digits()
    csv = tmp_path / "d.csv"
    np.savetxt(csv, np.column_stack([X, y + 1]), delimiter=",", fmt="%.4f")   # labels 1..10
    r = run("train", "--data", csv, "--epochs", 2, "--verbose", 0, "-o", tmp_path / "m.npz")
    assert r.returncode == 0, r.stderr
    assert set(run("predict", tmp_path / "m.npz", csv).stdout.split()) <= {str(i) for i in range(1, 11)}
    r = run("evaluate", tmp_path / "m.npz", csv)
    assert r.returncode == 0 and "accuracy" in r.stdout, r.stderr
    np.savetxt(csv, np.column_stack([X, X[:, 10] * 0.37]), delimiter=",")
    r = run("train", "--data", csv, "--epochs", 2, "--verbose", 0, "-o", tmp_path / "r.npz")
    assert r.returncode == 2 and "regression target" in r.stderr
    assert not (tmp_path / "r.npz").exists() and "data:" not in r.stdout


# 4 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, says", [
    (["--epochs", "-3"], "--epochs"), (["--batch-size", "0"], "--batch-size"),
    (["--threads", "99"], "--threads 99"), (["--test-fraction", "1"], "--test-fraction"),
    (["--hidden", "32,,16"], "--hidden"), (["-o", "/no/such/dir/m.npz"], "/no/such/dir/m.npz"),
    (["--plot", "curve.foo"], "curve.foo"), (["--plot", "/no/such/dir/c.png"], "/no/such/dir/c.png"),
    (["--lr", "-1"], "--lr"),
])
def test_4_bad_options_refused_before_any_work(tmp_path, args, says):
    r = run("train", "--verbose", 0, *args, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert says in r.stderr and r.stdout == "" and ".tmp" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("fastbp train: error:")


# 5 -------------------------------------------------------------------------------------
def test_5_missing_and_nan_cells_located(tmp_path):
    from fastbp.datasets import read_table
    p = tmp_path / "m.csv"
    p.write_text('a;b;label\n1;2;x\n3;;y\n')
    with pytest.raises(ValueError, match=r"line 3, column 2 \('b'\) holds a missing value"):
        read_table(p)
    p.write_text('1,2,0\n3,nan,1\n')
    with pytest.raises(ValueError, match=r"line 2, column 2 .*'nan', not a number"):
        read_table(p)
    p.write_text('a\tb\tlabel\n1\t"2"\tcat\n3\t4\tdog\n')
    X, labels = read_table(p, "\t")
    assert X.tolist() == [[1, 2], [3, 4]] and labels.tolist() == ["cat", "dog"]


# 6 -------------------------------------------------------------------------------------
def test_6_epoch_summary_on_its_own_line_and_early_stopping_says_so(capsys):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 4, dtype=np.float32)
    y = np.array([0, 1, 1, 0] * 4)
    m = fastbp.MLP([2, 2, 2], seed=0)
    es = fastbp.EarlyStopping("loss", patience=0, min_delta=10.0, restore_best_weights=True)
    m.fit(X, y, epochs=5, verbose=2, callbacks=[es])
    out = capsys.readouterr().out
    assert "Epoch 1/5" in out and "loss:" in out
    assert "EarlyStopping: stopped after epoch 2" in out and "restored the weights of epoch 1" in out


def test_6_notebook_gets_the_bar(monkeypatch):
    from fastbp import trainer
    monkeypatch.setattr(trainer, "_in_notebook", lambda: True)
    assert trainer._Progress(1, 1, 1).tty


# 7 -------------------------------------------------------------------------------------
def test_7_help_and_loading_a_non_model():
    r = run("train", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "(default: None)" not in text and "[32]" not in text and "(default: 32)" in text
    assert "default: all) (default" not in text and "not stratified" in text
    with pytest.raises(fastbp.ModelFileError) as e:
        fastbp.load(__file__)
    assert "allow_pickle" not in str(e.value) and "not a fastbp model file" in str(e.value)


# 8 -------------------------------------------------------------------------------------
def test_8_divergence_warns_in_python_and_fails_the_command(tmp_path):
    X, y = fastbp.load_digits()
    m = fastbp.MLP([64, 32, 10], seed=0)
    with pytest.warns(fastbp.DivergenceWarning, match="diverged in epoch 1"):
        m.fit(X, y, epochs=2, optimizer=fastbp.SGD(lr=1e6, momentum=0.9), verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastbp.MLP([64, 32, 10], seed=0).fit(X, y, epochs=2, optimizer=fastbp.SGD(lr=0.5), verbose=0)
    r = run("train", "--lr", "1e6", "--epochs", 2, "--verbose", 0, "-o", tmp_path / "m.npz")
    assert r.returncode == 1 and "diverged in epoch" in r.stderr
    assert not (tmp_path / "m.npz").exists()
