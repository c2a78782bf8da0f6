"""fastbp.MLPClassifier / MLPRegressor side by side with scikit-learn's, same data and seeds.

For each data set: a stratified 75/25 split, features standardised on the training part,
then both estimators fitted with the same hyper-parameters and random_state for several
seeds.  Prints held-out accuracy (R^2 for diabetes) as mean +- std over the seeds and the
median fit time of each, and the speed-up.  fastbp is warmed up first so compilation is
not timed.

    python scripts/compare_sklearn.py [--seeds 5] [--max-iter 200] [--hidden 100] [--dtype float32]
"""
import argparse
import time
import warnings

import numpy as np
from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkClassifier
from sklearn.neural_network import MLPRegressor as SkRegressor
from sklearn.preprocessing import StandardScaler

import fastbp

DATA = {
    "digits": (datasets.load_digits, True),
    "breast-cancer": (datasets.load_breast_cancer, True),
    "wine": (datasets.load_wine, True),
    "diabetes": (datasets.load_diabetes, False),
}


def _split(name, seed):
    load, classify = DATA[name]
    X, y = load(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=seed,
                                              stratify=y if classify else None)
    scaler = StandardScaler().fit(X_tr)
    if not classify:   # scale the target too, so the default learning rate suits both
        mu, sd = y_tr.mean(), y_tr.std()
        y_tr, y_te = (y_tr - mu) / sd, (y_te - mu) / sd
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te, classify


def _timed_fit(est, X, y):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--hidden", default="100", help="hidden widths, comma-separated")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--data", default=",".join(DATA), help="data sets, comma-separated")
    args = p.parse_args(argv)
    hidden = tuple(int(v) for v in args.hidden.split(","))
    common = dict(hidden_layer_sizes=hidden, max_iter=args.max_iter)

    # warm-up: compile fastbp's kernels (or load them from the cache) outside the timings
    Xw, _, yw, _, _ = _split("wine", 0)
    _timed_fit(fastbp.MLPClassifier(**common, dtype=args.dtype, random_state=0).set_params(max_iter=2), Xw, yw)
    _timed_fit(fastbp.MLPRegressor(**common, dtype=args.dtype, random_state=0).set_params(max_iter=2), Xw, yw)

    print(f"hidden={hidden} max_iter={args.max_iter} solver=adam (defaults otherwise), "
          f"fastbp dtype={args.dtype}, threads={fastbp.get_num_threads()}, seeds={args.seeds}")
    head = f"{'data set':<14} {'metric':<8} {'scikit-learn':>16} {'fastbp':>16} " \
           f"{'sklearn fit s':>13} {'fastbp fit s':>12} {'speed-up':>8}"
    print(head)
    print("-" * len(head))
    for name in args.data.split(","):
        scores = {"sk": [], "fb": []}
        times = {"sk": [], "fb": []}
        for seed in range(args.seeds):
            X_tr, X_te, y_tr, y_te, classify = _split(name, seed)
            sk_cls, fb_cls = (SkClassifier, fastbp.MLPClassifier) if classify else \
                (SkRegressor, fastbp.MLPRegressor)
            for key, est in (("sk", sk_cls(**common, random_state=seed)),
                             ("fb", fb_cls(**common, random_state=seed, dtype=args.dtype))):
                times[key].append(_timed_fit(est, X_tr, y_tr))
                scores[key].append(est.score(X_te, y_te))
        metric = "accuracy" if DATA[name][1] else "R^2"
        sk_t, fb_t = np.median(times["sk"]), np.median(times["fb"])
        print(f"{name:<14} {metric:<8} "
              f"{np.mean(scores['sk']):>9.4f} +-{np.std(scores['sk']):.3f} "
              f"{np.mean(scores['fb']):>9.4f} +-{np.std(scores['fb']):.3f} "
              f"{sk_t:>13.3f} {fb_t:>12.3f} {sk_t / fb_t:>7.1f}x")


if __name__ == "__main__":
    main()
