"""Checks at the API boundary: everything that reaches a kernel has passed through here."""
import numbers

import numpy as np

_FINITE_CHUNK = 1 << 16  # rows checked at a time, so the check needs little extra memory
_COMPILED_MIN = 1 << 23  # values (32 MiB of float32) from which all_finite uses the compiled kernel


def check_int(name, value, low=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def check_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def all_finite(a):
    """True when no value of a is NaN or infinite.  Large C-contiguous float arrays (a
    training set, checked at every fit) go to a compiled kernel on all threads; the
    rest, in chunks, to NumPy."""
    if a.size >= _COMPILED_MIN and a.dtype in (np.float32, np.float64) and a.flags.c_contiguous:
        from .kernels.finite import all_finite as compiled
        return bool(compiled(a))
    flat = a.reshape(a.shape[0], -1) if a.ndim > 1 else a
    for start in range(0, flat.shape[0], _FINITE_CHUNK):
        if not np.isfinite(flat[start:start + _FINITE_CHUNK]).all():
            return False
    return True


def _as_numeric(name, a):
    if hasattr(a, "to_numpy") and not isinstance(a, np.ndarray):  # pandas objects
        a = a.to_numpy()
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be read as an array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers, got an array of dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real, got complex values")
    return arr


def check_X(X, n_features, dtype, name="X"):
    """X as a C-contiguous (n, n_features) array of ``dtype``; no copy when it already is one."""
    arr = _as_numeric(name, X)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no samples (shape {arr.shape})")
    if arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features, but the model expects {n_features}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not all_finite(arr):
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def check_y(y, n, n_out, output, dtype, name="y"):
    """Targets as an (n, n_out) array of ``dtype`` (class index in column 0 for softmax)."""
    arr = _as_numeric(name, y)
    if arr.shape[:1] != (n,):
        raise ValueError(f"{name} has {arr.shape[0] if arr.ndim else 0} samples but X has {n}")
    if output == "softmax":
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"{name} must hold one integer class label per sample for a softmax "
                             f"output, got shape {arr.shape}")
        if not all_finite(arr) or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name} must hold integer class labels 0..{n_out - 1}")
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi >= n_out:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} contains class label {bad:g}, but the output layer has "
                             f"{n_out} classes (labels 0..{n_out - 1})")
        return np.ascontiguousarray(arr.reshape(n, 1), dtype=dtype)
    if arr.ndim == 1 and n_out == 1:
        arr = arr.reshape(n, 1)
    if arr.ndim != 2 or arr.shape[1] != n_out:
        raise ValueError(f"{name} must have shape ({n}, {n_out}) for a {output} output with "
                         f"{n_out} units, got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not all_finite(arr):
        raise ValueError(f"{name} contains NaN or infinity")
    if output == "sigmoid" and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1] for a sigmoid (binary cross-entropy) output")
    return arr


def sample_weights(sample_weight, class_weight, y, n_out, output, name="sample_weight"):
    """Per-sample weights (n,) float64 from ``sample_weight`` times ``class_weight[label]``
    (Keras's fit), or None when both are None.  ``y`` is already checked (check_y)."""
    if sample_weight is None and class_weight is None:
        return None
    n = y.shape[0]
    w = np.ones(n)
    if sample_weight is not None:
        sw = _as_numeric(name, sample_weight).astype(np.float64)
        if sw.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), one weight per sample, got {sw.shape}")
        if not all_finite(sw) or sw.min() < 0:
            raise ValueError(f"{name} must hold finite weights >= 0")
        w *= sw
    if class_weight is not None:
        if output == "softmax":
            labels, n_classes = y[:, 0].astype(np.int64), n_out
        elif output == "sigmoid" and n_out == 1:
            labels, n_classes = (y[:, 0] > 0.5).astype(np.int64), 2
        else:
            raise ValueError("class_weight needs class labels: a softmax output, or one sigmoid unit")
        counts = np.bincount(labels, minlength=n_classes)
        if isinstance(class_weight, str):
            if class_weight != "balanced":
                raise ValueError(f"class_weight must be a dict or 'balanced', got {class_weight!r}")
            # scikit-learn's compute_class_weight: n / (classes present * count of the class)
            table = np.where(counts > 0, n / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0.0)
        elif isinstance(class_weight, dict):
            table = np.ones(n_classes)
            for c, cw in class_weight.items():
                if isinstance(c, bool) or not isinstance(c, numbers.Integral) or not 0 <= c < n_classes:
                    raise ValueError(f"class_weight key {c!r} is not a class label 0..{n_classes - 1}")
                if isinstance(cw, bool) or not isinstance(cw, numbers.Real) or not np.isfinite(cw) or cw < 0:
                    raise ValueError(f"class_weight[{c!r}] must be a finite number >= 0, got {cw!r}")
                table[int(c)] = float(cw)
        else:
            raise TypeError(f"class_weight must be a dict or 'balanced', got {class_weight!r}")
        w *= table[labels]
    return w
