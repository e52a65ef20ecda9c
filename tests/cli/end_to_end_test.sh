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
check "train --profile" "$kiln" train "$data" --model lenet5 --epochs 1 --max-steps 5 --batch 32 --out "$work/profiled" --profile 2
grep -q "profile: steps 3-4 of epoch 1 (2 steps, 64 images)" "$work/out" || { echo "FAIL: --profile prints its window"; cat "$work/out"; failures=$((failures + 1)); }
grep -q "conv2d_forward .* float32 .* cpu .* 3->6 5x5 @32x32 n32" "$work/out" || { echo "FAIL: --profile names the convolutions"; failures=$((failures + 1)); }
grep -q "^by op: .*conv2d_forward [0-9.]*%" "$work/out" || { echo "FAIL: --profile ends with each op's share"; failures=$((failures + 1)); }
[ -s "$work/profiled/profile.json" ] || { echo "FAIL: --profile writes profile.json"; failures=$((failures + 1)); }
check "resume to a second epoch" "$kiln" train "$data" --epochs 2 --out "$run" --resume --threads 1 --loader-threads 1
grep -q "resuming after epoch 1" "$work/out" || { echo "FAIL: resume says where it starts"; failures=$((failures + 1)); }
grep -q "on 1 thread$" "$work/out" || { echo "FAIL: --threads 1 sets the kernels' thread count"; failures=$((failures + 1)); }
[ "$(wc -l <"$run/metrics.jsonl")" -eq 2 ] || { echo "FAIL: metrics.jsonl has two lines"; failures=$((failures + 1)); }
check "train --image-size --resize crop" "$kiln" train "$data" --model lenet5 --epochs 1 --max-steps 2 --batch 32 --image-size 24x20 --resize crop --out "$work/sized"
check "train with a resized crop, vertical flips, quarter turns and TrivialAugment" "$kiln" train "$data" --model lenet5 --epochs 1 --max-steps 2 --batch 32 --crop-scale 0.5 --vertical-flip true --rotate90 true --trivial-augment true --out "$work/dihedral"
check_error "quarter turns of an input that is not square" "needs a square input; the input is 24x20" "$kiln" train "$data" --model lenet5 --epochs 1 --max-steps 2 --image-size 24x20 --rotate90 true --out "$work/oblong"
check_error "resume with another --crop-scale" "cannot resume .* with --crop-scale 0.8" "$kiln" train "$data" --epochs 2 --out "$work/dihedral" --resume --crop-scale 0.8
check_error "resume without TrivialAugment" "cannot resume .* with --trivial-augment false" "$kiln" train "$data" --epochs 2 --out "$work/dihedral" --resume --trivial-augment false
check "train with RandAugment" "$kiln" train "$data" --model lenet5 --epochs 1 --max-steps 2 --batch 32 --rand-augment 2 --rand-magnitude 12 --out "$work/randaugment"
check_error "both automatic policies" "TrivialAugment and RandAugment .* choose one" "$kiln" train "$data" --model lenet5 --epochs 1 --max-steps 2 --trivial-augment true --rand-augment 2 --out "$work/both-policies"
check "train with mixup and CutMix" "$kiln" train "$data" --model lenet5 --epochs 1 --max-steps 2 --batch 32 --mixup 0.2 --cutmix 1 --out "$work/mixed"
check_error "resume with another --mixup" "cannot resume .* with --mixup 0.4" "$kiln" train "$data" --epochs 2 --out "$work/mixed" --resume --mixup 0.4
check "train with --ema" "$kiln" train "$data" --model lenet5 --epochs 1 --max-steps 3 --batch 32 --ema 0.99 --out "$work/averaged" --json
check "eval serves the average" "$kiln" eval "$work/averaged/last.kiln" "$data" --json
check "info says the weights are averaged" "$kiln" info "$work/averaged/last.kiln"
grep -q "weights        the moving average (--ema 0.99, 3 updates)" "$work/out" || { echo "FAIL: info names the averaged weights"; cat "$work/out"; failures=$((failures + 1)); }
check_error "resume with another --ema" "cannot resume .* with --ema 0.9" "$kiln" train "$data" --epochs 2 --out "$work/averaged" --resume --ema 0.9
check "train a network from a model file" "$kiln" train "$data" --model "$root/examples/models/tiny_vgg.txt" --epochs 1 --max-steps 2 --batch 32 --out "$work/described"
check "eval rebuilds it from the checkpoint alone" "$kiln" eval "$work/described/last.kiln" "$data" --json
check "info lists the model file's layers" "$kiln" info "$work/described/last.kiln"
grep -q "architecture   tiny_vgg" "$work/out" && grep -q "linear2 *linear$" "$work/out" || { echo "FAIL: info lists the layers"; cat "$work/out"; failures=$((failures + 1)); }
printf 'conv 16 3\nrelu\nlinear\n' >"$work/no-flatten.txt"
check_error "a model file whose linear gets an image" "model file .*no-flatten.txt, line 3 'linear': takes \\[N, features\\]" "$kiln" train "$data" --model "$work/no-flatten.txt" --epochs 1 --out "$work/bad-model"
check_error "neither a zoo network nor a model file" "unknown model 'resnet7': neither a network of the zoo" "$kiln" train "$data" --model resnet7 --epochs 1 --out "$work/bad-model"
check "summary of a zoo network" "$kiln" summary resnet20
grep -q "^total: 269,722 parameters .* 81.10 MFLOPs an image forward" "$work/out" || { echo "FAIL: summary totals ResNet-20"; cat "$work/out"; failures=$((failures + 1)); }
check "summary of a model file at another input" "$kiln" summary "$root/examples/models/tiny_vgg.txt" --image-size 64x48 --channels 1 --classes 4 --json
grep -q '"input":\[1,64,48\]' "$work/out" && grep -q '"classes":4' "$work/out" || { echo "FAIL: summary --json of a model file"; cat "$work/out"; failures=$((failures + 1)); }
check "summary of a checkpoint" "$kiln" summary "$work/described/last.kiln"
grep -q "^tiny_vgg, input 3x32x32, 10 classes" "$work/out" || { echo "FAIL: summary of a checkpoint"; cat "$work/out"; failures=$((failures + 1)); }
check_error "summary of a checkpoint at another size" "is a checkpoint, whose input and classes are its own" "$kiln" summary "$work/described/last.kiln" --image-size 64
check "train with --accumulate" "$kiln" train "$data" --model lenet5 --epochs 1 --max-steps 4 --batch 16 --accumulate 2 --out "$work/accumulated"
check_error "resume with another --accumulate" "cannot resume .* with --accumulate 4" "$kiln" train "$data" --epochs 2 --out "$work/accumulated" --resume --accumulate 4
check_error "--accumulate with CUDA graphs" "captures a step of one batch; it does not take --accumulate 2" "$kiln" train "$data" --model lenet5 --epochs 1 --accumulate 2 --cuda-graphs --out "$work/accumulated-graphs"
check "info shows the input size" "$kiln" info "$work/sized/last.kiln"
grep -q "input 3x24x20" "$work/out" || { echo "FAIL: --image-size sets the model's input"; cat "$work/out"; failures=$((failures + 1)); }
check "predict at the checkpoint's input size" "$kiln" predict "$work/sized/last.kiln" "$data/test/cat/0000.jpg" --top 2
if "$kiln" train "$data" --image-size 32x --out "$work/bad-size" >"$work/out" 2>"$work/err" || ! grep -q -- "--image-size: takes N or HxW" "$work/err"; then
  echo "FAIL: a malformed --image-size is a usage error naming it"; cat "$work/err"; failures=$((failures + 1))
fi
check "pack --shorter-side" "$kiln" pack "$data" "$work/small.kpack" --shorter-side 16 --json
grep -q '"shrunk":5000' "$work/out" || { echo "FAIL: pack --shorter-side shrinks every 32x32 image"; cat "$work/out"; failures=$((failures + 1)); }
check "train on the shrunk pack" "$kiln" train "$work/small.kpack" --model resnet20 --epochs 1 --max-steps 2 --batch 32 --out "$work/small-run"
grep -q "input 3x16x16" "$work/out" || { echo "FAIL: training on the shrunk pack takes 16x16 inputs"; cat "$work/out"; failures=$((failures + 1)); }
check "eval prints the metrics table" "$kiln" eval "$run/last.kiln" "$data"
grep -q "airplane" "$work/out" || { echo "FAIL: eval table names the classes"; failures=$((failures + 1)); }
check "eval --json" "$kiln" eval "$run/last.kiln" "$data" --json
grep -q '"accuracy"' "$work/out" || { echo "FAIL: eval --json has accuracy"; failures=$((failures + 1)); }
check "eval --tta --json" "$kiln" eval "$run/last.kiln" "$data" --json --tta
grep -q '"tta_views":2' "$work/out" || { echo "FAIL: eval --tta averages the plain and the mirrored image"; cat "$work/out"; failures=$((failures + 1)); }
grep -q "averaged over 2 views" "$work/err" || { echo "FAIL: --tta says how many views on stderr"; cat "$work/err"; failures=$((failures + 1)); }
check "predict --tta" "$kiln" predict "$work/dihedral/last.kiln" "$data/test/cat/0000.jpg" --top 2 --tta
grep -q "averaged over 8 views" "$work/err" || { echo "FAIL: a model trained with both flips and quarter turns predicts over 8 views"; cat "$work/err"; failures=$((failures + 1)); }
check "predict one image" "$kiln" predict "$run/last.kiln" "$data/test/cat/0000.jpg" --top 3
[ "$(grep -c '%' "$work/out")" -eq 3 ] || { echo "FAIL: predict --top 3 prints three classes"; failures=$((failures + 1)); }
for plot in loss accuracy confusion_matrix; do
  [ -s "$run/$plot.png" ] || { echo "FAIL: training draws $plot.png"; failures=$((failures + 1)); }
