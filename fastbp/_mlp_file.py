"""The MLP's part of a model file (the format: io.py): its header fields and arrays,
written, and read back with every field checked before the model is built.

``MLP.save`` and ``MLP._from_file`` call these; an estimator's file and a checkpoint are an
MLP's file with a section more (_estimator_file.py, _checkpoint.py).  The model's class is
passed in, so this module imports no class of fastbp's but the optimizers.
"""
import numpy as np

from . import io
from . import optimizers
from .io import BIG, SHORT, ModelFileError, check_finite, check_rng_state, field, list_of

MAX_LAYERS = 4096

# (model attribute, array name): what `fastbp train` learnt from the data, class labels (any
# dtype), the training split's feature mean/std and the rows it held out; a model trained
# from Python has none
_DATA_ATTRS = (("classes_", "labels"), ("input_mean", "input_mean"), ("input_std", "input_std"),
               ("held_out_rows", "held_out_rows"))


def parts(model, training=None):
    """(header, arrays) of an MLP's file; ``training``: a checkpoint's section, or None."""
    arrays = {"params": model.params}
    opt = None
    if model.optimizer is not None and model.optimizer.state is not None:
        arrays["optimizer_state"] = model.optimizer.state
        opt = optimizers.to_file(model.optimizer)
    for name, key in _DATA_ATTRS:
        if getattr(model, name, None) is not None:
            arrays[key] = np.asarray(getattr(model, name))
    header = {"kind": "mlp", "config": model.get_config(), "optimizer": opt,
              "rng_state": model.rng.bit_generator.state, "epoch": int(getattr(model, "epoch", 0)),
              "dropout_seed": model.dropout_seed,
              "training": training, "estimator": None}
    return header, arrays


def save(model, path, training=None):
    """Write an MLP (and its optimizer state, RNG state, epoch count) to ``path``, atomically;
    ``training``: a checkpoint's section (_checkpoint.py), or None for a plain model file."""
    io.write(path, *parts(model, training))


def _check_config(path, header):
    """(config, number of parameters) of the header's architecture, every field checked."""
    config = field(path, "config", header.get("config"), "dict")
    sizes = field(path, "config.sizes", config.get("sizes"), "list")
    if not 2 <= len(sizes) <= MAX_LAYERS + 1:
        raise ModelFileError(f"{path}: config.sizes has {len(sizes)} entries, not 2 to {MAX_LAYERS + 1}")
    for i, s in enumerate(sizes):
        field(path, f"config.sizes[{i}]", s, "int", 1, 1 << 31)
    activation = config.get("activation")
    if not isinstance(activation, str):
        list_of(path, "config.activation", activation, "str")
    field(path, "config.output", config.get("output"), "str")
    if config.get("dtype") not in ("float32", "float64"):
        raise ModelFileError(f"{path}: config.dtype must be 'float32' or 'float64', got "
                             f"{SHORT.repr(config.get('dtype'))}")
    field(path, "config.seed", config.get("seed"), "int", 0, 1 << 128, optional=True)
    return config, sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def _check_data_attr(path, key, a, sizes):
    """Labels, input scaling and held-out rows stored by `fastbp train`."""
    if key == "labels":
        ok = a.ndim == 1 and a.shape[0] == sizes[-1]
    elif key in ("input_mean", "input_std"):
        ok = a.dtype.kind == "f" and a.shape == (sizes[0],)
        check_finite(path, key, a)
        if ok and key == "input_std" and not np.all(a != 0):
            raise ModelFileError(f"{path}: array 'input_std' holds zeros")
    else:
        ok = a.dtype.kind in "iu" and a.ndim == 1 and a.shape[0] >= 1 and a.min() >= 0
    if not ok:
        raise ModelFileError(f"{path}: array {key!r} has shape {a.shape} {a.dtype}, which does "
                             f"not fit a {'-'.join(map(str, sizes))} model")


def build(cls, path, header, arrays):
    """An MLP of class ``cls`` from a file's (header, arrays) as io.read returns them: the
    model of an "mlp" file with its optimizer, or the network of an "estimator" file."""
    config, n_params = _check_config(path, header)
    params = arrays["params"]
    # declared sizes against the array really there, before the model allocates anything
    if params.shape != (n_params,) or params.dtype != np.dtype(config["dtype"]):
        raise ModelFileError(f"{path}: config.sizes {config['sizes']} need {n_params} "
                             f"{config['dtype']} parameters; the file holds {params.shape} "
                             f"{params.dtype}")
    check_finite(path, "params", params)
    kind = header.get("kind", "mlp")
    if kind not in ("mlp", "estimator"):
        raise ModelFileError(f"{path}: kind must be 'mlp' or 'estimator', got {SHORT.repr(kind)}")
    try:
        model = cls(config["sizes"], activation=config.get("activation", "sigmoid"),
                    output=config["output"], dtype=config["dtype"], seed=config.get("seed"),
                    dropout=config.get("dropout", 0.0))
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} has an invalid model description: {exc}") from None
    # the model's seed (bounded as config.seed) or, without one, drawn below 2^63
    dropout_seed = field(path, "dropout_seed", header.get("dropout_seed"), "int", 0, 1 << 128,
                         optional=True)
    if dropout_seed is not None:
        model.dropout_seed = dropout_seed
    model.params[:] = params
    if header.get("rng_state") is not None:
        model.rng.bit_generator.state = check_rng_state(path, "rng_state", header["rng_state"])
    model.epoch = field(path, "epoch", header.get("epoch"), "int", 0, BIG, optional=True) or 0
    if kind == "mlp":
        for name, key in _DATA_ATTRS:
            if key in arrays:
                _check_data_attr(path, key, arrays[key], model.sizes)
                setattr(model, name, arrays[key])
    opt = header.get("optimizer")
    opt_state = arrays.get("optimizer_state")
    if opt is not None and opt_state is not None and kind == "mlp":
        model.optimizer = optimizers.from_file(path, opt, opt_state, model.params)
    return model
