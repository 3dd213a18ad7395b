#!/usr/bin/env bash
# Where a sequential Mem-SGD step's time goes on RCV1-like data (d = 47,236, ~73 nonzeros a row),
# before and after the O(nnz + k) lazy memory (docs/performance.md §7).
#
#   bench/kernels/step_split.sh [--bin build/memsgd] [--before BIN] [--repeats 3] [--out DIR]
#
# Runs `memsgd train --threads 0 --quiet` (no evaluation before the end) on a generated
# RCV1-like 30,000 x 47,236 set, 2 epochs, --step inverse-epoch --gamma 1 --averaging final, for
# the configurations below, repeats interleaved (config-major inside a repeat), and reports the
# median microseconds per step. The parts of a step are differences of whole runs:
#   sample     sgd (the lazy x = s v form): dot product, loss derivative, the row's update
#   writes     rand-50 minus rand-1 (lazy): 49 more picks, memory updates and writes of x
#   memory     rand-50 dense minus rand-50 lazy: the regulariser term over all d (the O(d) pass)
#   selection  top-50 minus rand-50, for each form (dense: the threshold kernel's candidates;
#              lazy: kernels::LazyTopK)
# --before BIN adds the dense top-50 / rand-50 runs of another binary (e.g. one built from the
# commit before the lazy memory, which has no --reg option) as the "before" column.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$root/build/memsgd"
before=""
repeats=3
out="$root/bench/results/kernels"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin="$2"; shift ;;
    --before) before="$2"; shift ;;
    --repeats) repeats="$2"; shift ;;
    --out) out="$2"; shift ;;
    *) echo "step_split.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
cache="${MEMSGD_BENCH_CACHE:-$root/build/bench-data}"
mkdir -p "$cache"
data="$cache/rcv1-like-30000.svm"
[[ -f $data ]] || "$bin" generate --like rcv1 --rows 30000 --out "$data" >/dev/null 2>&1

common=(--threads 0 --step inverse-epoch --gamma 1 --averaging final --epochs 2 --quiet)
names=("sgd" "lazy rand-1" "lazy rand-50" "lazy top-50" "dense rand-50" "dense top-50")
args=("--method sgd"
      "--method mem-sgd --compressor rand --k 1 --reg lazy"
      "--method mem-sgd --compressor rand --k 50 --reg lazy"
      "--method mem-sgd --compressor top --k 50 --reg lazy"
      "--method mem-sgd --compressor rand --k 50 --reg dense"
      "--method mem-sgd --compressor top --k 50 --reg dense")
bins=()
for _ in "${names[@]}"; do bins+=("$bin"); done
if [[ -n $before ]]; then
  names+=("before: dense rand-50" "before: dense top-50")
  args+=("--method mem-sgd --compressor rand --k 50" "--method mem-sgd --compressor top --k 50")
  bins+=("$before" "$before")
fi

csv="$out/step_split.csv"
load0=$(cut -d' ' -f1 /proc/loadavg)
echo "config,repeat,samples_per_s,us_per_step,loss" >"$csv.tmp"
for ((r = 1; r <= repeats; ++r)); do
  for i in "${!names[@]}"; do
    # shellcheck disable=SC2086
    line=$("${bins[$i]}" train "$data" ${args[$i]} "${common[@]}" 2>&1 | grep '^result:')
    sps=$(sed -E 's/.*samples_per_s=([^ ]+).*/\1/' <<<"$line")
    loss=$(sed -E 's/.*loss=([^ ]+).*/\1/' <<<"$line")
    us=$(awk -v s="$sps" 'BEGIN { printf "%.3f", 1e6 / s }')
    echo "${names[$i]},$r,$sps,$us,$loss" >>"$csv.tmp"
  done
done
mv "$csv.tmp" "$csv"
load1=$(cut -d' ' -f1 /proc/loadavg)

/usr/bin/python3 - "$csv" "$out/step_split.md" "$load0" "$load1" "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$(nproc)" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
med = {}
for name in dict.fromkeys(r["config"] for r in rows):
    med[name] = statistics.median(float(r["us_per_step"]) for r in rows if r["config"] == name)
def d(a, b):
    return med[a] - med[b] if a in med and b in med else float("nan")
lines = ["# Sequential Mem-SGD step on RCV1-like 30,000 x 47,236: where the time goes", "",
         f"Machine: {sys.argv[5]}, {sys.argv[6]} cores; load {sys.argv[3]} before, {sys.argv[4]} after. "
         f"Median of the interleaved repeats (`bench/kernels/step_split.sh`).", "",
         "| run | us per step | samples/s |", "|---|---:|---:|"]
for name, us in med.items():
    lines.append(f"| {name} | {us:.2f} | {1e6 / us:,.0f} |")
lines += ["", "| part of a top-50 step | dense memory (the paper's step) | lazy memory (`--reg lazy`) |",
          "|---|---:|---:|",
          f"| sample (dot, loss, row update; `sgd`) | {med['sgd']:.2f} | {med['sgd']:.2f} |",
          f"| memory bookkeeping of the row (rand-1 minus sgd) | | {d('lazy rand-1', 'sgd'):.2f} |",
          f"| writes: 49 more sends (rand-50 minus rand-1) | | {d('lazy rand-50', 'lazy rand-1'):.2f} |",
          f"| memory: regulariser over all d (dense minus lazy rand-50) | {d('dense rand-50', 'lazy rand-50'):.2f} | 0 |",
          f"| selection: top-50 minus rand-50 | {d('dense top-50', 'dense rand-50'):.2f} | {d('lazy top-50', 'lazy rand-50'):.2f} |",
          f"| whole top-50 step | {med['dense top-50']:.2f} | {med['lazy top-50']:.2f} |"]
if "before: dense top-50" in med:
    lines += ["", f"Before (the other binary): dense top-50 {med['before: dense top-50']:.2f} us, "
              f"rand-50 {med['before: dense rand-50']:.2f} us per step."]
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
