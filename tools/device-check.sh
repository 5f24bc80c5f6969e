#!/usr/bin/env bash
# The GPU check in one call, on a machine with an NVIDIA GPU (the H200 of
# the device tool), from the repository's root:
#   tools/device-check.sh [BUNDLE]        (build-device-bundle)
# BUNDLE is what tools/device-bundle.sh gathered on the build machine and
# the call carried: the GPU machine has CUDA, PyTorch and compute-sanitizer
# but none of the -dev packages libvit builds against (oneDNN, libpng,
# TurboJPEG, Check), so the binaries are built here and run there. It:
#   1. shows the GPU, the driver and whether the module's libraries resolve;
#   2. runs the CUDA tests: host checks, the kernel tests through the CUDA
#      table, the whole model GPU against CPU (Fashion-MNIST carried), and
#      one rank training through NCCL;
#   3. runs a short training under compute-sanitizer (memcheck);
#   4. benchmarks ViT-B/16 at 224 px in bf16, training at batch 64/128/256
#      and inference at 1/64/256, libvit against PyTorch (bench/
#      torch_cuda_bench.py), each configuration in its own process with the
#      GPU's memory sampled by nvidia-smi (TRAIN_BATCHES= INFER_BATCHES=
#      skip them);
#   5. times every kernel of one training step at batch 64 with Nsight
#      Compute, summed by tools/kernel-times.py ($OUT/kernel-times.md);
#   6. prints the table last (also $OUT/table.md).
# Everything it writes lands in $OUT (device-out/ when unset). For a dry run
# of the script itself on a machine without a GPU (every GPU stage then
# fails or skips, the benchmarks run small on the CPU):
#   DEV=cpu PREC=fp32 WL_TRAIN=fmnist-train WL_INFER=fmnist-train TRAIN_BATCHES=8 \
#   INFER_BATCHES=2 TORCH_ARGS=--tiny PYTHON=/usr/bin/python3 tools/device-check.sh
# Each stage has its own time limit so that the whole stays under 8 minutes
# (on an H200 it ran in under 2); a failing stage is reported and the rest
# still run. Exit status: 0 when every test passed.
set -u -o pipefail
B=${1:-build-device-bundle}
OUT=${OUT:-$PWD/device-out}
DEV=${DEV:-cuda} PREC=${PREC:-bf16} PYTHON=${PYTHON:-python3} TORCH_ARGS=${TORCH_ARGS:-}
WL_TRAIN=${WL_TRAIN:-b16-train} WL_INFER=${WL_INFER:-b16-infer}
TRAIN_BATCHES=${TRAIN_BATCHES-64 128 256} INFER_BATCHES=${INFER_BATCHES-1 64 256}
mkdir -p "$OUT"
exec > >(tee "$OUT/device-check.log") 2>&1
start=$(date +%s)
stage() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }
# A stage's time limit, cut so that the whole run ends within BUDGET seconds.
BUDGET=${BUDGET:-450}
cap() { local left=$(( BUDGET - ($(date +%s) - start) )); [ "$left" -lt "$1" ] && echo $(( left > 1 ? left : 1 )) || echo "$1"; }
status=0

stage "machine"
have_smi=false
command -v nvidia-smi >/dev/null && have_smi=true
$have_smi && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
command -v nvcc >/dev/null && nvcc --version | tail -1
# CUDA's libraries: the toolkit's, else those of PyTorch's wheels.
cudalibs=/usr/local/cuda/lib64
for m in cu13 cublas cuda_runtime cudnn nccl; do
    d=$("$PYTHON" -c "import nvidia.$m as p, os; print(os.path.join(list(p.__path__)[0], 'lib'))" 2>/dev/null) &&
        [ -d "$d" ] && cudalibs="$cudalibs:$d"
done
# Our carried libraries for our programs only: PyTorch keeps its own.
VITLIBS="$PWD/$B/libvit:$PWD/$B/lib:$cudalibs"
vit=(env "LD_LIBRARY_PATH=$VITLIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
export VIT_CUDA_MODULE="$PWD/$B/libvit/libvit-cuda.so" VIT_BUILD_ROOT="$PWD/$B" OMP_NUM_THREADS=8
echo "libraries of the module:"; "${vit[@]}" ldd "$VIT_CUDA_MODULE" | grep -E "cuda|cublas|nccl|not found"
"${vit[@]}" ldd "$B/bin/vit-bench" "$B/bin/test_kernels" | grep "not found" && status=1

stage "CUDA tests"
run_test() { # name, limit, command...
    local name=$1 limit=$2; shift 2
    timeout "$(cap "$limit")" "$@" >"$OUT/test-$name.txt" 2>&1
    local rc=$?
    # a GPU test that skips on the GPU machine is not green
    case $rc in 0) r=PASS ;; 77) r=SKIP; [ "$DEV" = cuda ] && status=1 ;; 124) r="TIMEOUT (${limit}s)"; status=1 ;; *) r="FAIL ($rc)"; status=1 ;; esac
    echo "$name: $r"
    if [ "$r" = PASS ]; then grep -iE "loss|logits|gradients|checkpoint|backend|rel\. error|same bits|nccl" "$OUT/test-$name.txt" | tail -8
    else tail -15 "$OUT/test-$name.txt"; fi
}
VIT_TEST_CUDA_MODULE="$VIT_CUDA_MODULE" VIT_TEST_FAKE_MODULE="$PWD/$B/tests/cuda/libfake-cuda-module.so" \
    run_test cuda_host 60 "${vit[@]}" "$B/bin/test_cuda_host"
