#!/usr/bin/python3
"""Writes the dataset fixtures the data tests read.

    gen_fixtures.py idx DIR        train/t10k images+labels, plain and (in DIR/gz) gzip
    gen_fixtures.py cifar-bin DIR  cifar-10-batches-bin layout
    gen_fixtures.py cifar-py DIR   cifar-10-batches-py as Python 2's cPickle writes it
    gen_fixtures.py cifar-py3 DIR P  the same dicts re-pickled by Python 3 at protocol P
    gen_fixtures.py pickle-evil DIR  pickles the restricted unpickler must refuse

Pixel (n, c, y, x) = (n*31 + c*50 + y*7 + x*13) % 256 and label n = (n*7 + 3) % 10,
the formulas the C tests check against.

The Python 2 files are written opcode by opcode: Python 3's pickle.dumps emits
different opcodes (BINUNICODE keys, _codecs.encode or BINBYTES for data), and
the real CIFAR-10 files are cPickle protocol 2, e.g. data_batch_1 begins
  80 02 7d 71 01 28 55 04 'data' 71 02 63 'numpy.core.multiarray\n_reconstruct\n'
  71 03 63 'numpy\nndarray\n' 71 04 4b 00 85 55 01 'b' 87 52 71 05 28 4b 01
  4d 10 27 4d 00 0c 86 63 'numpy\ndtype\n' 71 06 55 02 'u1' 4b 00 4b 01 87 52
  71 07 28 4b 03 55 01 '|' 4e 4e 4e 4a ff ff ff ff 4a ff ff ff ff 4b 00 74 62
  89 54 <len32> <bytes> 74 62 ...
cPickle memoizes (BINPUT, LONG_BINPUT past 255) only objects referenced
elsewhere, which is why the temporary tuples and 'b' / 'u1' above carry none.
"""
import gzip
import os
import pickle
import struct
import sys

import numpy as np

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def pixels(n0, count, c, h, w):
    n = np.arange(n0, n0 + count).reshape(-1, 1, 1, 1)
    ch = np.arange(c).reshape(1, -1, 1, 1)
    y = np.arange(h).reshape(1, 1, -1, 1)
    x = np.arange(w).reshape(1, 1, 1, -1)
    return ((n * 31 + ch * 50 + y * 7 + x * 13) % 256).astype(np.uint8)


def labels(n0, count):
    return [int((n * 7 + 3) % 10) for n in range(n0, n0 + count)]


# ---------------------------------------------------------------------- IDX
def idx_bytes(arr):
    hdr = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return hdr + arr.tobytes()


def write_idx(d):
    os.makedirs(os.path.join(d, "gz"), exist_ok=True)
    for prefix, n0, count in (("train", 0, 120), ("t10k", 1000, 30)):
        img = pixels(n0, count, 1, 28, 28).reshape(count, 28, 28)
        lab = np.array(labels(n0, count), dtype=np.uint8)
        for kind, arr in (("images-idx3-ubyte", img), ("labels-idx1-ubyte", lab)):
            data = idx_bytes(arr)
            with open(os.path.join(d, f"{prefix}-{kind}"), "wb") as f:
                f.write(data)
            with gzip.open(os.path.join(d, "gz", f"{prefix}-{kind}.gz"), "wb") as f:
                f.write(data)


# ------------------------------------------------------------------ CIFAR bin
BATCHES = [("data_batch_%d" % (i + 1), n0, count) for i, (n0, count) in
           enumerate([(0, 1200), (1200, 20), (1220, 20), (1240, 20), (1260, 20)])] + [("test_batch", 5000, 50)]


def write_cifar_bin(d):
    os.makedirs(d, exist_ok=True)
    for name, n0, count in BATCHES:
        px = pixels(n0, count, 3, 32, 32).reshape(count, 3072)
        lab = np.array(labels(n0, count), dtype=np.uint8).reshape(count, 1)
        with open(os.path.join(d, name + ".bin"), "wb") as f:
            f.write(np.hstack([lab, px]).tobytes())
    with open(os.path.join(d, "batches.meta.txt"), "w") as f:
        f.write("\n".join(CIFAR_NAMES) + "\n\n")


