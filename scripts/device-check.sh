#!/usr/bin/env bash
# The one command a session with a lent GPU runs: builds kiln with the CUDA backend, runs the CUDA tests
# and the GPU comparison with PyTorch, and leaves every log under $OUT.
#
#   here:  bash scripts/device-deps.sh      (once: copies the build's Debian packages into device-deps/)
#          bash scripts/device-prebuild.sh  (optional: builds the programs here, into device-prebuilt/)
#          a pack to train on, optional:    ./build/kiln pack DIR packs/device-check.kpack (DIR with
#                                           train/ and test/, about 25 MiB at most: the tree travels whole)
#   there: bash scripts/device-check.sh     (device tool, carry: device-deps, device-prebuilt and
#                                            packs/device-check.kpack where made; timeout_s about 590)
#
# Stages, each timestamped, each run even when an earlier one failed (a stage that needs a missing
# program is marked failed); the end lists which failed and the script exits non-zero if any did:
#   gpu        nvidia-smi                                                          -> $OUT/build.log (top)
#   prebuilt   where device-prebuilt/ was carried: its programs, unpacked into the
#              build folder and used if they load here (then no configure, build
#              or ctest)                                                           -> $OUT/build.log
#   configure  Release, the CUDA backend (checked), ninja where present            -> $OUT/build.log
#   build      kiln_tests, compare_kiln_gpu, kiln and the ladder benchmarks
#              (gemm_ladder, conv2d_ladder where cuDNN is found) on every core,
#              keeping going past errors                                           -> $OUT/build.log
#   tests      ./build-device/kiln_tests -tc='cuda:*', in three processes: the kernel
#              ladders' and the tuning's cases (tests-conv-ladder, tests-gemm-ladder)
#              apart from the rest                                                 -> $OUT/tests.log
#   ctest      the CTest entries whose names start with "cuda:", 8 at a time        -> $OUT/tests.log
#   ladder     scripts/ladder-bench.sh --quick (or $DEVICE_CHECK_LADDER_ARGS): the
#              kernel ladders against cuBLAS and cuDNN                              -> $OUT/ladder.log,
#                                                                                     $OUT/ladder.json
#   compare    scripts/compare-gpu.sh --quick (or $DEVICE_CHECK_COMPARE_ARGS)       -> $OUT/compare.log,
#                                                                                     $OUT/compare.json
#              then bf16 ResNet-20/56 with channels-last activations on both sides    -> $OUT/compare.log
#   train      where packs/device-check.kpack was carried: kiln train on it, ResNet-20
#              on the GPU with CUDA graphs, 8 epochs (or $DEVICE_CHECK_TRAIN_ARGS),
#              --json lines, the whole loop with the data pipeline                  -> $OUT/train.log
#   profile    kiln train --profile 20 on the bundled subset, ResNet-20: bf16 NCHW,
#              bf16 channels-last, fp32 ($DEVICE_CHECK_PROFILE_RUNS): each op's
#              device time                                                         -> $OUT/train.log
# and $OUT/stages.log, the timestamps and results. Eight files, the most the device tool returns (so the
# nvidia-smi output opens build.log rather than having a file of its own, and ctest's output follows the
# tests' in tests.log).
#
# Time: the whole must end inside the device call's limit, so each stage runs under `timeout`, capped
# (configure 90 s, build 300 s, tests 90 + 60 + 60 s, ctest 60 s, ladder 120 s, compare 150 s, train
# 120 s, profile 40 s a run) and never past DEVICE_CHECK_BUDGET_S (default 560 s) from the start; a stage that would get less
# than 20 s is skipped and counts as failed. On the H200 with prebuilt programs (2026-12-04), in one process:
# tests 150 s (64 of them in one GEMM-ladder case's CPU reference, since spread over every core), ladder
# 23 s, compare 27 s, train 10 s.
# Override the caps with DEVICE_CHECK_{CONFIGURE,BUILD,TESTS,TESTS_CONV,TESTS_GEMM,CTEST,LADDER,COMPARE,TRAIN,PROFILE}_S.
#
# Libraries (scripts/device-programs.sh): kiln's programs, and they alone, run with the CUDA toolkit's lib64
# and the lib folders of PyTorch's nvidia-* wheels on LD_LIBRARY_PATH; where the toolkit has no cuDNN,
# CUDNN_ROOT points the build at the wheel's.
#
# Without $OUT (a run by hand) the logs go to out/device-check/.
set -uo pipefail  # no -e: a failed stage is recorded and the next one runs
cd "$(dirname "$0")/.." || exit 1

