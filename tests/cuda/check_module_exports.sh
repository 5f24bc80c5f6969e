#!/bin/sh
# libvit-cuda.so exports its handshake and nothing else (libvit/cuda/module.h):
#   check_module_exports.sh MODULE
set -eu
got=$(nm -D --defined-only "$1" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort -u | tr '\n' ' ')
want="vit_cuda_module_create vit_cuda_module_info "
if [ "$got" != "$want" ]; then
    echo "$1 exports: $got(want: $want)"
    exit 1
fi
echo "$1 exports exactly: $got"
