#!/usr/bin/python3
"""vit-data end to end: info (text and --json) on generated IDX, CIFAR-10
(python layout) and image-folder datasets, preview grids, and error exits.

    test_cli.py path/to/vit-data
"""
import json
import os
import subprocess
import sys
import tempfile

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_fixtures  # noqa: E402

exe = sys.argv[1]


def run(*args, rc=0):
    p = subprocess.run([exe, *args], capture_output=True, text=True)
    assert p.returncode == rc, f"{args}: rc {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


with tempfile.TemporaryDirectory() as d:
    idx, cifar, folder = (os.path.join(d, n) for n in ("idx", "cifar-10-batches-py", "folder"))
    gen_fixtures.write_idx(idx)
    gen_fixtures.write_cifar_py(cifar)
    for split, per in (("train", 5), ("val", 2)):
        for c, color in (("cats", (200, 80, 40)), ("dogs", (40, 90, 200))):
            os.makedirs(os.path.join(folder, split, c))
            for i in range(per):
                ext = ".JPG" if i % 2 else ".png"
                Image.new("RGB", (60 + i, 45), color).save(os.path.join(folder, split, c, f"{i}{ext}"))

    info = json.loads(run("info", "--data", idx, "--json").stdout)
    assert info == {"format": "idx", "train": 120, "val": 30, "classes": [str(i) for i in range(10)]}, info
    info = json.loads(run("info", "--data", d + "/cifar-10-batches-py", "--json", "--format", "cifar10").stdout)
    assert info["format"] == "cifar10" and info["train"] == 1280 and info["val"] == 50, info
    assert info["classes"][0] == "airplane" and len(info["classes"]) == 10, info
    info = json.loads(run("info", "--data", folder, "--json").stdout)
    assert info == {"format": "folder", "train": 10, "val": 4, "classes": ["cats", "dogs"]}, info
    text = run("info", "--data", folder).stdout
    assert "format:  folder" in text and "cats" in text, text

    for data, aug in ((idx, []), (cifar, ["--augment"]), (folder, ["--augment", "--split", "val"])):
        out = os.path.join(d, "grid.png")
        run("preview", "--data", data, "--out", out, "--count", "12", "--cols", "4", "--size", "40", *aug)
        im = Image.open(out)
        n = 4 if "val" in aug else 12
        cols = min(4, n)
        rows = (n + cols - 1) // cols
        assert im.size == (cols * 44 + 4, rows * (40 + 12 + 4) + 4), im.size
        assert im.mode == "RGB"

    p = run("info", "--data", os.path.join(d, "nope"), rc=1)
    assert "nope" in p.stderr and p.stdout == "", p.stderr
    p = run("info", "--data", idx, "--format", "tiff", rc=2)
    assert "tiff" in p.stderr
    run("info", rc=2)
    p = run("info", "--data", idx, "--format", "folder", rc=1)
    assert "train/" in p.stderr, p.stderr
print("vit-data CLI: ok")
