"""The record of a training run."""


class History:
    """Per-epoch figures of one ``fit``.

    Attributes
    ----------
    history : dict of str to list
        "loss" and, where they apply, "accuracy", "val_loss", "val_accuracy", plus
        "epoch_time" (seconds) and "samples_per_second" of the training loop.
    epoch : list of int
        The epoch numbers recorded.
    interrupted : bool
        True when Ctrl-C stopped the run; the weights are those of the last completed step.
    partial : dict or None
        When the run stopped inside an epoch (Ctrl-C, or divergence with
        ``fastbp.TerminateOnNaN`` or a ``DivergenceError``), ``{"epoch", "minibatches",
        "of"}``: that epoch is the last one recorded, its "loss" and "accuracy" over the
        minibatches that ran, without validation figures (so "val_*" lists are one shorter).
    """

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.interrupted = False
        self.partial = None

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        keys = ", ".join(self.history)
        return f"History(epochs={len(self.epoch)}, keys=[{keys}])"
