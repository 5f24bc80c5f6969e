#!/bin/sh
# The main job: a small ViT in libvit against PyTorch on the same weights.
set -eu
build=${1:-build}
cd "$(dirname "$0")/.."
VIT_LIBRARY="$PWD/$build/libvit/libvit.so.0" /usr/bin/python3 tests/parity/parity.py
