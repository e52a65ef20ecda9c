#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, and runs every test through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The programs the suite runs. The benchmarks and examples are left to `bash scripts/build.sh` (and the GPU
# ones to scripts/ladder-bench.sh and device-check.sh): this keeps CI's build and suite well inside their time.
bash scripts/build.sh --target kiln_tests kiln_emulator_tests kiln_emulated_cuda_tests kiln
ctest --test-dir build --output-on-failure -j"$(nproc)"
