#!/bin/sh
# valgrind memcheck of a short vit-train run and of vit-predict and
# vit-export on its checkpoint: no memory errors, no definitely-lost blocks.
#   tools/valgrind-check.sh BUILD
# VIT_MAX_CPU_ISA=baseline keeps oneDNN's JIT at SSE4.1 as well: its AVX
# kernels read whole vectors past the end of a buffer under a mask, which is
# safe on the hardware but which memcheck cannot model ("Invalid read of size
# 32"). The same setting lets a user run valgrind on their own program.
set -eu
cd "$(dirname "$0")/.."
build=${1:?usage: tools/valgrind-check.sh BUILD}
command -v valgrind >/dev/null || { echo "valgrind-check: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp/data" <<'PY'
import os, struct, sys
import numpy as np
root = sys.argv[1]
os.makedirs(root)
rng = np.random.default_rng(0)
for prefix, n in (("train", 32), ("t10k", 16)):
    labels = (np.arange(n) % 3).astype(np.uint8)
    images = rng.integers(0, 255, (n, 8, 8), dtype=np.uint8)
    for kind, arr in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
        head = struct.pack(">I", 0x0800 | arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
        with open(os.path.join(root, f"{prefix}-{kind}"), "wb") as f:
            f.write(head + arr.tobytes())
PY
# memcheck NAME PROGRAM ARGS...: the program under memcheck; exit status 99 is memcheck's.
memcheck() {
    name=$1
    shift
    rc=0
    VIT_MAX_CPU_ISA=baseline valgrind --quiet --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite --show-leak-kinds=definite "$@" >"$tmp/$name.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] && return 0
    cat "$tmp/$name.log"
    if [ "$rc" -eq 99 ]; then echo "valgrind-check: $name: memcheck found errors" >&2
    else echo "valgrind-check: $name failed (exit status $rc)" >&2; fi
    exit 1
}
memcheck vit-train "$build/examples/vit-train" --data "$tmp/data" --format idx --img-size 8 --patch-size 4 \
    --dim 12 --depth 1 --heads 2 --epochs 2 --steps-per-epoch 2 --batch-size 4 --threads 2 --workers 2 \
    --drop 0.1 --drop-path 0.1 --out "$tmp/run"
image=/usr/lib/python3/dist-packages/skimage/data/camera.png
[ -f "$image" ] || image=/usr/lib/python3/dist-packages/skimage/data/chelsea.png
memcheck vit-predict "$build/examples/vit-predict" --checkpoint "$tmp/run/best.safetensors" --top-k 3 \
    --threads 2 "$image"
# vit-export: a build without ONNX export says so (exit 1) without errors either.
rc=0
VIT_MAX_CPU_ISA=baseline valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite "$build/examples/vit-export" --onnx "$tmp/m.onnx" \
    --checkpoint "$tmp/run/best.safetensors" >"$tmp/vit-export.log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] && ! { [ "$rc" -eq 1 ] && grep -q "without ONNX export" "$tmp/vit-export.log"; }; then
    cat "$tmp/vit-export.log"
    echo "valgrind-check: vit-export failed (exit status $rc)" >&2
    exit 1
fi
echo "valgrind-check: vit-train (2 epochs), vit-predict and vit-export: no memcheck errors, no definitely-lost blocks"
