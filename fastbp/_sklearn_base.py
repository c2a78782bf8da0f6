"""What MLPClassifier and MLPRegressor (sklearn.py) share: parameters, fit, files, scikit-learn's layout.

The estimators translate scikit-learn's conventions into the core at this boundary:

- losses: scikit-learn's gradient is that of ``sum over outputs, mean over samples`` of
  the binary log-loss (multi-label) or of the *halved* squared error (regression); the
  core uses PyTorch's means over every element.  The two differ by a constant factor
  ``scale`` per problem (1 multi-class/binary, K multi-label, K/2 regression with K
  outputs), folded into the step: SGD's learning rate is multiplied by ``scale``, Adam's
  epsilon divided by it (Adam is otherwise invariant to the scale of the gradient), and
  the L2 coefficient divided by it.  The updates are then scikit-learn's exactly.
- ``alpha``: ``alpha / (2 n_batch) * ||W||^2`` per minibatch, weights only, through the
  core's per-step L2 slot (``kernels/optim.py``).
- SGD momentum: scikit-learn keeps a velocity ``v = mu v - lr g``, PyTorch a buffer
  ``buf = mu buf + g``; they agree while the learning rate is constant, and the buffer is
  rescaled by ``lr_old / lr_new`` whenever 'invscaling' or 'adaptive' changes it, so they
  agree then too.
- Adam: scikit-learn adds epsilon to ``sqrt(v)``, PyTorch to ``sqrt(v / bias_correction2)``;
  epsilon is divided by ``sqrt(bias_correction2)`` each step to match.
- Initial weights and every random choice (shuffles, the early-stopping split) are drawn
  from ``check_random_state(random_state)`` in scikit-learn's order, so with
  ``dtype='float64'`` a fit follows scikit-learn's to rounding.

"""
import numbers

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _estimator_file, files, io
from ._sklearn_fit import _SkAdam, _SkSGD, fit_stochastic
from .model import MLP

_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "sigmoid": "sigmoid",
                "tanh": "tanh", "relu": "relu"}


