"""The estimators' part of a model file (the format: io.py): an MLP's file (_mlp_file.py)
holding the network, whose ``estimator`` section holds the class's public name, its
parameters and fitted attributes, and whose ``optimizer`` entry adds the estimator's scale.

``MLPClassifier.save`` / ``MLPRegressor.save`` and sklearn._from_file call these; the
classes and the optimizers' constructors are passed in, so this module imports none of them.
"""
import re

import numpy as np
from sklearn.base import is_classifier
from sklearn.preprocessing import LabelBinarizer

from . import _mlp_file, io, optimizers
from ._validation import check_int
from .io import BIG, SHORT, ModelFileError, field, list_of

# fitted attributes of an estimator: (kind, optional) of each known one
_FITTED = {"n_iter_": ("int", False), "t_": ("int", False), "_no_improvement_count": ("int", False),
           "loss_": ("real", True), "best_loss_": ("real", True),
           "best_validation_score_": ("real", True), "n_features_in_": ("int", False),
           "n_layers_": ("int", False), "n_outputs_": ("int", False)}
_WRITTEN = ("n_iter_", "t_", "loss_", "loss_curve_", "best_loss_", "validation_scores_",
            "best_validation_score_", "n_features_in_", "n_layers_", "n_outputs_",
            "out_activation_", "_no_improvement_count")
_LABEL_TYPES = ("binary", "multiclass", "multilabel-indicator")
_OTHER_FITTED = re.compile(r"[a-z][a-z0-9_]{0,63}_\Z")   # public fitted names of newer versions
# the optimizer's name in files written before issue 19 (private class names)
_OLD_OPTIMIZER_NAMES = {"_SkSGD": "sgd", "_SkAdam": "adam"}


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def save(est, path):
    """Write a fitted ``MLPClassifier`` / ``MLPRegressor`` to ``path`` (no pickle)."""
    header, arrays = _mlp_file.parts(est._model)
    params = {k: _jsonable(v) for k, v in est.get_params(deep=False).items()}
    if not (params["random_state"] is None or isinstance(params["random_state"], int)):
        params["random_state"] = None   # a RandomState object has no plain-data form
    fitted = {}
    for name in _WRITTEN:
        if hasattr(est, name):
            value = getattr(est, name)
            fitted[name] = [_jsonable(v) for v in value] if isinstance(value, list) else _jsonable(value)
    if hasattr(est, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(v) for v in est.feature_names_in_]
    opt = est._optimizer
    arrays["optimizer_state"] = opt.state
    # "sgd" / "adam", the config's own name, and the scale between the losses (sklearn.py)
    header["optimizer"] = dict(optimizers.to_file(opt), scale=opt.scale)
    if hasattr(est, "classes_"):
        classes = np.asarray(est.classes_)
        if classes.dtype == object:
            if not all(isinstance(c, str) for c in classes):
                raise ValueError("classes_ of mixed or object types cannot be saved without "
                                 "pickle; use numbers or strings as labels")
            classes = classes.astype(str)
        arrays["classes"] = classes
        fitted["label_type"] = est._label_binarizer.y_type_
    header["kind"] = "estimator"
    header["estimator"] = {"class": type(est).__name__, "params": params, "fitted": fitted}
    io.write(path, header, arrays)


def _check_fitted(path, fitted, cls, model):
    """The estimator's fitted attributes, checked against each other and the network."""
    fitted = dict(field(path, "estimator.fitted", fitted, "dict"))
    for name, (kind, optional) in _FITTED.items():
        if name in fitted:
            low, high = (0, BIG) if kind == "int" else (None, None)
            field(path, f"estimator.fitted.{name}", fitted[name], kind, low, high, optional)
    for name in ("loss_curve_", "validation_scores_"):
        list_of(path, f"estimator.fitted.{name}", fitted.get(name), "real", optional=True)
    names = fitted.pop("feature_names_in_", None)
    list_of(path, "estimator.fitted.feature_names_in_", names, "str", optional=True)
    expected = {"n_features_in_": model.sizes[0], "n_layers_": len(model.sizes),
                "n_outputs_": model.sizes[-1],
                "out_activation_": {"softmax": "softmax", "sigmoid": "logistic",
                                    "identity": "identity"}[model.output]}
    if names is not None:
        expected["feature_names_in_"] = model.sizes[0]
    for name, value in expected.items():
        got = len(names) if name == "feature_names_in_" else fitted.get(name)
        if got != value:
            raise ModelFileError(f"{path}: estimator.fitted.{name} is {SHORT.repr(got)}, but the "
                                 f"network ({'-'.join(map(str, model.sizes))} {model.output}) "
                                 f"needs {value!r}")
    for name in list(fitted):
        if name not in _FITTED and name not in expected and name not in (
                "loss_curve_", "validation_scores_", "label_type") and (
                not _OTHER_FITTED.match(name) or hasattr(cls, name)):
            del fitted[name]   # never let a file set a method or a private attribute
    return fitted, names


