#!/usr/bin/env bash
# Builds, here, the programs scripts/device-check.sh runs on the lent GPU, and packs them into
# device-prebuilt/ (git-ignored), so that the device call spends its minutes on the GPU rather than on
# the compiler, and does not depend on the compilers there:
#
#   here:  bash scripts/device-prebuild.sh [PROGRAM...]   (minutes on two cores; about 15 MiB to carry)
#   there: bash scripts/device-check.sh         (device tool, carry: device-deps, device-prebuilt)
#
# PROGRAM: which to pack, by default all five (kiln_tests compare_kiln_gpu kiln gemm_ladder conv2d_ladder);
# fewer where the tree must leave room for a large pack (scripts/device-train.sh needs kiln alone).
#
# What device-check.sh does with them: unpacks them into its build folder and runs them if they load
# (kiln's CPU kernels are chosen at run time, never by -march, so a binary built here runs on any x86-64
# with the CUDA 13 runtime; the GPU code is sm_90a machine code, Hopper's). Where they do not load, it
# configures and builds there from device-deps/ as before. The tests were compiled with this checkout's
# path as KILN_SOURCE_DIR (they read assets/ and the ladders' write-ups through it): device-prebuilt/
# source-dir names it, and device-check.sh links that path to its own checkout where it does not exist.
#
# device-prebuilt/commit records what was built (HEAD, and whether the tree had uncommitted changes);
# device-check.sh prints it, so a stale pack shows in the log.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build-prebuilt
programs=(kiln_tests compare_kiln_gpu kiln gemm_ladder conv2d_ladder)
(($# == 0)) || programs=("$@")
configure_log="$(cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_EXAMPLES=OFF 2>&1)" ||
  { echo "$configure_log" >&2; exit 1; }
grep -q "kiln: CUDA backend on" <<<"$configure_log" ||
  { echo "device-prebuild.sh: no CUDA backend here (nvcc not found?)" >&2; exit 1; }
if [[ " ${programs[*]} " == *" conv2d_ladder "* ]] &&
  ! grep -q "kiln: ladder benchmarks: gemm_ladder conv2d_ladder" <<<"$configure_log"; then
  echo "device-prebuild.sh: conv2d_ladder is not configured here (cuDNN not found?)" >&2
  exit 1
fi
cmake --build "$build_dir" -j"$(nproc)" --target "${programs[@]}"

destination=device-prebuilt
rm -rf "$destination"
mkdir -p "$destination"
# Stripped of their symbol tables (the CUDA fat binaries stay): a third of the size.
staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
for program in "${programs[@]}"; do
  strip -o "$staging/$program" "$build_dir/$program"
done
tar -cJf "$destination/programs.tar.xz" -C "$staging" "${programs[@]}"
pwd >"$destination/source-dir"
echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!device-prebuilt' || echo ' + uncommitted changes')" \
  >"$destination/commit"
echo "device-prebuild.sh: $(du -sh "$destination/programs.tar.xz" | cut -f1) in $destination/ ($(cat "$destination/commit"))"
