"""The scikit-learn estimators' training (sklearn.py): scikit-learn's epoch loop (its
shuffles, learning-rate schedules, early stopping, loss report) around fastbp's one
minibatch loop (_epoch.Minibatches), with scikit-learn's per-step terms computed inside
the compiled steps (kernels/optim.py): the L2 coefficient ``alpha / (rows * scale)`` of
each minibatch, the L2 term of its loss, and Adam's epsilon.  Many minibatches therefore
run in one compiled call, as in ``MLP.fit``.  With ``sample_weight`` each minibatch's
denominator (its sum of weights) is set from Python, a minibatch per call.
"""
import math
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from ._epoch import CtrlC, DivergenceError, Minibatches, divergence_message, training_steps
from .kernels.optim import ADAM_EPS0, ADAM_EPS_SCALE, HYPER_SIZE, L2_ALPHA, L2_DENOM, L2_LOSS, L2_SCALE, LR
from .kernels.step import threading_for
from .optimizers import SGD, Adam


class _SkSGD(SGD):
    """SGD whose step equals scikit-learn's SGDOptimizer (see sklearn.py's docstring)."""

    def __init__(self, lr, momentum, nesterov, scale):
        super().__init__(lr=lr, momentum=momentum, nesterov=bool(nesterov and momentum > 0))
        self.scale = scale

    def set_lr(self, lr):
        # keep scikit-learn's velocity v = -lr * buf when the learning rate changes
        if self.state is not None and self.momentum > 0 and lr != self.lr:
            self.state[0] *= self.state.dtype.type(self.lr / lr)
        self.lr = lr

    def set_hyper(self, hyper):
        super().set_hyper(hyper)
        hyper[LR] = self.lr * self.scale


class _SkAdam(Adam):
    """Adam whose step equals scikit-learn's AdamOptimizer (see sklearn.py's docstring):
    the kernels divide epsilon by scale * sqrt(bias_correction2) each step."""

    def __init__(self, lr, beta_1, beta_2, epsilon, scale):
        super().__init__(lr=lr, betas=(beta_1, beta_2), eps=epsilon)
        self.scale = scale

    def set_lr(self, lr):
        self.lr = lr

    def set_hyper(self, hyper):
        super().set_hyper(hyper)
        hyper[ADAM_EPS0], hyper[ADAM_EPS_SCALE] = self.eps, self.scale


def _batch_size(est, n):
    if est.batch_size == "auto":
        return min(200, n)
    if est.batch_size > n:
        warnings.warn("Got `batch_size` less than 1 or larger than sample size. "
                      "It is going to be clipped")
    return int(np.clip(est.batch_size, 1, n))


