"""The command line (also ``python -m fastbp``).

``fastbp train``     train a classifier and save it (``--plot`` for a learning curve)
``fastbp info``      versions, threading layer, threads, CPU vector extensions, compile cache
``fastbp predict``   predictions of a saved model for a data file
``fastbp evaluate``  loss and accuracy of a saved model on a data file
"""
import argparse
import sys
import time

import numpy as np


def _sizes(text):
    if any(not v.strip() for v in text.split(",")):
        raise argparse.ArgumentTypeError(f"empty layer width in {text!r}")
    try:
        sizes = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"layer widths must be positive integers, got {text!r}")
    return sizes


def _option_type(convert, what, ok, rule):
    """An argparse type: text -> convert(text), refused unless ok(value), with one-line messages."""
    def parse(text):
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"{rule}, got {text}")
        return v
    return parse


_positive_int = _option_type(int, "an integer", lambda v: v >= 1, "must be at least 1")
_fraction = _option_type(float, "a number", lambda v: 0 < v < 1, "must be between 0 and 1 (exclusive)")
_positive_float = _option_type(float, "a number", lambda v: 0 < v < float("inf"), "must be a positive finite number")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where the help text does not already say it, and never None."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default" in text or action.default is None or action.default is False \
                or action.default == argparse.SUPPRESS:
            return text
        if isinstance(action.default, list):
            return text + " (default: " + ",".join(map(str, action.default)) + ")"
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """A bad option is one line naming it (and `--help` for more), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser():
    p = _Parser(prog="fastbp", description="Train multi-layer perceptrons with "
                                "explicit-loop, JIT-compiled backpropagation.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a classifier (default data: the embedded 8x8 digits)",
                       formatter_class=_Help)
    t.add_argument("--data", help=".npz with arrays X, y or .csv with the label in the last column "
                   "(default: the embedded digits, scaled to [0, 1])")
    t.add_argument("--delimiter", default=None,
                   help="CSV field delimiter, e.g. ';' or tab (default: detected)")
    t.add_argument("--hidden", type=_sizes, default=[32],
                   help="hidden layer widths, comma-separated, e.g. 128,64")
    t.add_argument("--activation", default="sigmoid", help="hidden-layer activation", choices=["sigmoid", "tanh", "relu", "identity"])
    t.add_argument("--epochs", type=_positive_int, default=40, help="passes over the training part")
    t.add_argument("--batch-size", type=_positive_int, default=32, help="samples per minibatch")
    t.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (default: 0.5 for sgd, 0.001 for adam)")
    t.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    t.add_argument("--optimizer", default="sgd", help="optimizer", choices=["sgd", "adam"])
    t.add_argument("--dtype", default="float32", help="floating-point type", choices=["float32", "float64"])
    t.add_argument("--seed", type=int, default=0, help="seed of weights, split and shuffling")
    t.add_argument("--threads", type=_positive_int, default=None, help="threads (default: all)")
    t.add_argument("--test-fraction", type=_fraction, default=0.2,
                   help="fraction held out to report accuracy on (a seeded random permutation, "
                   "not stratified)")
    t.add_argument("--standardize", action="store_true",
                   help="scale each feature to zero mean and unit variance (training-set statistics)")
    t.add_argument("--output", "-o", default="fastbp-model.npz", help="where to save the model")
    t.add_argument("--verbose", type=int, default=1, help="0 silent, 1 progress bar, 2 one line per epoch", choices=[0, 1, 2])
    t.add_argument("--plot", metavar="PNG", default=None,
                   help="save a learning curve (loss and accuracy per epoch, training and "
                   "held-out) to this image file; needs matplotlib")

    sub.add_parser("info", help="versions, threading layer, threads, CPU vector extensions, "
                   "compile-cache location")

    for name, text in (("predict", "predict with a saved model; one line per sample"),
                       ("evaluate", "loss and accuracy (R^2 for regressors) of a saved model")):
        c = sub.add_parser(name, help=text, formatter_class=_Help)
        c.add_argument("model", help="model file written by fastbp train, MLP.save or an "
                       "estimator's save")
        c.add_argument("data", help=".npz with array X (and y) or .csv (label in the last column "
                       "when there is one more column than the model has inputs)")
        c.add_argument("--delimiter", default=None,
                       help="CSV field delimiter, e.g. ';' or tab (default: detected)")
        c.add_argument("--standardize-from", metavar="DATA", default=None,
                       help="standardise features with the mean/std of this data file instead "
                       "of the training-split statistics that fastbp train --standardize "
                       "stores in the model file (which are applied by default)")
        if name == "evaluate":
            c.add_argument("--held-out", action="store_true",
                           help="score only the rows fastbp train held out of this same file "
                           "(gives the held-out accuracy training printed)")
        if name == "predict":
            c.add_argument("--proba", action="store_true",
                           help="print the output probabilities instead of the class")
            c.add_argument("--output", "-o", default=None, help="write CSV here instead of stdout")
    e = sub.add_parser("export", help="write a saved model (or estimator) as an ONNX graph")
    e.add_argument("model", help="model file written by fastbp train, MLP.save or an estimator's save")
    e.add_argument("onnx", help="path of the .onnx file to write")
    return p


def _export(args):
    import fastbp
    model = fastbp.load(args.model)
    model = getattr(model, "model_", model)   # an estimator's file: its fastbp.MLP
    model.export_onnx(args.onnx)
    print(f"wrote {args.onnx}: {'-'.join(map(str, model.sizes))}, input X, output Y ({model.output})")
    return 0


def _check_train(args):
    """Every option checked before any work; the message names the user's option and path."""
    import os

    from fastbp import _threads
    if args.threads is not None and args.threads > _threads.max_threads():
        raise ValueError(f"--threads {args.threads}: at most {_threads.max_threads()} threads "
                         "were started (set NUMBA_NUM_THREADS to start more)")
    if args.data and not os.path.isfile(args.data):
        raise ValueError(f"--data {args.data}: the file does not exist")
    for opt, path in (("--output", args.output), ("--plot", args.plot)):
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise ValueError(f"{opt} {path}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise ValueError(f"{opt} {path}: the folder {folder} is not writable")
    if args.plot:
        suffix = os.path.splitext(args.plot)[1].lower().lstrip(".")
        try:
            import matplotlib
        except ImportError:
            raise ValueError("--plot needs matplotlib (pip install matplotlib)") from None
        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
        supported = plt.gcf().canvas.get_supported_filetypes()
        plt.close("all")
        if suffix not in supported:
            raise ValueError(f"--plot {args.plot}: unknown image type {suffix!r}; use one of "
                             + ", ".join(sorted(supported)))


def _train(args):
    import warnings

    import fastbp
    from fastbp.datasets import load_digits, load_file

    if args.data:
        # float64 so --standardize's statistics are those the model applies later to a
        # file read the same way (MLP.check_X casts to the model's dtype after scaling)
        X, y_raw = load_file(args.data, dtype="float64", delimiter=args.delimiter)
        name = args.data
    else:
        X, y_raw = load_digits(dtype=args.dtype)
        name = "digits (embedded, 1797 x 64)"
    if y_raw.dtype.kind == "f":
        if not np.all(np.isfinite(y_raw)):
            raise ValueError(f"{name}: the label column holds missing or non-finite values")
        if not np.all(y_raw == np.round(y_raw)):
            raise ValueError(f"{name}: the label column holds non-integer numbers (e.g. "
                             f"{y_raw[y_raw != np.round(y_raw)][0]:g}), a regression target; "
                             "fastbp train trains classifiers only (use fastbp.MLPRegressor "
                             "or MLP(..., output='identity') from Python)")
        y_raw = y_raw.astype(np.int64)
    classes, y = np.unique(y_raw, return_inverse=True)
    if classes.shape[0] < 2:
        raise SystemExit(f"fastbp train: the data has {classes.shape[0]} class; need at least 2")
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(X.shape[0])
    n_test = max(1, int(round(X.shape[0] * args.test_fraction)))
    test, train = perm[:n_test], perm[n_test:]
    X_train, X_test = X[train], X[test]
    if args.standardize:
        mean = X_train.mean(axis=0, dtype=np.float64)
        std = X_train.std(axis=0, dtype=np.float64)
        std[std == 0] = 1
    else:
        mean = std = None
    sizes = [X.shape[1], *args.hidden, classes.shape[0]]
    from fastbp import distributed
    ranks = distributed.launched_ranks()   # > 1 under mpiexec -n N: data-parallel over them
    say, rank, threads = print, 0, args.threads
    if ranks > 1:
        world = distributed.World()
        rank = world.rank
        threads = threads or distributed.threads_per_rank(world)
        if rank != 0:
            say = lambda *a, **k: None   # noqa: E731   rank 0 alone speaks
    lr = args.lr if args.lr is not None else (0.5 if args.optimizer == "sgd" else 1e-3)
    opt = fastbp.SGD(lr=lr, momentum=args.momentum) if args.optimizer == "sgd" else fastbp.Adam(lr=lr)
    model = fastbp.MLP(sizes, activation=args.activation, output="softmax", dtype=args.dtype,
                       seed=args.seed, n_threads=threads)
    # the model scales raw features itself (MLP.check_X) in training, evaluation and
    # after loading: one code path, so `fastbp evaluate` sees what training saw
    model.classes_, model.input_mean, model.input_std = classes, mean, std
    say(f"data: {name}; {len(train)} training / {len(test)} held-out samples, "
          f"{classes.shape[0]} classes")
    say(f"model: {'-'.join(map(str, sizes))} {args.activation}, softmax output, {args.dtype}, "
          f"{opt!r}, batch {args.batch_size}, threads {model.n_threads or fastbp.get_num_threads()}"
          + (f" per rank, data-parallel over {ranks} MPI ranks" if ranks > 1 else ""))
    t0 = time.perf_counter()
    # with --plot, the held-out part is also scored after each epoch (weights are unchanged)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", fastbp.DivergenceWarning)
        history = model.fit(X_train, y[train], epochs=args.epochs, batch_size=args.batch_size,
                            optimizer=opt, verbose=args.verbose,
                            validation_data=(X_test, y[test]) if args.plot else None,
                            distributed="mpi" if ranks > 1 else None)
    for w in caught:
        if issubclass(w.category, fastbp.DivergenceWarning):
            # a diverged model is not worth saving: say so and fail, not "accuracy 0.1, exit 0"
            say(f"fastbp train: error: {w.message}; the model was not saved", file=sys.stderr)
            return 1
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    seconds = time.perf_counter() - t0
    result = model.evaluate(X_test, y[test])
    rates = history.history.get("samples_per_second", [])
    steady = float(np.median(rates[1:] if len(rates) > 1 else rates)) if rates else float("nan")
    say(f"trained {len(history.epoch)} epochs in {seconds:.2f} s (first epoch includes "
          f"compilation); throughput {steady:,.0f} samples/s (median epoch)")
    say(f"held-out accuracy: {result['accuracy']:.4f}  loss: {result['loss']:.4f}")
    model.held_out_rows = np.sort(test)
    if rank != 0:
        return 0                        # rank 0 saves and plots
    model.save(args.output)
    say(f"saved model to {args.output}")
    if args.plot:
        from fastbp.plotting import plot_history
        plot_history(history, args.plot, title=f"{'-'.join(map(str, sizes))} {args.activation}, "
                     f"{opt!r}, batch {args.batch_size} (validation = held-out part)")
        say(f"saved learning curve to {args.plot}")
    return 0


def _info(args):
    import os
    import platform

    import llvmlite.binding as llvm
    import numba

    import fastbp
    from fastbp import _threads

    # run one tiny parallel kernel so Numba has loaded its threading layer
    fastbp.MLP([2, 2], seed=0).predict(np.zeros((1, 2)))
    versions = [("fastbp", fastbp.__version__), ("python", platform.python_version()),
                ("numpy", np.__version__), ("numba", numba.__version__)]
    for mod in ("llvmlite", "sklearn", "matplotlib"):
        try:
            versions.append((mod, __import__(mod).__version__))
        except ImportError:
            versions.append((mod, "not installed"))
    print("versions:        " + ", ".join(f"{k} {v}" for k, v in versions))
    print(f"threading layer: {fastbp.threading_layer()}")
    print(f"threads:         {fastbp.get_num_threads()} in use, {_threads.max_threads()} started "
          f"(NUMBA_NUM_THREADS), {os.cpu_count()} CPUs")
    features = llvm.get_host_cpu_features()
    vector = sorted(f for f, on in features.items() if on and f.startswith(
        ("sse", "ssse", "avx", "fma", "f16c", "amx", "neon", "sve", "vsx", "altivec")))
    print(f"CPU:             {llvm.get_host_cpu_name()} ({platform.machine()})")
    print("vector ext.:     " + (" ".join(vector) or "none detected"))
    from fastbp import _config
    shape = _config.LEVELS[_config.ISA]
    print(f"kernel level:    {_config.ISA} ({_config.ISA_REASON}; FASTBP_ISA=avx512|avx2|sse forces one): "
          f"{shape['VEC_BYTES']}-byte vectors, {shape['MR']} x {shape['NR_VECS']}-vector micro-kernel")
    from fastbp import distributed
    mpi = distributed.library()
    print("MPI:             " + (f"{mpi[0]}; {mpi[1]} rank(s) (mpiexec -n N fastbp train: "
                                 "data-parallel)" if mpi else "not installed (pip install 'fastbp[mpi]')"))
    from fastbp import _cache
    print(f"compile cache:   {_cache.cache_dir()}  (stamp {_cache.STAMP[:12]}; set "
          "FASTBP_CACHE_DIR to move it)")
    return 0


def _load_for_model(args, n_features, model=None):
    """(X, y or None) from a data file, for a model with n_features inputs, its stored
    labels mapped back to output indices.  An MLP applies its stored input scaling itself
    (MLP.check_X); --standardize-from replaces that scaling for this run."""
    from fastbp.datasets import read_table
    path = args.data
    X, y = read_table(path, args.delimiter)
    if y is None and not path.lower().endswith(".npz") and X.shape[1] == n_features + 1:
        X, y = X[:, :-1], X[:, -1]   # a CSV with the label in its last column
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"{path}: the model expects {n_features} features per sample, the data "
                         f"has shape {X.shape}")
    if args.standardize_from:
        from fastbp.datasets import load_file
        Xs, _ = load_file(args.standardize_from, dtype="float64", delimiter=args.delimiter)
        mean, std = Xs.mean(axis=0), Xs.std(axis=0)
        std[std == 0] = 1
        if hasattr(model, "input_mean"):
            model.input_mean, model.input_std = mean, std   # an MLP scales its own inputs
        else:
            X = (X - mean) / std
    classes = getattr(model, "classes_", None)
    if y is not None and classes is not None and not hasattr(model, "n_features_in_"):
        y = np.asarray(y)
        if classes.dtype.kind in "iuf" and y.dtype.kind == "f" and np.all(y == np.round(y)):
            y = y.astype(classes.dtype)
        idx = np.searchsorted(classes, y).clip(0, len(classes) - 1)
        unknown = classes[idx] != y
        if unknown.any():
            raise ValueError(f"{path}: label {y[unknown][0]!r} is not one of the model's "
                             f"classes {list(classes)}")
        y = idx
    return X, y


