#!/usr/bin/env bash
# memsgd-mpi against the in-process engine (CTest: mpi_same, mpi_errors, mpi_kill, mpi_resume).
#   run.sh MPIRUN MEMSGD_MPI MEMSGD DATA_DIR WORK PART
# Ranks talk over shared memory / loopback on this machine (--oversubscribe: more ranks than
# cores is fine, they time-share).
set -uo pipefail
MPIRUN=$1 MPI_BIN=$2 MEMSGD=$3 DATA=$4 WORK=$5 PART=$6
mkdir -p "$WORK"
run() { "$MPIRUN" --allow-run-as-root --oversubscribe --bind-to none -np "$@"; }
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# A sparse data set with d >> k (memsgd generate), and the real heart_scale.
SPARSE=$WORK/sparse.svm
[[ -s $SPARSE ]] || "$MEMSGD" generate --like rcv1 --rows 600 --features 2000 --avg-nnz 20 --seed 3 \
  --out "$SPARSE" >/dev/null 2>&1 || { echo "cannot generate data"; exit 1; }

field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" | head -1; }

if [[ $PART == same ]]; then
  # Same split, seed and worker count: the MPI model equals the in-process model bit for bit
  # (the model file holds every weight with 17 significant digits), for every method, both
  # wires, dense and lazy forms (lambda 0 with rand-k / top-k), and the bytes sent equal the
  # accounting (at most 7 bits of byte padding per message).
  for data in "$DATA/heart_scale" "$SPARSE"; do
    for np in 1 2 4; do
      for spec in "ef14-sgd top 2 0.01" "mem-sgd rand 3 0.01" "ef21 top 3 0.01" \
                  "ef21-sgd rand 4 0" "ef21-sgdm top 2 0.01" "ef21-sgdm rand 5 0" \
                  "ef21-sgd2m top 1 0.01" "sgd-compressed top 3 0" "ef14-sgd identity 1 0.01"; do
        read -r m comp k lam <<<"$spec"
        for wire in f32 f64; do
          opts=(--method "$m" --compressor "$comp" --k "$k" --lambda "$lam" --epochs 2 --batch 2
                --gamma 0.05 --wire "$wire" --seed 7)
          twin=$m; [[ $m == mem-sgd ]] && twin=ef14-sgd
          out=$(run "$np" "$MPI_BIN" train "$data" "${opts[@]}" --model "$WORK/mpi.model" -q 2>&1) ||
            { bad "$np ranks $spec $wire: exit $?: $out"; continue; }
          ref=$("$MEMSGD" train "$data" "${opts[@]/#$m/$twin}" --workers "$np" \
                --model "$WORK/ref.model" -q 2>&1) || { bad "in-process $spec: $ref"; continue; }
          cmp -s "$WORK/mpi.model" "$WORK/ref.model" || bad "$(basename "$data") $np ranks $spec $wire: models differ"
          bits=$(field bits <<<"$out"); sent=$(field payload_bits_per_worker <<<"$out")
          rounds=$(field rounds <<<"$out"); refbits=$(field bits <<<"$ref")
          [[ $bits == "$refbits" ]] || bad "$spec: accounting $bits != in-process $refbits"
          awk -v s="$sent" -v b="$bits" -v r="$rounds" -v init="$([[ $m == ef21* ]] && echo 1 || echo 0)" \
            'BEGIN { d = s - b; exit !(d >= 0 && d < 8 * (r + init)) }' ||
            bad "$(basename "$data") $np ranks $spec $wire: sent $sent bits per worker, accounting $bits ($rounds rounds)"
        done
      done
    done
  done
  echo "checked: models bit for bit and bytes = accounting"
fi