out="${OUT:-out/device-check}"
mkdir -p "$out"
rm -f "$out"/{stages,gpu,build,tests,ctest,ladder,compare,train}.log "$out"/{ladder,compare}.json  # a rerun starts clean
build_dir=build-device
budget_s="${DEVICE_CHECK_BUDGET_S:-560}"
compare_args="${DEVICE_CHECK_COMPARE_ARGS:---quick}"
ladder_args="${DEVICE_CHECK_LADDER_ARGS:---quick}"
train_pack=packs/device-check.kpack
train_args="${DEVICE_CHECK_TRAIN_ARGS:---model resnet20 --epochs 8 --cuda-graphs}"
programs=(kiln_tests compare_kiln_gpu kiln gemm_ladder conv2d_ladder)
start_s=$SECONDS
failed=()

log() { echo "[$(date -u +%H:%M:%S) +$((SECONDS - start_s))s] $*" | tee -a "$out/stages.log"; }

# stage NAME CAP_S LOG COMMAND...: runs COMMAND under timeout (its cap, or what is left of the budget),
# output to LOG (and, for the short stages, nothing on stdout: the reply shows only the output's end).
stage() {
  local name="$1" cap="$2" log_file="$3"
  shift 3
  local left=$((budget_s - (SECONDS - start_s)))
  local limit=$((cap < left ? cap : left))
  if ((limit < 20)); then
    log "$name: SKIPPED (${left}s of the ${budget_s}s budget left)"
    failed+=("$name(skipped)")
    return
  fi
  log "$name: start (limit ${limit}s) -> $log_file"
  timeout --kill-after=10 "$limit" "$@" >>"$log_file" 2>&1
  local rc=$?
  if ((rc == 0)); then
    log "$name: ok"
  else
    ((rc == 124 || rc == 137)) && log "$name: TIMED OUT after ${limit}s"
    log "$name: FAILED (exit $rc)"
    failed+=("$name")
  fi
}

# ---- the machine ---------------------------------------------------------------------------------------
log "device-check: $(uname -m), $(nproc) cores, budget ${budget_s}s, logs in $out"
export PYTHONUNBUFFERED=1  # the Python programs' progress reaches the logs as it happens
build_log="$out/build.log"
if {
  echo "== gpu"
  nvidia-smi
  echo
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv
} >"$build_log" 2>&1; then
  log "gpu: ok ($(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1))"
else
  log "gpu: FAILED (nvidia-smi; see the top of build.log)"
  failed+=(gpu)
fi

{
  echo "== tools"
  cmake --version | head -1
  command -v ninja && ninja --version
  c++ --version | head -1
  "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" --version | tail -2
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} >>"$build_log" 2>&1

# ---- libraries and prebuilt programs (scripts/device-programs.sh, scripts/device-prebuild.sh) -------------
source scripts/device-programs.sh
kiln_library_env "$build_log"
prebuilt=no
if unpack_prebuilt "$build_dir" "$build_log" "${programs[@]}"; then
  prebuilt=yes
  log "prebuilt: ok (the programs built from $(cat device-prebuilt/commit) load here: no build)"
elif [ -f device-prebuilt/programs.tar.xz ]; then
  log "prebuilt: the carried programs do not load here (see build.log): building them"
fi

