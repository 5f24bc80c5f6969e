#!/usr/bin/env python3
"""The seed tutorial's train.py, on libvit.

    python3 train.py --root DATA [--img-size 224] [--patch-size 16] ... [--epochs 50] [--lr 1e-4]

Every parameter of the seed's train() is a flag with the seed's default;
--root is the dataset: an image folder (root/train/<class>/*.jpg, root/val/...),
CIFAR-10 or IDX files (Fashion-MNIST). As in the seed: the line
"Epoch N: Train Loss=..., Train Acc=..., Val Loss=..., Val Acc=..." after each
epoch, the best model by validation accuracy (best.safetensors, with its
class names: predict.py and vit-predict read it), loss_curve.png and
acc_curve.png. --in-channels 0 (the default) takes the data's channels.
"""
import argparse
import inspect
import os

import libvit


def train(root, img_size=224, patch_size=16, in_channels=0, num_features=768, depth=12, num_heads=12,
          mlp_ratio=4.0, qkv_bias=True, drop_rate=0.1, attn_drop_rate=0.1, drop_path_rate=0.1,
          epochs=50, batch_size=4, num_workers=4, lr=1e-4, device="cpu", seed=0, threads=0, out="."):
    os.makedirs(out, exist_ok=True)
    ctx = libvit.Context(device=device, seed=seed, threads=threads)
    # The seed's ViTDataLoad: resize and ToTensor; training shuffled with drop_last, validation in order.
    train_set = libvit.Dataset(ctx, root, split="train")
    val_set = libvit.Dataset(ctx, root, split="val")
    in_channels = in_channels or train_set.channels
    transform = libvit.Transform(ctx, size=img_size, channels=in_channels)
    train_loader = libvit.DataLoader(train_set, transform, batch_size, workers=num_workers)
    val_loader = libvit.DataLoader(val_set, transform.copy(train=False), batch_size, shuffle=False,
                                   drop_last=False, workers=num_workers)

    # The seed's VisonTransformer: a LayerNorm after the patch projection, nn.LayerNorm's eps.
    model = libvit.Model(ctx, img_size=img_size, patch_size=patch_size, in_channels=in_channels,
                         num_classes=train_set.num_classes, dim=num_features, depth=depth, heads=num_heads,
                         mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
                         attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate, patch_norm=True,
                         ln_eps=1e-5)
    model.class_names = train_set.classes          # the checkpoint remembers them
    model.set_normalization(mean=0.0, std=1.0)     # and that inputs are pixels / 255 (ToTensor)
    optimizer = libvit.AdamW(model, lr=lr)         # optim.AdamW(model.parameters(), lr=lr)
    best_acc = 0.0
    history = {"Train Loss": [], "Val Loss": [], "Train Acc": [], "Val Acc": []}

    for epoch in range(epochs):
        model.train()
        total_loss, correct, total = 0.0, 0, 0
        for images, labels in train_loader:
            optimizer.zero_grad()
            outputs = model(images)
            loss = model.loss(labels)              # criterion(outputs, labels)
            model.backward()                       # loss.backward()
            optimizer.step()
            total_loss += loss * len(labels)
            correct += int((outputs.argmax(1) == labels).sum())
            total += len(labels)
        train_loss, train_acc = total_loss / total, correct / total

        model.eval()
        val_loss, val_correct, val_total = 0.0, 0, 0
        with model.no_grad():
            for images, labels in val_loader:
                outputs = model(images)
                val_loss += model.loss(labels) * len(labels)
                val_correct += int((outputs.argmax(1) == labels).sum())
                val_total += len(labels)
        val_loss, val_acc = val_loss / val_total, val_correct / val_total
        for key, value in zip(history, (train_loss, val_loss, train_acc, val_acc)):
            history[key].append(value)

        print(f"Epoch {epoch+1}: Train Loss={train_loss:.4f}, Train Acc={train_acc:.4f}, "
              f"Val Loss={val_loss:.4f}, Val Acc={val_acc:.4f}", flush=True)
        if val_acc > best_acc or epoch == 0:       # the first epoch too, so that a file exists
            best_acc = val_acc
            model.save(os.path.join(out, "best.safetensors"))

    libvit.plot_curves(os.path.join(out, "loss_curve.png"),
                       {k: history[k] for k in ("Train Loss", "Val Loss")}, title="Loss Curve", y_label="loss")
    libvit.plot_curves(os.path.join(out, "acc_curve.png"),
                       {k: history[k] for k in ("Train Acc", "Val Acc")}, title="Accuracy Curve",
                       y_label="accuracy")
    print(f"Training finished, best validation accuracy: {best_acc:.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, param in inspect.signature(train).parameters.items():
        flag, default = "--" + name.replace("_", "-"), param.default
        if default is inspect.Parameter.empty:
            parser.add_argument(flag, required=True)
        elif isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"(default {default})")
    train(**vars(parser.parse_args()))


if __name__ == "__main__":
    main()
