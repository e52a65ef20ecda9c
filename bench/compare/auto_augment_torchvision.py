#!/usr/bin/env python3
"""kiln's automatic augmentation operations (data/auto_augment.hpp) against torchvision's, on both strength
tables: TrivialAugmentWide's ("wide") and RandAugment's ("standard").

For each table and each of the fourteen operations, at levels 0, 7, 13, 20 and 30 of 30, both signs, on a
random uint8 image: torchvision's functional op (the call its TrivialAugmentWide or RandAugment makes,
nearest interpolation, black fill) and kiln's (build/compare_auto_augment, on the same image as float in
[0, 1], black fill too), and prints how far apart they are, in 8-bit levels. torchvision computes on uint8
and rounds its intermediate grey images to 8 bits, kiln stays in float: its colour operations may differ by
a level or two. The geometric ones agree but where a pixel's source lies exactly on the line between two
pixels (the standard table's shear of 0.2 at level 20 puts every fifth row there): kiln rounds such a tie
up, torchvision's float32 arithmetic lands on either side of it, so whole rows there differ.

    python3 bench/compare/auto_augment_torchvision.py [--program build/compare_auto_augment] [--json]

Needs python3-torchvision (Debian's), which the test suite does not.
"""

import argparse
import json
import math
import subprocess
import sys

import numpy as np
import torch
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

OPERATIONS = ["identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness",
              "color", "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize"]
LEVELS = 31


def signed_table(table, height, width):
    """torchvision's magnitudes of the signed operations at each level: TrivialAugmentWide's table ("wide")
    or RandAugment's ("standard", its shifts relative to the image's size)."""
    wide = table == "wide"
    shear, factor, rotate = (0.99, 0.99, 135.0) if wide else (0.3, 0.9, 30.0)
    shift_x, shift_y = (32.0, 32.0) if wide else (150.0 / 331.0 * width, 150.0 / 331.0 * height)
    return {"shear_x": np.linspace(0.0, shear, LEVELS), "shear_y": np.linspace(0.0, shear, LEVELS),
            "translate_x": np.linspace(0.0, shift_x, LEVELS),
            "translate_y": np.linspace(0.0, shift_y, LEVELS),
            "rotate": np.linspace(0.0, rotate, LEVELS), "brightness": np.linspace(0.0, factor, LEVELS),
            "color": np.linspace(0.0, factor, LEVELS), "contrast": np.linspace(0.0, factor, LEVELS),
            "sharpness": np.linspace(0.0, factor, LEVELS)}


def torchvision_op(image, table, name, level, negative):
    """What _apply_op does for (name, level, sign) on `table`, on a uint8 [C, H, W] tensor."""
    signed = signed_table(table, image.shape[1], image.shape[2])
    m = float(signed[name][level]) * (-1.0 if negative else 1.0) if name in signed else 0.0
    nearest = InterpolationMode.NEAREST
    if name == "shear_x":
        shear = math.degrees(math.atan(m))
        return F.affine(image, angle=0.0, translate=[0, 0], scale=1.0, shear=[shear, 0.0],
                        interpolation=nearest, fill=None, center=[0, 0])
    if name == "shear_y":
        shear = math.degrees(math.atan(m))
        return F.affine(image, angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, shear],
                        interpolation=nearest, fill=None, center=[0, 0])
    if name == "translate_x":
        return F.affine(image, angle=0.0, translate=[int(m), 0], scale=1.0, shear=[0.0, 0.0],
                        interpolation=nearest, fill=None)
    if name == "translate_y":
        return F.affine(image, angle=0.0, translate=[0, int(m)], scale=1.0, shear=[0.0, 0.0],
                        interpolation=nearest, fill=None)
    if name == "rotate":
        return F.rotate(image, m, interpolation=nearest, fill=None)
    if name == "brightness":
        return F.adjust_brightness(image, 1.0 + m)
    if name == "color":
        return F.adjust_saturation(image, 1.0 + m)
    if name == "contrast":
        return F.adjust_contrast(image, 1.0 + m)
    if name == "sharpness":
        return F.adjust_sharpness(image, 1.0 + m)
    if name == "posterize":
        return F.posterize(image, int(8 - round(level / ((LEVELS - 1) / (6 if table == "wide" else 4)))))
    if name == "solarize":
        return F.solarize(image, float(np.linspace(255.0, 0.0, LEVELS)[level]))
    if name == "autocontrast":
        return F.autocontrast(image)
    if name == "equalize":
        return F.equalize(image)
    return image


def kiln_op(program, image, table, operation, level, negative):
    channels, height, width = image.shape
    pixels = (image.astype(np.float32) / 255.0).tobytes()
    arguments = [program, table, str(channels), str(height), str(width), str(operation), str(level),
                 str(int(negative))]
    result = subprocess.run(arguments, input=pixels, capture_output=True, check=True)
    return np.frombuffer(result.stdout, dtype=np.float32).reshape(image.shape) * 255.0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--program", default="build/compare_auto_augment")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    options = parser.parse_args()

    generator = np.random.default_rng(0)
    # 32 high and 48 wide, so that RandAugment's shifts differ along the two axes.
    image = generator.integers(0, 256, size=(3, 32, 48), dtype=np.uint8)
    image[:, :4, :] = generator.integers(100, 140, size=(3, 4, 48))  # few levels, for the histograms
    rows = []
    for table in ("wide", "standard"):
        for operation, name in enumerate(OPERATIONS):
            worst, off, values = 0.0, 0, 0
            for level in (0, 7, 13, 20, 30):
                for negative in (False, True):
                    ours = kiln_op(options.program, image, table, operation, level, negative)
                    theirs = torchvision_op(torch.from_numpy(image), table, name, level, negative)
                    apart = np.abs(ours - theirs.numpy().astype(np.float32))
                    worst = max(worst, float(apart.max()))
                    off += int((apart > 1.01).sum())
                    values += apart.size
            rows.append({"table": table, "operation": name, "worst_levels": worst,
                         "values_off_by_more_than_one": off, "values": values})
    if options.json:
        print(json.dumps({"rows": rows}))
        return 0
    print(f"{'table':9s} {'operation':13s} {'worst':>7s}  "
          f"values more than 1 level apart (of {rows[0]['values']})")
    for row in rows:
        print(f"{row['table']:9s} {row['operation']:13s} {row['worst_levels']:7.2f}  "
              f"{row['values_off_by_more_than_one']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
