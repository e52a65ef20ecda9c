#!/usr/bin/env bash
# Trains ResNet-20 on the full CIFAR-10 training set on the lent GPU with He et al.'s recipe (164 epochs, SGD
# lr 0.1, momentum 0.9, weight decay 1e-4, the rate divided by 10 at epochs 82 and 123, batch 128, crop and
# flip), in as many device calls as it takes: each call builds the kiln program, resumes the run where the
# last call stopped, trains until its time is nearly up, and returns the run folder under $OUT. The test split
# stays here: the run is scored on it afterwards, on the CPU.
#
#   here, once:  bash scripts/device-prebuild.sh kiln      (or bash scripts/device-deps.sh, to build there)
#                ./build/kiln pack ../shared/data/cifar10/train packs/cifar10-train.kpack    # 45 MiB
#   each call:   device tool, command "bash scripts/device-train.sh",
#                carry: device-prebuilt (or device-deps), packs/cifar10-train.kpack, runs/resnet20-cifar10;
#                timeout_s about 590 (the working tree, the pack and the prebuilt kiln: about 58 MiB of the 64)
#   after each:  rm -rf runs/resnet20-cifar10 && cp -r FILES_AT/resnet20-cifar10 runs/   # the next resumes
#   at the end:  ./build/kiln eval runs/resnet20-cifar10/last.kiln ../shared/data/cifar10/test
#
# A call stopped mid-epoch loses only that epoch: every finished epoch is in last.kiln, written atomically.
# $OUT gets the run folder's last.kiln, metrics.jsonl and cuda_conv_choices.json, train.log (the JSON lines
# of `kiln train --json`) and build.log.
#
#   DEVICE_TRAIN_BUDGET_S   seconds from the start to the end of training (default 540)
#   DEVICE_TRAIN_FLAGS      more `kiln train` flags (default --cuda-graphs; set it empty to train without)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

out="${OUT:-out/device-train}"
mkdir -p "$out"
budget_s="${DEVICE_TRAIN_BUDGET_S:-540}"
extra_flags="${DEVICE_TRAIN_FLAGS---cuda-graphs}"
build_dir=build-device
run_dir=runs/resnet20-cifar10
pack=packs/cifar10-train.kpack
log() { echo "[$(date -u +%H:%M:%S) +${SECONDS}s] $*"; }

[ -f "$pack" ] || { log "device-train: no $pack (make it here with kiln pack, and carry it)"; exit 1; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | head -1

# ---- the kiln program: built here (scripts/device-prebuild.sh), or built there alone -------------------
source scripts/device-programs.sh
: >"$out/build.log"
kiln_library_env "$out/build.log"
if unpack_prebuilt "$build_dir" "$out/build.log" kiln; then
  log "build: none (the kiln built from $(cat device-prebuilt/commit) loads here)"
else
  kiln_configure_command "$build_dir"
  log "build: start -> $out/build.log"
  if ! { "${configure[@]}" && cmake --build "$build_dir" -j"$(nproc)" --target kiln; } >>"$out/build.log" 2>&1; then
    grep -E "error|Error" "$out/build.log" | head -20
    log "build: FAILED"
    exit 1
  fi
  grep -q "kiln: CUDA backend on" "$out/build.log" || { log "build: FAILED (no CUDA backend)"; exit 1; }
  log "build: ok"
fi

# ---- train until the budget is spent ---------------------------------------------------------------------
resume=()
if [ -f "$run_dir/last.kiln" ]; then resume=(--resume); fi
left=$((budget_s - SECONDS))
((left > 60)) || { log "train: SKIPPED (${left}s left)"; exit 1; }
log "train: ${resume[*]:-fresh} for at most ${left}s -> $out/train.log"
# shellcheck disable=SC2086  # DEVICE_TRAIN_FLAGS is a list of flags, split on purpose
timeout --signal=TERM --kill-after=10 "$left" "${kiln_env[@]}" "$build_dir/kiln" train "$pack" --model resnet20 \
  --epochs 164 --batch 128 --lr 0.1 --momentum 0.9 --weight-decay 1e-4 --schedule multistep \
  --milestones 82,123 --crop-padding 4 --flip true --device cuda --loader-threads "$(($(nproc) - 2))" \
  --out "$run_dir" --json $extra_flags ${resume[@]+"${resume[@]}"} >>"$out/train.log" 2>&1
rc=$?
if ((rc == 124)); then log "train: stopped at the budget (the run resumes at the next call)"; else log "train: exit $rc"; fi
grep '"epoch"' "$out/train.log" | tail -3
# The files a resumed run needs, not the run's plots: the device tool returns eight files at most.
mkdir -p "$out/$(basename "$run_dir")"
for file in last.kiln metrics.jsonl cuda_conv_choices.json; do
  [ ! -f "$run_dir/$file" ] || cp "$run_dir/$file" "$out/$(basename "$run_dir")/"
done
log "the run folder's checkpoint and metrics are in $out/$(basename "$run_dir")"
((rc == 0 || rc == 124))
