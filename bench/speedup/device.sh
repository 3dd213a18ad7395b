#!/usr/bin/env bash
# A reduced Figure 4 (the Mem-SGD paper's multicore speedup) for the 16-core benchmark machine,
# in at most ~7 minutes wall, from what ../shared/tools/device-pack packs. Writes CSV, Markdown
# and (where python3 with matplotlib exists) PNG to $OUT (default bench/results/speedup/device).
#
# The whole procedure, from this repository's root on the 2-core machine:
#   1. cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2
#   2. ../shared/tools/device-pack .device build/memsgd build/bench/speedup/memsgd_bench_speedup
#      grep -qx '/.device/' .git/info/exclude || echo '/.device/' >> .git/info/exclude
#   3. the device tool: run(command=". .device/env.sh && bench/speedup/device.sh",
#      carry=[".device"], timeout_s=540), then give_back
#   4. copy the files it returns into bench/results/speedup/device-16core/, make the PNGs here if
#      the device had no matplotlib (/usr/bin/python3 bench/speedup/plot.py DIR/*-like-*[0-9].csv
#      --out DIR, as run.sh does), and commit them with the machine's
#      description from the reply's `device` field.
#
#   bench/speedup/device.sh              the 16-core run (threads 0,1,2,4,8,12,16)
#   bench/speedup/device.sh --rehearse   threads 0,1,2 on small sets (about a minute on 2 cores)
#
# What runs (the threshold protocol of docs/speedup.md: time to the largest per-run minimum
# loss, speedup against 1 worker and against the sequential solver, samples/s), --reg lazy
# (the default), atomic and racy writes, 2 repeats:
#   RCV1-like 200,000 x 47,236, k = 50, 3 epochs   mem-sgd:top, mem-sgd:rand, sgd
#   epsilon-like 100,000 x 2,000, k = 10, 4 epochs  mem-sgd:top, mem-sgd:rand, sgd
# Sizing, from the rehearsal on the 2-core machine (2 vCPU AMD EPYC, commit of this script;
# --rehearse, ~1 min): one worker costs ~10 us a sample on RCV1-like top-50, ~1-2 us on rand-50
# and sgd, ~2.6 us on epsilon-like top-10, ~1.5-2 us on rand-10 and sgd. The 16-core run has
# per repeat 1 sequential + 6 thread counts x 2 write policies per method: RCV1-like 600,000
# samples, top-50 ~30 s if it scales (~80 s if it stopped scaling at 2 workers), rand-50 and
# sgd ~15 s; epsilon-like 400,000 samples, ~15 s in all. Two repeats with generation and the
# 10-per-epoch evaluations: ~2-4 min, under the 7 min budget with room for a slower machine;
# each data set also has a hard `timeout` (230 s, 150 s) so the call returns with what finished.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rehearse=0
[[ ${1:-} == --rehearse ]] && rehearse=1
out="${OUT:-$root/bench/results/speedup/device}"
mkdir -p "$out"
bin="$root/.device/memsgd_bench_speedup"
[[ -x $bin ]] || bin="$root/build/bench/speedup/memsgd_bench_speedup"
[[ -x $bin ]] || { echo "device.sh: no memsgd_bench_speedup in .device/ or build/" >&2; exit 2; }

machine="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
if ((rehearse)); then
  threads="0,1,2"
  repeats=1
  sets=("rcv1-like-120000x47236|--like rcv1 --rows 120000 --k 50 --epochs 2|120"
        "epsilon-like-40000x2000|--like epsilon --rows 40000 --k 10 --epochs 3|120")
else
  threads="0,1,2,4,8,12,16"
  repeats=2
  sets=("rcv1-like-200000x47236|--like rcv1 --rows 200000 --k 50 --epochs 3|230"
        "epsilon-like-100000x2000|--like epsilon --rows 100000 --k 10 --epochs 4|150")
fi

{
  echo "machine: $machine"
  echo "uptime: $(uptime)"
  echo "date: $(date -u +%FT%TZ)"
} >"$out/device-run.txt"
start=$(date +%s)
for s in "${sets[@]}"; do
  IFS='|' read -r name args limit <<<"$s"
  t0=$(date +%s)
  # shellcheck disable=SC2086
  timeout "$limit" "$bin" $args --name "$name" --threads "$threads" --repeats "$repeats" \
    --methods mem-sgd:top,mem-sgd:rand,sgd --write atomic,racy --machine "$machine" \
    --csv "$out/$name.csv" --md "$out/$name.md" --traces "$out/$name.traces.csv" >/dev/null ||
    echo "device.sh: $name stopped (exit $?, limit ${limit}s)" | tee -a "$out/device-run.txt" >&2
  echo "$name: $(($(date +%s) - t0)) s" | tee -a "$out/device-run.txt"
done
echo "total: $(($(date +%s) - start)) s; uptime after: $(uptime)" | tee -a "$out/device-run.txt"
cat "$out"/*.md >"$out/summary.md" 2>/dev/null || true
# The figures, where the machine has matplotlib (else make them afterwards from the CSVs).
if command -v python3 >/dev/null && python3 -c "import matplotlib" 2>/dev/null; then
  csvs=()
  for s in "${sets[@]}"; do
    name="${s%%|*}"
    [[ -f $out/$name.csv ]] && csvs+=("$out/$name.csv")
  done
  ((${#csvs[@]})) && python3 "$here/plot.py" "${csvs[@]}" --out "$out" || true
fi
ls -la "$out"
