#!/bin/sh
# The main job: train a small ViT on Fashion-MNIST (Debian's
# dataset-fashion-mnist) with vit-train, then classify a test image with
# vit-predict. This is the README's recipe shortened to one epoch of 100
# steps so it fits in a couple of minutes; docs/training.md has the full run.
set -eu
build=${1:-build}
cd "$(dirname "$0")/.."
data=/usr/share/datasets/fashion-mnist
out=${VIT_DEMO_OUT:-"$build/demo"}
bin="$build/examples"
mkdir -p "$out"

"$bin/vit-train" --data "$data" --img-size 28 --patch-size 4 --no-patch-norm --dim 128 --depth 6 --heads 4 --global-pool avg \
    --drop 0 --attn-drop 0 --drop-path 0 --batch-size 128 --lr 1e-3 --weight-decay 0.05 --decay-exempt \
    --warmup-epochs 1 --schedule cosine --label-smoothing 0.1 --augment flip --normalize half \
    --workers 2 --seed 0 --out "$out" --epochs 1 --steps-per-epoch 100

# A test image the model never trained on, and what the model makes of it.
"$bin/vit-data" export --data "$data" --split val --index 0 --out "$out/test0.png"
"$bin/vit-predict" --checkpoint "$out/best.safetensors" --top-k 3 "$out/test0.png"
echo "files in $out: best.safetensors last.safetensors metrics.csv loss_curve.png acc_curve.png"