# cuDNN's fused attention first: against a host reference, then its plans for ViT shapes on this GPU
run_test sdpa_gpu 60 "${vit[@]}" "$B/bin/test_sdpa_gpu"
run_test sdpa_host 60 "${vit[@]}" "$B/bin/test_sdpa_host" "$B/tests/cuda/h200_devprop.json"
VIT_TEST_BACKEND=cuda CK_DEFAULT_TIMEOUT=120 run_test kernels_cuda 150 "${vit[@]}" "$B/bin/test_kernels"
VIT_FMNIST_DIR="$PWD/$B/data/fashion-mnist" run_test model_cuda 150 "${vit[@]}" "$B/bin/test_cuda_model"
# NCCL with one rank: the communicator attached, the broadcast and every bucket through NCCL
run_test nccl_gpu 40 "${vit[@]}" "$B/bin/test_nccl_gpu"
cat "$OUT"/test-*.txt > "$OUT/tests.txt"; rm -f "$OUT"/test-*.txt

stage "compute-sanitizer (memcheck) on 3 training steps"
if command -v compute-sanitizer >/dev/null; then
    timeout "$(cap 120)" "${vit[@]}" compute-sanitizer --tool memcheck --error-exitcode 9 --print-limit 20 \
        "$B/bin/vit-bench" --workload fmnist-train --device cuda --precision bf16 --steps 3 --warmup 1 \
        >"$OUT/sanitizer.txt" 2>&1
    rc=$?; tail -5 "$OUT/sanitizer.txt"; echo "compute-sanitizer: exit $rc"; [ $rc -eq 0 ] || status=1
else
    echo "compute-sanitizer: not installed"
fi

stage "benchmarks ($WL_TRAIN / $WL_INFER, $DEV, $PREC)"
# peak GPU memory of one run: nvidia-smi sampled every 100 ms, less the idle level
measure() { # label, command...
    local label=$1; shift
    local base=0 smi=""
    : >"$OUT/.mem"
    if $have_smi; then
        base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$OUT/.mem" 2>/dev/null &
        smi=$!
    fi
    "$@" >"$OUT/.run" 2>"$OUT/.err"; local rc=$?
    [ -n "$smi" ] && { kill $smi 2>/dev/null; wait $smi 2>/dev/null; }
    local peak; peak=$(sort -n "$OUT/.mem" | tail -1)
    local json; json=$(grep '^{' "$OUT/.run" | tail -1)
    if [ $rc -ne 0 ] || [ -z "$json" ]; then
        echo "{\"label\": \"$label\", \"error\": \"exit $rc: $(tail -2 "$OUT/.err" | tr '\n"\\' '  _')\"}" >>"$OUT/bench.jsonl"
        echo "$label: failed (exit $rc)"; tail -3 "$OUT/.err"
        status=1
        return
    fi
    echo "${json%\}}, \"label\": \"$label\", \"smi_peak_mib\": $(( ${peak:-0} - ${base:-0} ))}" >>"$OUT/bench.jsonl"
    echo "$label: $json"
}
rm -f "$OUT/bench.jsonl"
# one configuration, libvit then PyTorch: mode, batch, workload, time limits, steps
bench_pair() {
    local mode=$1 b=$2 tb="" ib=""
    [ "$mode" = train ] && tb=$b || ib=$b
    measure "libvit $mode $b" timeout "$(cap "$4")" "${vit[@]}" "$B/bin/vit-bench" --workload "$3" \
        --device "$DEV" --precision "$PREC" --batch "$b" --steps "$6" --warmup 3 --json
    measure "pytorch $mode $b" timeout "$(cap "$5")" "$PYTHON" bench/torch_cuda_bench.py --device "$DEV" \
        --train-batches "$tb" --infer-batches "$ib" --steps "$6" --warmup 3 $TORCH_ARGS
}
for b in $TRAIN_BATCHES; do bench_pair train "$b" "$WL_TRAIN" 60 90 8; done
for b in $INFER_BATCHES; do bench_pair infer "$b" "$WL_INFER" 40 60 10; done
rm -f "$OUT/.mem" "$OUT/.run" "$OUT/.err"

stage "kernel times of one $WL_TRAIN step at batch 64 (Nsight Compute)"
ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
if [ -n "$ncu" ]; then
    timeout "$(cap 90)" "${vit[@]}" "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv \
        --print-units base --launch-count 4000 "$B/bin/vit-bench" --workload "$WL_TRAIN" --device "$DEV" \
        --precision "$PREC" --batch 64 --steps 1 --warmup 1 >"$OUT/ncu.csv" 2>"$OUT/ncu.err"
    echo "ncu: exit $?"
    "$PYTHON" tools/kernel-times.py "$OUT/ncu.csv" | tee "$OUT/kernel-times.md"
    gzip -f "$OUT/ncu.csv"
else
    echo "ncu: not installed"
fi

stage "table"
"$PYTHON" tools/device-table.py "$OUT/bench.jsonl" | tee "$OUT/table.md"
echo "device check: $([ $status -eq 0 ] && echo green || echo 'NOT green') in $(( $(date +%s) - start )) s"
exit $status
