#!/usr/bin/env bash
# Installs what memsgd needs from Debian 12's packages, only what is missing.
#   scripts/deps.sh            build + run (compiler, CMake, oneTBB, Eigen, Boost, doctest, zlib,
#                              bzip2, xz, the Fashion-MNIST data package)
#   scripts/deps.sh --test     also what the test suite uses (clang for the libFuzzer target,
#                              liblinear-tools as the model-file oracle, Open MPI for memsgd-mpi)
set -euo pipefail
pkgs=(build-essential cmake libtbb-dev libeigen3-dev libboost-program-options-dev doctest-dev
      zlib1g-dev libbz2-dev liblzma-dev dataset-fashion-mnist)
if [[ "${1:-}" == "--test" ]]; then
  pkgs+=(clang libclang-rt-14-dev liblinear-tools libopenmpi-dev openmpi-bin)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi
