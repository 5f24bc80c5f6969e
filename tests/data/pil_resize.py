#!/usr/bin/python3
"""Reference for the resize path: what the seed's ViTDataset computes.

    pil_resize.py IN OUT SIZE bilinear|bicubic|nearest RGB|L

Image.open(IN).convert(mode).resize((SIZE, SIZE), filter), raw bytes to OUT.
"""
import sys

from PIL import Image

src, dst, size, mode, conv = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
flt = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[mode]
img = Image.open(src).convert(conv).resize((size, size), flt)
with open(dst, "wb") as f:
    f.write(img.tobytes())