def fit_stochastic(est, X, y, incremental, sample_weight=None):
    """scikit-learn's _fit_stochastic for the estimator ``est``: up to max_iter epochs (one
    for partial_fit), stopping on tol / n_iter_no_change, early stopping on a held-out split."""
    model = est._model
    if est.early_stopping:
        stratify = y if (est._is_classifier() and est.n_outputs_ == 1) else None
        X, X_val, y, y_val = train_test_split(X, y, random_state=est._random_state,
                                              test_size=est.validation_fraction, stratify=stratify)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        y_val = est._y_for_score(y_val)
    X = model.check_X(X)
    y_core = model.check_y(est._y_for_core(y), X.shape[0])
    n = X.shape[0]
    if sample_weight is not None:
        # scikit-learn divides each batch's loss and gradient by the batch's sum of
        # weights; the core divides by b: a weight column (kernels/loss.py) holding
        # w * b / sum(w), rewritten for each batch's rows, makes the two the same
        y_core = np.column_stack([y_core, np.zeros(n)]).astype(model.dtype)
    batch_size = _batch_size(est, n)
    scale, report = est._scales()
    opt = est._optimizer
    state = opt.state
    ws, stats = model.workspace(batch_size)
    threaded = threading_for(model.meta, batch_size)
    hyper = np.zeros(HYPER_SIZE, dtype=np.float64)
    order = np.arange(n, dtype=np.int64)
    n_batches = -(-n // batch_size)
    step_loss = np.zeros(n_batches, dtype=np.float64)
    world = None
    if est.distributed is not None:
        from . import distributed as _dist
        world = _dist.World()
        _dist.start(world, model, X, y_core, batch_size, est.max_iter, opt, state)
    verbose = est.verbose and (world is None or world.rank == 0)

    steps = training_steps(model, X, y_core, batch_size, state, hyper, ws, stats, threaded, world)

    def weigh(k):   # the rows of minibatch k: their weights and denominator
        idx = order[k * batch_size:(k + 1) * batch_size]
        denom = sample_weight[idx].sum()
        y_core[idx, -1] = sample_weight[idx] * (idx.shape[0] / denom) if denom > 0 else 0.0
        hyper[L2_DENOM] = denom if denom > 0 else math.inf   # (no weight: no L2 term either)

    n_threads = None if world is None else _dist.threads_per_rank(world)
    try:
        with model._threads(n_threads), CtrlC() as ctrl_c:
            runner = Minibatches(hyper, opt, ctrl_c, one_per_call=sample_weight is not None)
            est.n_iter_ = 0
            for _ in range(est.max_iter):
                if est.shuffle:
                    # sklearn.utils.shuffle's draw (arange, RandomState.shuffle, take), without
                    # its input checks (this order is ours, already valid)
                    perm = np.arange(n)
                    est._random_state.shuffle(perm)
                    order = order[perm]
                opt.set_hyper(hyper)
                hyper[L2_ALPHA], hyper[L2_SCALE] = est.alpha, scale
                k, _, bad = runner.run(steps, order, batch_size, step_loss,
                                       before_call=weigh if sample_weight is not None else None)
                if bad is not None:   # the step is not applied, nor counted
                    raise DivergenceError(divergence_message(est.n_iter_ + 1, k + 1, n_batches, bad[1],
                                                             min(batch_size, n - k * batch_size)),
                                          est.n_iter_ + 1, k + 1, bad[1])
                if ctrl_c.requested:
                    if world is not None:
                        world.abort("interrupted (Ctrl-C)")
                    warnings.warn("Training interrupted by user.")
                    break
                est.n_iter_ += 1
                est.loss_ = (report * math.fsum(step_loss) + hyper[L2_LOSS]) / n
                est.t_ += n
                est.loss_curve_.append(est.loss_)
                if verbose:
                    print("Iteration %d, loss = %.8f" % (est.n_iter_, est.loss_))
                est._update_no_improvement_count(X_val if est.early_stopping else None,
                                                 y_val if est.early_stopping else None)
                if est.solver == "sgd" and est.learning_rate == "invscaling":
                    opt.set_lr(est.learning_rate_init / (est.t_ + 1) ** est.power_t)
                if est._no_improvement_count > est.n_iter_no_change:
                    what = "Validation score" if est.early_stopping else "Training loss"
                    msg = (f"{what} did not improve more than tol={est.tol:f} for "
                           f"{est.n_iter_no_change} consecutive epochs.")
                    if est.solver == "sgd" and est.learning_rate == "adaptive" and opt.lr > 1e-6:
                        opt.set_lr(opt.lr / 5.0)
                        est._no_improvement_count = 0
                        if verbose:
                            print(msg + " Setting learning rate to %f" % opt.lr)
                    else:
                        if verbose:
                            print(msg + " Stopping.")
                        break
                if incremental:
                    break
                if est.n_iter_ == est.max_iter:
                    warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and "
                                  "the optimization hasn't converged yet." % est.max_iter,
                                  ConvergenceWarning)
    except BaseException as exc:
        if world is not None and world.size > 1:   # never leave the other ranks waiting
            world.abort(f"{type(exc).__name__}: {exc}")
        raise
    if est.early_stopping:
        model.params[:] = est._best_params