def _load_model(path):
    import fastbp
    model = fastbp.load(path)
    n_features = model.sizes[0] if isinstance(model, fastbp.MLP) else model.n_features_in_
    return model, n_features


def _predict(args):
    import fastbp
    model, n_features = _load_model(args.model)
    X, _ = _load_for_model(args, n_features, model)
    if isinstance(model, fastbp.MLP):
        if args.proba or model.output == "identity":
            out = model.predict(X)
        else:
            out = model.predict_classes(X)
            if model.classes_ is not None:
                out = model.classes_[out]      # the data's own labels, e.g. "setosa" or 1..3
    else:
        out = model.predict_proba(X) if args.proba else model.predict(X)
    out = np.asarray(out)
    if out.ndim == 1:
        out = out.reshape(-1, 1)
    lines = [",".join(str(v) if out.dtype.kind in "iub" else
                      (f"{v:.6g}" if out.dtype.kind == "f" else str(v)) for v in row) for row in out]
    text = "\n".join(lines) + "\n"
    if args.output:
        from fastbp.io import atomic_write
        atomic_write(args.output, lambda f: f.write(text.encode()))
        print(f"wrote {len(lines)} predictions to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _evaluate(args):
    import fastbp
    model, n_features = _load_model(args.model)
    X, y = _load_for_model(args, n_features, model)
    if getattr(args, "held_out", False):
        rows = getattr(model, "held_out_rows", None)
        if rows is None:
            raise ValueError(f"--held-out: {args.model} holds no held-out rows (only "
                             "fastbp train stores them)")
        if rows.max() >= X.shape[0]:
            raise ValueError(f"--held-out: {args.data} has {X.shape[0]} rows, fewer than the "
                             "training file had; pass the file the model was trained on")
        X = X[rows]
        y = None if y is None else y[rows]
    if y is None:
        raise ValueError(f"{args.data} has no labels/targets to evaluate against")
    if isinstance(model, fastbp.MLP):
        result = model.evaluate(X, y)
    else:
        result = {"score": model.score(X, y)}
        if hasattr(model, "predict_proba"):
            from sklearn.metrics import log_loss
            result["loss"] = log_loss(y, model.predict_proba(X), labels=model.classes_)
        name = "accuracy" if hasattr(model, "classes_") else "r2"
        result = {("loss" if k == "loss" else name): v for k, v in result.items()}
    print(f"samples: {X.shape[0]}  " + "  ".join(f"{k}: {v:.4f}" for k, v in result.items()))
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            _check_train(args)
            return _train(args)
        if args.command == "info":
            return _info(args)
        if args.command == "predict":
            return _predict(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "export":
            return _export(args)
    except FloatingPointError as exc:
        print(f"fastbp {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        print(f"fastbp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