done
rm -f "$run/loss.png"
check "report" "$kiln" report "$run"
grep -q "^epochs      2 of 2" "$work/out" || { echo "FAIL: report summarizes the run"; failures=$((failures + 1)); }
[ -s "$run/loss.png" ] || { echo "FAIL: report redraws loss.png"; failures=$((failures + 1)); }
check "report --json" "$kiln" report "$run" --json
grep -q '"best_epoch"' "$work/out" || { echo "FAIL: report --json has best_epoch"; failures=$((failures + 1)); }
check_error "report on a folder that is not a run" "metrics.jsonl: cannot read" "$kiln" report "$work/no-such-run"
check "train --lr-find" "$kiln" train "$data" --model lenet5 --batch 32 --lr-find --lr-find-steps 12 --out "$work/lrf"
grep -q "^suggested --lr \|^no suggestion" "$work/out" || { echo "FAIL: --lr-find says what it suggests"; failures=$((failures + 1)); }
[ -s "$work/lrf/lr_find.png" ] && [ -s "$work/lrf/lr_find.json" ] || { echo "FAIL: --lr-find writes its plot and numbers"; failures=$((failures + 1)); }
[ ! -e "$work/lrf/last.kiln" ] || { echo "FAIL: --lr-find trains no run"; failures=$((failures + 1)); }
check_error "--lr-find with --resume" "neither --resume nor --folds" "$kiln" train "$data" --lr-find --resume --out "$run"
check "explain" "$kiln" explain "$run/last.kiln" "$data/test/cat/0001.jpg" --top 2 --out "$work/explained"
[ -s "$work/explained/0001-explained.png" ] || { echo "FAIL: explain writes the sheet"; failures=$((failures + 1)); }
[ "$(ls "$work/explained" | grep -c '^0001-[12]-.*\.png$')" -eq 2 ] || { echo "FAIL: explain writes one PNG per class"; failures=$((failures + 1)); }
check_error "explain a missing image" "no-such.jpg: no such file" "$kiln" explain "$run/last.kiln" "$work/no-such.jpg"
check "eval --misclassified" "$kiln" eval "$run/last.kiln" "$data" --misclassified "$work/wrong" --misclassified-count 5
[ "$(ls "$work/wrong" | grep -c -- '-as-')" -eq 5 ] || { echo "FAIL: eval writes 5 misclassified pictures"; failures=$((failures + 1)); }
[ -s "$work/wrong/misclassified.png" ] || { echo "FAIL: eval writes the misclassified sheet"; failures=$((failures + 1)); }
check "export --onnx" "$kiln" export "$run/last.kiln" --onnx "$work/model.onnx"
[ -s "$work/model.onnx" ] || { echo "FAIL: export writes the ONNX file"; failures=$((failures + 1)); }
grep -q "opset 17" "$work/out" || { echo "FAIL: export names the opset"; failures=$((failures + 1)); }
# An output path that names an input or an existing file: refused before any work, the file left whole.
cp "$run/last.kiln" "$work/kept.kiln"
check_error "export over its own checkpoint" "is the checkpoint it reads" "$kiln" export "$work/kept.kiln" --onnx "$work/kept.kiln" --overwrite
check_error "export over an existing file" "model.onnx exists (pass --overwrite to replace it)" "$kiln" export "$run/last.kiln" --onnx "$work/model.onnx"
check_error "pack over a checkpoint" "kept.kiln exists (pass --overwrite to replace it)" "$kiln" pack "$data" "$work/kept.kiln"
check_error "quantize over its own checkpoint" "is the checkpoint it reads" "$kiln" quantize "$work/kept.kiln" "$data" --out "$work/kept.kiln" --overwrite
cmp -s "$run/last.kiln" "$work/kept.kiln" || { echo "FAIL: refused outputs leave the checkpoint whole"; failures=$((failures + 1)); }
check_error "pack into the folder it packs" "lies inside .*, the folder it reads" "$kiln" pack "$data" "$data/test/pack.kpack"
[ ! -e "$data/test/pack.kpack" ] || { echo "FAIL: pack wrote into the folder it packs"; rm -f "$data/test/pack.kpack"; failures=$((failures + 1)); }
check "export --overwrite" "$kiln" export "$run/last.kiln" --onnx "$work/model.onnx" --overwrite
check "quantize to int8" "$kiln" quantize "$run/last.kiln" "$data" --out "$work/model.int8.kiln" --calibration-images 64
grep -q "accuracy drop" "$work/out" || { echo "FAIL: quantize compares on the test split"; failures=$((failures + 1)); }
check_error "quantize over an existing file" "model.int8.kiln exists (pass --overwrite to replace it)" "$kiln" quantize "$run/last.kiln" "$data" --out "$work/model.int8.kiln" --calibration-images 16 --no-compare
check "quantize --json --overwrite" "$kiln" quantize "$run/last.kiln" "$data" --out "$work/model.int8.kiln" --calibration-images 16 --no-compare --json --overwrite
grep -q '"int8_weight_bytes"' "$work/out" || { echo "FAIL: quantize --json has the sizes"; failures=$((failures + 1)); }
check "predict with the int8 model" "$kiln" predict "$work/model.int8.kiln" "$data/test/cat/0000.jpg" --top 3
[ "$(grep -c '%' "$work/out")" -eq 3 ] || { echo "FAIL: int8 predict --top 3 prints three classes"; failures=$((failures + 1)); }
check "eval the int8 model" "$kiln" eval "$work/model.int8.kiln" "$data" --json
grep -q '"accuracy"' "$work/out" || { echo "FAIL: int8 eval --json has accuracy"; failures=$((failures + 1)); }
check "info on the int8 model" "$kiln" info "$work/model.int8.kiln"
grep -q "^int8 .*quantized from" "$work/out" || { echo "FAIL: info says the model is int8"; failures=$((failures + 1)); }
check_error "explain an int8 model" "is an int8 model; Grad-CAM differentiates" "$kiln" explain "$work/model.int8.kiln" "$data/test/cat/0000.jpg"
check_error "quantize an int8 model" "is already an int8 model" "$kiln" quantize "$work/model.int8.kiln" "$data" --out "$work/again.kiln"
check "info" "$kiln" info "$run/last.kiln"
grep -q "lenet5" "$work/out" || { echo "FAIL: info names the architecture"; failures=$((failures + 1)); }