def _check_classes(path, classes, label_type, n_outputs):
    if label_type not in _LABEL_TYPES:
        raise ModelFileError(f"{path}: estimator.fitted.label_type must be one of {_LABEL_TYPES}, "
                             f"got {SHORT.repr(label_type)}")
    if classes is None or classes.ndim != 1:
        raise ModelFileError(f"{path}: a classifier needs a one-dimensional 'classes' array")
    n = classes.shape[0]
    if not ((label_type == "binary" and n_outputs == 1 and n in (1, 2))
            or (label_type != "binary" and n == n_outputs and n >= 2)):
        raise ModelFileError(f"{path}: {n} classes ({label_type}) do not fit {n_outputs} outputs")


def _optimizer(path, entry, make):
    """The estimator's optimizer from its header entry: make[name](entry, scale)."""
    opt = dict(field(path, "optimizer", entry, "dict"))
    try:
        name = opt.pop("name")
        scale = field(path, "optimizer.scale", opt["scale"], "real", 1e-300, 1e300)
        name = _OLD_OPTIMIZER_NAMES.get(name, name) if isinstance(name, str) else name
        if not isinstance(name, str) or name not in make:
            raise ValueError(f"unknown optimizer {SHORT.repr(name)}")
        optimizer = make[name](opt, scale)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path} has an invalid estimator optimizer: {exc!r}") from None
    optimizer.steps = field(path, "optimizer.steps", opt.get("steps"), "int", 0, 1 << 53)
    return optimizer


def build(path, header, arrays, model, classes, make_optimizer):
    """The estimator of a file's (header, arrays), around ``model``, its network
    (``MLP._from_file``).  ``classes``: {public name: class};
    ``make_optimizer``: {"sgd" / "adam": function (header entry, scale) -> optimizer}."""
    info = field(path, "estimator", header.get("estimator"), "dict")
    if not isinstance(info.get("class"), str) or info["class"] not in classes:
        raise ModelFileError(f"{path}: estimator.class must be one of {sorted(classes)}, got "
                             f"{SHORT.repr(info.get('class'))}")
    cls = classes[info["class"]]
    params = dict(field(path, "estimator.params", info.get("params"), "dict"))
    try:
        if isinstance(params.get("hidden_layer_sizes"), list):
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        est = cls(**params)
        est._validate_params()      # scikit-learn's own constraints on every parameter
        if est.n_threads is not None:   # which let True through as an integer
            check_int("n_threads", est.n_threads, low=1)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} has invalid estimator parameters: {exc}") from None
    classifier = is_classifier(est)
    fitted, names = _check_fitted(path, info.get("fitted"), cls, model)
    optimizer = _optimizer(path, header.get("optimizer"), make_optimizer)
    state = arrays.get("optimizer_state")
    if state is not None:
        optimizers.check_state(path, "optimizer_state", state, model.params)
        optimizer.bind(model.params)[...] = state
    else:
        optimizer.bind(model.params)
    label_type = fitted.pop("label_type", None)
    if classifier:
        _check_classes(path, arrays.get("classes"), label_type, model.sizes[-1])
    for key, value in fitted.items():
        setattr(est, key, value)
    if names is not None:
        est.feature_names_in_ = np.asarray(names, dtype=object)
    if classifier:
        lb = LabelBinarizer()
        lb.classes_ = arrays["classes"]
        lb.y_type_ = label_type
        lb.sparse_input_ = False
        est._label_binarizer = lb
        est.classes_ = lb.classes_
    est._model = model
    model.n_threads = est.n_threads
    est._optimizer = optimizer
    est._best_params = model.params.copy()
    return est