if [[ $PART == errors ]]; then
  # A bad line in the last rank's shard: every rank stops, the error names FILE:LINE (the true
  # line), non-zero exit, no model.
  BAD=$WORK/bad.svm
  cp "$DATA/heart_scale" "$BAD"
  sed -i '250s/.*/+1 3:0.5 2:0.1/' "$BAD"
  rm -f "$WORK/bad.model"
  out=$(timeout 120 "$MPIRUN" --allow-run-as-root --oversubscribe -np 4 "$MPI_BIN" train "$BAD" \
        --method ef21-sgdm --model "$WORK/bad.model" 2>&1); rc=$?
  [[ $rc -ne 0 && $rc -ne 124 ]] || bad "bad line: exit $rc"
  grep -q "bad.svm:250:" <<<"$out" || bad "bad line: no FILE:250 in: $out"
  [[ ! -e $WORK/bad.model ]] || bad "bad line: a model was written"
  # Compressed input is refused with the reason.
  gzip -c "$DATA/heart_scale" >"$WORK/h.gz"
  out=$(timeout 120 "$MPIRUN" --allow-run-as-root --oversubscribe -np 2 "$MPI_BIN" train "$WORK/h.gz" 2>&1); rc=$?
  [[ $rc -ne 0 ]] && grep -q "decompress it first" <<<"$out" || bad "gz: exit $rc: $out"
  # Options that cannot run over ranks: usage errors, printed once.
  out=$(run 2 "$MPI_BIN" train "$DATA/heart_scale" --workers 3 2>&1); rc=$?
  [[ $rc -ne 0 ]] && [[ $(grep -c "one worker per rank" <<<"$out") == 1 ]] || bad "--workers 3 on 2 ranks: exit $rc: $out"
  out=$(run 2 "$MPI_BIN" train "$DATA/heart_scale" --method sgd 2>&1); rc=$?
  [[ $rc -ne 0 ]] && grep -q "does not run over MPI" <<<"$out" || bad "--method sgd: exit $rc: $out"
  # More ranks than rows.
  head -3 "$DATA/heart_scale" >"$WORK/three.svm"
  out=$(run 4 "$MPI_BIN" train "$WORK/three.svm" 2>&1); rc=$?
  [[ $rc -ne 0 ]] && grep -q "fewer than the 4 ranks" <<<"$out" || bad "3 rows on 4 ranks: exit $rc: $out"
  echo "checked: errors"
fi

if [[ $PART == kill ]]; then
  # One rank killed mid-run: the job ends with a non-zero exit, no model and no temporary file.
  rm -f "$WORK"/kill.model*
  "$MPIRUN" --allow-run-as-root --oversubscribe -np 3 "$MPI_BIN" train "$SPARSE" --method ef21-sgdm \
    --compressor top --k 5 --epochs 100000 --model "$WORK/kill.model" -q >"$WORK/kill.log" 2>&1 &
  job=$!
  victim=""
  for _ in $(seq 100); do
    sleep 0.2
    victim=$(pgrep -n -f "memsgd-mpi train $SPARSE") && break
  done
  [[ -n $victim ]] || { bad "no rank to kill"; kill $job; }
  sleep 1
  kill -9 "$victim"
  for _ in $(seq 300); do kill -0 $job 2>/dev/null || break; sleep 0.2; done
  if kill -0 $job 2>/dev/null; then bad "the job still runs 60 s after a rank was killed"; pkill -9 -f "memsgd-mpi train $SPARSE"; fi
  wait $job; rc=$?
  [[ $rc -ne 0 ]] || bad "killed rank: exit 0"
  ls "$WORK"/kill.model* >/dev/null 2>&1 && bad "killed rank: a model file was left"
  echo "checked: killed rank -> exit $rc, no model"