# Class imbalance: data-report on the bundled data, then on a small imbalanced folder of links (12
# airplanes and 3 cats, a test image that is also a training image, an unreadable file), and training on it.
expect() {  # expect DESCRIPTION FILE TEXT: FILE must hold TEXT
  grep -qF -- "$3" "$2" || { echo "FAIL: $1: no '$3' in:"; cat "$2"; failures=$((failures + 1)); }
}
check "data-report on the bundled data" "$kiln" data-report "$data"
expect "data-report counts the images" "$work/out" "4000 images in 10 classes"
expect "data-report finds the bundled data balanced" "$work/out" "imbalance   1.00 (every class has 400)"
expect "data-report finds no train/test overlap" "$work/out" "train / test  none"
check_error "data-report on a labels file" "a labels file (.csv) is not supported yet" "$kiln" data-report "$root/assets/cifar10-attributes/train.csv"
check "data-report --json" "$kiln" data-report "$data" --json --loader-threads 0
expect "data-report --json has the ratio" "$work/out" '"imbalance_ratio":1.0'
imbalanced="$work/imbalanced"
link_images() {  # link_images SPLIT CLASS COUNT
  mkdir -p "$imbalanced/$1/$2"
  for file in $(ls "$data/$1/$2" | head -n "$3"); do ln -s "$data/$1/$2/$file" "$imbalanced/$1/$2/$file"; done
}
link_images train airplane 12; link_images train cat 3; link_images test airplane 2; link_images test cat 2
ln -s "$data/train/cat/0000.jpg" "$imbalanced/test/cat/leaked.jpg"
printf 'not an image' >"$imbalanced/train/cat/broken.jpg"
check "data-report on an imbalanced folder" "$kiln" data-report "$imbalanced"
expect "data-report gives the imbalance" "$work/out" "imbalance   3.00 (largest / smallest class: 'airplane' 12 / 'cat' 4)"
expect "data-report names the unreadable file" "$work/out" "train/cat/broken.jpg: not an image (stb_image:"
expect "data-report finds the leaked test image" "$work/out" "test/cat/leaked.jpg = train/cat/0000.jpg"
rm "$imbalanced/train/cat/broken.jpg"
train_small=("$kiln" train "$imbalanced" --model lenet5 --epochs 1 --batch 8)
check "train on imbalanced data" "${train_small[@]}" --out "$work/plain"
expect "train warns about the imbalance" "$work/err" "kiln: warning: imbalanced training classes: largest 'airplane' 12 images, smallest 'cat' 3 (ratio 4.00 > 1.5)"
expect "the warning suggests the remedies" "$work/err" "consider --class-weights auto or --balanced-sampler"
check "train --json on imbalanced data" "${train_small[@]}" --out "$work/plain" --overwrite --json
expect "--json gives the warning as a JSON line" "$work/out" '"event":"warning","kind":"class_imbalance"'
check "train --class-weights auto" "${train_small[@]}" --out "$work/weighted" --class-weights auto
expect "train prints the weights" "$work/out" "class weights (auto): airplane 0.4, cat 1.6"
grep -q "warning" "$work/err" && { echo "FAIL: no imbalance warning once weighted"; failures=$((failures + 1)); }
check "resume a weighted run" "$kiln" train "$imbalanced" --epochs 2 --out "$work/weighted" --resume
expect "resume keeps the weights" "$work/out" "class weights (auto): airplane 0.4, cat 1.6"
check "info on a weighted run" "$kiln" info "$work/weighted/last.kiln"
expect "info shows the weights" "$work/out" "balancing      class weights (auto): airplane 0.4, cat 1.6"
check "train --balanced-sampler" "${train_small[@]}" --out "$work/balanced" --balanced-sampler
expect "train says it samples balanced" "$work/out" "sampler: balanced"
check "info --json on a balanced-sampler run" "$kiln" info "$work/balanced/last.kiln" --json
expect "the checkpoint records the sampler" "$work/out" '"balanced_sampler": true'
check "eval of the unweighted run" "$kiln" eval "$work/plain/last.kiln" "$imbalanced"
expect "eval prints per-class recall" "$work/out" "class     precision    recall"
check_error "both imbalance remedies at once" "use one of them" "${train_small[@]}" --out "$work/both" --class-weights auto --balanced-sampler
printf 'airplane,1\ndog,2\n' >"$work/weights.csv"
check_error "a weights file with an unknown class" "weights.csv:2: unknown class 'dog'" "${train_small[@]}" --out "$work/file" --class-weights "$work/weights.csv"

