"""fastbp info / predict / evaluate, train --plot, and the scripts in scripts/."""
import csv
import os
import runpy
import sys

import numpy as np
import pytest

import fastbp
from fastbp.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SCRIPTS = os.path.join(os.path.dirname(__file__), os.pardir, "scripts")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    model = d / "m.npz"
    assert main(["train", "--epochs", "3", "--hidden", "16", "--verbose", "0", "-o", str(model)]) == 0
    X, y = fastbp.load_digits()
    np.savez(d / "d.npz", X=X[:40], y=y[:40])
    np.savetxt(d / "d.csv", np.column_stack([X[:7], y[:7]]), delimiter=",")
    np.savetxt(d / "x.csv", X[:7], delimiter=",")
    return d, model, fastbp.load(model), X, y


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("versions:", "numba", "threading layer:", "threads:", "vector ext.:", "compile cache:"):
        assert key in out


def test_predict_matches_the_model(trained, capsys):
    d, path, model, X, _ = trained
    for data in ("d.csv", "x.csv"):                   # with and without a label column
        assert main(["predict", str(path), str(d / data)]) == 0
        got = [int(v) for v in capsys.readouterr().out.split()]
        assert got == model.predict_classes(X[:7]).tolist()
    assert main(["predict", str(path), str(d / "d.npz"), "--proba", "-o", str(d / "p.csv")]) == 0
    proba = np.loadtxt(d / "p.csv", delimiter=",")
    np.testing.assert_allclose(proba, model.predict(X[:40]), rtol=1e-5)


def test_evaluate(trained, capsys):
    d, path, model, X, y = trained
    assert main(["evaluate", str(path), str(d / "d.npz")]) == 0
    out = capsys.readouterr().out
    assert f"accuracy: {model.evaluate(X[:40], y[:40])['accuracy']:.4f}" in out
    assert main(["evaluate", str(path), str(d / "x.csv")]) == 2
    assert "no labels" in capsys.readouterr().err
    assert main(["evaluate", str(d / "d.npz"), str(d / "d.npz")]) == 2
    assert "not a fastbp model file" in capsys.readouterr().err


def test_predict_with_an_estimator_file(trained, capsys):
    pytest.importorskip("sklearn")
    d, _, _, X, y = trained
    labels = np.array(list("abcdefghij"))[y]
    est = fastbp.MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, labels)
    est.save(d / "est.npz")
    assert main(["predict", str(d / "est.npz"), str(d / "x.csv")]) == 0
    assert capsys.readouterr().out.split() == est.predict(X[:7]).tolist()


def test_train_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curve.png"
    assert main(["train", "--epochs", "2", "--hidden", "8", "--verbose", "0",
                 "-o", str(tmp_path / "m.npz"), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _run_script(name, args, monkeypatch):
    monkeypatch.setattr(sys, "argv", [name] + args)
    runpy.run_path(os.path.join(SCRIPTS, name), run_name="__main__")


def test_learning_curve_script(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    _run_script("learning_curve.py", ["--epochs", "2", "--hidden", "8", "--out",
                                      str(tmp_path / "c.png")], monkeypatch)
    assert (tmp_path / "c.png").exists()
    assert "val_acc" in capsys.readouterr().out


def test_sweep_script(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    _run_script("sweep.py", ["--epochs", "1", "--lrs", "0.1,100", "--hidden", "4",
                             "--out", str(tmp_path / "s")], monkeypatch)
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert [(r["lr"], r["hidden"]) for r in rows] == [("0.1", "4"), ("100.0", "4")]
    assert (tmp_path / "s.png").exists()


def test_compare_script_runs(monkeypatch, capsys):
    pytest.importorskip("sklearn")
    _run_script("compare_sklearn.py", ["--seeds", "1", "--max-iter", "2", "--hidden", "4",
                                       "--data", "wine,diabetes"], monkeypatch)
    out = capsys.readouterr().out
    assert "wine" in out and "diabetes" in out and "speed-up" in out


def test_bench_compare_measures_the_roof_in_every_configuration(monkeypatch, capsys):
    """The share of the roof is of the roof measured among that configuration's own rounds."""
    threads = fastbp.get_num_threads()
    # the script fixes thread counts in the environment for the libraries it starts; here
    # Numba's threads run already, and a different NUMBA_NUM_THREADS would break later compiles
    import numba
    monkeypatch.setenv("NUMBA_NUM_THREADS", str(numba.config.NUMBA_NUM_THREADS))
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    try:
        with pytest.raises(SystemExit) as exit_:
            _run_script("bench_compare.py", ["--configs", "S", "--repeat", "2", "--peers", "numpy",
                                             "--threads", "1"], monkeypatch)
    finally:
        fastbp.set_num_threads(threads)
    assert not exit_.value.code
    out = capsys.readouterr().out
    assert "in every round" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("S ")]
    assert [r[1] for r in rows] == ["fastbp", "numpy"]
    for row in rows:
        gflops, roof, pct = float(row[3]), float(row[4]), float(row[5].rstrip("%"))
        # each figure is printed to 0.1, so off by up to 0.05 from the one the share was made of
        off = 100 * 0.05 * (1 + gflops / roof) / (roof - 0.05) + 0.05
        assert roof > 0 and abs(pct - 100 * gflops / roof) <= off + 1e-9
    assert rows[0][6].endswith("x") and rows[1][6].endswith("x")   # fastbp/best, fastbp/this