fi
if [[ $PART == resume ]]; then
  # Checkpoints over ranks: saved by rank 0 (every rank's workers gathered), resumed on the same
  # rank count to the very model and trace of the uninterrupted run, resumed in one process
  # (--workers N) likewise; another rank count is refused on every rank, with no model.
  notime() { cut -d, -f1,2,4- "$1"; }  # the trace without its seconds column
  for spec in "ef21-sgdm top 5 0.001" "ef14-sgd rand 4 0" "mem-sgd top 3 0.001"; do
    read -r m comp k lam <<<"$spec"
    twin=$m; [[ $m == mem-sgd ]] && twin=ef14-sgd
    opts=(--method "$m" --compressor "$comp" --k "$k" --lambda "$lam" --epochs 3 --gamma 0.05 --seed 7 -q)
    rm -f "$WORK"/r.*
    run 2 "$MPI_BIN" train "$SPARSE" "${opts[@]}" --model "$WORK/r.full.model" --trace "$WORK/r.full.csv" \
      --checkpoint "$WORK/r.ck" --checkpoint-every 500 >/dev/null 2>&1 || { bad "$spec: saving run failed"; continue; }
    [[ -s $WORK/r.ck ]] || { bad "$spec: no checkpoint"; continue; }
    out=$(run 2 "$MPI_BIN" train "$SPARSE" "${opts[@]}" --model "$WORK/r.res.model" --trace "$WORK/r.res.csv" \
          --resume "$WORK/r.ck" 2>&1) || bad "$spec: resume failed: $out"
    cmp -s "$WORK/r.full.model" "$WORK/r.res.model" || bad "$spec: resumed model differs"
    cmp -s <(notime "$WORK/r.full.csv") <(notime "$WORK/r.res.csv") || bad "$spec: resumed trace differs"
    out=$("$MEMSGD" train "$SPARSE" "${opts[@]/#$m/$twin}" --workers 2 --model "$WORK/r.here.model" \
          --resume "$WORK/r.ck" 2>&1) || bad "$spec: in-process resume failed: $out"
    cmp -s "$WORK/r.full.model" "$WORK/r.here.model" || bad "$spec: in-process resume differs"
    out=$(timeout 120 "$MPIRUN" --allow-run-as-root --oversubscribe -np 4 "$MPI_BIN" train "$SPARSE" \
          "${opts[@]}" --model "$WORK/r.bad.model" --resume "$WORK/r.ck" 2>&1); rc=$?
    [[ $rc -ne 0 && $rc -ne 124 ]] || bad "$spec: 4 ranks resumed a 2-rank checkpoint (exit $rc)"
    [[ $(grep -c "2 workers; this run has 4 (one per MPI rank): resume it with mpirun -np 2" <<<"$out") == 1 ]] ||
      bad "$spec: no single clear message for another rank count: $out"
    [[ ! -e $WORK/r.bad.model ]] || bad "$spec: refused resume wrote a model"
  done
  # SIGTERM to every rank (what Slurm sends at the time limit): all stop at one round, rank 0
  # saves, exit 130; the resumed run ends as the uninterrupted one.
  opts=(--method ef21-sgdm --compressor top --k 5 --lambda 0.001 --epochs 2000 --gamma 0.05 --seed 7 -q)
  rm -f "$WORK"/t.*
  run 2 "$MPI_BIN" train "$SPARSE" "${opts[@]}" --model "$WORK/t.full.model" >/dev/null 2>&1 || bad "SIGTERM: full run failed"
  "$MPIRUN" --allow-run-as-root --oversubscribe --bind-to none -np 2 "$MPI_BIN" train "$SPARSE" "${opts[@]}" \
    --model "$WORK/t.cut.model" --checkpoint "$WORK/t.ck" --checkpoint-every 1000000000 >"$WORK/t.log" 2>&1 &
  job=$!
  ranks=""
  for _ in $(seq 100); do
    sleep 0.2
    ranks=$(pgrep -f "^$MPI_BIN train $SPARSE") && [[ $(wc -w <<<"$ranks") == 2 ]] && break
  done
  sleep 1
  [[ -n $ranks ]] && kill -TERM $ranks
  for _ in $(seq 300); do kill -0 $job 2>/dev/null || break; sleep 0.2; done
  if kill -0 $job 2>/dev/null; then bad "SIGTERM: the job still runs after 60 s"; pkill -9 -f "memsgd-mpi train $SPARSE"; fi
  wait $job; rc=$?
  [[ $rc -eq 130 ]] || bad "SIGTERM: exit $rc, not 130: $(cat "$WORK/t.log")"
  grep -q "continue with --resume $WORK/t.ck" "$WORK/t.log" || bad "SIGTERM: no resume hint: $(cat "$WORK/t.log")"
  out=$(run 2 "$MPI_BIN" train "$SPARSE" "${opts[@]}" --model "$WORK/t.res.model" --resume "$WORK/t.ck" 2>&1) ||
    bad "SIGTERM: resume failed: $out"
  cmp -s "$WORK/t.full.model" "$WORK/t.res.model" || bad "SIGTERM: resumed model differs"
  ls "$WORK"/*.tmp.* >/dev/null 2>&1 && bad "a temporary file was left"
  echo "checked: checkpoints over ranks"
fi
exit $fail
