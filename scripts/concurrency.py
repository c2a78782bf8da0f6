"""fastbp under threads and processes: no abort, no deadlock, the same results as alone.

    python scripts/concurrency.py [--epochs 3] [--timeout 300]

1. Four Python threads at once, each fitting its own model with ``n_threads=2``.
2. A ``fork`` child of this process, which has already trained (the threading layer and
   its worker threads exist before the fork), fitting a model.
3. joblib's loky workers (``n_jobs=2``) fitting four models.

Each result (a hash of the weights and the epoch losses) is compared with the same fit run
alone in this process before; each worker reports its threads (fastbp's count, the
threading layer, NUMBA_NUM_THREADS, the OS threads of the process) so oversubscription
shows: loky sets NUMBA_NUM_THREADS = cores // n_jobs in its workers.  Exit status 1 if any
result differs or any part fails or times out.
"""
import argparse
import hashlib
import multiprocessing
import os
import sys
import threading

import numpy as np

SEEDS = [0, 1, 2, 3]


def _threads_of_process():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def fit(seed, epochs, n_threads=None):
    """One fit: a network whose products are large enough to run threaded (kernels/step.py's
    threading_for), and where it ran."""
    import fastbp
    X, y = fastbp.load_digits()
    model = fastbp.MLP([64, 256, 10], activation="relu", seed=seed)
    h = model.fit(X, y, epochs=epochs, batch_size=128, optimizer=fastbp.Adam(1e-3), verbose=0,
                  n_threads=n_threads)
    with model._threads(n_threads):
        threads = fastbp.get_num_threads()
    return {"seed": seed, "hash": hashlib.sha256(model.params.tobytes()).hexdigest()[:16],
            "loss": h.history["loss"], "fastbp_threads": threads, "layer": fastbp.threading_layer(),
            "NUMBA_NUM_THREADS": os.environ.get("NUMBA_NUM_THREADS"), "os_threads": _threads_of_process(),
            "pid": os.getpid()}


def _fork_child(conn, epochs):
    try:
        conn.send(fit(SEEDS[0], epochs))
    except BaseException as e:   # report, do not hang the parent
        conn.send({"error": repr(e)})
    conn.close()


def _same(result, alone):
    return result.get("hash") == alone["hash"] and result.get("loss") == alone["loss"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--timeout", type=float, default=300, help="seconds per part before it counts as a deadlock")
    args = p.parse_args(argv)
    import fastbp
    alone = {s: fit(s, args.epochs, n_threads=2) for s in SEEDS}
    print(f"alone: {len(SEEDS)} fits, threading layer {alone[0]['layer']}, cores {os.cpu_count()}, "
          f"fastbp threads {alone[0]['fastbp_threads']}")
    failures = 0

    # 1. four threads at once, two kernel threads each
    results, errors = {}, []
    barrier = threading.Barrier(len(SEEDS))

    def worker(seed):
        try:
            barrier.wait()
            results[seed] = fit(seed, args.epochs, n_threads=2)
        except BaseException as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in SEEDS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.timeout)
    hung = sum(t.is_alive() for t in threads)
    same = sum(_same(results.get(s, {}), alone[s]) for s in SEEDS)
    print(f"threads: 4 Python threads x n_threads=2: {same}/4 equal to the fit alone, errors {errors}, "
          f"hung {hung}; OS threads of the process {_threads_of_process()}")
    failures += (same != 4) + bool(errors) + hung

    # 2. a fork child of a process that has trained
    ctx = multiprocessing.get_context("fork")
    parent_conn, child_conn = ctx.Pipe()
    child = ctx.Process(target=_fork_child, args=(child_conn, args.epochs))
    child.start()
    got = parent_conn.recv() if parent_conn.poll(args.timeout) else {"error": "timed out (deadlock?)"}
    child.join(10)
    ok = _same(got, alone[SEEDS[0]]) and child.exitcode == 0
    print(f"fork: child exit code {child.exitcode}, equal to the fit alone: {ok}, "
          f"threads {got.get('fastbp_threads')} ({got.get('layer')}), OS threads {got.get('os_threads')}"
          + (f", error {got['error']}" if "error" in got else ""))
    failures += not ok

    # 3. joblib's loky workers
    try:
        from joblib import Parallel, delayed
    except ImportError:
        print("loky: joblib is not installed; skipped")
    else:
        out = Parallel(n_jobs=2, backend="loky", timeout=args.timeout)(
            delayed(fit)(s, args.epochs) for s in SEEDS)
        same = sum(_same(r, alone[r["seed"]]) for r in out)
        workers = {r["pid"]: r for r in out}
        per = ", ".join(f"pid {pid}: fastbp threads {r['fastbp_threads']} (NUMBA_NUM_THREADS="
                        f"{r['NUMBA_NUM_THREADS']}, {r['layer']}), OS threads {r['os_threads']}"
                        for pid, r in sorted(workers.items()))
        busy = len(workers) * max(r["fastbp_threads"] for r in out)
        print(f"loky: n_jobs=2, {len(out)} fits in {len(workers)} workers: {same}/{len(out)} equal to "
              f"the fit alone; {per}; kernel threads in all {busy} on {os.cpu_count()} cores")
        failures += (same != len(out)) + (busy > os.cpu_count())
    print("all equal, no abort, no deadlock" if failures == 0 else f"{failures} FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
