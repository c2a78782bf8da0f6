import subprocess
import sys

import numpy as np

from fastbp.cli import main


def test_train_on_default_data(tmp_path, capsys):
    out = tmp_path / "model.npz"
    assert main(["train", "--epochs", "3", "--verbose", "0", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "held-out accuracy" in text and "samples/s" in text
    assert out.exists()


def test_train_on_csv_and_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = (X[:, 0] > 0).astype(int)
    csv = tmp_path / "d.csv"
    np.savetxt(csv, np.column_stack([X, y]), delimiter=",", header="a,b,c,label", comments="")
    assert main(["train", "--data", str(csv), "--epochs", "2", "--hidden", "4", "--verbose", "0",
                 "--standardize", "-o", str(tmp_path / "a.npz")]) == 0
    npz = tmp_path / "d.npz"
    np.savez(npz, X=X, y=y)
    assert main(["train", "--data", str(npz), "--epochs", "2", "--optimizer", "adam", "--dtype",
                 "float64", "--verbose", "0", "-o", str(tmp_path / "b.npz")]) == 0
    assert "2 classes" in capsys.readouterr().out


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    import pytest
    with pytest.raises(SystemExit) as e:   # refused by the parser, before any work
        main(["train", "--epochs", "-1", "--verbose", "0", "-o", str(tmp_path / "x.npz")])
    assert e.value.code == 2
    assert "--epochs: must be at least 1" in capsys.readouterr().err


def test_python_dash_m(tmp_path):
    r = subprocess.run([sys.executable, "-m", "fastbp", "train", "--epochs", "1", "--verbose", "0",
                        "-o", str(tmp_path / "m.npz")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "held-out accuracy" in r.stdout
