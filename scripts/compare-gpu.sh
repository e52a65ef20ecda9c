#!/usr/bin/env bash
# Compares kiln's training throughput and peak memory on the GPU with PyTorch eager's, in one run.
#
#   bash scripts/compare-gpu.sh [--batch 128] [--steps 50] [--warmup 10] [--precision fp32|bf16|both]
#                               [--memory-format nchw|channels-last] [--json FILE] [--build-dir build]
#                               [--no-build] [--quick]
#
#   --batch N        images per training step                                          default 128
#   --steps N        timed steps per round; the median round is reported               default 50
#   --warmup N       untimed steps before the timed rounds                             default 10
#   --rounds N       timed rounds per row, at most                                     default 5
#   --budget S       seconds of timed rounds per row, at most (at least one round)     default 30
#   --precision P    fp32, bf16 or both (bf16: kiln's --precision bf16 against PyTorch's
#                    torch.autocast(cuda, bfloat16))                                   default both
#   --memory-format  nchw, or channels-last for both sides: kiln's --memory-format
#                    channels-last, PyTorch's torch.channels_last model and batch          default nchw
#   --models LIST    comma-separated                                                   default resnet20,resnet56
#   --json FILE      also write the merged results (and each program's raw report) to FILE
#   --build-dir D    where to build (Release)                                          default build
#   --no-build       use the compare_kiln_gpu already in the build folder (scripts/device-check.sh
#                    builds it, or unpacks a prebuilt one)
#   --timeout S      stop any one program after S seconds (0: never); its cells stay
#                    blank and the script fails                                        default 0
#   --quick          --warmup 3 --steps 10 --rounds 3 --budget 10 (later options still win)
#
# What it measures: ResNet-20 and ResNet-56 (CIFAR-10, 32x32, 10 classes) training steps on cuda:0 on
# one random batch: forward, cross-entropy, the loss read back (as kiln's trainer does), backward, SGD
# with momentum 0.9 and weight decay 1e-4. Throughput in images/s and the peak device memory, for kiln
# (bench/compare/kiln_gpu.cpp, one process per model so each model's peak is its own) and for PyTorch
# eager on the same architecture (bench/compare/torch_gpu.py; fp32 with TF32 off, because kiln's fp32 is
# true fp32; bf16 under torch.autocast). The programs run one after the other, never at once.
# bench/compare/gpu_table.py prints one table: model x precision, images/s and peak MiB for each, and
# the ratios kiln / PyTorch (speed above 1: kiln faster; memory above 1: kiln needs more).
#
# Needs an NVIDIA GPU (nvidia-smi), a python3 whose PyTorch sees it, nvcc, and kiln's build dependencies
# (scripts/install-deps.sh; on a machine without them, scripts/device-deps.sh and scripts/device-check.sh
# build from a carried copy). It installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

batch=128 steps=50 warmup=10 rounds=5 budget=30 precision=both models=resnet20,resnet56
memory_format=nchw
json_out="" build_dir=build timeout_s=0 build=yes
while (($#)); do
  if [[ "$1" == -h || "$1" == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
  fi
  if [[ "$1" == --quick ]]; then
    warmup=3 steps=10 rounds=3 budget=10
    shift
    continue
  fi
  if [[ "$1" == --no-build ]]; then
    build=no
    shift
    continue
  fi
  (($# >= 2)) || { echo "compare-gpu.sh: $1 needs a value (see --help)" >&2; exit 2; }
  case "$1" in
    --batch) batch="$2" ;;
    --steps) steps="$2" ;;
    --warmup) warmup="$2" ;;
    --rounds) rounds="$2" ;;
    --budget) budget="$2" ;;
    --precision) precision="$2" ;;
    --memory-format) memory_format="$2" ;;
    --models) models="$2" ;;
    --json) json_out="$2" ;;
    --build-dir) build_dir="$2" ;;
    --timeout) timeout_s="$2" ;;
    *) echo "compare-gpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift 2
done
case "$precision" in
  fp32 | bf16 | both) ;;
  *) echo "compare-gpu.sh: --precision takes fp32, bf16 or both, not $precision" >&2; exit 2 ;;
esac
case "$memory_format" in
  nchw | channels-last) ;;
  *) echo "compare-gpu.sh: --memory-format takes nchw or channels-last, not $memory_format" >&2; exit 2 ;;
esac

