#!/bin/sh
# Install what libvit needs to build, test and run its demo on Debian 12.
#   tools/install-deps.sh           build, tests, demo
#   tools/install-deps.sh --bench   also what bench/compare.sh needs: an
#                                   optimised BLAS for Debian's torch, Node.js
#                                   and ONNX Runtime in bench/node_modules
#                                   (tests/onnx compares the export with it)
#   tools/install-deps.sh --ort     only Node.js and ONNX Runtime (what CI adds
#                                   for tests/onnx, without changing torch's BLAS)
# Idempotent; run as root (or through sudo). As another user it stops with
# the list of missing packages instead of calling apt-get.
set -eu
packages="build-essential g++ meson ninja-build pkg-config binutils
  libdnnl-dev libpng-dev libturbojpeg0-dev zlib1g-dev check libprotobuf-c-dev protobuf-c-compiler
  python3 python3-numpy python3-torch python3-pil python3-pytest python3-venv python3-onnx
  dataset-fashion-mnist python3-skimage
  abigail-tools valgrind clang libclang-rt-14-dev libomp-dev
  libopenmpi-dev openmpi-bin iproute2"
bench=false ort=false
case "${1:-}" in
    --bench) bench=true ort=true ;;
    --ort) ort=true ;;
    "") ;;
    *) echo "usage: $0 [--bench|--ort]" >&2; exit 2 ;;
esac
if $bench; then
    # Without libopenblas0-pthread, Debian's torch runs its matrix products on
    # the reference (netlib) libblas, which would make PyTorch look several
    # times slower than it is.
    packages="$packages libopenblas0-pthread"
fi
if $ort; then
    # Node.js may come from elsewhere (with its own npm), so only what is missing.
    command -v node >/dev/null 2>&1 || packages="$packages nodejs"
    command -v npm >/dev/null 2>&1 || packages="$packages npm"
fi
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "$0: missing packages:$missing" >&2
        echo "$0: installing them needs root: run it as root or as sudo $0${1:+ $1}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi
if $ort; then
    # The CPU library ships inside onnxruntime-node; its install script only
    # downloads GPU binaries, hence --ignore-scripts. npm ls fails when the
    # pinned version (bench/package.json) is missing or another one is there.
    cd "$(dirname "$0")/../bench"
    npm ls onnxruntime-node >/dev/null 2>&1 || npm ci --ignore-scripts --no-audit --no-fund
fi
