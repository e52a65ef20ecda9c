// k-fold cross-validation, `kiln train DATA --folds K --out RUNDIR`: K runs of the ordinary trainer, run k
// training on all folds of the training images but fold k and evaluating on fold k (train/folds.hpp),
// each in its own run folder with everything a run writes:
//
//   RUNDIR/fold-1/  last.kiln  best.kiln  metrics.jsonl  loss.png  accuracy.png  confusion_matrix.png
//   ...
//   RUNDIR/fold-K/
//   RUNDIR/folds.json  the summary: each fold's held-out scores, their mean and standard deviation
//
// A fold is scored at its last epoch or, with --early-stop, at its best epoch (the one its best.kiln
// holds). A val/ or test/ folder is not used: the folds come from the training images only, so a test
// split stays untouched for the model finally chosen. Each fold's checkpoint stores its fold number, so
// --resume continues the unfinished folds (and starts those never begun) and skips the finished ones.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <string>
#include <vector>

#include "train/trainer.hpp"

namespace kiln::train {

// One fold's held-out scores.
struct FoldScore {
  std::int64_t fold = 0;            // 1-based
  std::int64_t epoch = 0;           // the epoch scored: the last one, or with --early-stop the best one
  std::int64_t epochs_trained = 0;  // fewer than planned when --early-stop ended the fold
  std::int64_t epochs_planned = 0;
  std::int64_t train_images = 0, held_out_images = 0;
  double accuracy = 0, loss = 0, macro_recall = 0;
};

// The mean over the folds and the sample standard deviation (dividing by K - 1), the spread a
// fold-to-fold difference is measured against.
struct MeanAndSpread {
  double mean = 0, std = 0;
};
MeanAndSpread mean_and_spread(const std::vector<double>& values);

struct CrossValidationSummary {
  std::int64_t folds = 0;
  std::string scored_at;  // "last epoch" or "best epoch by eval_loss"
  std::vector<FoldScore> per_fold;
  MeanAndSpread accuracy, loss, macro_recall;

  // {"folds", "scored_at", "per_fold": [{"fold", "epoch", "epochs_trained", "train_images",
  //  "held_out_images", "eval_accuracy", "eval_loss", "eval_macro_recall"}], "mean": {"eval_accuracy",
  //  "eval_loss", "eval_macro_recall"}, "std": {the same}}
  nlohmann::json to_json() const;
  // An aligned table: a row per fold, then the mean and std rows.
  std::string table() const;
};

// Fills in the means and spreads.
CrossValidationSummary summarize_folds(std::vector<FoldScore> scores, const std::string& scored_at);

// The trainer's observer, told also when each fold begins.
class CrossValidationObserver : public TrainingObserver {
 public:
  // {"folds", "data" (the training images' folder), "images", "fold_sizes", "seed", "unused_splits"
  //  (["test"], ["val", "test"] or [])}
  virtual void on_cross_validation_start(const nlohmann::json& /*plan*/) {}
  // Before fold `fold` (1-based) trains; already_finished: a --resume found it done and skips it.
  virtual void on_fold_start(std::int64_t /*fold*/, std::int64_t /*folds*/, bool /*already_finished*/) {}
};

inline constexpr const char* kFoldsSummaryFile = "folds.json";

// The fold folder of fold k (1-based): RUNDIR/fold-k.
std::filesystem::path fold_run_dir(const std::filesystem::path& run_dir, std::int64_t fold);

// Runs the K folds of config.folds (>= 2) in config.run_dir's fold folders and writes RUNDIR/folds.json.
// `start` applies to every fold: Fresh refuses when any fold folder holds a checkpoint, Replace starts
// them all afresh, Resume continues them. Throws kiln::Error on --folds below 2, --val-split with --folds,
// a class with fewer images than folds, or a --resume whose stored fold count is not --folds; everything
// train() throws.
CrossValidationSummary cross_validate(const TrainConfig& config, RunStart start,
                                      CrossValidationObserver& observer);

}  // namespace kiln::train