# Overfitting guards: best.kiln beside last.kiln and --early-stop (a learning rate of 0 keeps the held-out
# loss where epoch 1 left it, so epochs 2 and 3 bring no improvement), a stopped run resumed, a run with
# nothing held out, and --folds on the small imbalanced folder.
guarded=("$kiln" train "$data" --model lenet5 --batch 16 --max-steps 2 --val-split 0.1 --epochs 10 --lr 0 --early-stop 2 --out "$work/guarded")
check "train with --early-stop" "${guarded[@]}"
expect "train says what chooses best.kiln" "$work/out" "best.kiln: the epoch with the best eval_loss (lower is better) on validation; early stop after 2 epochs without improvement"
expect "epoch 1 writes best.kiln" "$work/out" "-> best.kiln"
expect "the run stops early" "$work/out" "early stop: eval_loss has not improved for 2 epochs (--early-stop 2); best.kiln holds epoch 1"
expect "train names best.kiln at the end" "$work/out" "best: $work/guarded/best.kiln (epoch 1, eval_loss"
[ "$(wc -l <"$work/guarded/metrics.jsonl")" -eq 3 ] || { echo "FAIL: early stop after 3 epochs"; failures=$((failures + 1)); }
check "info on best.kiln" "$kiln" info "$work/guarded/best.kiln"
expect "best.kiln holds epoch 1" "$work/out" "trained        1 of 10 epochs"
expect "info gives the best epoch" "$work/out" "best           epoch 1, eval_loss"
check "eval on best.kiln" "$kiln" eval "$work/guarded/best.kiln" "$data"
expect "eval reads best.kiln" "$work/out" "lenet5 on $data/test (1000 images)"
check "resume a stopped run" "${guarded[@]}" --resume --json
expect "a stopped run resumed stops at once" "$work/out" '"before_resume":true'
expect "the stop is a JSON event" "$work/out" '"event":"early_stop"'
[ "$(wc -l <"$work/guarded/metrics.jsonl")" -eq 3 ] || { echo "FAIL: a stopped run resumed trains nothing"; failures=$((failures + 1)); }
check "train without held-out data" "$kiln" train "$imbalanced/train" --model lenet5 --epochs 1 --batch 8 --out "$work/unguarded"
expect "train says it keeps no best.kiln" "$work/out" "best.kiln: not kept, there is no held-out split"
[ ! -e "$work/unguarded/best.kiln" ] || { echo "FAIL: no best.kiln without held-out data"; failures=$((failures + 1)); }
check_error "--early-stop without held-out data" "train: --early-stop 2 watches held-out data" "$kiln" train "$imbalanced/train" --early-stop 2 --out "$work/r4"
check_error "an unknown --monitor" "unknown --monitor 'val_loss' (known: eval_loss, eval_accuracy, eval_macro_recall)" "$kiln" train "$data" --monitor val_loss --out "$work/r5"
check_error "--folds 1" "train: --folds must be at least 2" "$kiln" train "$imbalanced" --folds 1 --out "$work/r6"
cross_validation=("$kiln" train "$imbalanced" --model lenet5 --epochs 1 --batch 8 --folds 3 --out "$work/cv")
check "cross-validation" "${cross_validation[@]}"
expect "cross-validation leaves test/ alone" "$work/out" "the test/ split is not used: the folds come from the training images only"
expect "cross-validation prints the table" "$work/out" "fold   epoch  trained  held-out  accuracy  macro-recall     loss"
expect "cross-validation prints the mean" "$work/out" "summary: $work/cv/folds.json"
for fold in 1 2 3; do
  [ -s "$work/cv/fold-$fold/best.kiln" ] || { echo "FAIL: fold $fold has its best.kiln"; failures=$((failures + 1)); }