# ---- build ---------------------------------------------------------------------------------------------
# Configures and builds the programs in the build folder (where no prebuilt ones load).
build_programs() {
  kiln_configure_command "$build_dir"
  echo "== configure: ${configure[*]}" >>"$build_log"
  stage configure "${DEVICE_CHECK_CONFIGURE_S:-90}" "$build_log" "${configure[@]}"
  if ! grep -q "kiln: CUDA backend on" "$build_log"; then
    log "configure: FAILED (no CUDA backend: $(grep -m1 "kiln: " "$build_log"))"
    failed+=(cuda-backend)
  fi
  # Keep going past a file that fails: the other targets (the comparison, the tests) still get built.
  keep_going=(-k)
  if grep -q "^CMAKE_GENERATOR:INTERNAL=Ninja" "$build_dir/CMakeCache.txt" 2>/dev/null; then keep_going=(-k 0); fi
  # The ladder benchmarks the configure step says it set up ("kiln: ladder benchmarks: gemm_ladder conv2d_ladder
  # (...)"): naming a target that does not exist would stop the whole build.
  read -r -a ladder_targets <<<"$(sed -n 's/^-- kiln: ladder benchmarks: \([a-z0-9_ ]*\).*/\1/p' "$build_log" | tail -1)"
  echo "== build" >>"$build_log"
  stage build "${DEVICE_CHECK_BUILD_S:-300}" "$build_log" \
    cmake --build "$build_dir" -j"$(nproc)" --target kiln_tests compare_kiln_gpu kiln \
    ${ladder_targets[@]+"${ladder_targets[@]}"} -- "${keep_going[@]}"
  grep -E "error|FAILED:" "$build_log" | head -40
}
[ "$prebuilt" = yes ] || build_programs

# ---- CUDA tests ----------------------------------------------------------------------------------------
# Three processes: the kernel ladders' cases (and the tuning that runs their steps) apart from the rest, so
# that a step which faults on this GPU, losing its process's CUDA context, takes down its own group's later
# cases and not every other one's. (CTest isolates each case; with prebuilt programs there is no CTest.)
tests_log="$out/tests.log"
ladder_sources='*/tests/cuda/gemm_ladder_test.cpp,*/tests/cuda/conv2d_ladder_test.cpp,*/tests/cuda/conv2d_tuning_test.cpp'
if [ -x "$build_dir/kiln_tests" ]; then
  run_tests=("${kiln_env[@]}" "$build_dir/kiln_tests" -tc='cuda:*' --duration=true)
  stage tests "${DEVICE_CHECK_TESTS_S:-90}" "$tests_log" "${run_tests[@]}" --source-file-exclude="$ladder_sources"
  stage tests-conv-ladder "${DEVICE_CHECK_TESTS_CONV_S:-60}" "$tests_log" "${run_tests[@]}" \
    --source-file='*/tests/cuda/conv2d_ladder_test.cpp,*/tests/cuda/conv2d_tuning_test.cpp'
  stage tests-gemm-ladder "${DEVICE_CHECK_TESTS_GEMM_S:-60}" "$tests_log" "${run_tests[@]}" \
    --source-file='*/tests/cuda/gemm_ladder_test.cpp'
  grep -E "^\[doctest\] (test cases|assertions|Status)" "$tests_log" 2>/dev/null
else
  log "tests: FAILED (no $build_dir/kiln_tests: see build.log)"
  failed+=(tests)
fi
ctest_log="$out/tests.log"
if [ "$prebuilt" = yes ]; then
  log "ctest: not run (prebuilt programs: no CTest files; the three tests stages ran every 'cuda:' case)"
elif [ -x "$build_dir/kiln_tests" ]; then
  stage ctest "${DEVICE_CHECK_CTEST_S:-60}" "$ctest_log" \
    "${kiln_env[@]}" ctest --test-dir "$build_dir" -R '^cuda:' -j 8 --timeout 50 --output-on-failure
  grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)|\(SEGFAULT\)|\(Subprocess aborted\)|CMake Error|Errors while" \
    "$ctest_log" 2>/dev/null
else
  log "ctest: FAILED (no $build_dir/kiln_tests)"
  failed+=(ctest)
fi

# ---- the kernel ladders against cuBLAS and cuDNN -------------------------------------------------------
ladder_log="$out/ladder.log"
if [ -x "$build_dir/gemm_ladder" ] || [ -x "$build_dir/conv2d_ladder" ]; then
  # shellcheck disable=SC2086  # DEVICE_CHECK_LADDER_ARGS is a list of options, split on purpose
  stage ladder "${DEVICE_CHECK_LADDER_S:-120}" "$ladder_log" \
    "${kiln_env[@]}" bash scripts/ladder-bench.sh --no-build --build-dir "$build_dir" --json "$out/ladder.json" $ladder_args
  # The GEMM rows and the convolution summary, where the reply's output tail shows them.
  grep -E "^(gemm_ladder:|measured peaks|[0-9]+x[0-9]+x[0-9]+ )" "$ladder_log" 2>/dev/null | head -30
  sed -n '/^summary:/,$p' "$ladder_log" 2>/dev/null
