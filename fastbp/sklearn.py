"""scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor`` with scikit-learn's names.

How they translate scikit-learn's conventions into the core (losses, alpha, momentum,
Adam's epsilon, random state) is told in _sklearn_base.py; their training loop is
_sklearn_fit.py.  scikit-learn is imported only when this module is
(``fastbp.MLPClassifier`` loads it lazily).
"""

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d, validate_data

from . import _estimator_file
from ._sklearn_base import _BaseMLP
from ._sklearn_fit import _SkAdam, _SkSGD


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier, a drop-in for scikit-learn's ``MLPClassifier``.

    Trained by fastbp's compiled minibatch kernels.  Multi-class problems use a softmax
    output with the log-loss; binary and multi-label problems one logistic unit per label.

    Parameters
    ----------
    hidden_layer_sizes : array-like of int or int, default=(100,)
        Width of each hidden layer.
    activation : {'identity', 'logistic', 'sigmoid', 'tanh', 'relu'}, default='relu'
        Activation of the hidden layers; 'sigmoid' is another name for 'logistic'.
    solver : {'sgd', 'adam'}, default='adam'
        Optimizer.  ('lbfgs' is not supported.)
    alpha : float, default=0.0001
        Strength of the L2 penalty on the weights (not the biases), added per minibatch
        as ``alpha / (2 n_batch) * ||W||^2``.
    batch_size : int or 'auto', default='auto'
        Minibatch size; 'auto' is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning-rate schedule for ``solver='sgd'``.
    learning_rate_init : float, default=0.001
        Initial learning rate.
    power_t : float, default=0.5
        Exponent of the 'invscaling' schedule.
    max_iter : int, default=200
        Maximum number of epochs.
    shuffle : bool, default=True
        Shuffle the samples each epoch.
    random_state : int, RandomState instance or None, default=None
        Fixes the initial weights, the shuffles and the early-stopping split.
    tol : float, default=1e-4
        Improvement below which an epoch counts as "no improvement".
    verbose : bool, default=False
        Print the loss after each epoch.
    warm_start : bool, default=False
        Start ``fit`` from the previous solution.
    momentum : float in [0, 1), default=0.9
        Momentum of ``solver='sgd'``.
    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum (when momentum > 0).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when its score stops improving;
        the weights of the best epoch are kept.
    validation_fraction : float, default=0.1
        Fraction held out for early stopping.
    beta_1, beta_2 : float in [0, 1), default=0.9, 0.999
        Adam's decay rates.
    epsilon : float, default=1e-8
        Adam's epsilon (added to ``sqrt(v)``, as scikit-learn).
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping (or, 'adaptive', dividing the rate by 5).
    dtype : {'float32', 'float64'} or None, default='float32'
        Precision of the parameters and computation; None follows X (float32 stays
        float32, anything else float64).
    n_threads : int or None, default=None
        Threads of the kernels; None keeps fastbp's current setting.
    distributed : {'mpi'} or None, default=None
        'mpi': data-parallel over the ranks of ``mpiexec -n N`` (docs/distributed.md),
        each rank taking a shard of every minibatch, the gradients summed in rank order;
        every rank ends with the same fitted estimator.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    coefs_ : list of ndarray of shape (n_in, n_out)
        Weights per layer (views of the model's buffer).
    intercepts_ : list of ndarray of shape (n_out,)
        Biases per layer.
    loss_ : float
        Loss of the last epoch (with the L2 term), as scikit-learn computes it.
    loss_curve_ : list of float
        Loss per epoch.
    best_loss_ : float or None
        Lowest loss (None with early stopping).
    validation_scores_ : list of float or None
        Validation accuracy per epoch with early stopping.
    best_validation_score_ : float or None
        Best validation accuracy with early stopping.
    n_iter_ : int
        Epochs run in the last fit.
    t_ : int
        Training samples seen over all fits.
    n_features_in_ : int
        Number of features.
    feature_names_in_ : ndarray of str
        Feature names, when X had string column names.
    n_layers_ : int
        Layers, input and output included.
    n_outputs_ : int
        Output units.
    out_activation_ : str
        'softmax' or 'logistic'.
    model_ : fastbp.MLP
        The underlying network.
    """

    def _is_classifier(self):
        return True

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _score_function(self, y, y_pred):
        return accuracy_score(y, y_pred)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, dtype=(np.float64, np.float32),
                             reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes "
                                     f"as in the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(bool)

    def _y_for_core(self, y):
        if self.out_activation_ == "softmax":
            return y.argmax(axis=1).astype(np.float64)
        return y.astype(np.float64)

    def _y_for_score(self, y):
        return self._label_binarizer.inverse_transform(y)

    def _predict_core(self, X):
        p = self._model.predict(X)
        if self.n_outputs_ == 1:
            p = p.ravel()
        return self._label_binarizer.inverse_transform(p)

    def partial_fit(self, X, y, classes=None):
        """Update the model with one epoch over (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels.
        classes : array of shape (n_classes,), default=None
            All classes, required on the first call.

        Returns
        -------
        self : object
            The updated estimator.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit_with_context(X, y, incremental=True)

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
            Predicted classes (an indicator matrix for multi-label problems).
        """
        p = self._forward(X)
        if self.n_outputs_ == 1:
            p = p.ravel()
        return self._label_binarizer.inverse_transform(p)

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        p = self._forward(X)
        if self.n_outputs_ == 1:
            p = p.ravel()
            return np.vstack([1 - p, p]).T
        return p

    def predict_log_proba(self, X):
        """Logarithm of ``predict_proba``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        p = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(p, out=p)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor, a drop-in for scikit-learn's ``MLPRegressor``.

    Minimises scikit-learn's halved squared error with an identity output layer.
    Parameters and attributes are those of ``MLPClassifier`` (without ``classes_``;
    ``validation_scores_`` hold R^2), plus:

    Parameters
    ----------
    loss : {'squared_error'}, default='squared_error'
        The loss; scikit-learn's 'poisson' is not supported.
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, \
learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, warm_start, \
momentum, nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, \
epsilon, n_iter_no_change, dtype, n_threads, distributed
        As in ``MLPClassifier``.

    Attributes
    ----------
    coefs_, intercepts_, loss_, loss_curve_, best_loss_, validation_scores_, \
best_validation_score_, n_iter_, t_, n_features_in_, feature_names_in_, n_layers_, \
n_outputs_, out_activation_, model_
        As in ``MLPClassifier``; ``out_activation_`` is 'identity'.
    """

    _parameter_constraints = {**_BaseMLP._parameter_constraints,
                              "loss": [StrOptions({"squared_error"})]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 dtype="float32", n_threads=None, distributed=None):
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, activation=activation,
                         solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate=learning_rate, learning_rate_init=learning_rate_init,
                         power_t=power_t, max_iter=max_iter, shuffle=shuffle,
                         random_state=random_state, tol=tol, verbose=verbose,
                         warm_start=warm_start, momentum=momentum,
                         nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, n_iter_no_change=n_iter_no_change, dtype=dtype,
                         n_threads=n_threads, distributed=distributed)
        self.loss = loss

    def _is_classifier(self):
        return False

    def _out_activation(self):
        return "identity"

    def _score_function(self, y, y_pred):
        return r2_score(y, y_pred)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _y_for_core(self, y):
        return y

    def _y_for_score(self, y):
        return y.ravel() if y.shape[1] == 1 else y

    def _predict_core(self, X):
        p = self._model.predict(X)
        return p.ravel() if p.shape[1] == 1 else p

    def partial_fit(self, X, y):
        """Update the model with one epoch over (X, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit_with_context(X, y, incremental=True)

    def predict(self, X):
        """Predict targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        p = self._forward(X)
        return p.ravel() if p.shape[1] == 1 else p


# how a model file's optimizer entry (_estimator_file.py) makes the estimators' optimizers
_OPTIMIZERS_FROM_FILE = {
    "sgd": lambda entry, scale: _SkSGD(entry["lr"], entry["momentum"], entry["nesterov"], scale),
    "adam": lambda entry, scale: _SkAdam(entry["lr"], entry["betas"][0], entry["betas"][1],
                                         entry["eps"], scale)}


def _from_file(path, header, arrays, model):
    """The estimator of a file's (header, arrays) around its network ``model``."""
    return _estimator_file.build(path, header, arrays, model,
                                 {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor},
                                 _OPTIMIZERS_FROM_FILE)
