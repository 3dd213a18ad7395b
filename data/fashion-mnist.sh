#!/usr/bin/env bash
# Builds the README's default data set: Fashion-MNIST (Xiao, Rasul, Vollgraf 2017; MIT licence)
# as a binary LIBSVM task, the garments worn on the torso (T-shirt/top, pullover, dress, coat, shirt: classes 0,2,3,4,6) = +1 vs the
# rest, from Debian's dataset-fashion-mnist package (IDX files in /usr/share/datasets/fashion-mnist).
#
#   data/fashion-mnist.sh [MEMSGD_BINARY] [OUT_DIR]     defaults: build/memsgd, build/data
#
# Writes OUT_DIR/fashion-mnist.train.svm (60,000 x 784) and OUT_DIR/fashion-mnist.test.svm
# (10,000 x 784); an existing file is kept. `memsgd convert idx` writes through a temporary file,
# so an interrupted run leaves nothing half-written.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/memsgd}
out=${2:-build/data}
fm=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
if [[ ! -f $fm/train-images-idx3-ubyte.gz ]]; then
  echo "data/fashion-mnist.sh: $fm has no Fashion-MNIST files (apt-get install dataset-fashion-mnist)" >&2
  exit 2
fi
mkdir -p "$out"
[[ -f $out/fashion-mnist.train.svm ]] ||
  "$bin" convert idx --images "$fm/train-images-idx3-ubyte.gz" \
    --labels "$fm/train-labels-idx1-ubyte.gz" --out "$out/fashion-mnist.train.svm"
[[ -f $out/fashion-mnist.test.svm ]] ||
  "$bin" convert idx --images "$fm/t10k-images-idx3-ubyte.gz" \
    --labels "$fm/t10k-labels-idx1-ubyte.gz" --out "$out/fashion-mnist.test.svm"
