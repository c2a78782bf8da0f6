"""Train one epoch on a float32 np.memmap of a few GB and predict on all of it, in bounded memory.

    python scripts/memmap_train.py [--gb 2.0] [--dir /tmp] [--features 784] [--keep]

Writes a random data set of ``--gb`` GiB to a file in ``--dir`` (after checking the free
space there), then, in a child process that maps it read-only: compiles on a small array
(so compiling is not counted), takes the baseline, trains one epoch of the M network
(784-256-256-10, batch 128, SGD) on the memmap with validation-free shuffled minibatches,
and predicts on every row.  A sampler thread reads the process's anonymous resident memory
(RssAnon: the heap; a file's pages that the mapping brings in are RssFile, the page cache,
and no copy) every 5 ms.  The peak above the baseline must stay under parameters +
optimizer state + workspaces + 200 MB: a copy of the data set, or of any large part of it,
would show.  The file is deleted afterwards unless ``--keep``.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

SIZES = [784, 256, 256, 10]
BATCH = 128


def _status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _child(path, n, features):
    import fastbp
    X = np.memmap(path, dtype=np.float32, mode="r", shape=(n, features))
    y = (np.arange(n) % SIZES[-1]).astype(np.int64)
    model = fastbp.MLP([features] + SIZES[1:], dtype="float32", seed=0)
    small = np.ascontiguousarray(X[:4 * BATCH])
    model.fit(small, y[:4 * BATCH], epochs=1, batch_size=BATCH, optimizer=fastbp.SGD(0.01), verbose=0)
    model.predict(small)          # compiled, workspaces of the sizes used below exist
    base = _status()
    peak = [base["RssAnon"]]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _status()["RssAnon"])
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    h = model.fit(X, y, epochs=1, batch_size=BATCH, verbose=0)
    t_fit = time.perf_counter() - t0
    p = model.predict(X)
    t_predict = time.perf_counter() - t0 - t_fit
    done.set()
    sampler.join()
    end = _status()
    ws_bytes = sum(b.nbytes for b in model.workspace(BATCH)[0])
    pred_ws = sum(b.nbytes for b in model.workspace(model._eval_chunk(n))[0])
    state = model.optimizer.state.nbytes
    budget = model.params.nbytes + state + ws_bytes + pred_ws + 200 * 2**20
    print(json.dumps({
        "rows": n, "features": features, "data_bytes": X.nbytes, "loss": h.history["loss"][0],
        "predictions_bytes": p.nbytes, "finite": bool(np.isfinite(p).all()),
        "params_bytes": model.params.nbytes, "optimizer_state_bytes": state,
        "workspace_bytes": ws_bytes + pred_ws,
        "baseline_rss_anon": base["RssAnon"], "peak_rss_anon_above_baseline": peak[0] - base["RssAnon"],
        "rss_file_at_end": end["RssFile"], "vm_hwm": end["VmHWM"], "budget": budget,
        "fit_s": round(t_fit, 1), "predict_s": round(t_predict, 1)}), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=2.0, help="GiB of float32 data (default 2)")
    p.add_argument("--dir", default=tempfile.gettempdir())
    p.add_argument("--features", type=int, default=784)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]), int(args.child[2]))
        return 0
    n = int(args.gb * 2**30) // (4 * args.features)
    need = n * args.features * 4
    free = shutil.disk_usage(args.dir).free
    print(f"free space in {args.dir}: {free / 2**30:.1f} GiB; the data set needs {need / 2**30:.2f} GiB")
    if free < need + 2**30:
        print("not enough free space (the data set plus 1 GiB to spare)", file=sys.stderr)
        return 2
    path = os.path.join(args.dir, f"fastbp-memmap-{os.getpid()}.f32")
    try:
        X = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, args.features))
        rng = np.random.default_rng(0)
        for s in range(0, n, 65536):   # written in slices: the writer holds no copy either
            X[s:s + 65536] = rng.random((min(65536, n - s), args.features), dtype=np.float32)
        X.flush()
        del X
        r = subprocess.run([sys.executable, __file__, "--child", path, str(n), str(args.features)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr[-3000:], file=sys.stderr)
            return 1
        res = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        if not args.keep and os.path.exists(path):
            os.remove(path)
    mb = lambda b: f"{b / 2**20:,.1f} MiB"  # noqa: E731
    print(f"data: {res['rows']:,} x {res['features']} float32 memmap, {mb(res['data_bytes'])}; "
          f"network {'-'.join(map(str, [res['features']] + SIZES[1:]))}, batch {BATCH}")
    print(f"one epoch: loss {res['loss']:.4f} in {res['fit_s']} s; predict on all rows in "
          f"{res['predict_s']} s (output {mb(res['predictions_bytes'])}, finite: {res['finite']})")
    print(f"parameters {mb(res['params_bytes'])}, optimizer state {mb(res['optimizer_state_bytes'])}, "
          f"workspaces {mb(res['workspace_bytes'])}")
    print(f"peak anonymous RSS above the baseline: {mb(res['peak_rss_anon_above_baseline'])} "
          f"(budget: those + 200 MiB = {mb(res['budget'])}); file pages mapped at the end "
          f"(page cache, not a copy): {mb(res['rss_file_at_end'])}; VmHWM {mb(res['vm_hwm'])}")
    ok = res["peak_rss_anon_above_baseline"] < res["budget"] and res["finite"]
    print("within budget" if ok else "OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