# ------------------------------------------------------- Python 2 cPickle, by hand
class Py2Pickler:
    """Just the cPickle protocol-2 output the CIFAR files contain."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")
        self.memo = 0

    def put(self):
        self.memo += 1
        if self.memo < 256:
            self.out += b"q" + bytes([self.memo])
        else:
            self.out += b"r" + struct.pack("<I", self.memo)

    def string(self, s, memo=True):  # a Python 2 str: SHORT_BINSTRING / BINSTRING
        if len(s) < 256:
            self.out += b"U" + bytes([len(s)]) + s
        else:
            self.out += b"T" + struct.pack("<i", len(s)) + s
        if memo:
            self.put()

    def int(self, v):
        if 0 <= v < 256:
            self.out += b"K" + bytes([v])
        elif 0 <= v < 65536:
            self.out += b"M" + struct.pack("<H", v)
        else:
            self.out += b"J" + struct.pack("<i", v)

    def glob(self, mod, name):
        self.out += b"c" + mod + b"\n" + name + b"\n"
        self.put()

    def list(self, items, save):
        self.out += b"]"
        self.put()
        for i in range(0, len(items), 1000):  # cPickle's BATCHSIZE
            chunk = items[i:i + 1000]
            if len(chunk) > 1:
                self.out += b"("
                for it in chunk:
                    save(it)
                self.out += b"e"
            else:
                save(chunk[0])
                self.out += b"a"

    def ndarray_u8(self, arr):
        self.glob(b"numpy.core.multiarray", b"_reconstruct")
        self.glob(b"numpy", b"ndarray")
        self.int(0)
        self.out += b"\x85"                 # (0,)
        self.string(b"b", memo=False)
        self.out += b"\x87R"                # (ndarray, (0,), 'b') REDUCE
        self.put()
        self.out += b"("
        self.int(1)
        for d in arr.shape:
            self.int(d)
        self.out += {1: b"\x85", 2: b"\x86", 3: b"\x87"}[arr.ndim]
        self.glob(b"numpy", b"dtype")
        self.string(b"u1", memo=False)
        self.int(0)
        self.int(1)
        self.out += b"\x87R"                # dtype('u1', 0, 1)
        self.put()
        self.out += b"("
        self.int(3)
        self.string(b"|", memo=False)
        self.out += b"NNN" + b"J\xff\xff\xff\xff" * 2
        self.int(0)
        self.out += b"tb"                   # dtype state, BUILD
        self.out += b"\x89"                 # not Fortran order
        self.string(arr.tobytes(), memo=False)
        self.out += b"tb"                   # array state, BUILD

    def dict(self, items):
        self.out += b"}"
        self.put()
        self.out += b"("
        for k, save in items:
            self.string(k)
            save()
        self.out += b"u"

    def stop(self):
        return bytes(self.out + b".")


def batch_dict_py2(name, n0, count):
    px = pixels(n0, count, 3, 32, 32).reshape(count, 3072)
    lab = labels(n0, count)
    files = [b"img_%06d_%s.png" % (n, CIFAR_NAMES[lab[i]].encode()) for i, n in enumerate(range(n0, n0 + count))]
    p = Py2Pickler()
    p.dict([(b"data", lambda: p.ndarray_u8(px)),
            (b"labels", lambda: p.list(lab, p.int)),
            (b"batch_label", lambda: p.string(b"batch " + name.encode())),
            (b"filenames", lambda: p.list(files, p.string))])
    return p.stop(), px, lab


def meta_py2():
    p = Py2Pickler()
    p.dict([(b"num_cases_per_batch", lambda: p.int(10000)),
            (b"label_names", lambda: p.list([n.encode() for n in CIFAR_NAMES], p.string)),
            (b"num_vis", lambda: p.int(3072))])
    return p.stop()


def write_cifar_py(d):
    os.makedirs(d, exist_ok=True)
    for name, n0, count in BATCHES:
        data, px, lab = batch_dict_py2(name, n0, count)
        # The hand-written stream must be what Python itself reads back, as
        # the seed does: pickle.load(f, encoding='bytes').
        back = pickle.loads(data, encoding="bytes")
        assert (back[b"data"] == px).all() and back[b"labels"] == lab, name
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    meta = meta_py2()
    assert pickle.loads(meta, encoding="bytes")[b"label_names"][3] == b"cat"
    with open(os.path.join(d, "batches.meta"), "wb") as f:
        f.write(meta)


def write_cifar_py3(d, proto):
    """The same dicts re-pickled by Python 3: str keys at protocols 2 and 4,
    bytes keys (as pickle.load(encoding='bytes') returns them) at 3."""
    os.makedirs(d, exist_ok=True)
    key = (lambda k: k.encode()) if proto == 3 else (lambda k: k)
    for name, n0, count in BATCHES:
        px = pixels(n0, count, 3, 32, 32).reshape(count, 3072)
        obj = {key("batch_label"): "batch " + name, key("labels"): labels(n0, count), key("data"): px,
               key("filenames"): ["img_%06d.png" % n for n in range(n0, n0 + count)]}
        with open(os.path.join(d, name), "wb") as f:
            pickle.dump(obj, f, protocol=proto)
    with open(os.path.join(d, "batches.meta"), "wb") as f:
        pickle.dump({key("num_cases_per_batch"): 10000, key("label_names"): CIFAR_NAMES, key("num_vis"): 3072}, f,
                    protocol=proto)


def write_evil(d):
    """Pickles that must be refused: arbitrary globals, object construction."""
    os.makedirs(d, exist_ok=True)
    files = {
        "os_system": b"\x80\x02cos\nsystem\nq\x01U\x04trueq\x02\x85q\x03Rq\x04.",
        "builtins_eval": b"\x80\x03cbuiltins\neval\nX\x04\x00\x00\x001+1\x85R.",
        "stack_global": b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.",
        "newobj": b"\x80\x02cnumpy\nndarray\n)\x81.",
        "reduce_ndarray": b"\x80\x02cnumpy\nndarray\nK\x01\x85R.",
        "object_array": pickle.dumps({"data": np.array([1, "x"], dtype=object)}, protocol=2),
        "float_array": pickle.dumps({"data": np.zeros((2, 3072), dtype=np.float32), "labels": [0, 1]}, protocol=2),
        "inst": b"(iposix\nsystem\nS'id'\np0\n.",
    }
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def main():
    what, d = sys.argv[1], sys.argv[2]
    if what == "idx":
        write_idx(d)
    elif what == "cifar-bin":
        write_cifar_bin(d)
    elif what == "cifar-py":
        write_cifar_py(d)
    elif what == "cifar-py3":
        write_cifar_py3(d, int(sys.argv[3]))
    elif what == "pickle-evil":
        write_evil(d)
    else:
        sys.exit("unknown fixture " + what)


if __name__ == "__main__":
    main()
