"""SIGKILL writers at random moments; check that the file always loads and no temporaries pile up.

    python scripts/kill_writes.py [--trials 1000] [--kinds checkpoint,save,estimator] [--seed 0]

Three kinds of writer, each writing one file over and over:
  checkpoint  MLP.fit(X, y, checkpoint=path, checkpoint_every=1) on 64 samples (a checkpoint
              after every epoch of two minibatches)
  save        MLP.save(path) in a loop
  estimator   MLPClassifier.partial_fit then .save(path) in a loop

This process imports fastbp and compiles once, then forks one writer per trial (a fork
costs milliseconds where a fresh interpreter costs a Numba import), lets it write, kills it
with SIGKILL after a random delay, and checks: the file loads (``read_checkpoint``,
``fastbp.load``, ``MLPClassifier.load``) and is the last write the writer finished or the
one it had begun; the temporary file a kill inside a write leaves is gone once the next
writer has written; and at the end no ``.fastbp-*.tmp`` file is left.  Each writer reports
through a pipe the number of the write it begins and of the one it finished, and puts that
number into the file (``MLP.epoch`` / ``n_iter_``), so the check knows which write it sees.
Prints the count of each outcome per kind; exits 1 on any failure.
"""
import argparse
import collections
import os
import signal
import struct
import sys
import tempfile
import time
import warnings

import numpy as np

KINDS = ("checkpoint", "save", "estimator")


def _temporaries(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith(".fastbp-") and n.endswith(".tmp"))


class Writer:
    """What one kind of writer writes, and how the file is read back."""

    def __init__(self, kind, path):
        import fastbp
        self.kind, self.path = kind, path
        rng = np.random.default_rng(0)
        self.X = rng.standard_normal((64, 8)).astype(np.float32)
        self.y = rng.integers(0, 3, 64)
        if kind == "estimator":
            self.est = fastbp.MLPClassifier(hidden_layer_sizes=(6,), max_iter=1, random_state=0,
                                            batch_size=32)
            self.est.partial_fit(self.X, self.y, classes=[0, 1, 2])
        else:
            self.model = fastbp.MLP([8, 6, 3], activation="tanh", seed=0)

    def warm_up(self):
        """Compile in this process, before any fork."""
        self.write_loop(lambda k: None, lambda k: None, stop=3)

    def write_loop(self, begin, done, stop=None):
        """Write forever (or `stop` writes), calling begin(k) before write k and done(k) after."""
        import fastbp
        k = 0
        while stop is None or k < stop:
            k += 1
            if self.kind == "checkpoint":
                # a checkpoint carries model.epoch (epochs over the model's life), which
                # the trainer counts up just before the callbacks and the checkpoint write
                model = self.model

                def on_epoch_end(epoch, logs):
                    done(model.epoch - 1)                # the previous checkpoint is written
                    begin(model.epoch)                   # and this one is written next
                model.fit(self.X, self.y, epochs=20, batch_size=32, optimizer="sgd",
                          checkpoint=self.path, checkpoint_every=1, verbose=0, n_threads=1,
                          callbacks=[fastbp.LambdaCallback(on_epoch_end=on_epoch_end)])
                done(model.epoch)
                k = model.epoch
            elif self.kind == "save":
                begin(k)
                self.model.epoch = k
                self.model.params[0] = k
                self.model.save(self.path)
                done(k)
            else:
                self.est.partial_fit(self.X, self.y)
                begin(k)
                self.est.n_iter_ = k
                self.est.save(self.path)
                done(k)

    def read(self):
        """The write number the file holds (raises if it does not load)."""
        import fastbp
        if self.kind == "checkpoint":
            model, training = fastbp.files.read_checkpoint(self.path)
            return model.epoch
        if self.kind == "save":
            return fastbp.load(self.path).epoch
        return fastbp.MLPClassifier.load(self.path).n_iter_


def _child(writer, wfd):
    """The forked writer: report begin/done through the pipe, write until killed."""
    def say(tag, k):
        os.write(wfd, struct.pack("<cq", tag, k))
    try:
        writer.write_loop(lambda k: say(b"b", k), lambda k: say(b"d", k))
    finally:
        os._exit(3)


def _reports(rfd):
    data = b""
    while True:
        try:
            chunk = os.read(rfd, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return [struct.unpack("<cq", data[i:i + 9]) for i in range(0, len(data) - len(data) % 9, 9)]


def trials(kind, n, rng, folder, max_delay, log=None):
    """Run n kill trials of one kind in folder; return a Counter of outcomes."""
    path = os.path.join(folder, f"{kind}.npz")
    writer = Writer(kind, path)
    writer.warm_up()
    out = collections.Counter()
    left = []          # temporaries the previous kill left
    max_tmp = 0
    for t in range(n):
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            _child(writer, wfd)
        os.close(wfd)
        # wait for the writer's first finished write: it also cleaned up after the last kill
        seen, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline:
            first = next((k for tag, k in seen if tag == b"b"), None)
            if first is not None and any(tag == b"d" and k >= first for tag, k in seen):
                break
            time.sleep(0.0005)
            seen += _reports(rfd)
        if any(os.path.exists(os.path.join(folder, name)) for name in left):
            out["FAIL: a killed writer's temporary survived the next write"] += 1
        time.sleep(rng.uniform(0, max_delay))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        seen += _reports(rfd)
        os.close(rfd)
        begun = max([k for tag, k in seen if tag == b"b"], default=0)
        finished = max([k for tag, k in seen if tag == b"d"], default=0)
        temps = _temporaries(folder)
        max_tmp = max(max_tmp, len(temps))
        left = temps
        try:
            got = writer.read()
        except Exception as exc:
            out[f"FAIL: the file does not load ({type(exc).__name__})"] += 1
            if log:
                log(f"{kind} trial {t}: {type(exc).__name__}: {exc}")
            continue
        if got == finished:
            what = "loads: the last finished write"
        elif got == begun and begun > finished:
            what = "loads: the last write begun (complete; the kill came before its report)"
        else:
            what = "FAIL: loads, but holds neither the last finished write nor the one begun"
            if log:
                log(f"{kind} trial {t}: holds {got}, finished {finished}, begun {begun}")
        out[what + (" (a temporary was left)" if temps else "")] += 1
    writer.write_loop(lambda k: None, lambda k: None, stop=1)   # one more write, then count
    remaining = _temporaries(folder)
    out[f"temporaries at the end: {len(remaining)} (at most {max_tmp} at once)"] += 0
    if remaining:
        out["FAIL: temporaries left at the end"] += len(remaining)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=1000, help="trials per kind")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-delay", type=float, default=0.03,
                    help="kill after a delay uniform in [0, this] seconds")
    ap.add_argument("--folder", help="where to write (default: a new temporary folder)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(args.seed)
    failed = False
    for kind in args.kinds.split(","):
        if kind not in KINDS:
            raise SystemExit(f"--kinds: {kind!r} is not one of {KINDS}")
        with tempfile.TemporaryDirectory(prefix=f"fastbp-kill-{kind}-", dir=args.folder) as folder:
            t0 = time.time()
            out = trials(kind, args.trials, rng, folder, args.max_delay,
                         log=lambda s: print("  " + s, flush=True))
        print(f"{kind}: {args.trials} SIGKILLs in {time.time() - t0:.0f} s")
        for name, k in sorted(out.items(), key=lambda kv: -kv[1]):
            print(f"  {k:5d}  {name}" if k else f"         {name}")
        failed |= any(name.startswith("FAIL") and k for name, k in out.items())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
