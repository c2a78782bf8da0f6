#!/usr/bin/env python3
"""Open the published asv dashboard in headless Chromium and check that it works.

    python scripts/check_dashboard.py [--html .asv/html] [--out .asv/dashboard.png]
                                      [--benchmark NAME] [--chromium PATH]

Serves the dashboard over HTTP on 127.0.0.1 (the pages load their JSON with XHR, which
browsers refuse over file://), then with Chromium (Debian's package: apt-get install
chromium):
  1. the benchmark list (#/summarylist) shows every benchmark that has results;
  2. the graph page of a benchmark with results for at least two commits draws a plot
     (flot's canvas and its axis tick labels are in the DOM);
  3. a screenshot of that graph page is saved (default .asv/dashboard.png).
Exits non-zero with a message when a check fails.  Standard library only.
"""
import argparse
import functools
import glob
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFERRED = "bench_train.TrainThroughput.track_samples_per_second"


def find_chromium(explicit):
    for c in [explicit, "chromium", "chromium-browser", "google-chrome"]:
        if c and shutil.which(c):
            return shutil.which(c)
    sys.exit("check_dashboard: no Chromium found; apt-get install -y chromium")


def n_commits_with_data(html, name):
    """Most commits with a value in any one graph file of a benchmark."""
    best = 0
    for path in glob.glob(os.path.join(html, "graphs", "**", name + ".json"), recursive=True):
        with open(path) as f:
            points = json.load(f)
        def has_value(v):
            return any(x is not None for x in v) if isinstance(v, list) else v is not None
        best = max(best, sum(1 for _, v in points if has_value(v)))
    return best


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(html):
    handler = functools.partial(_Quiet, directory=html)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def chromium(browser, profile, url, *args, timeout=120):
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--hide-scrollbars", f"--user-data-dir={profile}", "--window-size=1400,900",
           "--virtual-time-budget=20000", *args, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        sys.exit(f"check_dashboard: chromium failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--html", default=os.path.join(ROOT, ".asv", "html"))
    ap.add_argument("--out", default=os.path.join(ROOT, ".asv", "dashboard.png"))
    ap.add_argument("--benchmark", default=None, help="graph to open (default: " + PREFERRED + ")")
    ap.add_argument("--chromium", default=None)
    args = ap.parse_args()

    index = os.path.join(args.html, "index.json")
    if not os.path.exists(index):
        sys.exit(f"check_dashboard: {index} missing; run 'asv publish' (scripts/asv_history.sh) first")
    with open(index) as f:
        names = sorted(json.load(f)["benchmarks"])
    print(f"index.json: {len(names)} benchmarks")

    counts = {n: n_commits_with_data(args.html, n) for n in names}
    name = args.benchmark or (PREFERRED if counts.get(PREFERRED, 0) >= 2
                              else max(counts, key=counts.get))
    print(f"graph to check: {name} ({counts.get(name, 0)} commits with results)")
    if counts.get(name, 0) < 2:
        sys.exit(f"check_dashboard: {name} has results for {counts.get(name, 0)} commit(s); "
                 "a graph needs at least two (scripts/asv_history.sh -n 2)")

    browser = find_chromium(args.chromium)
    server = serve(args.html)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    failures = []
    with tempfile.TemporaryDirectory() as profile:
        # 1. the benchmark list
        dom = chromium(browser, profile, base + "#/summarylist", "--dump-dom")
        # asv lists a benchmark only once it has a result (bench_large is skipped by default)
        measured = [n for n in names if counts[n] > 0]
        listed = [n for n in measured if n in dom]
        print(f"benchmark list: {len(listed)}/{len(measured)} benchmarks with results shown"
              + "".join(f"\n  (no results yet, not listed: {n})" for n in names if counts[n] == 0))
        if not measured or len(listed) != len(measured):
            failures.append("not in the benchmark list: "
                            + ", ".join(sorted(set(measured) - set(listed)) or ["(none measured)"]))

        # 2. a graph draws
        url = base + "#" + name
        dom = chromium(browser, profile, url, "--dump-dom")
        m = re.search(r'<div id="main-graph".*?<div id="overview"', dom, re.S)
        graph = m.group(0) if m else ""
        canvases = len(re.findall(r"<canvas[^>]*flot-base", graph))
        ticks = len(re.findall(r"flot-tick-label", graph))
        print(f"graph {url}: {canvases} plot canvas, {ticks} axis tick labels")
        if canvases < 1 or ticks < 2:
            failures.append(f"no plot drawn on the graph page of {name}")
            if "continental origin of swallow" in dom:
                failures.append("the page could not load its JavaScript from the CDNs; run "
                                "scripts/asv_offline_html.py (or asv_history.sh --offline)")

        # 3. screenshot
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        chromium(browser, profile, url, f"--screenshot={os.path.abspath(args.out)}")
        size = os.path.getsize(args.out) if os.path.exists(args.out) else 0
        print(f"screenshot: {args.out} ({size} bytes)")
        if size == 0:
            failures.append("no screenshot written")
    server.shutdown()
    if failures:
        for f in failures:
            print("FAIL:", f, file=sys.stderr)
        return 1
    print("dashboard OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
