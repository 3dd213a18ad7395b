#!/usr/bin/env bash
# The parallel engine against memsgd's own sequential solver, on a 2-core machine (issue 11's
# goals): samples/s of `memsgd train` with --threads 0 (sequential), 1 and 2, repeats interleaved
# (seq, 1, 2, seq, 1, 2, ...), the median reported, the load average before and after.
#
#   bench/speedup/goals.sh [--bin build/memsgd] [--repeats 3] [--out DIR] [--quick]
#
# Shapes: RCV1-like 30,000 x 47,236 and epsilon-like 20,000 x 2,000 (generated once into
# build/bench-data), w8a and rcv1_small from ../shared/data and Fashion-MNIST (build/data, the
# README's data set) when present. Every run: --step inverse-epoch --gamma 1 --averaging final
# --quiet (no evaluation before the end), epochs chosen so that a run lasts >= ~0.3 s.
# --quick: one repeat, fewer epochs (a rehearsal). Writes DIR/goals.csv and DIR/goals.md
# (default bench/results/speedup/goals-2core).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$root/build/memsgd"
repeats=3
out="$root/bench/results/speedup/goals-2core"
quick=0
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin="$2"; shift ;;
    --repeats) repeats="$2"; shift ;;
    --out) out="$2"; shift ;;
    --quick) quick=1; repeats=1 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "goals.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
cache="${MEMSGD_BENCH_CACHE:-$root/build/bench-data}"
mkdir -p "$cache"
shared="$root/../shared/data"
rcv1="$cache/rcv1-like-30000.svm"
eps="$cache/epsilon-like-20000.svm"
[[ -f $rcv1 ]] || "$bin" generate --like rcv1 --rows 30000 --out "$rcv1" >/dev/null 2>&1
[[ -f $eps ]] || "$bin" generate --like epsilon --rows 20000 --out "$eps" >/dev/null 2>&1
fmnist="$root/build/data/fashion-mnist.train.svm"

# shape|file|epochs|normalize  then the methods per shape
sets=("rcv1-like 30000x47236|$rcv1|2|" "epsilon-like 20000x2000|$eps|2|")
[[ -f $shared/w8a ]] && sets+=("w8a|$shared/w8a|20|--normalize")
[[ -f $shared/rcv1_small ]] && sets+=("rcv1_small|$shared/rcv1_small|10|--normalize")
[[ -f $fmnist ]] && sets+=("fashion-mnist|$fmnist|2|--normalize")
methods_for() {
  case "$1" in
    rcv1-like*) echo "mem-sgd:top:50 mem-sgd:rand:50 sgd::" ;;
    epsilon-like*|fashion-mnist) echo "mem-sgd:top:10 mem-sgd:rand:10 sgd::" ;;
    *) echo "mem-sgd:top:10 sgd::" ;;
  esac
}

csv="$out/goals.csv"
load0=$(cut -d' ' -f1 /proc/loadavg)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "shape,method,compressor,k,threads,repeat,samples_per_s,loss,load" >"$csv.tmp"
for ((r = 1; r <= repeats; ++r)); do
  for s in "${sets[@]}"; do
    IFS='|' read -r shape file epochs norm <<<"$s"
    ((quick)) && epochs=$(((epochs + 3) / 4))
    for m in $(methods_for "$shape"); do
      IFS=':' read -r method comp k <<<"$m"
      margs=(--method "$method")
      [[ -n $comp ]] && margs+=(--compressor "$comp" --k "$k")
      for t in 0 1 2; do
        # shellcheck disable=SC2086
        line=$("$bin" train "$file" "${margs[@]}" --threads "$t" --step inverse-epoch --gamma 1 \
               --averaging final --epochs "$epochs" --quiet $norm "${extra[@]}" 2>&1 | grep '^result:')
        sps=$(sed -E 's/.*samples_per_s=([^ ]+).*/\1/' <<<"$line")
        loss=$(sed -E 's/.*loss=([^ ]+).*/\1/' <<<"$line")
        echo "$shape,$method,$comp,$k,$t,$r,$sps,$loss,$(cut -d' ' -f1 /proc/loadavg)" >>"$csv.tmp"
      done
    done
  done
done
mv "$csv.tmp" "$csv"
load1=$(cut -d' ' -f1 /proc/loadavg)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)

/usr/bin/python3 - "$csv" "$out/goals.md" "$load0" "$load1" "$cpu" "$(nproc)" "$commit" "$repeats" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
keys = list(dict.fromkeys((r["shape"], r["method"], r["compressor"], r["k"]) for r in rows))
def med(key, t):
    v = [float(r["samples_per_s"]) for r in rows
         if (r["shape"], r["method"], r["compressor"], r["k"]) == key and r["threads"] == str(t)]
    return statistics.median(v)
def fmt(v):
    return f"{v / 1e6:.2f} M/s" if v >= 1e6 else f"{v / 1e3:.0f} k/s"
out = ["# Parallel engine vs the sequential solver, 2 cores", "",
       f"Machine: {sys.argv[5]}, {sys.argv[6]} cores; load average {sys.argv[3]} before, {sys.argv[4]} after; "
       f"commit {sys.argv[7]}; median of {sys.argv[8]} interleaved repeats (`bench/speedup/goals.sh`). "
       "`memsgd train --step inverse-epoch --gamma 1 --averaging final --quiet`, atomic writes, `--reg lazy`.", "",
       "| data | method | sequential | 1 worker | 2 workers | goal | status |", "|---|---|---:|---:|---:|---|---|"]
for key in keys:
    shape, method, comp, k = key
    s, one, two = med(key, 0), med(key, 1), med(key, 2)
    name = f"{method} {comp}-{k}" if comp else ("sgd (Hogwild!)" if method == "sgd" else method)
    if method == "sgd":
        goal, ok = "2 workers >= 1.5x", two >= 1.5 * s
    else:
        goal, ok = "1 worker >= 0.95x, 2 >= 1.8x", one >= 0.95 * s and two >= 1.8 * s
    out.append(f"| {shape} | {name} | {fmt(s)} | {fmt(one)} ({one / s:.2f}x) | {fmt(two)} ({two / s:.2f}x) | {goal} | {'PASS' if ok else 'MISS'} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
