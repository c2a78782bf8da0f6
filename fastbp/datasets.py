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


def load_file(path, dtype="float32"):
    """(X, y) from an .npz with arrays ``X`` and ``y``, or a .csv whose last column is the label.

    A CSV may start with one header line of column names; it is skipped.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"data file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            missing = {"X", "y"} - set(z.files)
            if missing:
                raise ValueError(f"{path} must hold arrays 'X' and 'y'; missing {sorted(missing)}")
            X, y = z["X"], z["y"]
    elif ext == ".csv":
        with open(path) as f:
            first = f.readline()
        try:
            [float(v) for v in first.strip().split(",")]
            skip = 0
        except ValueError:
            skip = 1
        try:
            data = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
        except ValueError as exc:
            raise ValueError(f"{path}: could not read numbers: {exc}") from None
        if data.shape[1] < 2:
            raise ValueError(f"{path} needs at least one feature column and a label column")
        X, y = data[:, :-1], data[:, -1]
    else:
        raise ValueError(f"data file must end in .npz or .csv, got {path!r}")
    return np.asarray(X, dtype=dtype), np.asarray(y)
