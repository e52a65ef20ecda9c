#!/usr/bin/env python3
"""Writes assets/cifar10-attributes/{train,test}.csv: a multi-label labels file for kiln made from the
CIFAR-10 subset in class folders (assets/cifar10-subset/{train,test}/<class>/<image>).

Each image gets the attributes of its class (ATTRIBUTES below), so the labels are derived from the class:
the files demonstrate the multi-label mechanics (a labels file, sigmoid outputs, per-label thresholds),
not real multi-label data, where labels vary within a class.

Rows are "path,label[,label...]" with the path relative to the CSV's folder, sorted by class then file
name, after a comment line naming this script. Run from anywhere:

    python3 scripts/make-attribute-labels.py
"""
import pathlib

ATTRIBUTES = {
    "airplane": ["vehicle", "flies"],
    "automobile": ["vehicle", "wheels"],
    "bird": ["animal", "flies", "wild"],
    "cat": ["animal", "pet", "four_legs"],
    "deer": ["animal", "four_legs", "wild"],
    "dog": ["animal", "pet", "four_legs"],
    "frog": ["animal", "wild", "water"],
    "horse": ["animal", "four_legs"],
    "ship": ["vehicle", "water", "cargo"],
    "truck": ["vehicle", "wheels", "cargo"],
}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tga"}

root = pathlib.Path(__file__).resolve().parent.parent
subset = root / "assets" / "cifar10-subset"
out = root / "assets" / "cifar10-attributes"
out.mkdir(parents=True, exist_ok=True)
for split in ("train", "test"):
    rows = [f"# written by scripts/make-attribute-labels.py from assets/cifar10-subset/{split}; "
            "labels derived from the class"]
    for class_folder in sorted(p for p in (subset / split).iterdir() if p.is_dir()):
        labels = ATTRIBUTES[class_folder.name]
        for image in sorted(class_folder.iterdir()):
            if image.suffix.lower() in IMAGE_EXTENSIONS:
                path = pathlib.Path("..") / "cifar10-subset" / split / class_folder.name / image.name
                rows.append(",".join([path.as_posix()] + labels))
    (out / f"{split}.csv").write_text("\n".join(rows) + "\n")
    print(f"{out / (split + '.csv')}: {len(rows) - 1} images")
