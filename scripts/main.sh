#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, and runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/train_toy "$@"
