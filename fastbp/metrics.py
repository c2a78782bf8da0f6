"""Metrics computed from one pass of predictions: ``evaluate(X, y, metrics=[...])`` and
``fit(..., metrics=[...])``.  Definitions follow scikit-learn.metrics (macro averages).

Names: "top_k_accuracy" (k=5) or "top_<k>_accuracy"; "precision", "recall", "f1" (macro
over classes; binary/sigmoid outputs thresholded at 0.5); "roc_auc" (one sigmoid unit, or
a 2-class softmax); "r2" (uniform average over outputs) and "mae" for regression.
"""
import re

import numpy as np

_CLASSIFY = ("precision", "recall", "f1")


def check(metrics, output):
    """The metric names as a list, each checked against the model's output."""
    if metrics is None:
        return []
    if isinstance(metrics, str):
        metrics = [metrics]
    metrics = list(metrics)
    for m in metrics:
        if not isinstance(m, str):
            raise TypeError(f"metrics must be names, got {m!r}")
        top = re.fullmatch(r"top_(k|\d+)_accuracy", m)
        if top:
            if output != "softmax":
                raise ValueError(f"metric {m!r} needs a softmax output")
            if top.group(1) != "k" and int(top.group(1)) < 1:
                raise ValueError(f"metric {m!r}: k must be >= 1")
        elif m in _CLASSIFY or m == "roc_auc":
            if output == "identity":
                raise ValueError(f"metric {m!r} needs a softmax or sigmoid output")
        elif m in ("r2", "mae"):
            if output != "identity":
                raise ValueError(f"metric {m!r} is for regression (an identity output)")
        else:
            raise ValueError(f"unknown metric {m!r}; known: top_k_accuracy, top_<k>_accuracy, "
                             "precision, recall, f1, roc_auc, r2, mae")
    return metrics


def _roc_auc(score, t):
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos = t.sum()
    neg = t.shape[0] - pos
    if pos == 0 or neg == 0:
        raise ValueError("roc_auc needs both classes among the targets")
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(s.shape[0])
    i = 0
    while i < s.shape[0]:   # average ranks over ties
        j = i
        while j + 1 < s.shape[0] and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[t == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def compute(metrics, p, y, output):
    """{name: value} from predictions p (n, n_out) and checked targets y (n, n_out)."""
    out = {}
    p = p.astype(np.float64)
    if output == "softmax":
        labels = y[:, 0].astype(np.int64)
        pred = p.argmax(1)
        k_classes = p.shape[1]
    elif output == "sigmoid":
        labels = (y > 0.5).astype(np.int64).ravel()
        pred = (p > 0.5).astype(np.int64).ravel()
        k_classes = 2
    for m in metrics:
        top = re.fullmatch(r"top_(k|\d+)_accuracy", m)
        if top:
            k = 5 if top.group(1) == "k" else int(top.group(1))
            k = min(k, p.shape[1])
            topk = np.argpartition(-p, k - 1, axis=1)[:, :k]
            out[m] = float((topk == labels[:, None]).any(1).mean())
        elif m in _CLASSIFY:
            present = np.union1d(labels, pred) if output == "softmax" else np.arange(k_classes)
            prec, rec, f1 = [], [], []
            for c in present:
                tp = np.sum((pred == c) & (labels == c))
                fp = np.sum((pred == c) & (labels != c))
                fn = np.sum((pred != c) & (labels == c))
                pr = tp / (tp + fp) if tp + fp else 0.0
                rc = tp / (tp + fn) if tp + fn else 0.0
                prec.append(pr)
                rec.append(rc)
                f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
            out[m] = float(np.mean({"precision": prec, "recall": rec, "f1": f1}[m]))
        elif m == "roc_auc":
            if output == "softmax":
                if p.shape[1] != 2:
                    raise ValueError("roc_auc is for binary problems: one sigmoid unit or 2 softmax classes")
                out[m] = _roc_auc(p[:, 1], labels)
            else:
                if p.shape[1] != 1:
                    raise ValueError("roc_auc is for binary problems: one sigmoid unit or 2 softmax classes")
                out[m] = _roc_auc(p[:, 0], labels)
        elif m == "r2":
            t = y.astype(np.float64)
            ss_res = ((t - p) ** 2).sum(0)
            ss_tot = ((t - t.mean(0)) ** 2).sum(0)
            out[m] = float(np.mean(1 - ss_res / np.where(ss_tot == 0, 1.0, ss_tot)))
        elif m == "mae":
            out[m] = float(np.abs(y.astype(np.float64) - p).mean())
    return out
