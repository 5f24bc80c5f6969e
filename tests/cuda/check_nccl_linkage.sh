#!/bin/sh
# NCCL lives in the CUDA module only (docs/distributed.md):
#   check_nccl_linkage.sh LIBVIT MODULE HAVE_NCCL(true|false)
# libvit.so.0 neither needs nor loads NCCL or a CUDA library and exports only
# vit_* symbols; the module needs libnccl exactly when built with NCCL.
set -eu
lib=$1 module=$2 have=$3
fail() { echo "FAIL: $*"; exit 1; }
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' '; }
lib_needs=$(needed "$lib")
echo "$lib needs: $lib_needs"
case " $lib_needs" in *libnccl* | *libcuda* | *libcublas* | *libcudnn*) fail "$lib links NCCL or CUDA" ;; esac
ldd "$lib" | grep -E "libnccl|libcudart|libcublas|libcudnn" && fail "$lib loads NCCL or CUDA (ldd)"
others=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | grep -v '^vit_' | grep -v '^VIT_' || true)
[ -z "$others" ] || fail "$lib exports more than vit_*: $others"
mod_needs=$(needed "$module")
echo "$module needs: $mod_needs"
case "$have" in
true)
    case " $mod_needs" in *libnccl.so*) ;; *) fail "$module was built with NCCL but does not link libnccl" ;; esac
    nm -D --undefined-only "$module" | grep -q ncclAllReduce || fail "$module does not call ncclAllReduce" ;;
*)
    case " $mod_needs" in *libnccl*) fail "$module was built without NCCL but links libnccl" ;; esac ;;
esac
echo "NCCL only in the module: yes (module with NCCL: $have)"
