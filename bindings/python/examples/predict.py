#!/usr/bin/env python3
"""The seed tutorial's predict.py (and predict_cifar10.py --top-k), on libvit.

    python3 predict.py [--checkpoint best.safetensors] [--top-k K] IMAGE...

The checkpoint carries the configuration, the class names and the
normalisation, so nothing from training is repeated here. Per image, as
vit-predict prints it:

    cat.jpg:
      1. cat (0): 0.9731

A missing or unreadable image is reported on stderr, the other images are
still classified, and the exit status is then 1.
"""
import argparse
import sys

import libvit


def load_model(ctx, checkpoint):
    model = libvit.Model.load(ctx, checkpoint)
    model.eval()
    return model


def predict(img_path, model, transform, k):
    image = libvit.load_image(img_path, transform, batch=True)  # resize, ToTensor, normalise: [1, C, S, S]
    with model.no_grad():
        indices, probs = libvit.topk(model(image), k)
    return indices[0], probs[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--checkpoint", default="best.safetensors")
    parser.add_argument("--top-k", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="0 = all cores")
    args = parser.parse_args()
    ctx = libvit.Context(threads=args.threads)
    try:
        model = load_model(ctx, args.checkpoint)
        normalization = model.normalization()
    except libvit.VitError as e:
        sys.exit(f"predict.py: {args.checkpoint}: {e}")
    config = model.config
    transform = libvit.Transform(ctx, size=config["img_size"], channels=config["in_channels"], train=False)
    if normalization:
        transform.update(mean=normalization[0], std=normalization[1])
    names = model.class_names or [f"class_{i}" for i in range(model.num_classes)]
    k = max(1, min(args.top_k, model.num_classes))

    status = 0
    for path in args.images:
        try:
            indices, probs = predict(path, model, transform, k)
        except libvit.VitError as e:
            print(f"predict.py: {path}: {e}", file=sys.stderr)
            status = 1
            continue
        print(f"{path}:")
        for rank, (index, prob) in enumerate(zip(indices, probs), 1):
            print(f"  {rank}. {names[index]} ({index}): {prob:.4f}")
    return status


if __name__ == "__main__":
    sys.exit(main())
