#!/usr/bin/env bash
# Benchmark a run of commits with asv, publish the HTML dashboard, optionally serve it.
#
#   scripts/asv_history.sh                 last 5 commits of main, built in asv's virtualenvs
#   scripts/asv_history.sh -n 10           last 10 commits of main
#   scripts/asv_history.sh v0.1..HEAD      every commit of a git range
#   scripts/asv_history.sh --existing      only HEAD, in the current environment (no builds)
#   scripts/asv_history.sh --serve         ... then serve the dashboard on 127.0.0.1:8080
#   scripts/asv_history.sh --publish-only --offline --serve
#
# Options:
#   -n N             commits of main to run when no RANGE is given (default 5)
#   -b REGEX         benchmarks to run (asv --bench); default '^(?!bench_large)' skips L/XL
#   --all            run every benchmark, L and XL included
#   --full           asv's own sampling (several processes and repeats); default is a fast
#                    pass (one round, 3 repeats; --quick's single calls are too noisy to keep)
#   --existing       benchmark HEAD in the current Python environment instead of building
#                    each commit (asv --environment existing:python --set-commit-hash HEAD)
#   --publish-only   do not run anything, just publish (and serve) what .asv/results holds
#   --serve [PORT]   after publishing, serve .asv/html on 127.0.0.1:PORT (default 8080)
#   --offline        after publishing, serve the dashboard's JavaScript/CSS from .asv/html/vendor
#                    (fetched with npm) instead of public CDNs: for machines without internet
#   --keep DIR       afterwards copy .asv/results into DIR (results are git-ignored: keep
#                    them in another folder, branch or repository)
#   --restore DIR    before running, copy results kept in DIR back into .asv/results
#   -- ARGS...       passed on to 'asv run' (e.g. -- --cpu-affinity 1)
#
# asv comes from the 'bench' extra: pip install -e '.[bench]'.  Results go to .asv/results,
# the dashboard to .asv/html (asv.conf.json); see docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

ASV=${ASV:-}
if [ -z "$ASV" ]; then
    if [ -x .venv/bin/asv ]; then ASV=.venv/bin/asv; else ASV=asv; fi
fi
PYTHON=${PYTHON:-$(cd "$(dirname "$(command -v "$ASV")")" && pwd)/python}
[ -x "$PYTHON" ] || PYTHON=python3

n=5
range=""
bench='^(?!bench_large)'
full=0
existing=0
run=1
serve=""
keep=""
restore=""
offline=0
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        -n) n=$2; shift 2 ;;
        -b) bench=$2; shift 2 ;;
        --all) bench='.'; shift ;;
        --full) full=1; shift ;;
        --existing) existing=1; shift ;;
        --publish-only) run=0; shift ;;
        --offline) offline=1; shift ;;
        --serve)
            serve=8080
            if [ $# -gt 1 ] && [[ $2 =~ ^[0-9]+$ ]]; then serve=$2; shift; fi
            shift ;;
        --keep) keep=$2; shift 2 ;;
        --restore) restore=$2; shift 2 ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        -*) echo "asv_history.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) range=$1; shift ;;
    esac
done

mkdir -p .asv
# asv needs a description of this machine once; take the defaults it detects.
[ -f "$HOME/.asv-machine.json" ] || "$ASV" machine --yes >/dev/null

if [ -n "$restore" ]; then
    mkdir -p .asv/results
    cp -r "$restore"/. .asv/results/
    echo "restored results from $restore"
fi

if [ "$run" = 1 ]; then
    sampling=()
    if [ "$full" = 0 ]; then
        # one process, 3 samples, no warm-up time: minutes instead of an hour
        # (asv --quick records a single call per benchmark: too noisy for a history)
        sampling=(-a rounds=1 -a repeat=3 -a warmup_time=0.05)
    fi
    if [ "$existing" = 1 ]; then
        "$ASV" run --environment "existing:$PYTHON" --set-commit-hash "$(git rev-parse HEAD)" \
            --bench "$bench" "${sampling[@]}" --show-stderr "${extra[@]}"
    else
        if [ -n "$range" ]; then
            git rev-list --reverse "$range" > .asv/hashes.txt
        else
            git rev-list --reverse --max-count="$n" main > .asv/hashes.txt
        fi
        echo "benchmarking $(wc -l < .asv/hashes.txt) commit(s):"
        git log --no-walk=unsorted --format='  %h %s' $(cat .asv/hashes.txt)
        # --skip-existing-successful: a commit already measured on this machine is not redone
        "$ASV" run HASHFILE:.asv/hashes.txt --skip-existing-successful --bench "$bench" \
            "${sampling[@]}" --show-stderr "${extra[@]}"
    fi
fi

"$ASV" publish
if [ "$offline" = 1 ]; then
    "$PYTHON" scripts/asv_offline_html.py
fi
echo "dashboard: $(pwd)/.asv/html/index.html  (open it through a web server, e.g. --serve)"

if [ -n "$keep" ]; then
    mkdir -p "$keep"
    cp -r .asv/results/. "$keep"/
    echo "results copied to $keep"
fi

if [ -n "$serve" ]; then
    # not 'asv preview': it listens on every interface; this stays on this machine
    echo "serving on http://127.0.0.1:$serve/ (Ctrl-C stops)"
    exec "$PYTHON" -m http.server --bind 127.0.0.1 --directory .asv/html "$serve"
fi
