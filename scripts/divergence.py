"""What a diverging run does: SGD(lr=1e6) on the digits, every hidden activation, both dtypes,
MLP.fit, with TerminateOnNaN, and the estimators.

    python scripts/divergence.py

For each: the error (or warning) it gave, whether the weights are finite afterwards and
their largest magnitude, and the optimizer's step count (the steps kept).
"""
import warnings

import numpy as np

import fastbp


def _report(label, run, params_of, steps_of):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = run()
        except fastbp.DivergenceError as e:
            out = f"DivergenceError: {e}"
    params = params_of()
    warned = [f"{w.category.__name__}: {str(w.message)[:70]}..." for w in caught
              if issubclass(w.category, fastbp.DivergenceWarning)]
    print(f"{label}: {out}\n    warnings: {warned or 'none'}; weights finite: {bool(np.isfinite(params).all())}, "
          f"max |w| {np.abs(params).max():.3g}, steps kept {steps_of()}")


def main():
    X, y = fastbp.load_digits()
    for dtype in ("float32", "float64"):
        for act in ("relu", "identity", "sigmoid", "tanh"):
            m = fastbp.MLP([64, 32, 10], activation=act, dtype=dtype, seed=0)

            def run(m=m):
                h = m.fit(X, y, epochs=5, optimizer=fastbp.SGD(lr=1e6), verbose=0)
                return f"ran {len(h.epoch)} epochs, losses {[float(f'{v:.3g}') for v in h.history['loss']]}"
            _report(f"MLP.fit {dtype} {act}", run, lambda m=m: m.params, lambda m=m: m.optimizer.steps)
    m = fastbp.MLP([64, 32, 10], activation="identity", seed=0)
    stop = fastbp.TerminateOnNaN()

    def run_terminate():
        h = m.fit(X, y, epochs=5, optimizer=fastbp.SGD(lr=1e6), callbacks=[stop], verbose=0)
        return (f"returned; stopped at epoch {stop.stopped_epoch}, minibatch {stop.stopped_minibatch}; "
                f"history {len(h.epoch)} epoch(s), partial {h.partial}")
    _report("MLP.fit float32 identity + TerminateOnNaN", run_terminate, lambda: m.params, lambda: m.optimizer.steps)
    for Est, target in ((fastbp.MLPClassifier, y), (fastbp.MLPRegressor, y.astype(float))):
        for dtype in ("float32", "float64"):
            est = Est(hidden_layer_sizes=(32,), activation="identity", solver="sgd", learning_rate_init=1e6,
                      max_iter=5, dtype=dtype, random_state=0)

            def run_est(est=est, target=target):
                est.fit(X, target)
                return f"ran, loss curve {[float(f'{v:.3g}') for v in est.loss_curve_]}"
            _report(f"{Est.__name__} {dtype} identity", run_est, lambda est=est: est._model.params,
                    lambda est=est: est._optimizer.steps)


if __name__ == "__main__":
    main()
