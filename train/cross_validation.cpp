#include "train/cross_validation.hpp"

#include <cmath>
#include <cstdio>
#include <span>

#include "core/error.hpp"
#include "data/dataset.hpp"
#include "train/atomic_file.hpp"
#include "train/checkpoint.hpp"
#include "train/folds.hpp"

namespace kiln::train {
namespace {

namespace fs = std::filesystem;

fs::path fold_checkpoint(const fs::path& run_dir, std::int64_t fold) {
  return fold_run_dir(run_dir, fold) / "last.kiln";
}

// The configuration every fold trains with. A new cross-validation takes the request. A --resume takes the
// configuration stored in the first fold that has a checkpoint, so that a fold begun only now draws the
// same folds from the same seed, with the request's epochs and patience as for any resumed run.
TrainConfig configuration_of_folds(const TrainConfig& requested, RunStart start) {
  const std::int64_t folds = requested.folds;
  if (start != RunStart::Resume) {
    for (std::int64_t fold = 1; start == RunStart::Fresh && fold <= folds; ++fold) {
      const fs::path path = fold_checkpoint(requested.run_dir, fold);
      KILN_CHECK(!fs::exists(path), path.string(),
                 " already exists; continue the cross-validation with --resume, or choose another --out (or "
                 "--overwrite)");
    }
    return requested;
  }
  for (std::int64_t fold = 1; fold <= folds; ++fold) {
    const fs::path path = fold_checkpoint(requested.run_dir, fold);
    if (!fs::exists(path)) continue;
    const nlohmann::json header = load_checkpoint_header(path);
    const TrainConfig stored = TrainConfig::from_json(header.value("config", nlohmann::json()));
    KILN_CHECK(stored.folds == folds, "cannot resume ", path.string(), " with --folds ", folds,
               ": it is fold ", stored.fold + 1, " of ", stored.folds);
    return resumed_config(stored, requested, path);
  }
  fail("cannot resume: ", fold_checkpoint(requested.run_dir, 1).string(),
       " does not exist (nor does any other fold's last.kiln under ", requested.run_dir.string(), ")");
}

EarlyStoppingState stored_early_stopping(const nlohmann::json& header) {
  return EarlyStoppingState::from_json(header.value("early_stopping", nlohmann::json()));
}

// Whether a fold's checkpoint has nothing left to train: all its epochs, or stopped early.
bool finished(const nlohmann::json& header, const TrainConfig& fold_config) {
  return header.at("epoch").get<std::int64_t>() >= fold_config.epochs ||
         patience_exhausted(stored_early_stopping(header), fold_config.early_stop_patience);
}

// The held-out scores of a fold from its last.kiln: its last epoch's, or with --early-stop its best
// epoch's (the model in its best.kiln).
FoldScore score_fold(const fs::path& path, const TrainConfig& fold_config, std::int64_t held_out_images,
                     std::int64_t images) {
  const nlohmann::json header = load_checkpoint_header(path);
  FoldScore score;
  score.fold = fold_config.fold + 1;
  score.epochs_trained = header.at("epoch").get<std::int64_t>();
  score.epochs_planned = fold_config.epochs;
  score.epoch =
      fold_config.early_stop_patience > 0 ? stored_early_stopping(header).best_epoch : score.epochs_trained;
  score.train_images = images - held_out_images;
  score.held_out_images = held_out_images;
  for (const nlohmann::json& line : header.at("history")) {
    if (line.at("epoch").get<std::int64_t>() != score.epoch || !line.contains("eval_accuracy")) continue;
    score.accuracy = line.at("eval_accuracy").get<double>();
    score.loss = line.at("eval_loss").get<double>();
    score.macro_recall = line.at("eval_macro_recall").get<double>();
    return score;
  }
  fail("checkpoint ", path.string(), ": no held-out metrics for epoch ", score.epoch, " in its history");
}

}  // namespace

fs::path fold_run_dir(const fs::path& run_dir, std::int64_t fold) {
  return run_dir / ("fold-" + std::to_string(fold));
}

MeanAndSpread mean_and_spread(const std::vector<double>& values) {
  KILN_CHECK(!values.empty(), "cross-validation: no fold scores to summarize");
  const auto count = static_cast<double>(values.size());
  double sum = 0;
  for (const double value : values) sum += value;
  MeanAndSpread result{sum / count, 0};
  if (values.size() < 2) return result;
  double squares = 0;
  for (const double value : values) squares += (value - result.mean) * (value - result.mean);
  result.std = std::sqrt(squares / (count - 1));
  return result;
}

CrossValidationSummary summarize_folds(std::vector<FoldScore> scores, const std::string& scored_at) {
  std::vector<double> accuracy, loss, macro_recall;
  for (const FoldScore& score : scores) {
    accuracy.push_back(score.accuracy);
    loss.push_back(score.loss);
    macro_recall.push_back(score.macro_recall);
  }
  CrossValidationSummary summary;
  summary.folds = static_cast<std::int64_t>(scores.size());
  summary.scored_at = scored_at;
  summary.per_fold = std::move(scores);
  summary.accuracy = mean_and_spread(accuracy);
  summary.loss = mean_and_spread(loss);
  summary.macro_recall = mean_and_spread(macro_recall);
  return summary;
}

nlohmann::json CrossValidationSummary::to_json() const {
  nlohmann::json folds_json = nlohmann::json::array();
  for (const FoldScore& score : per_fold) {
    folds_json.push_back({{"fold", score.fold},
                          {"epoch", score.epoch},
                          {"epochs_trained", score.epochs_trained},
                          {"epochs_planned", score.epochs_planned},
                          {"train_images", score.train_images},
                          {"held_out_images", score.held_out_images},
                          {"eval_accuracy", score.accuracy},
                          {"eval_loss", score.loss},
                          {"eval_macro_recall", score.macro_recall}});
  }
  const auto metrics = [&](double MeanAndSpread::*field) {
    return nlohmann::json{{"eval_accuracy", accuracy.*field},
                          {"eval_loss", loss.*field},
                          {"eval_macro_recall", macro_recall.*field}};
  };
  return {{"folds", folds},
          {"scored_at", scored_at},
          {"per_fold", folds_json},
          {"mean", metrics(&MeanAndSpread::mean)},
          {"std", metrics(&MeanAndSpread::std)}};
}

std::string CrossValidationSummary::table() const {
  std::string out;
  const auto row = [&](const std::string& fold, const std::string& epoch, const std::string& trained,
                       const std::string& held_out, double accuracy_value, double recall_value,
                       double loss_value) {
    char line[160];
    std::snprintf(line, sizeof line, "%-6s%6s%9s%10s%9.1f%%%13.1f%%%9.4f\n", fold.c_str(), epoch.c_str(),
                  trained.c_str(), held_out.c_str(), 100 * accuracy_value, 100 * recall_value, loss_value);
    out += line;
  };
  char header[160];
  std::snprintf(header, sizeof header, "%-6s%6s%9s%10s%10s%14s%9s\n", "fold", "epoch", "trained", "held-out",
                "accuracy", "macro-recall", "loss");
  out += header;
  for (const FoldScore& score : per_fold) {
    row(std::to_string(score.fold), std::to_string(score.epoch),
        std::to_string(score.epochs_trained) + "/" + std::to_string(score.epochs_planned),
        std::to_string(score.held_out_images), score.accuracy, score.macro_recall, score.loss);
  }
  row("mean", "", "", "", accuracy.mean, macro_recall.mean, loss.mean);
  row("std", "", "", "", accuracy.std, macro_recall.std, loss.std);
  return out;
}

CrossValidationSummary cross_validate(const TrainConfig& requested, RunStart start,
                                      CrossValidationObserver& observer) {
  check_fold_count(requested.folds);
  const TrainConfig config = configuration_of_folds(requested, start);
  KILN_CHECK(config.val_split == 0,
             "train: --folds and --val-split both hold out training images; use one of them");
  // The folds, drawn once here to check them (every class in every fold) and count them before any training;
  // each fold's run draws its own split again from the same seed.
  const data::DataSplits folders = data::discover_splits(config.data, 0.0, config.seed);
  const std::vector<std::int64_t> fold_of = stratified_folds(folders.train, config.folds, config.seed);
  std::vector<std::int64_t> fold_sizes(static_cast<std::size_t>(config.folds), 0);
  for (const std::int64_t fold : fold_of) ++fold_sizes[static_cast<std::size_t>(fold)];
  nlohmann::json unused = nlohmann::json::array();
  if (folders.validation) unused.push_back("val");
  if (folders.test) unused.push_back("test");
  observer.on_cross_validation_start({{"folds", config.folds},
                                      {"data", folders.train.root().string()},
                                      {"images", folders.train.size()},
                                      {"fold_sizes", fold_sizes},
                                      {"seed", config.seed},
                                      {"unused_splits", unused}});

  std::vector<FoldScore> scores;
  for (std::int64_t fold = 0; fold < config.folds; ++fold) {
    TrainConfig fold_config = config;
    fold_config.fold = fold;
    fold_config.run_dir = fold_run_dir(config.run_dir, fold + 1);
    const fs::path checkpoint = fold_checkpoint(config.run_dir, fold + 1);
    const bool begun = fs::exists(checkpoint);
    const bool skip =
        start == RunStart::Resume && begun && finished(load_checkpoint_header(checkpoint), fold_config);
    observer.on_fold_start(fold + 1, config.folds, skip);
    if (!skip) train(fold_config, start == RunStart::Resume && !begun ? RunStart::Fresh : start, observer);
    scores.push_back(score_fold(checkpoint, fold_config, fold_sizes[static_cast<std::size_t>(fold)],
                                static_cast<std::int64_t>(folders.train.size())));
  }
  const CrossValidationSummary summary = summarize_folds(
      std::move(scores), config.early_stop_patience > 0 ? "best epoch by " + config.monitor : "last epoch");
  write_file_atomically(config.run_dir / kFoldsSummaryFile, summary.to_json().dump(2) + "\n",
                        "cross-validation summary");
  return summary;
}

}  // namespace kiln::train