else
  log "ladder: FAILED (no $build_dir/gemm_ladder or conv2d_ladder: see build.log)"
  failed+=(ladder)
fi

# ---- the comparison with PyTorch -----------------------------------------------------------------------
compare_log="$out/compare.log"
# shellcheck disable=SC2086  # DEVICE_CHECK_COMPARE_ARGS is a list of options, split on purpose
stage compare "${DEVICE_CHECK_COMPARE_S:-150}" "$compare_log" \
  env "KILN_LIBRARY_PATH=${kiln_env[1]#LD_LIBRARY_PATH=}" bash scripts/compare-gpu.sh --build-dir "$build_dir" --no-build --json "$out/compare.json" --timeout 60 $compare_args
# The table, where the reply's output tail shows it.
sed -n '/^GPU comparison:/,$p' "$compare_log" 2>/dev/null
# bf16 with channels-last activations on both sides (kiln's tensor-core convolutions with no transposes
# around them, PyTorch's cuDNN NHWC kernels); its table follows the first in compare.log.
stage compare-channels-last "${DEVICE_CHECK_COMPARE_S:-150}" "$compare_log" \
  env "KILN_LIBRARY_PATH=${kiln_env[1]#LD_LIBRARY_PATH=}" bash scripts/compare-gpu.sh --build-dir "$build_dir" --no-build --timeout 60 \
  --quick --precision bf16 --memory-format channels-last
awk '/^GPU comparison:/{n++} n==2' "$compare_log" 2>/dev/null

# ---- the whole training loop on real images ------------------------------------------------------------
if [ -f "$train_pack" ]; then
  if [ -x "$build_dir/kiln" ]; then
    # shellcheck disable=SC2086  # DEVICE_CHECK_TRAIN_ARGS is a list of options, split on purpose
    stage train "${DEVICE_CHECK_TRAIN_S:-120}" "$out/train.log" "${kiln_env[@]}" "$build_dir/kiln" train "$train_pack" \
      --device cuda --loader-threads "$(($(nproc) - 2))" --out runs/device-check --overwrite --json $train_args
    grep '"event"' "$out/train.log" 2>/dev/null | tail -4  # the last epochs and the end
  else
    log "train: FAILED (no $build_dir/kiln)"
    failed+=(train)
  fi
fi

# ---- where a step's time goes, op by op ----------------------------------------------------------------
# The bundled CIFAR-10 subset (always in the tree), ResNet-20 at batch 128, 20 steps timed op by op on the
# device's clock (kiln train --profile: no graphs), each PRECISION:FORMAT of $DEVICE_CHECK_PROFILE_RUNS; the
# tables go to train.log.
if [ -x "$build_dir/kiln" ]; then
  for run in ${DEVICE_CHECK_PROFILE_RUNS:-bf16:nchw bf16:channels-last fp32:nchw}; do
    precision="${run%%:*}" memory_format="${run#*:}"
    stage "profile-$precision-$memory_format" "${DEVICE_CHECK_PROFILE_S:-40}" "$out/train.log" "${kiln_env[@]}" \
      "$build_dir/kiln" train assets/cifar10-subset --device cuda --precision "$precision" \
      --memory-format "$memory_format" --model resnet20 --epochs 1 --max-steps 24 --profile 20 \
      --loader-threads "$(($(nproc) - 2))" --out "runs/device-profile-$precision-$memory_format" --overwrite
  done
  grep -E '^(profile:|by op:)' "$out/train.log" 2>/dev/null  # each run's step time and its ops' shares
else
  log "profile: FAILED (no $build_dir/kiln)"
  failed+=(profile)
fi

# ---- summary -------------------------------------------------------------------------------------------
echo
logs=$(cd "$out" && printf '%s ' *)
if ((${#failed[@]})); then
  log "device-check: FAILED stages: ${failed[*]} (logs in $out: $logs)"
  exit 1
fi
log "device-check: all stages passed (logs in $out: $logs)"
