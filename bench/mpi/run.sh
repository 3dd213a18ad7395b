#!/usr/bin/env bash
# Per-round time and bytes of memsgd-mpi on 2 and 4 local ranks (issue: Open MPI), beside the
# dense MPI_Allreduce SGD baseline and the rank-0-server alternative (comm_bench.cpp), and the
# in-process engine (`memsgd train --workers N`, the same iterates). Three interleaved repeats;
# medians in bench/results/mpi/{rounds.csv,README.md,per_round.png}.
#   bench/mpi/run.sh [BUILD=build] [REPEATS=3]
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build}; REPEATS=${2:-3}
OUT=bench/results/mpi; mkdir -p "$OUT" "$B/bench-data"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
RCV1=$B/bench-data/rcv1-like-30k.svm
[[ -s $RCV1 ]] || "$B/memsgd" generate --like rcv1 --rows 30000 --seed 1 --out "$RCV1" >/dev/null
SH=../shared/data
declare -A DATA=([a9a]=$SH/a9a [rcv1_small]=$SH/rcv1_small [rcv1-like-30k]=$RCV1)
declare -A K=([a9a]=5 [rcv1_small]=50 [rcv1-like-30k]=50)
raw=$OUT/raw.csv
echo "repeat,data,ranks,what,k,d,rounds,seconds_per_round,comm_seconds_per_round,bytes_per_rank_per_round,init_bytes_per_rank" >"$raw"
field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" | head -1; }
for rep in $(seq "$REPEATS"); do
  for name in a9a rcv1_small rcv1-like-30k; do
    f=${DATA[$name]}; k=${K[$name]}
    for np in 2 4; do
      for m in mem-sgd ef21-sgdm; do
        opts=(--method "$m" --compressor top --k "$k" --epochs 1 --lambda 0 --gamma 0.05 -q)
        out=$("${MPIRUN[@]}" -np "$np" "$B/memsgd-mpi" train "$f" "${opts[@]}")
        rounds=$(field rounds <<<"$out"); ts=$(field train_seconds <<<"$out")
        ex=$(field exchange_seconds_per_round <<<"$out"); pb=$(field payload_bytes <<<"$out")
        hb=$(field header_bytes <<<"$out"); ib=$(field init_bytes <<<"$out"); d=$("$B/memsgd" info "$f" 2>/dev/null | awk '$1=="features"{gsub(",","",$2); print $2}')
        echo "$rep,$name,$np,memsgd-mpi $m top-$k,$k,$d,$rounds,$(awk -v a="$ts" -v r="$rounds" 'BEGIN{print a/r}'),$ex,$(awk -v p="$pb" -v h="$hb" -v r="$rounds" -v n="$np" -v i="$ib" 'BEGIN{print (p-i+h)/r/n}'),$(awk -v i="$ib" -v n="$np" 'BEGIN{print i/n}')" >>"$raw"
        tw=$m; [[ $m == mem-sgd ]] && tw=ef14-sgd
        out=$("$B/memsgd" train "$f" "${opts[@]/#$m/$tw}" --workers "$np" --threads 0)
        ts=$(field train_seconds <<<"$out")
        echo "$rep,$name,$np,in-process $tw top-$k (--workers $np),$k,$d,$rounds,$(awk -v a="$ts" -v r="$rounds" 'BEGIN{print a/r}'),0,0,0" >>"$raw"
      done
      "${MPIRUN[@]}" -np "$np" "$B/bench/mpi/memsgd_bench_mpi_comm" "$f" 5000 "$k" 1 |
        while IFS=, read -r pat ranks d kk rounds spr cpr bytes; do
          echo "$rep,$name,$ranks,$pat,$kk,$d,$rounds,$spr,$cpr,$bytes,0" >>"$raw"
        done
    done
  done
done
/usr/bin/python3 bench/mpi/report.py "$raw" "$OUT" "$(uptime)" "$(lscpu | sed -n 's/^Model name: *//p') x $(nproc)"
