"""Train an MLP and plot its learning curve: loss and accuracy per epoch, training and validation.

    python scripts/learning_curve.py [--out /tmp/curve.png] [--epochs 30] [--hidden 64]
        [--lr 0.1] [--optimizer sgd|adam] [--batch-size 32] [--val 0.25] [--seed 0]

Default data: the embedded 8x8 digits.  The figure goes to --out; the per-epoch numbers
are printed as well.
"""
import argparse

import fastbp
from fastbp.plotting import plot_history


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/fastbp-curve.png")
    p.add_argument("--data", help=".npz (X, y) or .csv with the label last; default digits")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--hidden", default="64", help="hidden widths, comma-separated")
    p.add_argument("--activation", default="sigmoid")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--val", type=float, default=0.25, help="validation fraction")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    if args.data:
        from fastbp.datasets import load_file
        import numpy as np
        X, y_raw = load_file(args.data)
        _, y = np.unique(y_raw, return_inverse=True)
    else:
        X, y = fastbp.load_digits()
    n_classes = int(y.max()) + 1
    sizes = [X.shape[1], *[int(v) for v in args.hidden.split(",")], n_classes]
    lr = args.lr if args.lr is not None else (0.1 if args.optimizer == "sgd" else 1e-3)
    opt = fastbp.SGD(lr=lr, momentum=0.9) if args.optimizer == "sgd" else fastbp.Adam(lr=lr)
    model = fastbp.MLP(sizes, activation=args.activation, seed=args.seed)
    history = model.fit(X, y, epochs=args.epochs, batch_size=args.batch_size, optimizer=opt,
                        validation_split=args.val, verbose=0)
    h = history.history
    print("epoch  loss     acc     val_loss val_acc")
    for e in range(len(h["loss"])):
        print(f"{e + 1:>5}  {h['loss'][e]:.4f}   {h['accuracy'][e]:.4f}  "
              f"{h['val_loss'][e]:.4f}   {h['val_accuracy'][e]:.4f}")
    title = f"{'-'.join(map(str, sizes))} {args.activation}, {opt!r}, batch {args.batch_size}"
    print("wrote", plot_history(history, args.out, title=title))


if __name__ == "__main__":
    main()
