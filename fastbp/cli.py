"""The command line: ``fastbp train`` (also ``python -m fastbp train``)."""
import argparse
import sys
import time

import numpy as np


def _sizes(text):
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"layer widths must be positive integers, got {text!r}")
    return sizes


def _parser():
    p = argparse.ArgumentParser(prog="fastbp", description="Train multi-layer perceptrons with "
                                "explicit-loop, JIT-compiled backpropagation.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a classifier (default data: the embedded 8x8 digits)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--data", help=".npz with arrays X, y or .csv with the label in the last column "
                   "(default: the embedded digits, scaled to [0, 1])")
    t.add_argument("--hidden", type=_sizes, default=[32],
                   help="hidden layer widths, comma-separated, e.g. 128,64")
    t.add_argument("--activation", default="sigmoid", choices=["sigmoid", "tanh", "relu", "identity"])
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: 0.5 for sgd, 0.001 for adam)")
    t.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    t.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=None, help="threads (default: all)")
    t.add_argument("--test-fraction", type=float, default=0.2,
                   help="fraction held out (seeded, stratified by shuffling) to report accuracy on")
    t.add_argument("--standardize", action="store_true",
                   help="scale each feature to zero mean and unit variance (training-set statistics)")
    t.add_argument("--output", "-o", default="fastbp-model.npz", help="where to save the model")
    t.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    return p


def _train(args):
    import fastbp
    from fastbp.datasets import load_digits, load_file

    if args.data:
        X, y_raw = load_file(args.data, dtype=args.dtype)
        name = args.data
    else:
        X, y_raw = load_digits(dtype=args.dtype)
        name = "digits (embedded, 1797 x 64)"
    classes, y = np.unique(y_raw, return_inverse=True)
    if classes.shape[0] < 2:
        raise SystemExit(f"fastbp train: the data has {classes.shape[0]} class; need at least 2")
    if not 0 < args.test_fraction < 1:
        raise SystemExit("fastbp train: --test-fraction must be between 0 and 1")
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(X.shape[0])
    n_test = max(1, int(round(X.shape[0] * args.test_fraction)))
    test, train = perm[:n_test], perm[n_test:]
    X_train, X_test = X[train], X[test]
    if args.standardize:
        mean = X_train.mean(axis=0)
        std = X_train.std(axis=0)
        std[std == 0] = 1
        X_train = (X_train - mean) / std
        X_test = (X_test - mean) / std
    sizes = [X.shape[1], *args.hidden, classes.shape[0]]
    lr = args.lr if args.lr is not None else (0.5 if args.optimizer == "sgd" else 1e-3)
    opt = fastbp.SGD(lr=lr, momentum=args.momentum) if args.optimizer == "sgd" else fastbp.Adam(lr=lr)
    model = fastbp.MLP(sizes, activation=args.activation, output="softmax", dtype=args.dtype,
                       seed=args.seed, n_threads=args.threads)
    print(f"data: {name}; {len(train)} training / {len(test)} held-out samples, "
          f"{classes.shape[0]} classes")
    print(f"model: {'-'.join(map(str, sizes))} {args.activation}, softmax output, {args.dtype}, "
          f"{opt!r}, batch {args.batch_size}, threads {model.n_threads or fastbp.get_num_threads()}")
    t0 = time.perf_counter()
    history = model.fit(X_train, y[train], epochs=args.epochs, batch_size=args.batch_size,
                        optimizer=opt, verbose=args.verbose)
    seconds = time.perf_counter() - t0
    result = model.evaluate(X_test, y[test])
    rates = history.history.get("samples_per_second", [])
    steady = float(np.median(rates[1:] if len(rates) > 1 else rates)) if rates else float("nan")
    print(f"trained {len(history.epoch)} epochs in {seconds:.2f} s (first epoch includes "
          f"compilation); throughput {steady:,.0f} samples/s (median epoch)")
    print(f"held-out accuracy: {result['accuracy']:.4f}  loss: {result['loss']:.4f}")
    model.save(args.output)
    print(f"saved model to {args.output}")
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"fastbp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
