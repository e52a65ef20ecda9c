#!/usr/bin/env bash
# Configures and builds kiln (Release) into ./build with every core: everything, or the targets named
# (bash scripts/build.sh --target kiln).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" "$@"