# ---- refuse where there is no GPU ----------------------------------------------------------------------
command -v nvidia-smi >/dev/null || {
  echo "compare-gpu.sh: no GPU here (nvidia-smi is not installed); this comparison needs an NVIDIA GPU" >&2
  exit 1
}
nvidia-smi -L >/dev/null 2>&1 || {
  echo "compare-gpu.sh: no GPU here (nvidia-smi -L failed: no driver or no device)" >&2
  exit 1
}
# The first python3 whose PyTorch sees the GPU (a venv's python3 may come before the system's on PATH).
python=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null &&
    "$candidate" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    python="$candidate"
    break
  fi
done
[ -n "$python" ] || {
  echo "compare-gpu.sh: no python3 here has a PyTorch for which torch.cuda.is_available() is True" >&2
  exit 1
}

# ---- build ---------------------------------------------------------------------------------------------
configure=(cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release)
# A build folder configured for the first time on a machine without kiln's Debian packages finds them in
# device-deps/ (scripts/device-deps.sh); one configured before keeps what its cache says.
if [ ! -f "$build_dir/CMakeCache.txt" ] && [ -f device-deps/deps.cmake ] && ! dpkg -s nlohmann-json3-dev >/dev/null 2>&1; then
  configure+=(-C device-deps/deps.cmake)
fi
# A program that fails (kiln's configure or build too) leaves its cells blank; the table still shows the
# others, and the script fails.
failed=()
kiln_built=no
if [ "$build" = no ]; then
  if [ -x "$build_dir/compare_kiln_gpu" ]; then
    kiln_built=yes
  else
    echo "compare-gpu.sh: --no-build, and there is no $build_dir/compare_kiln_gpu" >&2
    failed+=("kiln (not built)")
  fi
elif ! configure_log="$("${configure[@]}" 2>&1)"; then
  echo "$configure_log" >&2
  failed+=("kiln configure")
elif ! grep -q "kiln: CUDA backend on" <<<"$configure_log"; then
  echo "compare-gpu.sh: the build in $build_dir has no CUDA backend (no nvcc found, or -DKILN_CUDA=OFF)" >&2
  failed+=("kiln configure (no CUDA)")
elif ! cmake --build "$build_dir" -j"$(nproc)" --target compare_kiln_gpu; then
  failed+=("kiln build")
else
  kiln_built=yes
fi

# ---- run, one program at a time ------------------------------------------------------------------------
reports="$(mktemp -d)"
trap 'rm -rf "$reports"' EXIT
run_limited() {  # a program under --timeout, when one is set
  if ((timeout_s > 0)); then timeout --kill-after=10 "$timeout_s" "$@"; else "$@"; fi
}
options=(--batch "$batch" --warmup "$warmup" --steps "$steps" --rounds "$rounds" --budget "$budget"
  --precision "$precision" --memory-format "$memory_format")
kiln_reports=()
# KILN_LIBRARY_PATH, where set, is the library path for kiln's program alone (scripts/device-check.sh: the
# toolkit kiln was compiled with), so that PyTorch keeps loading its own libraries.
kiln_env=()
[ -z "${KILN_LIBRARY_PATH:-}" ] || kiln_env=(env "LD_LIBRARY_PATH=$KILN_LIBRARY_PATH")
IFS=, read -r -a model_list <<<"$models"
for model in "${model_list[@]}"; do
  [ "$kiln_built" = yes ] || break
  echo "== kiln $model (batch $batch) =="
  report="$reports/kiln-$model.json"
  run_limited "${kiln_env[@]}" "$build_dir/compare_kiln_gpu" --model "$model" "${options[@]}" >"$report" ||
    failed+=("kiln $model")
  kiln_reports+=("$report")
done
echo "== PyTorch $models (batch $batch) =="
PYTHONUNBUFFERED=1 run_limited "$python" bench/compare/torch_gpu.py --models "$models" "${options[@]}" \
  >"$reports/torch.json" || failed+=(PyTorch)
echo
table_options=(--kiln "${kiln_reports[@]}" --torch "$reports/torch.json")
[ -z "$json_out" ] || table_options+=(--json "$json_out")
"$python" bench/compare/gpu_table.py "${table_options[@]}" || failed+=(table)
if ((${#failed[@]})); then
  echo "compare-gpu.sh: failed: ${failed[*]}" >&2
  exit 1
fi
