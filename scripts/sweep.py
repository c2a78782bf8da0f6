"""Hyper-parameter sweep: learning rate x hidden width on the digits, a CSV and a plot.

    python scripts/sweep.py [--out /tmp/fastbp-sweep] [--epochs 15]
        [--lrs 0.01,0.03,0.1,0.3,1] [--hidden 16,64,256] [--optimizer sgd] [--seed 0]

Each configuration trains on 75 % of the digits and is scored on the other 25 % (the same
seeded split for all).  Writes OUT.csv (one row per configuration: lr, hidden, final
training loss, validation loss and accuracy, best validation accuracy, seconds) and
OUT.png (validation accuracy against learning rate, one line per width).
"""
import argparse
import csv
import itertools
import time

import fastbp
from fastbp.plotting import _pyplot


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/fastbp-sweep", help="path prefix for .csv and .png")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--lrs", default="0.01,0.03,0.1,0.3,1")
    p.add_argument("--hidden", default="16,64,256")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    lrs = [float(v) for v in args.lrs.split(",")]
    widths = [int(v) for v in args.hidden.split(",")]

    X, y = fastbp.load_digits()
    rows = []
    for width, lr in itertools.product(widths, lrs):
        opt = fastbp.SGD(lr=lr, momentum=0.9) if args.optimizer == "sgd" else fastbp.Adam(lr=lr)
        model = fastbp.MLP([64, width, 10], activation="sigmoid", seed=args.seed)
        t0 = time.perf_counter()
        try:
            h = model.fit(X, y, epochs=args.epochs, batch_size=args.batch_size, optimizer=opt,
                          validation_split=0.25, verbose=0).history
            row = dict(lr=lr, hidden=width, loss=h["loss"][-1], val_loss=h["val_loss"][-1],
                       val_accuracy=h["val_accuracy"][-1], best_val_accuracy=max(h["val_accuracy"]))
        except FloatingPointError:      # diverged: record it rather than stop the sweep
            row = dict(lr=lr, hidden=width, loss=float("nan"), val_loss=float("nan"),
                       val_accuracy=float("nan"), best_val_accuracy=float("nan"))
        row["seconds"] = round(time.perf_counter() - t0, 3)
        rows.append(row)
        print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))

    with open(args.out + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for width in widths:
        pts = [(r["lr"], r["val_accuracy"]) for r in rows if r["hidden"] == width]
        ax.plot(*zip(*pts), marker="o", label=f"hidden {width}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"validation accuracy after {args.epochs} epochs")
    ax.set_title(f"digits, 64-h-10 sigmoid, {args.optimizer}, batch {args.batch_size}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out + ".png", dpi=110)
    plt.close(fig)
    print(f"wrote {args.out}.csv and {args.out}.png")


if __name__ == "__main__":
    main()
