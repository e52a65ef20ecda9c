#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, then trains a ResNet-20 on the bundled CIFAR-10
# subset, evaluates it on the subset's test split and classifies one test image.
# Extra arguments go to `kiln train` (e.g. --model vgg_small --epochs 5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh --target kiln
data=assets/cifar10-subset
run=runs/cifar10-subset
./build/kiln train "$data" --model resnet20 --epochs 15 --lr 0.1 --out "$run" --overwrite "$@"
./build/kiln eval "$run/last.kiln" "$data"
./build/kiln predict "$run/last.kiln" "$data/test/cat/0000.jpg" --top 3