done
grep -q '"std"' "$work/cv/folds.json" || { echo "FAIL: folds.json has the spread"; failures=$((failures + 1)); }
check "cross-validation resumed, --json" "${cross_validation[@]}" --resume --json
expect "finished folds are skipped" "$work/out" '"already_finished":true,"event":"fold","fold":3'
expect "--json prints the summary" "$work/out" '"event":"cross_validation"'

# Fine-tuning: the 10-class run's weights start a 2-class run with its head replaced, conv1 frozen and the
# head at its own rate; info and --resume show what was frozen; the mistakes are named.
fine_tune=("$kiln" train "$imbalanced" --init "$run/last.kiln" --epochs 1 --batch 8 --max-steps 2)
check "fine-tune with --init --freeze --head-lr" "${fine_tune[@]}" --freeze conv1 --head-lr 0.01 --out "$work/tuned"
expect "train says where the weights come from" "$work/out" "init: weights from $run/last.kiln (10 classes), preprocessing kept from it; head 'fc3' re-initialized for the new classes"
expect "train says what is frozen" "$work/out" "frozen: conv1 (no updates; batch-norm statistics kept)"
expect "train gives the head's rate" "$work/out" "head learning rate: 0.01 for 'fc3'"
check "info on a fine-tuned run" "$kiln" info "$work/tuned/last.kiln"
expect "info gives the source" "$work/out" "init           $run/last.kiln (classes: airplane, automobile,"
expect "info gives the frozen modules" "$work/out" "frozen         conv1"
expect "info gives the head's rate" "$work/out" "head lr        0.01"
check "resume a fine-tuned run" "$kiln" train "$imbalanced" --epochs 2 --out "$work/tuned" --resume
expect "resume keeps it frozen" "$work/out" "frozen: conv1"
check_error "--freeze with an unknown module" "train: --freeze names unknown module 'stage1' (the model's top-level modules: conv1, relu1," "${fine_tune[@]}" --freeze stage1 --out "$work/r7"
check_error "--init with --resume" "train: --init starts a new run from another checkpoint and --resume continues this one" "${fine_tune[@]}" --resume --out "$work/tuned"
check_error "--freeze without --init" "they need --init CKPT" "$kiln" train "$imbalanced" --freeze-until fc1 --out "$work/r8"

