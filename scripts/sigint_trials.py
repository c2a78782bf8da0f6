"""Ctrl-C during fit, many times: each trial starts a child process that trains with
validation data and a checkpoint every epoch, sends it SIGINT at a random moment, and
checks what fit left behind.

    python scripts/sigint_trials.py [--trials 20] [--max-delay 0.8] [--seed 0]

A trial passes when fit returned (no KeyboardInterrupt escaped), the weights and the
optimizer state are finite, the optimizer counted exactly the minibatches of the recorded
epochs plus those of the partial epoch, the history records the partial epoch, the
checkpoint written on the interrupt holds the same weights, and resuming from it gives
the bit-identical weights and epoch losses of a run that was never interrupted.  One JSON
line per trial, then a summary by outcome; exit status 1 if any trial failed.

The child runs the trainer with calls of about 2 ms (``fastbp._epoch.SECONDS_PER_CALL``) instead of
50 ms, so that a signal lands among many step boundaries.
"""
import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

EPOCHS = 60


def _child(directory):
    # A shell starts a background job (`cmd &`, nohup) with SIGINT ignored, and a Python
    # started so inherits that and has no KeyboardInterrupt handler; fit then rightly leaves
    # the signal alone, and every trial would finish before it.  The trials are of Ctrl-C
    # in an interactive run: the child restores Python's default handler first.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import fastbp
    from fastbp import _epoch
    _epoch.SECONDS_PER_CALL = 0.002
    X, y = fastbp.load_digits()
    X = np.ascontiguousarray(np.tile(X, (2, 1)))   # 400 minibatches an epoch
    y = np.tile(y, 2)
    Xv, yv = X[-400:], y[-400:]
    X, y = X[:-400], y[:-400]
    ckpt = os.path.join(directory, "run.npz")

    def run(**kw):
        model = fastbp.MLP([64, 96, 10], activation="tanh", dtype="float64", seed=0)
        kw.setdefault("epochs", EPOCHS)
        h = model.fit(X, y, batch_size=8, optimizer=fastbp.Adam(1e-3), validation_data=(Xv, yv),
                      verbose=0, **kw)
        return model, h

    # after the first epoch (whose first call loads the compiled code from the cache)
    ready = fastbp.LambdaCallback(on_epoch_end=lambda e, logs: e == 0 and print("ready", flush=True))
    model, h = run(checkpoint=ckpt, callbacks=[ready])
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # a signal after fit returned: not a trial
    n_batches = -(-X.shape[0] // 8)
    partial = h.partial
    done = model.epoch * n_batches + (partial["minibatches"] if partial else 0)
    out = {"interrupted": h.interrupted, "partial": partial, "epochs_done": model.epoch,
           "recorded": len(h.epoch), "steps": model.optimizer.steps, "steps_expected": done,
           "epoch_time_s": round(float(np.median(h.history["epoch_time"])), 4),
           "finite": bool(np.isfinite(model.params).all() and np.isfinite(model.optimizer.state).all())}
    if h.interrupted:
        saved = fastbp.load(ckpt)
        out["checkpoint_equal"] = bool(np.array_equal(saved.params, model.params))
        resumed, hr = run(resume=ckpt)
        reference, href = run()
        out["resume_equal"] = bool(np.array_equal(resumed.params, reference.params))
        out["history_equal"] = hr.history["loss"] == href.history["loss"] \
            and hr.history["val_loss"] == href.history["val_loss"]
    print(json.dumps(out), flush=True)


def _outcome(r):
    if not r["interrupted"]:
        return "finished before the signal"
    ok = (r["finite"] and r["steps"] == r["steps_expected"] and r["checkpoint_equal"]
          and r["resume_equal"] and r["history_equal"]
          and r["recorded"] == r["epochs_done"] + (1 if r["partial"] else 0))
    where = "inside an epoch" if r["partial"] else "between epochs (validation, checkpoint, callbacks)"
    return f"interrupted {where}: " + ("ok" if ok else "FAILED")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--max-delay", type=float, default=0.8, help="seconds after the first epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    rng = np.random.default_rng(args.seed)
    outcomes = collections.Counter()
    for trial in range(args.trials):
        delay = float(rng.uniform(0, args.max_delay))
        with tempfile.TemporaryDirectory() as d:
            child = subprocess.Popen([sys.executable, __file__, "--child", d], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
            line = child.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"the child did not start: {line!r} {child.stderr.read()[-2000:]}")
            time.sleep(delay)
            child.send_signal(signal.SIGINT)
            stdout, stderr = child.communicate(timeout=600)
        if child.returncode != 0:
            kind = "KeyboardInterrupt escaped" if "KeyboardInterrupt" in stderr else f"exit {child.returncode}"
            result = {"error": kind, "stderr": stderr[-1500:]}
            outcome = f"FAILED: {kind}"
        else:
            result = json.loads(stdout.strip().splitlines()[-1])
            outcome = _outcome(result)
        outcomes[outcome] += 1
        print(json.dumps({"trial": trial, "delay_s": round(delay, 3), "outcome": outcome, **result}), flush=True)
    print(f"{args.trials} SIGINT trials:")
    for outcome, count in sorted(outcomes.items()):
        print(f"  {count:4d}  {outcome}")
    return 1 if any("FAILED" in o for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
