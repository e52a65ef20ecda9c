#!/usr/bin/env bash
# Compares kiln's CPU kernels with oneDNN and PyTorch on the same shapes and thread count, in one run.
#
#   bash scripts/compare-cpu.sh [--threads 2] [--batch 128] [--image-size 32] [--json FILE]
#                               [--reps 10] [--budget 2] [--warmup 1] [--build-dir build]
#
#   --threads N     threads for all three libraries (OpenMP; torch.set_num_threads)   default 2
#   --batch N       images per convolution and per training step                     default 128
#   --image-size N  the networks' input, N x N: ResNet-20's convolutions at N, N/2
#                   and N/4, every training step on N x N images (CIFAR-10: 32; the
#                   larger photos of users' own folders: 64, 96, ...)                 default 32
#   --json FILE     also write the merged results (and each program's raw report) to FILE
#   --reps N        timed repetitions per case, at most; the median is reported       default 10
#   --budget S      seconds of timed repetitions per case, at most (a slow case runs
#                   fewer times; one whose warm-up alone exceeds S is timed once;
#                   a training step gets at least 10 s)                               default 2
#   --warmup N      untimed runs before each case                                     default 1
#   --build-dir D   where to build (Release)                                          default build
#
# What it times (the shapes are in bench/compare/shapes.hpp): conv forward, backward-data and backward-weight
# for each distinct 3x3 convolution of ResNet-20 (CIFAR's 32x32, or --image-size) and for layers of other
# kinds (MobileNet's depthwise and 1x1 layers, LeNet-5's 5x5, ResNet-18's 3x3 planes on 96x96 photos, strided
# layers of users' own models: a 7x7 stem, 1x1 projections, stride 3, groups, dilation), SGEMM at 1024^3, 2048^3 and two convolution-like shapes, the
# inference forward pass (eval mode, no gradients, float32) of ResNet-20, the MobileNet-style net, the
# VGG-style net, ResNet-18, MobileNetV2 and MobileNetV3-Small at batch 1 (one image's latency, as `kiln predict` sees it) and at --batch, and a
# whole training step of each (forward, cross-entropy, backward, SGD momentum 0.9 + weight decay 1e-4). Three
# programs, run one after the other so they never share the cores: bench/compare/kiln_cpu.cpp (kiln's
# dispatch functions and model zoo), bench/compare/onednn_cpu.cpp (oneDNN in plain nchw layouts and in its
# own blocked layouts), bench/compare/torch_cpu.py (PyTorch, NCHW float32). bench/compare/table.py merges
# them into one table of times and kiln speedups (other time / kiln time: above 1 means kiln is faster), with
# geometric-mean (per family of layers), SGEMM GFLOP/s (% of the measured FP32 peak), inference and training
# images/s summary rows; each convolution row names the algorithm kiln chose for it.
#
# It first installs what is missing: kiln's build dependencies (scripts/install-deps.sh), oneDNN
# (libdnnl-dev) and PyTorch (python3-torch), from Debian's packages, with OpenBLAS (libopenblas0-pthread):
# Debian's PyTorch calls whatever BLAS the system's libblas.so.3 is for torch.mm and Linear, and without
# OpenBLAS that is netlib's reference BLAS, which would make PyTorch look 15x slower than it is. The
# table names the BLAS that was loaded.
# The whole run takes a few minutes at batch 128 on 2 threads; use a small --batch to try it out.
set -euo pipefail
cd "$(dirname "$0")/.."

threads=2 batch=128 image_size=32 json_out="" reps=10 budget=2 warmup=1 build_dir=build
while (($#)); do
  if [[ "$1" == -h || "$1" == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
  fi
  (($# >= 2)) || { echo "compare-cpu.sh: $1 needs a value (see --help)" >&2; exit 2; }
  case "$1" in
    --threads) threads="$2" ;;
    --batch) batch="$2" ;;
    --image-size) image_size="$2" ;;
    --json) json_out="$2" ;;
    --reps) reps="$2" ;;
    --budget) budget="$2" ;;
    --warmup) warmup="$2" ;;
    --build-dir) build_dir="$2" ;;
    *) echo "compare-cpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift 2
done

# ---- install what is missing ---------------------------------------------------------------------------
bash scripts/install-deps.sh
missing=()
for package in libdnnl-dev python3-torch libopenblas0-pthread; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_if_needed=""
  [ "$(id -u)" -eq 0 ] || sudo_if_needed="sudo"
  $sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -qq "${missing[@]}"
fi
# Debian's PyTorch is installed for the system Python; a python3 earlier on PATH (pyenv, a venv) may not see it.
python=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c "import torch" 2>/dev/null; then
    python="$candidate"
    break
  fi
done
[ -n "$python" ] || { echo "compare-cpu.sh: no python3 here can import torch" >&2; exit 1; }

# ---- build ---------------------------------------------------------------------------------------------
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target compare_kiln_cpu compare_onednn_cpu

# ---- run, one program at a time ------------------------------------------------------------------------
reports="$(mktemp -d)"
trap 'rm -rf "$reports"' EXIT
options=(--threads "$threads" --batch "$batch" --image-size "$image_size" --warmup "$warmup" --reps "$reps"
  --budget "$budget")
# A program that fails leaves its columns blank; the table still shows the others, and the script fails.
failed=()
# Timings are only as good as the machine is quiet: show what else was running (load on all cores).
load() { echo "load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"; }
echo "== kiln (batch $batch, ${image_size}x$image_size images, $threads threads; $(load)) =="
"$build_dir/compare_kiln_cpu" "${options[@]}" >"$reports/kiln.json" || failed+=(kiln)
echo "== oneDNN ($(load)) =="
"$build_dir/compare_onednn_cpu" "${options[@]}" >"$reports/onednn.json" || failed+=(oneDNN)
echo "== PyTorch ($(load)) =="
"$build_dir/compare_kiln_cpu" --list-shapes --image-size "$image_size" >"$reports/shapes.json"
"$python" bench/compare/torch_cpu.py --shapes "$reports/shapes.json" "${options[@]}" >"$reports/torch.json" ||
  failed+=(PyTorch)
echo
table_options=(--kiln "$reports/kiln.json" --onednn "$reports/onednn.json" --torch "$reports/torch.json")
[ -z "$json_out" ] || table_options+=(--json "$json_out")
python3 bench/compare/table.py "${table_options[@]}"
if ((${#failed[@]})); then
  echo "compare-cpu.sh: failed: ${failed[*]}" >&2
  exit 1
fi
