"""Data: the embedded digits set, and .npz / .csv files."""
import os
from importlib import resources

import numpy as np


def load_digits(dtype="float32"):
    """The 8x8 handwritten digits (1,797 samples, 64 features scaled to [0, 1], 10 classes).

    Returns
    -------
    X : ndarray (1797, 64) of dtype
    y : ndarray (1797,) int64
    """
    with resources.files("fastbp.data").joinpath("digits.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as z:
            X, y = z["X"], z["y"]
    return (X / 16.0).astype(dtype), y.astype(np.int64)


def read_table(path):
    """The arrays of a data file: (X, y) from an .npz (y None when absent), or (table, None)
    from a .csv of numbers (one header line of column names is skipped)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"data file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "X" not in z.files:
                raise ValueError(f"{path} must hold an array 'X'")
            return z["X"], (z["y"] if "y" in z.files else None)
    if ext == ".csv":
        with open(path) as f:
            first = f.readline()
        try:
            [float(v) for v in first.strip().split(",")]
            skip = 0
        except ValueError:
            skip = 1
        try:
            return np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64), None
        except ValueError as exc:
            raise ValueError(f"{path}: could not read numbers: {exc}") from None
    raise ValueError(f"data file must end in .npz or .csv, got {path!r}")


def load_file(path, dtype="float32"):
    """(X, y) from an .npz with arrays ``X`` and ``y``, or a .csv whose last column is the label.

    A CSV may start with one header line of column names; it is skipped.
    """
    X, y = read_table(path)
    if y is None:
        if str(path).lower().endswith(".npz"):
            raise ValueError(f"{path} must hold arrays 'X' and 'y'; missing ['y']")
        if X.shape[1] < 2:
            raise ValueError(f"{path} needs at least one feature column and a label column")
        X, y = X[:, :-1], X[:, -1]
    return np.asarray(X, dtype=dtype), np.asarray(y)
