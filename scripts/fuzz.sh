#!/usr/bin/env bash
# Fuzz the LIBSVM reader with libFuzzer (+ AddressSanitizer + UndefinedBehaviorSanitizer).
#
#   scripts/fuzz.sh [SECONDS]        default 60; exits non-zero on any crash, leak, timeout,
#                                    out-of-memory or sanitizer report
#
# Builds tests/fuzz/fuzz_libsvm.cpp with the reader sources (src/core/io/libsvm_source.cpp,
# libsvm_parser.cpp, libsvm_read.cpp, libsvm_scan.cpp, src/core/dataset.cpp) using clang++ (CXX,
# else clang++-14, else clang++), then runs it on the seed corpus tests/fuzz/corpus/ (read-only)
# plus a working corpus in $FUZZ_DIR/corpus that grows across runs. Crash inputs are written to
# $FUZZ_DIR/artifacts/.
#   FUZZ_DIR   build and work directory (default: build-fuzz in the repository root)
#   FUZZ_JOBS  parallel fuzzing processes (default 1)
#   FUZZ_ARGS  extra libFuzzer flags
# To reproduce a crash: $FUZZ_DIR/fuzz_libsvm $FUZZ_DIR/artifacts/crash-...
set -euo pipefail

secs=${1:-60}
if ! [[ $secs =~ ^[0-9]+$ ]] || [[ $secs -lt 1 ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS]" >&2
  exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${FUZZ_DIR:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-1}
cxx=${CXX:-}
if [[ -z $cxx || $($cxx --version 2>/dev/null | head -1) != *clang* ]]; then
  cxx=$(command -v clang++-14 || command -v clang++ || true)
fi
if [[ -z $cxx ]]; then
  echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2
  exit 2
fi
mkdir -p "$dir/corpus" "$dir/artifacts"

bin=$dir/fuzz_libsvm
srcs=("$root/tests/fuzz/fuzz_libsvm.cpp" "$root"/src/core/io/libsvm_{source,parser,read,scan}.cpp
      "$root/src/core/dataset.cpp")
rebuild=0
[[ -x $bin ]] || rebuild=1
for s in "${srcs[@]}" "$root"/include/memsgd/*.hpp "$0"; do
  [[ $s -nt $bin ]] && rebuild=1
done
if [[ $rebuild -eq 1 ]]; then
  echo "fuzz.sh: building $bin with $cxx" >&2
  "$cxx" -std=c++20 -O1 -g -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root/include" "${srcs[@]}" -ltbb -lz -lbz2 -llzma -pthread -o "$bin.new"
  mv "$bin.new" "$bin"
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
log=$dir/fuzz.log
echo "fuzz.sh: fuzzing for ${secs}s (log: $log)" >&2
set +e
if [[ $jobs -gt 1 ]]; then
  # -fork keeps going after the first crash only with -ignore_crashes, which we do not pass.
  "$bin" -fork="$jobs" -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" ${FUZZ_ARGS:-} \
    "$dir/corpus" "$root/tests/fuzz/corpus" >"$log" 2>&1
else
  "$bin" -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" ${FUZZ_ARGS:-} \
    "$dir/corpus" "$root/tests/fuzz/corpus" >"$log" 2>&1
fi
rc=$?
set -e
grep -E '^(stat::|#[0-9]+ +DONE)|^Done [0-9]+ runs' "$log" >&2 || true
if [[ $rc -ne 0 ]] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
  echo "fuzz.sh: FAILED (exit $rc); see $log and $dir/artifacts/" >&2
  grep -E 'ERROR:|runtime error:|^artifact_prefix|Test unit written' "$log" >&2 || true
  exit 1
fi
echo "fuzz.sh: OK, no crashes" >&2
