"""A training checkpoint: an MLP's model file (_mlp_file.py) whose ``training`` section holds
where the run is (written by trainer._save_checkpoint, read back by trainer._resume).

The model's class is passed in (``read(path, MLP)``; fastbp.files.read_checkpoint does), so
the trainer reads checkpoints without importing the model.
"""
from . import _mlp_file, io, optimizers
from .io import BIG, SHORT, ModelFileError, check_rng_state, field, list_of


def save(model, path, training):
    """Write ``model`` with the checkpoint section ``training`` to ``path``, atomically."""
    _mlp_file.save(model, path, training=training)


def check_training(path, training):
    """A checkpoint's training information, every field the trainer uses checked."""
    field(path, "training", training, "dict")
    epoch = field(path, "training.epoch", training.get("epoch"), "int", 0, BIG)
    field(path, "training.epochs", training.get("epochs"), "int", epoch, BIG)
    check_rng_state(path, "training.rng_state_start", training.get("rng_state_start"))
    history = field(path, "training.history", training.get("history"), "dict", optional=True)
    if history is not None:
        list_of(path, "training.history.epoch", history.get("epoch", []), "int")
        series = field(path, "training.history.history", history.get("history", {}), "dict")
        for key, values in series.items():
            list_of(path, f"training.history.history[{SHORT.repr(key)}]", values, "real")
    start = field(path, "training.optimizer_start", training.get("optimizer_start"), "dict",
                  optional=True)
    if start is not None:
        try:
            optimizers.get(start)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: training.optimizer_start is not a valid optimizer "
                                 f"({exc})") from None
    saved = list_of(path, "training.callbacks", training.get("callbacks"), "dict", optional=True)
    for i, entry in enumerate(saved or []):     # each callback checks its own state's fields
        field(path, f"training.callbacks[{i}].class", entry.get("class"), "str")
        field(path, f"training.callbacks[{i}].state", entry.get("state"), "dict")
    return training


def read(path, cls):
    """(model of class ``cls``, training info) from a checkpoint written by
    ``MLP.fit(checkpoint=...)``."""
    def read_file():
        header, arrays = io.read(path)
        if header.get("kind", "mlp") != "mlp" or not isinstance(header.get("training"), dict):
            raise ModelFileError(f"{path} is a fastbp model file but not a training checkpoint")
        return cls._from_file(path, header, arrays), check_training(path, header["training"])
    return io.guarded(path, read_file)
