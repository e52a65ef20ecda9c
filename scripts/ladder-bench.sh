#!/usr/bin/env bash
# Times the kernel ladders against the vendor libraries on cuda:0 and prints the tables: every GEMM ladder
# step against cuBLAS (build/gemm_ladder), then every convolution ladder step against every cuDNN algorithm
# (build/conv2d_ladder), each row checked against the vendor's FP32 result first.
#
#   bash scripts/ladder-bench.sh [--quick] [--json FILE] [--only gemm|conv2d] [--build-dir build]
#                                [--no-build] [--build-only] [any option both programs take]
#
#   --quick          GEMM 4096 and the ResNet-20 layers at batch 128, 15 ms per row (a minute or less)
#   --json FILE      write both programs' reports to FILE: {"gemm": {...}, "conv2d": {...}}
#   --only P         run only gemm_ladder or only conv2d_ladder
#   --build-dir D    where to configure and build (Release)                          default build
#   --no-build       use the programs already in the build folder (scripts/device-check.sh builds them)
#   --build-only     build, then stop (also where there is no GPU)
#   --gemm "ARGS"    extra options for gemm_ladder only, e.g. --gemm "--sizes 4096,8192"
#   --conv "ARGS"    extra options for conv2d_ladder only, e.g. --conv "--models resnet56 --batches 128"
# Other options go to both programs: --filter A,B (ladder steps whose name contains A or B), --precision
# fp32,tf32,bf16, --budget-ms MS, --no-gate, --seed N (their --help says more).
#
# Without a full run's options the whole table takes a while: every ladder step and cuDNN algorithm on 37
# layer geometries x 4 batch sizes x 3 passes x 3 precisions (about 10-20 minutes on an H100), and the GEMM
# sizes up to 8192 (a minute or two). Without a GPU it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build json_out="" only="" build=yes run=yes
common=() gemm_args=() conv_args=()
while (($#)); do
  case "$1" in
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    --quick | --no-gate) common+=("$1") ;;
    --no-build) build=no ;;
    --build-only) run=no ;;
    --json | --only | --build-dir | --gemm | --conv | --filter | --precision | --budget-ms | --seed)
      (($# >= 2)) || { echo "ladder-bench.sh: $1 needs a value (see --help)" >&2; exit 2; }
      case "$1" in
        --json) json_out="$2" ;;
        --only) only="$2" ;;
        --build-dir) build_dir="$2" ;;
        --gemm) read -r -a split <<<"$2" && gemm_args+=("${split[@]}") ;;  # a list of options, split on spaces
        --conv) read -r -a split <<<"$2" && conv_args+=("${split[@]}") ;;
        *) common+=("$1" "$2") ;;
      esac
      shift
      ;;
    *) echo "ladder-bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$only" in
  "" | gemm | conv2d) ;;
  *) echo "ladder-bench.sh: --only takes gemm or conv2d, not $only" >&2; exit 2 ;;
esac

if [ "$run" = yes ] && ! { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }; then
  echo "no CUDA device: nothing to measure (nvidia-smi finds no GPU here; --build-only builds the programs)"
  exit 0
fi

# ---- build ---------------------------------------------------------------------------------------------
programs=()
[ "$only" = conv2d ] || programs+=(gemm_ladder)
[ "$only" = gemm ] || programs+=(conv2d_ladder)
if [ "$build" = yes ]; then
  configure=(cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release)
  if [ ! -f "$build_dir/CMakeCache.txt" ] && [ -f device-deps/deps.cmake ] && ! dpkg -s nlohmann-json3-dev >/dev/null 2>&1; then
    configure+=(-C device-deps/deps.cmake)  # a machine without kiln's Debian packages (scripts/device-deps.sh)
  fi
  configure_log="$("${configure[@]}" 2>&1)" || { echo "$configure_log" >&2; exit 1; }
  configured="$(sed -n 's/^-- kiln: ladder benchmarks: \([a-z0-9_ ]*\).*/\1/p' <<<"$configure_log" | tail -1)"
  if [ -z "$configured" ]; then
    echo "ladder-bench.sh: $build_dir configures no ladder benchmark (no CUDA backend?):" >&2
    grep "kiln: " <<<"$configure_log" >&2
    exit 1
  fi
  targets=()
  for program in "${programs[@]}"; do
    if [[ " $configured " == *" $program "* ]]; then
      targets+=("$program")
    else
      echo "ladder-bench.sh: $program is not configured in $build_dir: $(grep 'kiln: ladder benchmarks' <<<"$configure_log")" >&2
    fi
  done
  ((${#targets[@]})) || exit 1
  cmake --build "$build_dir" -j"$(nproc)" --target "${targets[@]}"
fi
[ "$run" = yes ] || exit 0

# ---- run, one program at a time ------------------------------------------------------------------------
reports="$(mktemp -d)"
trap 'rm -rf "$reports"' EXIT
failed=()
for program in "${programs[@]}"; do
  if [ ! -x "$build_dir/$program" ]; then
    echo "ladder-bench.sh: no $build_dir/$program (build it, or see the configure line 'kiln: ladder benchmarks')" >&2
    failed+=("$program(missing)")
    continue
  fi
  extra=()
  if [ "$program" = gemm_ladder ]; then
    extra=(${gemm_args[@]+"${gemm_args[@]}"})
  else
    extra=(${conv_args[@]+"${conv_args[@]}"})
  fi
  echo "== $program =="
  "$build_dir/$program" ${common[@]+"${common[@]}"} ${extra[@]+"${extra[@]}"} --json "$reports/$program.json" ||
    failed+=("$program")
  echo
done

if [ -n "$json_out" ]; then
  # Both reports in one object, without a JSON tool: each program wrote one complete JSON value.
  {
    printf '{"gemm": '
    cat "$reports/gemm_ladder.json" 2>/dev/null || printf 'null'
    printf ', "conv2d": '
    cat "$reports/conv2d_ladder.json" 2>/dev/null || printf 'null'
    printf '}\n'
  } >"$json_out"
  echo "ladder-bench.sh: wrote $json_out"
fi
if ((${#failed[@]})); then
  echo "ladder-bench.sh: failed (a step WRONG or failed, or a program that did not finish): ${failed[*]}" >&2
  exit 1
fi