class _BaseMLP(BaseEstimator):
    """Shared fit loop of MLPClassifier and MLPRegressor."""

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "sigmoid", "tanh", "relu"})],
        "solver": [StrOptions({"sgd", "adam"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left"),
                             Options(numbers.Real, {np.inf})],
        "dtype": [StrOptions({"float32", "float64"}), None],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "distributed": [StrOptions({"mpi"}), None],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 dtype="float32", n_threads=None, distributed=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype
        self.n_threads = n_threads
        self.distributed = distributed

    # -- scikit-learn's layout of the parameters -------------------------------------
    @property
    def coefs_(self):
        """Weights per layer, shape (n_in, n_out): transposed views of the model's buffer."""
        check_is_fitted(self, "_model")
        return [layer.weight.T for layer in self._model.layers]

    @coefs_.setter
    def coefs_(self, values):
        check_is_fitted(self, "_model")
        for layer, value in zip(self._model.layers, values, strict=True):
            layer.weight = np.asarray(value).T

    @property
    def intercepts_(self):
        """Biases per layer, shape (n_out,): views of the model's buffer."""
        check_is_fitted(self, "_model")
        return [layer.bias for layer in self._model.layers]

    @intercepts_.setter
    def intercepts_(self, values):
        check_is_fitted(self, "_model")
        for layer, value in zip(self._model.layers, values, strict=True):
            layer.bias = value

    @property
    def model_(self):
        """The underlying ``fastbp.MLP``."""
        check_is_fitted(self, "_model")
        return self._model

    def to_onnx(self, path):
        """Write ``model_`` as an ONNX graph (input "X", output "Y", ``model_``'s dtype).

        "Y" is ``model_.predict``: for a multi-class classifier, ``predict_proba`` (columns in
        ``classes_`` order; ``classes_[argmax]`` is the label); for a binary classifier, the
        probability of ``classes_[1]``, one column; for multi-label, one probability per
        label; for a regressor, ``predict``.  Needs the onnx package.
        """
        return self.model_.export_onnx(path)

    # -- fitting -----------------------------------------------------------------------
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s <= 0:
                raise ValueError(f"hidden_layer_sizes must hold integers > 0, got {self.hidden_layer_sizes!r}")
        return [int(s) for s in sizes]

    def _initialize(self, y2, n_features, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y2.shape[1]
        layer_units = [n_features] + self._hidden_sizes() + [self.n_outputs_]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._out_activation()
        output = {"softmax": "softmax", "logistic": "sigmoid", "identity": "identity"}[self.out_activation_]
        self._model = MLP(layer_units, activation=_ACTIVATIONS[self.activation], output=output,
                          dtype=dtype, seed=0, n_threads=self.n_threads)
        # scikit-learn's initialisation, drawn in its order from its random state
        factor = 2.0 if _ACTIVATIONS[self.activation] == "sigmoid" else 6.0
        for layer in self._model.layers:
            bound = np.sqrt(factor / (layer.n_in + layer.n_out))
            layer.weight = self._random_state.uniform(-bound, bound, (layer.n_in, layer.n_out)).T
            layer.bias = self._random_state.uniform(-bound, bound, layer.n_out)
        self._best_params = self._model.params.copy()
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _scales(self):
        """(gradient scale, loss-report scale) between the core's loss and scikit-learn's."""
        k = self.n_outputs_
        if self.out_activation_ == "softmax":
            return 1.0, 1.0
        if self.out_activation_ == "logistic":
            return float(k), float(k)
        return k / 2.0, 0.5

    def _make_optimizer(self):
        scale = self._scales()[0]
        if self.solver == "sgd":
            opt = _SkSGD(self.learning_rate_init, self.momentum, self.nesterovs_momentum, scale)
        else:
            opt = _SkAdam(self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon, scale)
        opt.bind(self._model.params)
        return opt

    def _fit(self, X, y, incremental=False, sample_weight=None):
        first_pass = not hasattr(self, "_model") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
            if self.early_stopping:
                raise ValueError("sample_weight is not supported with early_stopping=True yet")
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            dtype = self.dtype if self.dtype is not None else X.dtype
            self._initialize(y, X.shape[1], dtype)
        elif y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y.shape[1]} outputs, but the model was fitted with "
                             f"{self.n_outputs_}")
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._make_optimizer()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        fit_stochastic(self, X, y, incremental, sample_weight)
        if not np.isfinite(self._model.params).all():
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed.")
        return self

    def _update_no_improvement_count(self, X_val, y_val):
        if self.early_stopping:
            y_pred = self._predict_core(X_val)
            score = np.nan if not np.isfinite(self._model.params).all() else \
                self._score_function(y_val, y_pred)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = self._model.params.copy()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    # -- prediction --------------------------------------------------------------------
    def _forward(self, X):
        check_is_fitted(self, "_model")
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        # computed in the model's dtype, returned in X's as scikit-learn does
        return self._model.predict(X).astype(X.dtype, copy=False)

    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and targets y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (classification) or real numbers (regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, as scikit-learn's MLP uses them: each minibatch's loss
            and gradient are weighted means (divided by the batch's sum of weights).  Not
            supported with ``early_stopping=True``.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit_with_context(X, y, incremental=False, sample_weight=sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def _fit_with_context(self, X, y, incremental, sample_weight=None):
        return self._fit(X, y, incremental=incremental, sample_weight=sample_weight)

    # -- files (their section: _estimator_file.py) ------------------------------------
    def save(self, path):
        """Write the fitted estimator to ``path`` in fastbp's model-file format (no pickle).

        Parameters
        ----------
        path : str or os.PathLike
            Destination; written atomically.
        """
        check_is_fitted(self, "_model")
        _estimator_file.save(self, path)

    @classmethod
    def load(cls, path):
        """Read an estimator written by ``save``.

        Parameters
        ----------
        path : str or os.PathLike
            A file written by ``save``.

        Returns
        -------
        estimator : MLPClassifier or MLPRegressor
        """
        est = files.load(path)
        if not isinstance(est, cls):
            raise io.ModelFileError(f"{path} holds a {type(est).__name__}, not a {cls.__name__}")
        return est

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