# Multi-label: a labels file (every 100th row of the bundled attribute CSV, 4 images a class, absolute
# paths) trains sigmoid outputs; eval prints the per-label table at the stored thresholds, predict the
# labels over their thresholds, info the labels and thresholds; --resume continues; mistakes are named.
attributes="$root/assets/cifar10-attributes"
mkdir -p "$work/labels"
awk -v d="$attributes/" 'NR > 1 && NR % 100 == 2 { print d $0 }' "$attributes/train.csv" >"$work/labels/train.csv"
awk -v d="$attributes/" 'NR > 1 && NR % 50 == 2 { print d $0 }' "$attributes/test.csv" >"$work/labels/test.csv"
multi=("$kiln" train "$work/labels/train.csv" --model lenet5 --batch 8 --max-steps 2 --val-split 0.25 --out "$work/multi")
check "multi-label train on a labels file" "${multi[@]}" --epochs 1 --pos-weight auto
expect "train says it is multi-label" "$work/out" "on 30 images, 9 labels (multi-label), input 3x32x32; evaluating on validation"
expect "train gives the label counts" "$work/out" "labels (training images each applies to): animal "
expect "train gives the pos weights" "$work/out" "pos weight (auto: negatives / positives): animal "
expect "train says where the thresholds come from" "$work/out" "thresholds: chosen on validation after each epoch (max F1 per label)"
expect "the epoch line has mAP" "$work/out" " mAP "
[ -s "$work/multi/label_metrics.png" ] && [ ! -e "$work/multi/confusion_matrix.png" ] || { echo "FAIL: multi-label plots"; failures=$((failures + 1)); }
check "resume a multi-label run" "${multi[@]}" --epochs 2 --resume
expect "resume keeps the pos weights" "$work/out" "pos weight (auto: negatives / positives): animal "
check "multi-label eval" "$kiln" eval "$work/multi/last.kiln" "$work/labels/test.csv"
expect "eval names the thresholds' source" "$work/out" "lenet5 on $work/labels/test.csv (20 images, 9 labels; thresholds chosen on the validation split)"
expect "eval prints the per-label table" "$work/out" "label     precision    recall        f1   support        AP  threshold"
expect "eval prints the micro row" "$work/out" "micro avg"
expect "eval prints mAP" "$work/out" "mAP 0."
check "multi-label eval --json" "$kiln" eval "$work/multi/last.kiln" "$work/labels/test.csv" --json
expect "eval --json has the per-label AP" "$work/out" '"average_precision":'
check "multi-label predict" "$kiln" predict "$work/multi/last.kiln" "$data/test/cat/0000.jpg" "$data/test/ship/0000.jpg"
grep -q "(threshold \|(no label over its threshold)" "$work/out" || { echo "FAIL: multi-label predict prints labels or none"; cat "$work/out"; failures=$((failures + 1)); }
check "multi-label predict --json" "$kiln" predict "$work/multi/last.kiln" "$data/test/cat/0000.jpg" --json
expect "predict --json gives every label's threshold" "$work/out" '"applies":'
check "multi-label info" "$kiln" info "$work/multi/last.kiln"
expect "info gives the task" "$work/out" "task           multi-label"
expect "info gives the labels and thresholds" "$work/out" "labels         9: animal "
printf '%s\n' "$data/train/cat/0000.jpg,animal" "$work/nope.jpg,animal" >"$work/labels/broken.csv"
check_error "a labels file naming a missing image" "broken.csv:2: image '$work/nope.jpg' does not exist" "$kiln" train "$work/labels/broken.csv" --out "$work/r9"
check_error "a class folder for a multi-label checkpoint" "is multi-label: evaluate it on a labels .csv" "$kiln" eval "$work/multi/last.kiln" "$data"
check_error "a labels file for a single-label checkpoint" "is a multi-label labels file" "$kiln" eval "$run/last.kiln" "$work/labels/test.csv"
check_error "--balanced-sampler on multi-label data" "need one class per image" "${multi[@]}" --balanced-sampler --overwrite

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
check_error "eval on other classes" "'zebra' is not one of the 10 classes" "$kiln" eval "$run/last.kiln" "$work/other"
# A folder of some of the model's classes evaluates on those, each image labelled as the model's class.
mkdir -p "$work/some/dog" "$work/some/cat"
cp "$data/test/dog/0000.jpg" "$work/some/dog/"; cp "$data/test/cat/0000.jpg" "$data/test/cat/0001.jpg" "$work/some/cat/"
check "eval on some of the classes" "$kiln" eval "$run/last.kiln" "$work/some" --json
grep -q '"classes_in_data":2' "$work/out" && grep -q '"name":"cat","precision":[^}]*"support":2' "$work/out" ||
  { echo "FAIL: eval on 2 of the classes labels them as the model's"; failures=$((failures + 1)); }
rm -r "$work/some/dog"
check "eval on one of the classes" "$kiln" eval "$run/last.kiln" "$work/some" --json
grep -q '"classes_in_data":1' "$work/out" && grep -q '"samples":2' "$work/out" ||
  { echo "FAIL: eval on a folder of one class"; cat "$work/out"; failures=$((failures + 1)); }
mkdir -p "$work/nested/cat/more" "$work/nested/dog"
cp "$data/test/cat/0000.jpg" "$work/nested/cat/"; cp "$data/test/cat/0001.jpg" "$work/nested/cat/more/"
cp "$data/test/dog/0000.jpg" "$work/nested/dog/"
printf 'phone photo' >"$work/nested/cat/IMG_1.HEIC"; printf 'notes' >"$work/nested/dog/notes.txt"
check "pack a class folder with a folder inside" "$kiln" pack "$work/nested" "$work/nested.kpack"
grep -q "nested/cat holds 1 folder (more) whose images are not read" "$work/err" ||
  { echo "FAIL: a folder inside a class folder is named in a warning"; cat "$work/err"; failures=$((failures + 1)); }
grep -q "2 files in class folders are not read and left out (1 .heic, 1 .txt: cat/IMG_1.HEIC, dog/notes.txt)" "$work/err" ||
  { echo "FAIL: files of other formats in class folders are named in a warning"; cat "$work/err"; failures=$((failures + 1)); }
check "data-report on a class folder with a folder inside" "$kiln" data-report "$work/nested"
grep -q "ignored     1 folder inside class folders, whose images are not read: cat/more" "$work/out" ||
  { echo "FAIL: data-report lists a folder inside a class folder"; cat "$work/out"; failures=$((failures + 1)); }
