"""Reading any fastbp file: ``load`` picks the class from the file's ``kind``.

The format is io.py's; each class reads its own section (MLP._from_file, the estimators'
sklearn._from_file, a checkpoint's training section in _checkpoint.py).  This module is the
one place that knows every class a file can hold; scikit-learn is imported only for an
estimator's file.
"""
from . import _checkpoint, io
from .model import MLP


def load(path):
    """Read a file written by ``MLP.save`` or an estimator's ``save``.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    MLP, MLPClassifier or MLPRegressor

    Raises
    ------
    ModelFileError
        The file is not a fastbp model file, is truncated, altered or crafted (any field of
        the wrong type or out of range, sizes that do not match its arrays, non-finite
        parameters), or has a newer format.
    OSError
        The file cannot be opened or read (FileNotFoundError: there is no such file).
    """
    def read():
        header, arrays = io.read(path)
        model = MLP._from_file(path, header, arrays)
        if header.get("kind", "mlp") == "estimator":
            from . import sklearn       # needs scikit-learn, which only estimator files do
            return sklearn._from_file(path, header, arrays, model)
        return model
    return io.guarded(path, read)


def read_checkpoint(path):
    """(model, training info) from a checkpoint written by ``MLP.fit(checkpoint=...)``."""
    return _checkpoint.read(path, MLP)
