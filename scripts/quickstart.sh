#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the main job:
# parallel Mem-SGD (top-10, all cores, lock-free atomic writes) on Fashion-MNIST as a binary task
# (upper-body garments vs the rest; from Debian's dataset-fashion-mnist package), printing a
# progress line per checkpoint and the result, against f* computed by memsgd's Newton solver.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target memsgd
data/fashion-mnist.sh build/memsgd build/data
build/memsgd train build/data/fashion-mnist.train.svm --test build/data/fashion-mnist.test.svm \
  --normalize --method mem-sgd --compressor top --k 10 --threads auto --epochs 3 --fstar auto \
  --model build/fashion-mnist.model --trace build/fashion-mnist.trace.csv "$@"
echo "model: build/fashion-mnist.model (LIBLINEAR format)  trace: build/fashion-mnist.trace.csv"
