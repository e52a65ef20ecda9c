"""The same CIFAR ResNet recipe as `kiln train`, in PyTorch, on the same image folder: the check on kiln's
training quality (does kiln reach what PyTorch reaches on the same pixels, with the same recipe?).

    /usr/bin/python3 bench/compare/torch_train.py ../shared/data/cifar10 --model resnet20 --epochs 164 \
        --milestones 82,123 [--lr 0.1] [--batch 128] [--threads 2] [--seed 1] [--crop-fill mean|black]

DATA holds train/<class>/<image> and test/<class>/<image> (kiln's layout). Every image is decoded once
(Pillow) into memory. Each epoch shuffles the training images, pads each by 4 pixels, cuts a random 32x32
window and flips half of them left-right, then normalizes with the training split's per-channel mean and
standard deviation (as kiln computes them). `--crop-fill mean` pads with each channel's mean colour, as
kiln does; `black` pads with zeros before normalizing, as torchvision's RandomCrop does.

The network is He et al.'s CIFAR ResNet (2016, section 4.2), as kiln's models/resnet.cpp builds it: a 3x3
stem to 16 channels, three stages of n basic blocks at 16, 32 and 64 channels (the first of stages 2 and 3
with stride 2 and a parameter-free shortcut: subsample, then pad the new channels with zeros), global
average pooling and a linear layer. Convolutions are Kaiming-normal (fan-in), batch norm eps 1e-5 and
momentum 0.1, the linear layer PyTorch's default. SGD with momentum 0.9 and L2 weight decay 1e-4 on every
parameter, the learning rate divided by 10 at each milestone.

Prints one JSON line per epoch on stdout (epoch, lr, train_loss, train_accuracy, test_loss, test_accuracy,
seconds, images_per_second); progress goes to stderr.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch_cpu import resnet  # the network kiln builds, shared with the speed comparisons


def load_split(root):
    """Every image under root/<class>/ as uint8 [N, 32, 32, 3] and labels [N], classes sorted by name."""
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    images, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        for file in sorted(os.listdir(folder)):
            with Image.open(os.path.join(folder, file)) as image:
                images.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


def cifar_resnet(depth, classes):
    """torch_cpu.py's ResNet (kiln's models/resnet.cpp, option-A shortcuts) with kiln's initialization:
    Kaiming-normal (fan-in) convolutions, PyTorch's default linear layer."""
    model = resnet(depth=depth, classes=classes)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
    return model


def augment(images, padding, fill, generator):
    """Random crop with `padding` pixels of `fill` each side and a random left-right flip, per image.
    images: uint8 [B, H, W, 3]; returns float32 [B, H, W, 3] in [0, 1] pixel units."""
    batch, height, width, _ = images.shape
    padded = np.empty((batch, height + 2 * padding, width + 2 * padding, 3), dtype=np.float32)
    padded[...] = fill
    padded[:, padding : padding + height, padding : padding + width] = images / 255.0
    rows = generator.integers(0, 2 * padding + 1, batch)
    cols = generator.integers(0, 2 * padding + 1, batch)
    flips = generator.integers(0, 2, batch).astype(bool)
    out = np.empty((batch, height, width, 3), dtype=np.float32)
    for i in range(batch):
        window = padded[i, rows[i] : rows[i] + height, cols[i] : cols[i] + width]
        out[i] = window[:, ::-1] if flips[i] else window
    return out


def to_tensor(pixels, mean, std):
    """[B, H, W, 3] float pixels in [0, 1] -> normalized [B, 3, H, W]."""
    return torch.from_numpy(np.ascontiguousarray(((pixels - mean) / std).transpose(0, 3, 1, 2)))


def evaluate(model, images, labels, mean, std, batch):
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = to_tensor(images[start : start + batch] / np.float32(255.0), mean, std)
            y = torch.from_numpy(labels[start : start + batch])
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    return loss_sum / len(images), correct / len(images)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--epochs", type=int, default=164)
    parser.add_argument("--milestones", default="82,123")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--crop-padding", type=int, default=4)
    parser.add_argument("--crop-fill", choices=["mean", "black"], default="mean")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=0, help="stop each epoch after this many steps (timing)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = np.random.default_rng(args.seed)
    depth = int(args.model.removeprefix("resnet"))
    milestones = [int(m) for m in args.milestones.split(",") if m]

    started = time.time()
    train_images, train_labels, classes = load_split(os.path.join(args.data, "train"))
    test_images, test_labels, _ = load_split(os.path.join(args.data, "test"))
    pixels = train_images.reshape(-1, 3) / 255.0
    mean = pixels.mean(0).astype(np.float32)
    std = pixels.std(0).astype(np.float32)
    del pixels
    print(f"decoded {len(train_images)} + {len(test_images)} images, {len(classes)} classes, mean {mean}, std {std}"
          f" in {time.time() - started:.1f} s", file=sys.stderr)
    fill = mean if args.crop_fill == "mean" else np.zeros(3, dtype=np.float32)

    model = cifar_resnet(depth, len(classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    print(f"{args.model}: {sum(p.numel() for p in model.parameters())} parameters", file=sys.stderr)

    for epoch in range(1, args.epochs + 1):
        model.train()
        epoch_start = time.time()
        order = generator.permutation(len(train_images))
        loss_sum, correct, seen = 0.0, 0, 0
        steps = -(-len(order) // args.batch)  # the last batch is short (kiln trains on it too)
        for step in range(steps):
            if args.max_steps and step >= args.max_steps:
                break
            indices = order[step * args.batch : (step + 1) * args.batch]
            x = to_tensor(augment(train_images[indices], args.crop_padding, fill, generator), mean, std)
            y = torch.from_numpy(train_labels[indices])
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(indices)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(indices)
            if step % 20 == 0:
                print(f"\repoch {epoch} step {step}/{steps} loss {loss_sum / seen:.4f}"
                      f" {seen / (time.time() - epoch_start):.0f} img/s", end="", file=sys.stderr)
        train_seconds = time.time() - epoch_start
        test_loss, test_accuracy = evaluate(model, test_images, test_labels, mean, std, 500)
        record = {
            "epoch": epoch,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": round(loss_sum / seen, 5),
            "train_accuracy": round(correct / seen, 5),
            "test_loss": round(test_loss, 5),
            "test_accuracy": round(test_accuracy, 5),
            "seconds": round(time.time() - epoch_start, 2),
            "images_per_second": round(seen / train_seconds, 1),
        }
        print(file=sys.stderr)
        print(json.dumps(record), flush=True)
        schedule.step()


if __name__ == "__main__":
    main()
