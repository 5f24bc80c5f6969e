"""Dataset, Transform, DataLoader, single images and plots."""
import os
import struct

import numpy as np
import pytest

import libvit
from conftest import CLASSES, FASHION, TINY, make_folder, read_idx_gz


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "data")


def cifar_bin(root, per_batch=2, val=3):
    """CIFAR-10's binary layout: records of a label byte and the R, G, B planes of 32x32."""
    rng = np.random.default_rng(3)
    os.makedirs(root, exist_ok=True)
    records = {}
    for name, n in [(f"data_batch_{b}.bin", per_batch) for b in range(1, 6)] + [("test_batch.bin", val)]:
        labels, planes = rng.integers(0, 10, n), rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        with open(os.path.join(root, name), "wb") as f:
            for label, img in zip(labels, planes):
                f.write(bytes([label]) + img.tobytes())
        records[name] = (labels, planes)
    names = [f"class {i}" for i in range(10)]
    with open(os.path.join(root, "batches.meta.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    return records, names


# ----------------------------------------------------------------- datasets
def test_idx_dataset(ctx, fashion_slice):
    train, val = libvit.Dataset(ctx, fashion_slice), libvit.Dataset(ctx, fashion_slice, split="val", format="idx")
    assert (len(train), len(val), train.split, val.split) == (512, 128, "train", "val")
    assert train.format == "idx" and (train.width, train.height, train.channels) == (28, 28, 1)
    assert train.num_classes == 10 and train.classes[:2] == ["T-shirt/top", "Trouser"]  # the folder says fashion
    pixels = read_idx_gz(f"{FASHION}/train-images-idx3-ubyte.gz")[:512]
    labels = read_idx_gz(f"{FASHION}/train-labels-idx1-ubyte.gz")[:512]
    image, label = train[5]
    assert image.shape == (28, 28, 1) and image.dtype == np.uint8 and np.array_equal(image[..., 0], pixels[5])
    assert label == labels[5] == train.label(5)
    assert np.array_equal(train[-1][0][..., 0], pixels[-1])
    assert np.array_equal(train.labels(), labels) and train.labels().dtype == np.int32
    assert sum(1 for _ in val) == 128
    train.channels = 3
    assert train[0][0].shape == (28, 28, 3) and train.get("channels") == 3
    assert "idx train: 512 samples, 10 classes" in repr(train)
    with pytest.raises(IndexError, match="index 512 is outside 0..511"):
        train[512]
    with pytest.raises(IndexError):
        train.label(-513)
    with pytest.raises(TypeError, match="a dataset index is an int"):
        train[1.0]
    with pytest.raises(libvit.InvalidArgumentError, match="read-only"):
        train.set("width", 3)
    with pytest.raises(libvit.InvalidArgumentError, match=r"VIT_DS_CHANNELS: 2"):
        train.channels = 2


def test_folder_and_cifar_datasets(ctx, folder, tmp_path):
    ds = libvit.Dataset(ctx, folder)
    assert ds.format == "folder" and ds.classes == CLASSES and len(ds) == 18 and ds.width == 0
    image, label = ds[7]
    assert image.shape == (8, 8, 3) and label == 1
    records, names = cifar_bin(tmp_path / "cifar-10-batches-bin")
    for root in (tmp_path, tmp_path / "cifar-10-batches-bin"):  # the folder holding it, or the folder itself
        val = libvit.Dataset(ctx, root, split="val")
        assert val.format == "cifar10" and val.classes == names and len(val) == 3
        labels, planes = records["test_batch.bin"]
        image, label = val[2]
        assert label == labels[2] and np.array_equal(image, planes[2].transpose(1, 2, 0))
    assert len(libvit.Dataset(ctx, tmp_path, format="cifar10")) == 10


def test_dataset_errors(ctx, tmp_path, folder):
    with pytest.raises(libvit.InputOutputError, match="not a folder"):
        libvit.Dataset(ctx, tmp_path / "missing")
    with pytest.raises(libvit.FormatError, match="cannot tell the dataset format"):
        libvit.Dataset(ctx, tmp_path)
    with pytest.raises(libvit.InvalidArgumentError, match=r"unknown split value 'test'.*valid: train, val"):
        libvit.Dataset(ctx, folder, split="test")
    with pytest.raises(libvit.InvalidArgumentError, match="did you mean 'cifar10'"):
        libvit.Dataset(ctx, folder, format="cifar")
    with pytest.raises(libvit.InvalidArgumentError, match="did you mean 'skip_corrupt'"):
        libvit.Dataset(ctx, folder, skip_corupt=True)
    assert libvit.FORMATS == ("auto", "folder", "cifar10", "idx")


# --------------------------------------------------------------- transforms
def test_transform_settings(ctx):
    tf = libvit.Transform(ctx)
    d = tf.as_dict()
    assert (d["size"], d["resize"], d["normalize"], d["train"], d["flip_p"], d["random_crop"]) == \
        (224, "bilinear", "none", True, 0.0, False)
    tf = libvit.Transform(ctx, pad_crop=4, size=32, flip_p=0.5, rotation=10, resize="bicubic",
                          crop_scale=(0.5, 1.0), normalize="imagenet")
    assert (tf["size"], tf["pad_crop"], tf["rotation"], tf["resize"], tf["crop_scale_min"]) == \
        (32, 4, 10.0, "bicubic", 0.5)
    tf.update(mean=0.5, std=(0.1, 0.2, 0.3))
    assert tf["normalize"] == "custom" and (tf["mean_2"], tf["std_1"]) == (0.5, 0.2)
    evaluation = tf.copy(train=False)
    assert repr(evaluation) == "<libvit.Transform size=32 normalize=custom train=False>"
    assert evaluation["train"] is False and tf["train"] is True and evaluation["std_2"] == 0.3
    tf["flip_p"] = 1
    assert evaluation["flip_p"] == 0.5  # independent
    with pytest.raises(libvit.InvalidArgumentError, match="did you mean 'rotation'"):
        tf.set("rotate", 10)
    with pytest.raises(libvit.InvalidArgumentError, match="takes one value or three, not 2"):
        tf.update(mean=(0.5, 0.5))
    with pytest.raises(libvit.InvalidArgumentError, match=r"takes \(min, max\)"):
        tf.update(crop_scale=0.5)
    with pytest.raises(libvit.InvalidArgumentError, match="VIT_TF_FLIP_P: 2 is outside"):
        tf["flip_p"] = 2
    with pytest.raises(libvit.InvalidArgumentError, match="VIT_TF_PAD_CROP: 40 is outside 0..32"):
        tf["pad_crop"] = 40
    with pytest.raises(libvit.InvalidArgumentError, match="'normalize' value 'imagenett'"):
        tf["normalize"] = "imagenett"


# ----------------------------------------------------------------- loaders
def test_loader_batches(ctx, folder):
    ds = libvit.Dataset(ctx, folder)
    loader = libvit.DataLoader(ds, libvit.Transform(ctx, size=8), 4, shuffle=False, drop_last=False, workers=0)
    assert (loader.batch_size, loader.get("workers"), loader.get("prefetch"), len(loader)) == (4, 0, 2, 5)
    assert repr(loader) == "<libvit.DataLoader batch_size=4 workers=0>"
    batches = list(loader)
    assert loader.num_batches == 5 and [len(y) for _, y in batches] == [4, 4, 4, 4, 2]
    images = np.concatenate([x for x, _ in batches])
    labels = np.concatenate([y for _, y in batches])
    assert images.dtype == np.float32 and images.shape == (18, 3, 8, 8) and labels.dtype == np.int32
    assert np.array_equal(labels, ds.labels())
    for i in (0, 9, 17):
        assert np.allclose(images[i], ds[i][0].transpose(2, 0, 1) / 255, rtol=0, atol=1e-6)
    # every batch has arrays of its own: a kept batch is not overwritten by the next
    first = batches[0][0].copy()
    list(loader)
    assert np.array_equal(batches[0][0], first)
    loader.set("drop_last", True)
    ds.close()  # the loader keeps the dataset it reads
    assert len(loader) == 4 and len(list(loader)) == 4 and loader.num_batches == 4


def test_loader_epochs_and_workers(ctx, folder):
    ds = libvit.Dataset(ctx, folder)
    tf = libvit.Transform(ctx, size=8, flip_p=0.5)

    def epoch_labels(loader, epoch=None):
        batches = loader.epoch(epoch) if epoch is not None else loader
        return np.concatenate([y for _, y in batches])

    a = libvit.DataLoader(ds, tf, 3, workers=0)
    b = libvit.DataLoader(ds, tf, 3, workers=3, prefetch=4)
    e0, e1 = epoch_labels(a), epoch_labels(a)  # each for loop is the next epoch
    assert sorted(e0) == sorted(ds.labels()) and not np.array_equal(e0, e1)
    assert np.array_equal(epoch_labels(a, 0), e0) and np.array_equal(epoch_labels(a), e1)
    # the same seed and epoch give the same batches whatever the number of workers
    xa = np.concatenate([x for x, _ in a.epoch(1)])
    xb = np.concatenate([x for x, _ in b.epoch(1)])
    assert np.array_equal(xa, xb)
    it = iter(a)
    next(it)
    list(a)  # another epoch starts: the abandoned iteration may not go on reading it
    with pytest.raises(libvit.StateError, match="started another epoch"):
        next(it)
    with pytest.raises(libvit.InvalidArgumentError, match="read-only"):
        a.set("batch_size", 2)
    with pytest.raises(libvit.InvalidArgumentError, match="VIT_LD_WORKERS"):
        a.set("workers", 1000)
    with pytest.raises(libvit.InvalidArgumentError, match="batch_size 0"):
        libvit.DataLoader(ds, tf, 0)
    with pytest.raises(TypeError, match="transform must be a libvit.Transform"):
        libvit.DataLoader(ds, None, 2)


def test_loader_batches_go_to_the_model_without_copies(ctx, folder):
    ds = libvit.Dataset(ctx, folder)
    model = libvit.Model(ctx, **dict(TINY, in_channels=3))
    loader = libvit.DataLoader(ds, libvit.Transform(ctx, size=8), 4, workers=1)
    for images, labels in loader:
        outputs = model(images)
        loss = model.loss(labels)
        assert model._images is None and model._labels is None  # the loader's tensors were used as they are
        assert np.isfinite(loss) and libvit.accuracy(model.logits, labels) == int((outputs.argmax(1) == labels).sum())


def test_corrupt_images_and_the_log(ctx, folder):
    bad = os.path.join(folder, "train", CLASSES[0], "zz-broken.png")
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    ds = libvit.Dataset(ctx, folder)
    loader = libvit.DataLoader(ds, libvit.Transform(ctx, size=8), 19, shuffle=False, drop_last=False, workers=1)
    with pytest.raises(libvit.FormatError, match="zz-broken.png"):
        list(loader)
    messages = []
    ctx.set_log(lambda level, message: messages.append((level, message)))
    ds.set("skip_corrupt", True)
    batches = list(loader)
    assert ds.skipped == 1 and ds.get("skip_corrupt") is True and len(batches) == 1
    assert any(level == "warn" and "zz-broken.png" in message for level, message in messages), messages


# ------------------------------------------------------- images and plots
def test_load_image_and_write_png(ctx, tmp_path, fashion_slice):
    ds = libvit.Dataset(ctx, fashion_slice)
    pixels = ds[3][0]
    path = tmp_path / "sample.png"
    libvit.write_png(path, pixels[..., 0])  # [H, W] is gray
    assert png_size(path) == (28, 28)
    x = libvit.load_image(path, libvit.Transform(ctx, size=28, channels=1))
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    assert np.allclose(x[0], pixels[..., 0] / 255, rtol=0, atol=1e-6)
    half = libvit.load_image(str(path), libvit.Transform(ctx, size=28, channels=1, normalize="half"), batch=True)
    assert half.shape == (1, 1, 28, 28) and np.allclose(half[0], (x - 0.5) / 0.5, atol=1e-6)
    rgb = libvit.load_image(path, libvit.Transform(ctx, size=14))  # channels 0: RGB
    assert rgb.shape == (3, 14, 14) and np.array_equal(rgb[0], rgb[2])
    libvit.write_png(tmp_path / "rgba.png", np.zeros((5, 7, 4), np.uint8))
    assert png_size(tmp_path / "rgba.png") == (7, 5)
    with pytest.raises(libvit.InputOutputError, match="missing.png"):
        libvit.load_image(tmp_path / "missing.png", libvit.Transform(ctx, size=8))
    with pytest.raises(libvit.DtypeError, match="pixels must be uint8, not float32; convert explicitly"):
        libvit.write_png(tmp_path / "f.png", x[0])
    with pytest.raises(libvit.ShapeError, match=r"C = 1, 3 or 4; got C = 2"):
        libvit.write_png(tmp_path / "c2.png", np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(libvit.ShapeError):
        libvit.write_png(tmp_path / "c2.png", np.zeros((1, 4, 4, 1), np.uint8))


def test_plot_curves(tmp_path):
    path = tmp_path / "loss_curve.png"
    libvit.plot_curves(path, {"Train Loss": [1.0, 0.7, 0.5], "Val Loss": [1.1, float("nan"), 0.6]},
                       title="Loss Curve", y_label="loss")
    assert png_size(path) == (800, 600)
    libvit.plot_curves(tmp_path / "one.png", {"Val Acc": np.array([0.5])}, width=320, height=240)
    assert png_size(tmp_path / "one.png") == (320, 240)
    with pytest.raises(libvit.InvalidArgumentError, match="one or two"):
        libvit.plot_curves(path, {"a": [1], "b": [1], "c": [1]})
    with pytest.raises(libvit.ShapeError, match="equal length"):
        libvit.plot_curves(path, {"a": [1, 2], "b": [1]})
    with pytest.raises(libvit.ShapeError):
        libvit.plot_curves(path, {"a": []})
    with pytest.raises(libvit.InvalidArgumentError):
        libvit.plot_curves(path, {"a": [1]}, width=10, height=10)  # the library's minimum size
    with pytest.raises(TypeError):
        libvit.plot_curves(path, {1: [1]})
