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


def _read_csv(path, delimiter=None):
    """(X, None) for a CSV of numbers, (X, labels) when only its last column is not numeric.

    pandas reads it (quoted fields, any delimiter, a header row), not np.loadtxt plus a
    hand-made header check.  The header is detected: a first row that is not all numbers.
    A missing or non-numeric feature cell is reported as "line L, column C" (both counted
    from 1 in the file, the header line included), and so is a ``nan`` cell.
    """
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("reading CSV files needs pandas: pip install 'fastbp[csv]' "
                          "(or pip install pandas)") from None
    sep = delimiter if delimiter else None   # None: sniffed (",", ";", tab, ...)
    try:
        raw = pd.read_csv(path, sep=sep, engine="python", header=None, dtype=str,
                          keep_default_na=False, skipinitialspace=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: could not read it as CSV: {exc}") from None
    if raw.shape[0] == 0:
        raise ValueError(f"{path}: the file is empty")
    numeric = raw.apply(lambda c: pd.to_numeric(c.str.strip(), errors="coerce"))
    has_header = bool(numeric.iloc[0].isna().all()) and raw.shape[0] > 1
    first_line = 2 if has_header else 1
    names = list(raw.iloc[0]) if has_header else [str(i + 1) for i in range(raw.shape[1])]
    raw, numeric = raw.iloc[first_line - 1:], numeric.iloc[first_line - 1:]
    labels = None
    last = raw.columns[-1]
    if raw.shape[1] > 1 and numeric[last].isna().all():
        labels = raw[last].str.strip().to_numpy(dtype=str)    # string labels, e.g. "setosa"
        raw, numeric = raw.iloc[:, :-1], numeric.iloc[:, :-1]
    bad = numeric.isna().to_numpy()
    if bad.any():
        r, c = np.argwhere(bad)[0]
        cell = raw.iat[r, c]
        what = "a missing value" if not cell.strip() else f"{cell!r}, not a number"
        raise ValueError(f"{path}: line {r + first_line}, column {c + 1} ({names[c]!r}) holds "
                         f"{what} ({int(bad.sum())} such cells)")
    return numeric.to_numpy(dtype=np.float64), labels


def read_table(path, delimiter=None):
    """The arrays of a data file: (X, y) from an .npz (y None when absent); from a .csv,
    (table, None) when every column is numeric, or (features, labels) when the last is not
    (see ``_read_csv``)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"data file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "X" not in z.files:
                raise ValueError(f"{path} must hold an array 'X'")
            return z["X"], (z["y"] if "y" in z.files else None)
    if ext in (".csv", ".tsv", ".txt"):
        return _read_csv(path, delimiter)
    raise ValueError(f"data file must end in .npz or .csv, got {path!r}")


def load_file(path, dtype="float32", delimiter=None):
    """(X, y) from an .npz with arrays ``X`` and ``y``, or a .csv whose last column is the label.

    A CSV may start with one header line of column names; it is skipped.
    """
    X, y = read_table(path, delimiter)
    if y is None:
        if str(path).lower().endswith(".npz"):
            raise ValueError(f"{path} must hold arrays 'X' and 'y'; missing ['y']")
        if X.shape[1] < 2:
            raise ValueError(f"{path} needs at least one feature column and a label column")
        X, y = X[:, :-1], X[:, -1]
    return np.asarray(X, dtype=dtype), np.asarray(y)
