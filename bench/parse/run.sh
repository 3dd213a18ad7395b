#!/bin/bash
# LIBSVM parse throughput (threads 1..N) and binary-cache load speed; writes CSV + Markdown to
# OUT (default bench/results/parse/), the machine named (lscpu model, cores, load average).
#   bench/parse/run.sh --build build-parse [--threads N] [--repeats R] [--out DIR] [--data DIR]
# Data: w8a from ../shared/data when present, and generated rcv1-like (100,000 rows, ~125 MB)
# and epsilon-like (10,000 x 2,000 dense, ~340 MB) text from `memsgd generate`, kept in DATA
# (default /tmp/memsgd-parse-bench) between runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=build
out=bench/results/parse
data=/tmp/memsgd-parse-bench
threads=$(nproc)
repeats=5
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out" "$data"
files=()
if [ -f ../shared/data/w8a ]; then files+=(../shared/data/w8a); fi
[ -f "$data/rcv1-like.svm" ] ||
  "$build/memsgd" generate --like rcv1 --rows 100000 --out "$data/rcv1-like.svm"
[ -f "$data/epsilon-like.svm" ] ||
  "$build/memsgd" generate --like epsilon --rows 10000 --out "$data/epsilon-like.svm"
files+=("$data/rcv1-like.svm" "$data/epsilon-like.svm")

model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
cores=$(nproc)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
machine="$model, $cores cores (nproc), load average before the run $load_before"
"$build/bench/parse/memsgd_bench_parse" --threads "$threads" --repeats "$repeats" \
  --machine "$machine" --csv "$out/parse.csv" --md "$out/parse.md" "${files[@]}"
if /usr/bin/python3 -c "import sklearn" 2>/dev/null; then
  /usr/bin/python3 bench/parse/sklearn_load.py "${files[@]}" > "$out/sklearn.txt"
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo
  echo "Load average after the run: $load_after. Commit: $(git rev-parse --short HEAD)$(git diff --quiet -- src include || echo ' (+ uncommitted changes)'); built with $(grep -m1 CMAKE_BUILD_TYPE: "$build/CMakeCache.txt" | cut -d= -f2)."
} >> "$out/parse.md"
echo "wrote $out/parse.csv and $out/parse.md"
