#!/usr/bin/env bash
# The `kiln` program end to end on the bundled CIFAR-10 subset: train briefly, resume, evaluate, predict,
# inspect; then the bad inputs users meet, each of which must end in one line on stderr and a non-zero
# exit, without damaging the checkpoint.
#   tests/cli/end_to_end_test.sh KILN_BINARY REPO_ROOT
set -uo pipefail
kiln=$1
root=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

check() {  # check DESCRIPTION COMMAND...: the command must succeed
  if ! "${@:2}" >"$work/out" 2>"$work/err"; then
    echo "FAIL: $1"; cat "$work/out" "$work/err"; failures=$((failures + 1))
  fi
}
check_error() {  # check_error DESCRIPTION EXPECTED_TEXT COMMAND...: must fail with one stderr line holding the text
  if "${@:3}" >"$work/out" 2>"$work/err"; then
    echo "FAIL: $1 (exit 0)"; failures=$((failures + 1)); return
  fi
  if ! grep -q -- "$2" "$work/err" || [ "$(grep -c . "$work/err")" -ne 1 ]; then
    echo "FAIL: $1: expected one line with '$2', got:"; cat "$work/err"; failures=$((failures + 1))
  fi
}

data="$root/assets/cifar10-subset"
run="$work/run"
check "train one short epoch" "$kiln" train "$data" --model lenet5 --epochs 1 --max-steps 4 --batch 32 --schedule multistep --milestones 1,2 --out "$run" --json
grep -q '"event":"epoch"' "$work/out" || { echo "FAIL: --json prints epoch lines"; failures=$((failures + 1)); }
[ -s "$run/last.kiln" ] || { echo "FAIL: last.kiln written"; failures=$((failures + 1)); }
[ "$(wc -l <"$run/metrics.jsonl")" -eq 1 ] || { echo "FAIL: metrics.jsonl has one line"; failures=$((failures + 1)); }
check "resume to a second epoch" "$kiln" train "$data" --epochs 2 --out "$run" --resume --threads 1 --loader-threads 1
grep -q "resuming after epoch 1" "$work/out" || { echo "FAIL: resume says where it starts"; failures=$((failures + 1)); }
grep -q "on 1 thread$" "$work/out" || { echo "FAIL: --threads 1 sets the kernels' thread count"; failures=$((failures + 1)); }
[ "$(wc -l <"$run/metrics.jsonl")" -eq 2 ] || { echo "FAIL: metrics.jsonl has two lines"; failures=$((failures + 1)); }
check "eval prints the metrics table" "$kiln" eval "$run/last.kiln" "$data"
grep -q "airplane" "$work/out" || { echo "FAIL: eval table names the classes"; failures=$((failures + 1)); }
check "eval --json" "$kiln" eval "$run/last.kiln" "$data" --json
grep -q '"accuracy"' "$work/out" || { echo "FAIL: eval --json has accuracy"; failures=$((failures + 1)); }
check "predict one image" "$kiln" predict "$run/last.kiln" "$data/test/cat/0000.jpg" --top 3
[ "$(grep -c '%' "$work/out")" -eq 3 ] || { echo "FAIL: predict --top 3 prints three classes"; failures=$((failures + 1)); }
check "info" "$kiln" info "$run/last.kiln"
grep -q "lenet5" "$work/out" || { echo "FAIL: info names the architecture"; failures=$((failures + 1)); }

# Bad inputs.
check_error "missing data folder" "does-not-exist" "$kiln" train "$work/does-not-exist" --out "$work/r2"
mkdir -p "$work/empty/a" "$work/empty/b"; cp "$data/test/cat/0000.jpg" "$work/empty/a/"
check_error "empty class folder" "empty class folder" "$kiln" train "$work/empty" --out "$work/r3"
printf 'not a checkpoint at all' >"$work/fake.kiln"
check_error "not a checkpoint" "not a kiln checkpoint" "$kiln" info "$work/fake.kiln"
cp "$run/last.kiln" "$work/damaged.kiln"
size=$(stat -c %s "$work/damaged.kiln")
printf '\xff\xff\xff\xff' | dd of="$work/damaged.kiln" bs=1 seek=$((size - 100)) conv=notrunc status=none
check_error "damaged checkpoint" "damaged" "$kiln" info "$work/damaged.kiln"
mkdir -p "$work/other/dog" "$work/other/zebra"
cp "$data/test/dog/0000.jpg" "$work/other/dog/"; cp "$data/test/cat/0000.jpg" "$work/other/zebra/"
check_error "eval on other classes" "differ from the checkpoint" "$kiln" eval "$run/last.kiln" "$work/other"
printf 'garbage' >"$work/not-an-image.jpg"
check_error "predict a non-image" "not-an-image.jpg" "$kiln" predict "$run/last.kiln" "$work/not-an-image.jpg"
check_error "a fresh run refuses to overwrite a checkpoint" "already exists" "$kiln" train "$data" --out "$run"
cp "$run/last.kiln" "$work/before.kiln"
check_error "NaN loss stops training" "loss became" "$kiln" train "$data" --model lenet5 --epochs 1 --out "$run" --overwrite --lr 1e30
cmp -s "$run/last.kiln" "$work/before.kiln" || { echo "FAIL: NaN stop leaves last.kiln intact"; failures=$((failures + 1)); }

if [ "$failures" -eq 0 ]; then echo "cli end-to-end: all checks passed"; fi
exit $((failures > 0))
