"""The MLP model: owns the parameter buffer, validates input once, and calls the kernels."""
import math

import numpy as np

from . import _mlp_file
from . import _validation as V
from ._layer import Layer, _check_activation, _check_dropout
from ._config import PREDICT_CHUNK
from ._memory import aligned_zeros
from ._threads import using_threads
from .kernels import activations as _act
from .kernels import dropout as _drop
from .kernels import layout as _layout
from .kernels import loss as _loss
from .kernels.step import eval_batch, predict_batch, threading_for

OUTPUTS = tuple(_loss.CODES)
_EVAL_ELEMENTS = 1 << 22  # activations per evaluation chunk (16 MiB in float32)


class MLP:
    """A multi-layer perceptron trained by minibatch backpropagation.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n_in, h1, ..., n_out]``, at least two entries, each >= 1.
    activation : {"sigmoid", "tanh", "relu", "identity"} or list of them
        Activation of the hidden layers: one name for all, or one name per hidden layer.
    output : {"softmax", "sigmoid", "identity"}
        Output layer and loss: softmax + cross-entropy on integer labels, sigmoid +
        binary cross-entropy on targets in [0, 1], identity + mean squared error.
    dtype : {"float32", "float64"}
        Floating-point type of parameters and computation.
    seed : int or None
        Seeds the initial weights and every later random choice (shuffling, splits).
    n_threads : int or None
        Threads for this model's kernels; None uses the current setting.
    dropout : float in [0, 1) or list of them
        Inverted dropout on the hidden layers' outputs in training (one rate for all, or one
        per hidden layer): each unit is zeroed with probability p and the kept ones are
        scaled by 1 / (1 - p); predict and evaluate use every unit.  The masks are drawn
        inside the compiled step from (seed, layer, step, row, column), so they depend
        neither on the thread count nor on how steps are grouped into calls.

    Attributes
    ----------
    params : ndarray
        Every weight and bias in one flat buffer: each layer's weight (n_out, n_in) in C
        order, then its bias.  ``layers[l].weight`` and ``.bias`` are views of it.
    grads : ndarray
        The gradient of the last training step, laid out as ``params`` (PyTorch's
        ``.grad``): for gradient checks and inspection.
    layers : list of Layer
        One per dense layer: ``weight``, ``bias``, ``activation``, ``n_in``, ``n_out``.
    optimizer, history, epoch
        The optimizer of the last fit (its state continues in the next), that fit's
        History, and the training epochs completed over the model's life.
    input_mean, input_std : ndarray or None
        Feature scaling applied to every input (``check_X``) when set, as a
        ``fastbp train --standardize`` model carries it.
    rng : numpy.random.Generator
        The model's random generator (shuffles, splits), seeded by ``seed``.
    meta : ndarray of int64
        The network as the kernels read it, a row per layer (kernels/layout.py); with
        ``workspace(b)``, the buffers of a minibatch of up to b rows, what the kernel
        benchmarks and tests pass to the compiled steps.  Not needed to train or predict.
    """

    def __init__(self, sizes, activation="sigmoid", output="softmax", dtype="float32", seed=0,
                 n_threads=None, dropout=0.0):
        # (activation: one name for every hidden layer, or a list with one name per hidden layer)
        try:
            sizes = [V.check_int("sizes[%d]" % i, s, low=1) for i, s in enumerate(sizes)]
        except TypeError:
            if not hasattr(sizes, "__iter__"):
                raise TypeError(f"sizes must be a list of layer widths, got {sizes!r}") from None
            raise
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least an input and an output width, got {sizes}")
        activation = _check_activation(activation, len(sizes) - 2)
        dropout = _check_dropout(dropout, len(sizes) - 2)
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if output == "softmax" and sizes[-1] < 2:
            raise ValueError("a softmax output needs at least 2 units; use output='sigmoid' "
                             "for one binary target")
        if seed is not None:
            seed = V.check_int("seed", seed, low=0)
        if n_threads is not None:
            V.check_int("n_threads", n_threads, low=1)
        self.sizes = sizes
        self.activation = activation
        self.dropout = dropout
        # the masks' seed: the model's, or drawn once (model files and checkpoints keep it)
        self.dropout_seed = seed if seed is not None else int(np.random.SeedSequence().entropy % (1 << 63))
        self.output = output
        self.dtype = V.check_dtype(dtype)
        self.seed = seed
        self.n_threads = n_threads
        self.stop_training = False
        self.epoch = 0          # training epochs completed over the model's life
        self.history = None
        self.optimizer = None
        # set by `fastbp train` and kept in the model file (None otherwise): the original
        # class labels, index i = output i, and the training split's feature mean/std,
        # which check_X applies to every X the model is given
        self.classes_ = None
        self.input_mean = None
        self.input_std = None
        self.held_out_rows = None   # rows of the training file held out by `fastbp train`
        self._workspaces = {}
        self._build()
        self.rng = np.random.default_rng(seed)
        self.init_weights(self.rng)

    # -- structure ---------------------------------------------------------------------
    def _build(self):
        n_layers = len(self.sizes) - 1
        meta = np.zeros((n_layers, _layout.META_COLUMNS), dtype=np.int64)   # (kernels/layout.py)
        L = _layout
        off = 0
        for l in range(n_layers):
            n_in, n_out = self.sizes[l], self.sizes[l + 1]
            act = _act.IDENTITY if l == n_layers - 1 else _act.CODES[self.hidden_activations[l]]
            meta[l, [L.N_IN, L.N_OUT, L.W_OFF, L.B_OFF, L.ACT]] = (n_in, n_out, off, off + n_in * n_out, act)
            off += n_in * n_out + n_out
        self._set_dropout_meta(meta)
        self.meta = meta
        self.params = aligned_zeros(off, self.dtype)
        self.grads = aligned_zeros(off, self.dtype)
        self.layers = []
        for l in range(n_layers):
            n_in, n_out, w_off, b_off = meta[l, [L.N_IN, L.N_OUT, L.W_OFF, L.B_OFF]]
            act = self.output if l == n_layers - 1 else self.hidden_activations[l]
            self.layers.append(Layer(self.params[w_off:w_off + n_in * n_out].reshape(n_out, n_in),
                                     self.params[b_off:b_off + n_out], act))
        self._out_code = _loss.CODES[self.output]

    def _set_dropout_meta(self, meta):
        """meta's dropout columns (kernels/dropout.py): threshold and key of each hidden layer."""
        for l, p in enumerate(self.hidden_dropout):
            meta[l, _drop.DROP_THRESHOLD] = _drop.threshold(p)
            meta[l, _drop.DROP_KEY] = _drop.layer_key(self.dropout_seed, l)

    @property
    def dropout_seed(self):
        """Seeds the dropout masks (the model's seed unless that is None)."""
        return self._dropout_seed

    @dropout_seed.setter
    def dropout_seed(self, value):
        self._dropout_seed = V.check_int("dropout_seed", value, low=0)
        if getattr(self, "meta", None) is not None:
            self._set_dropout_meta(self.meta)

    @property
    def hidden_dropout(self):
        """One dropout rate per hidden layer."""
        if isinstance(self.dropout, list):
            return list(self.dropout)
        return [self.dropout] * (len(self.sizes) - 2)

    def init_weights(self, rng):
        """Glorot-uniform weights, W ~ U(-r, r) with r = sqrt(6 / (n_in + n_out)); zero biases."""
        for layer in self.layers:
            r = math.sqrt(6.0 / (layer.n_in + layer.n_out))
            layer.weight[...] = rng.uniform(-r, r, size=layer.weight.shape)
            layer.bias[...] = 0

    @property
    def hidden_activations(self):
        """One activation name per hidden layer."""
        if isinstance(self.activation, str):
            return [self.activation] * (len(self.sizes) - 2)
        return list(self.activation)

    @property
    def n_params(self):
        return self.params.shape[0]

    def __repr__(self):
        drop = f", dropout={self.dropout!r}" if any(self.hidden_dropout) else ""
        return (f"MLP({self.sizes}, activation={self.activation!r}, output={self.output!r}, "
                f"dtype={self.dtype.name!r}, seed={self.seed!r}{drop})")

    # -- pickling --------------------------------------------------------------------
    def __getstate__(self):
        # layers hold views of params; pickle would copy them apart, so rebuild on load
        state = self.__dict__.copy()
        for key in ("layers", "grads", "meta", "_workspaces", "_out_code"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        params = state.pop("params")
        self.__dict__.update(state)
        self._workspaces = {}
        self._build()
        self.params[:] = params

    # -- workspaces --------------------------------------------------------------------
    def workspace(self, b_max):
        """Flat buffers for minibatches of up to b_max rows, allocated once and reused."""
        ws = self._workspaces.get(b_max)
        if ws is None:
            if len(self._workspaces) >= 3:   # train, evaluate, predict sizes
                self._workspaces.pop(next(iter(self._workspaces)))
            ws = _layout.make_workspace(self.sizes, b_max, self.dtype, any(self.hidden_dropout))
            self._workspaces[b_max] = ws
        return ws

    def _eval_chunk(self, n):
        return max(1, min(n, PREDICT_CHUNK, _EVAL_ELEMENTS // sum(self.sizes)))

    # -- checks ------------------------------------------------------------------------
    def check_X(self, X, name="X"):
        """X checked and in the model's dtype; scaled by ``input_mean``/``input_std`` when
        the model carries them (a ``fastbp train --standardize`` model), so raw features go
        in everywhere: fit, predict, evaluate, validation data."""
        if self.input_mean is None:
            return V.check_X(X, self.sizes[0], self.dtype, name)
        # scaled in float64, as `fastbp train` scaled its training split, then cast
        X = V.check_X(X, self.sizes[0], np.float64, name)
        return np.ascontiguousarray((X - self.input_mean) / self.input_std, dtype=self.dtype)

    def check_y(self, y, n, name="y"):
        return V.check_y(y, n, self.sizes[-1], self.output, self.dtype, name)

    def _threads(self, n_threads):
        return using_threads(n_threads if n_threads is not None else self.n_threads)

    # -- training ----------------------------------------------------------------------
    def fit(self, X, y=None, epochs=10, batch_size=32, optimizer=None, shuffle=True,
            validation_data=None, validation_split=0.0, callbacks=None, verbose=1,
            n_threads=None, checkpoint=None, checkpoint_every=1, resume=None, metrics=None,
            sample_weight=None, class_weight=None, distributed=None):
        """Train by minibatch gradient descent.

        Parameters
        ----------
        X : array (n, n_in), or an iterable of (X, y) chunks with y omitted
            Inputs.  float arrays of the model's dtype in C order are used without a copy.
            Chunks (a list, or a function returning a new iterator per epoch) are read in
            order each epoch, minibatches spanning chunk boundaries, so the weights equal
            ``fit(X_all, y_all, shuffle=False)``; shuffle, validation, checkpoints, metrics
            and weights do not apply to them.
        y : array
            Integer labels (n,) for softmax; (n, n_out) targets for sigmoid and identity
            ((n,) is accepted when n_out == 1).
        epochs : int
            Passes over the training data.
        batch_size : int
            Samples per gradient step; the last minibatch of an epoch may be smaller.
        optimizer : Optimizer, "sgd", "adam" or None
            None keeps the optimizer of the previous ``fit`` (and its state), or SGD(lr=0.1).
        shuffle : bool
            Visit the samples in a new seeded random order each epoch.
        validation_data : (X_val, y_val) or None
            Held-out data evaluated after each epoch ("val_loss", "val_accuracy").
        validation_split : float in [0, 1)
            Fraction of (X, y), chosen by a seeded shuffle, held out for validation;
            ignored when validation_data is given.
        callbacks : list of Callback
            Hooks called around epochs; ``fastbp.EarlyStopping`` among them.
        verbose : 0, 1 or 2
            0 silent; 1 a progress bar on a terminal (one line per epoch otherwise);
            2 one line per epoch.
        n_threads : int or None
            Threads for this call, restored afterwards.
        checkpoint : str, os.PathLike or None
            Write a checkpoint (model, optimizer state, RNG state, epoch, history) to this
            path, atomically, every ``checkpoint_every`` epochs and after the last epoch.
            It is an ordinary model file: ``fastbp.load`` reads it.
        checkpoint_every : int
            Epochs between checkpoints, >= 1.
        resume : str, os.PathLike or None
            Continue the run saved in this checkpoint: weights, optimizer state, RNG state
            and history are restored and training goes on from the checkpoint's epoch up to
            ``epochs`` in total.  Call with the same data and arguments as the interrupted
            run; the result is then bit-identical to a run that was never stopped.
            The optimizer given must be the one the run started with (its lr as
            callbacks or schedules changed it since is the checkpoint's).  Callback state
            goes into the checkpoint as plain JSON and is restored: EarlyStopping's and
            ReduceLROnPlateau's counts and best values, ModelCheckpoint's best value, the
            config of a LearningRateScheduler's schedule (a resumed run with another one is
            refused); EarlyStopping's best weights are not kept.  A per-step schedule is
            part of the optimizer's config and continues from its step count.
        metrics : list of str or None
            Extra figures per epoch (see ``evaluate``), on the training rows and, with
            validation data, as "val_<name>"; each costs a pass of predictions per epoch.
        sample_weight : array (n,) of weights >= 0, or None
            Keras's semantics: each sample's loss term is multiplied by its weight and the
            minibatch mean still divides by the batch size.  The logged training "loss" is
            the weighted one; "accuracy" and validation figures are unweighted.
        class_weight : dict {label: weight}, "balanced" or None
            Multiplies each sample's weight by its class's; "balanced" is scikit-learn's
            ``n / (n_classes * count(class))``.  Softmax outputs or one sigmoid unit.
        distributed : None or "mpi"
            "mpi": data-parallel over the ranks of ``mpiexec -n N python ...`` (mpi4py,
            ``pip install 'fastbp[mpi]'``).  Every rank calls fit with the same data and
            arguments; each takes one shard of every minibatch of ``batch_size`` rows, the
            gradients are added in rank order, and the weights equal a one-process run's up
            to rounding.  Rank 0 alone shows progress and writes checkpoints and files
            (fastbp/distributed.py).

        Returns
        -------
        History
            With ``resume``, the checkpoint's history followed by the new epochs.
        """
        from . import _stream
        if _stream.is_stream(X, y):
            extra = {"validation_data": validation_data, "validation_split": validation_split or None,
                     "checkpoint": checkpoint, "resume": resume, "metrics": metrics,
                     "sample_weight": sample_weight, "class_weight": class_weight,
                     "distributed": distributed}
            given = [k for k, v in extra.items() if v is not None]
            if given:
                raise ValueError(f"fit on a stream of (X, y) chunks does not take {', '.join(given)}")
            return _stream.fit_stream(self, X, epochs, batch_size, optimizer, callbacks, verbose, n_threads)
        from .trainer import fit
        return fit(self, X, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                   shuffle=shuffle, validation_data=validation_data,
                   validation_split=validation_split, callbacks=callbacks, verbose=verbose,
                   n_threads=n_threads, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                   resume=resume, metrics=metrics, sample_weight=sample_weight,
                   class_weight=class_weight, distributed=distributed)

    # -- inference ---------------------------------------------------------------------
    def predict(self, X, batch_size=None, n_threads=None):
        """Outputs of the last layer: class probabilities (softmax), probabilities
        (sigmoid) or values (identity); shape (n, n_out), in the model's dtype.  X holds raw
        features: a stored ``input_mean``/``input_std`` is applied here (see check_X)."""
        return self._predict_checked(self.check_X(X), batch_size, n_threads)

    def _predict_checked(self, X, batch_size, n_threads):
        n = X.shape[0]
        chunk = self._eval_chunk(n) if batch_size is None else V.check_int("batch_size", batch_size, 1)
        out = np.empty((n, self.sizes[-1]), dtype=self.dtype)
        ws, _ = self.workspace(min(chunk, n))
        rows = np.arange(n, dtype=np.int64)
        threaded = threading_for(self.meta, min(chunk, n))
        with self._threads(n_threads):
            for s in range(0, n, chunk):
                idx = rows[s:s + chunk]
                predict_batch(X, idx, self.params, self.meta, self._out_code, ws, out[s:s + chunk], threaded)
        return out

    def predict_classes(self, X, **kwargs):
        """Predicted class per sample: argmax (softmax), threshold 0.5 (sigmoid)."""
        if self.output == "identity":
            raise ValueError("predict_classes needs a softmax or sigmoid output")
        p = self.predict(X, **kwargs)
        return p.argmax(axis=1) if self.output == "softmax" else (p > 0.5).astype(np.int64)

    def evaluate(self, X, y, batch_size=None, n_threads=None, metrics=None):
        """Mean loss (and accuracy for softmax/sigmoid outputs) on (X, y), as a dict; with
        ``metrics`` (names from fastbp.metrics: "top_5_accuracy", "precision", "recall",
        "f1", "roc_auc", "r2", "mae") those too, from one more pass of predictions."""
        from . import metrics as _metrics
        metrics = _metrics.check(metrics, self.output)
        X = self.check_X(X)
        y = self.check_y(y, X.shape[0])
        with self._threads(n_threads):
            result = self._evaluate_rows(X, y, np.arange(X.shape[0], dtype=np.int64), batch_size)
        if metrics:
            result.update(_metrics.compute(metrics, self._predict_checked(X, batch_size, n_threads), y, self.output))
        return result

    def _evaluate_rows(self, X, y, rows, batch_size=None):
        n = rows.shape[0]
        chunk = self._eval_chunk(n) if batch_size is None else V.check_int("batch_size", batch_size, 1)
        ws, stats = self.workspace(min(chunk, n))
        loss = hits = 0.0
        threaded = threading_for(self.meta, min(chunk, n))
        for s in range(0, n, chunk):
            l, h = eval_batch(X, y, rows[s:s + chunk], self.params, self.meta, self._out_code, ws, stats, threaded)
            loss += l
            hits += h
        result = {"loss": loss / n}
        if self.output != "identity":
            result["accuracy"] = hits / n
        return result

    # -- files -------------------------------------------------------------------------
    def save(self, path):
        """Write the model to ``path`` (an .npz of plain arrays plus JSON metadata, io.py),
        atomically; ``fastbp.load`` reads it back."""
        _mlp_file.save(self, path)

    @classmethod
    def _from_file(cls, path, header, arrays):
        """The model of a file's (header, arrays) as io.read returns them, every field checked."""
        return _mlp_file.build(cls, path, header, arrays)

    def summary(self, print_fn=print):
        """Print (and return) a Keras-like table: layers, output shapes, parameters per layer
        and in total, dtype, instruction-set level and threads."""
        from . import _config
        from ._threads import get_num_threads
        rows = [("Layer (activation)", "Output shape", "Param #")]
        drops = self.hidden_dropout + [0.0]
        for i, layer in enumerate(self.layers):
            rows.append((f"dense_{i} ({layer.activation})", f"(None, {layer.n_out})",
                         f"{layer.n_in * layer.n_out + layer.n_out:,}"))
            if drops[i] > 0:
                rows.append((f"dropout_{i} (p={drops[i]:g})", f"(None, {layer.n_out})", "0"))
        widths = [max(len(r[c]) for r in rows) + 2 for c in range(3)]
        line = lambda r: "".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
        rule = "=" * sum(widths)
        text = [f'Model: "MLP" (input (None, {self.sizes[0]}))', rule, line(rows[0]), rule]
        text += [line(r) for r in rows[1:]]
        threads = self.n_threads if self.n_threads is not None else get_num_threads()
        isa = _config.ISA  # the instruction-set level the kernels target
        text += [rule, f"Total params: {self.n_params:,}", f"dtype: {self.dtype.name}",
                 f"instruction set: {isa}", f"threads: {threads}"]
        text = "\n".join(text)
        if print_fn is not None:
            print_fn(text)
        return text

    # -- leaving fastbp (interop.py) -----------------------------------------------------
    def state_dict(self):
        """Copies of the parameters under PyTorch's nn.Sequential names: "0.weight" (n_out,
        n_in), "0.bias", "2.weight", ... (Linear layers at even indices, activations between).
        The layers' own weights: a stored input scaling is not in it (``to_torch`` folds it in)."""
        from .interop import state_dict
        return state_dict(self)

    @classmethod
    def from_state_dict(cls, state, activation="sigmoid", output="softmax", dtype="float32", seed=0,
                        dropout=0.0):
        """A model with the layers of a state dict named as ``state_dict`` names them (numpy
        arrays or torch tensors); the sizes come from the weights' shapes."""
        from .interop import from_state_dict
        return from_state_dict(state, activation=activation, output=output, dtype=dtype, seed=seed,
                               dropout=dropout)

    def to_torch(self):
        """A torch.nn.Sequential computing ``predict`` (needs PyTorch)."""
        from .interop import to_torch
        return to_torch(self)

    def export_onnx(self, path, opset=17):
        """Write an ONNX graph computing ``predict`` (needs the onnx package); input "X",
        output "Y"."""
        from .interop import export_onnx
        return export_onnx(self, path, opset=opset)

    def get_config(self):
        return {"sizes": list(self.sizes), "activation": self.activation, "output": self.output,
                "dtype": self.dtype.name, "seed": self.seed, "dropout": self.dropout}
