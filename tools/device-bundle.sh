#!/bin/sh
# Gathers what tools/device-check.sh runs on a GPU machine into one folder,
# to be carried there (the GPU machine has no oneDNN, libpng, TurboJPEG or
# Check to build libvit with, but runs binaries built here):
#   tools/device-bundle.sh [BUILD [BUNDLE]]    (build-cuda, build-device-bundle)
# BUILD must be configured with -Dcuda=enabled (and -Dmpi=disabled, which keeps
# Open MPI's libraries out of the bundle) and built. The bundle holds
# libvit.so.0 and libvit-cuda.so (libvit/), the test and benchmark programs
# (bin/), the shared libraries they need that a CUDA image lacks (lib/:
# oneDNN, libpng, TurboJPEG, OpenMP, ...; not the CUDA libraries or NCCL,
# which the GPU machine has: the toolkit's or PyTorch's wheels'), and Fashion-MNIST's test split (data/), stripped of
# debug information to stay well inside the 64 MiB a call may carry.
set -eu
build=${1:-build-cuda}
bundle=${2:-build-device-bundle}
[ -f "$build/libvit/libvit-cuda.so" ] || { echo "device-bundle: $build has no libvit-cuda.so (-Dcuda=enabled?)" >&2; exit 1; }
ninja -C "$build" libvit/libvit.so.0.1.0 libvit/libvit-cuda.so tests/cpu/test_kernels tests/cuda/test_cuda_host \
    tests/cuda/test_cuda_model tests/cuda/libfake-cuda-module.so tests/cuda/test_sdpa_host tests/cuda/test_sdpa_gpu \
    tests/cuda/test_nccl_gpu examples/vit-bench examples/vit-train >/dev/null
rm -rf "$bundle"
mkdir -p "$bundle/libvit" "$bundle/bin" "$bundle/lib" "$bundle/tests/cuda" "$bundle/data/fashion-mnist"
cp -P "$build"/libvit/libvit.so "$build"/libvit/libvit.so.0 "$build"/libvit/libvit.so.0.1.0 "$bundle/libvit/"
cp "$build/libvit/libvit-cuda.so" "$bundle/libvit/"
cp "$build/tests/cuda/libfake-cuda-module.so" "$bundle/tests/cuda/"
cp tests/cuda/h200_devprop.json "$bundle/tests/cuda/"
for p in tests/cpu/test_kernels tests/cuda/test_cuda_host tests/cuda/test_cuda_model tests/cuda/test_sdpa_host \
    tests/cuda/test_sdpa_gpu tests/cuda/test_nccl_gpu examples/vit-bench examples/vit-train; do
    cp "$build/$p" "$bundle/bin/"
done
# What the programs and libraries load that is neither the C runtime nor
# CUDA's own (those the GPU machine has, in versions its driver matches).
for f in "$bundle"/bin/* "$bundle"/libvit/*.so*; do
    ldd "$f" | awk '$3 ~ /^\// {print $3}'
done | sort -u | while read -r lib; do
    case $(basename "$lib") in
        libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libvit* ) ;;
        libstdc++* | libgcc_s* | libz.so* ) ;; # every image has them, and newer is compatible
        libcudart* | libcublas* | libcudnn* | libnccl* | libcuda.so* ) ;;
        *) cp -L "$lib" "$bundle/lib/" ;;
    esac
done
strip --strip-debug "$bundle"/bin/* "$bundle"/libvit/*.so* "$bundle"/lib/* "$bundle"/tests/cuda/*.so
fm=${VIT_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
for f in t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    if [ -f "$fm/$f" ]; then cp "$fm/$f" "$bundle/data/fashion-mnist/"; fi
done
du -sh "$bundle" "$bundle"/*
