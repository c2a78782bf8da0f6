"""Plots of training runs (matplotlib, imported only when a plot is asked for)."""
import os


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'fastbp[plot]'") from None
    matplotlib.use("Agg", force=False)   # files only; no display needed
    import matplotlib.pyplot as plt
    return plt


def plot_history(history, path, title=None):
    """Save a learning-curve figure: loss (left) and accuracy (right) per epoch, training
    and validation.

    Parameters
    ----------
    history : History or dict
        ``History`` from ``MLP.fit`` or its ``.history`` dict ("loss", "val_loss",
        "accuracy", "val_accuracy"; the validation and accuracy curves where present).
    path : str or os.PathLike
        Image file to write; the format follows the extension (.png, .pdf, .svg).
    title : str or None
        Figure title.

    Returns
    -------
    str
        The path written.
    """
    logs = getattr(history, "history", history)
    if not logs.get("loss"):
        raise ValueError("the history has no epochs to plot")
    plt = _pyplot()
    epochs = list(range(1, len(logs["loss"]) + 1))
    has_acc = "accuracy" in logs
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 4.2),
                             squeeze=False)
    panels = [("loss", "loss (lower is better)")] + ([("accuracy", "accuracy")] if has_acc else [])
    for ax, (key, label) in zip(axes[0], panels):
        ax.plot(epochs, logs[key], marker="o", ms=3, label="training")
        if "val_" + key in logs:
            ax.plot(epochs, logs["val_" + key], marker="s", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = os.fspath(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