grep -q "ignored     2 files without an image extension (1 .heic, 1 .txt)" "$work/out" ||
  { echo "FAIL: data-report counts the files it ignores by extension"; cat "$work/out"; failures=$((failures + 1)); }
printf 'garbage' >"$work/not-an-image.jpg"
check_error "predict --strict stops at a non-image" "not-an-image.jpg" "$kiln" predict "$run/last.kiln" "$work/not-an-image.jpg" --strict
if "$kiln" predict "$run/last.kiln" "$work/not-an-image.jpg" "$data/test/cat/0000.jpg" --top 1 >"$work/out" 2>"$work/err" ||
  ! grep -q "warning: skipped .*not-an-image.jpg" "$work/err" || ! grep -q "1 of 2 images could not be read" "$work/err" ||
  [ "$(grep -c '%' "$work/out")" -ne 1 ]; then
  echo "FAIL: predict skips a non-image, classifies the others and then fails"; cat "$work/out" "$work/err"; failures=$((failures + 1))
fi
if "$kiln" predict "$run/last.kiln" "$data/test/cat/0000.jpg" --threads 100000 >"$work/out" 2>"$work/err" ||
  ! grep -q -- "--threads: Value 100000 not in range 0 to 1024" "$work/err"; then
  echo "FAIL: --threads past the cap is a usage error naming it"; cat "$work/err"; failures=$((failures + 1))
fi
if "$kiln" predict "$run/last.kiln" "$data/test/cat/0000.jpg" --top 0 >"$work/out" 2>"$work/err" ||
  ! grep -q -- "--top: must be at least 1, got 0" "$work/err"; then
  echo "FAIL: --top 0 is a usage error saying what --top takes"; cat "$work/err"; failures=$((failures + 1))
fi

# --resume keeps the run's settings and says so when asked for others; it rebuilds metrics.jsonl from whole
# lines (a crash can cut the last one short); --overwrite starts the metrics anew.
cp "$run/last.kiln" "$work/before.kiln"
check_error "resume with another --lr" "with --lr 0.5: the run trains with 0.1" "$kiln" train "$data" --epochs 3 --out "$run" --resume --lr 0.5
cmp -s "$run/last.kiln" "$work/before.kiln" || { echo "FAIL: a refused resume leaves last.kiln intact"; failures=$((failures + 1)); }
cp -r "$run" "$work/torn"
head -c -20 "$run/metrics.jsonl" >"$work/torn/metrics.jsonl"
check "resume after a torn metrics line" "$kiln" train "$data" --epochs 3 --out "$work/torn" --resume --lr 0.1
check "report on the resumed run" "$kiln" report "$work/torn" --json
[ "$(grep -o '"epoch":[0-9]*' "$work/torn/metrics.jsonl" | tr '\n' ' ')" = '"epoch":1 "epoch":2 "epoch":3 ' ] ||
  { echo "FAIL: metrics.jsonl holds epochs 1 to 3, whole"; cat "$work/torn/metrics.jsonl"; failures=$((failures + 1)); }
check "overwrite a run" "$kiln" train "$data" --model lenet5 --epochs 1 --max-steps 2 --batch 32 --out "$work/torn" --overwrite
[ "$(wc -l <"$work/torn/metrics.jsonl")" -eq 1 ] || { echo "FAIL: --overwrite starts metrics.jsonl anew"; failures=$((failures + 1)); }
check "resume a cosine run for more epochs" "$kiln" train "$data" --epochs 2 --out "$work/torn" --resume
grep -q "note: --epochs 2 lengthens the run planned for 1 epoch: its cosine schedule now spans 2" "$work/err" ||
  { echo "FAIL: a longer resumed cosine run says its schedule changes"; cat "$work/err"; failures=$((failures + 1)); }
check_error "a fresh run refuses to overwrite a checkpoint" "already exists" "$kiln" train "$data" --out "$run"
cp "$run/last.kiln" "$work/before.kiln"
check_error "NaN loss stops training" "loss became NaN" "$kiln" train "$data" --model lenet5 --epochs 1 --out "$run" --overwrite --lr 1e30 --json
tail -1 "$work/out" | grep -q '^{"event":"error","message":"training stopped: the loss became NaN' ||
  { echo "FAIL: with --json a failed run ends with an error event"; tail -1 "$work/out"; failures=$((failures + 1)); }
cmp -s "$run/last.kiln" "$work/before.kiln" || { echo "FAIL: NaN stop leaves last.kiln intact"; failures=$((failures + 1)); }

if [ "$failures" -eq 0 ]; then echo "cli end-to-end: all checks passed"; fi
exit $((failures > 0))
