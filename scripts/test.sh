#!/usr/bin/env bash
# The README's second command (and .ci/run): install what is missing, build, run every test:
#   1. Release build: the doctest suite, the CLI tests and the memsgd-mpi tests (mpirun -np
#      1/2/4, tests/mpi/run.sh) under CTest, the benchmark smoke run
#   2. ThreadSanitizer build: the whole suite again (lock-free workers on std::thread)
#   3. AddressSanitizer + UndefinedBehaviorSanitizer build: the whole suite again
#   4. a short libFuzzer run of the LIBSVM parser (scripts/fuzz.sh), when clang is present
# Any failure or sanitizer report fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
jobs=$(nproc)
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
export ASAN_OPTIONS="halt_on_error=1 detect_leaks=1"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1"

echo "== Release build and tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMEMSGD_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure --no-tests=error -j"$jobs"

echo "== ThreadSanitizer build and tests"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMSGD_SANITIZER=thread \
  -DMEMSGD_BUILD_BENCH=OFF >/dev/null
cmake --build build-tsan -j"$jobs"
ctest --test-dir build-tsan --output-on-failure --no-tests=error -j"$jobs" --timeout 1500

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build and tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMSGD_SANITIZER="address;undefined" \
  -DMEMSGD_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
ctest --test-dir build-asan --output-on-failure --no-tests=error -j"$jobs" --timeout 1500

if [[ -x scripts/fuzz.sh ]] && command -v clang++-14 >/dev/null; then
  echo "== libFuzzer: the LIBSVM parser, 60 s"
  FUZZ_ARGS="-seed=1" scripts/fuzz.sh 60  # fixed seed: CI is repeatable; longer runs: scripts/fuzz.sh 600
fi
echo "all tests passed"
