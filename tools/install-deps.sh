#!/bin/sh
# Install what libvit needs to build, test and run its demo on Debian 12.
# Idempotent; run as root (or through sudo).
set -eu
packages="build-essential g++ meson ninja-build pkg-config binutils
  libdnnl-dev libpng-dev libturbojpeg0-dev zlib1g-dev check
  python3 python3-numpy python3-torch python3-pil
  dataset-fashion-mnist python3-skimage"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi
