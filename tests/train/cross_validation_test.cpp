// --folds K: the summary's mean and spread on made-up fold scores, then a real 2-fold cross-validation of
// lenet5 on 12 training images (copied from the bundled CIFAR-10 subset): each fold in its own folder,
// trained on the other fold and scored on its own, RUNDIR/folds.json, --resume skipping finished folds and
// redoing a missing one to the same scores, --early-stop scoring each fold at its best epoch, and the
// errors.
#include "train/cross_validation.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"

namespace train_cross_validation_test {

using namespace kiln;
using kiln::testing::make_two_class_data;
using kiln::testing::ScratchFolder;
namespace fs = std::filesystem;

namespace {

class FoldRecorder : public train::CrossValidationObserver {
 public:
  void on_cross_validation_start(const nlohmann::json& start) override { plan = start; }
  void on_fold_start(std::int64_t fold, std::int64_t, bool already_finished) override {
    (already_finished ? skipped : trained).push_back(fold);
  }
  void on_start(const nlohmann::json& start) override { fold_plans.push_back(start); }

  nlohmann::json plan;
  std::vector<nlohmann::json> fold_plans;
  std::vector<std::int64_t> trained, skipped;
};

// Two folds of DATA/train (made with 6 airplanes and 6 cats); its DATA/test is left alone.
train::TrainConfig two_folds(const fs::path& data, const fs::path& run_dir) {
  train::TrainConfig config = kiln::testing::tiny_lenet5_config(data, run_dir, 9);
  config.folds = 2;
  return config;
}

nlohmann::json read_json(const fs::path& file) { return nlohmann::json::parse(std::ifstream(file)); }

}  // namespace

TEST_CASE("cross-validation: mean and sample standard deviation of made-up fold scores") {
  CHECK(train::mean_and_spread({0.5, 0.7, 0.6}).mean == doctest::Approx(0.6));
  CHECK(train::mean_and_spread({0.5, 0.7, 0.6}).std == doctest::Approx(0.1));  // sqrt(0.02 / 2)
  CHECK(train::mean_and_spread({1, 2, 3, 4}).std == doctest::Approx(std::sqrt(5.0 / 3.0)));
  CHECK(train::mean_and_spread({0.25}).std == 0);
  CHECK_THROWS_AS(train::mean_and_spread({}), Error);

  std::vector<train::FoldScore> scores(3);
  const double accuracy[] = {0.5, 0.7, 0.6}, loss[] = {1.0, 0.5, 0.75}, recall[] = {0.4, 0.6, 0.8};
  for (std::size_t k = 0; k < 3; ++k) {
    scores[k] = {.fold = static_cast<std::int64_t>(k + 1),
                 .epoch = 3,
                 .epochs_trained = 3,
                 .epochs_planned = 3,
                 .train_images = 20,
                 .held_out_images = 10,
                 .accuracy = accuracy[k],
                 .loss = loss[k],
                 .macro_recall = recall[k]};
  }
  const train::CrossValidationSummary summary = train::summarize_folds(scores, "last epoch");
  CHECK(summary.accuracy.mean == doctest::Approx(0.6));
  CHECK(summary.loss.mean == doctest::Approx(0.75));
  CHECK(summary.loss.std == doctest::Approx(0.25));
  CHECK(summary.macro_recall.std == doctest::Approx(0.2));
  const nlohmann::json json = summary.to_json();
  CHECK(json.at("folds") == 3);
  CHECK(json.at("per_fold").size() == 3);
  CHECK(json.at("per_fold")[1].at("eval_accuracy") == 0.7);
  CHECK(json.at("mean").at("eval_accuracy").get<double>() == doctest::Approx(0.6));
  CHECK(json.at("std").at("eval_macro_recall").get<double>() == doctest::Approx(0.2));
  const std::string table = summary.table();
  CHECK(table.find("fold   epoch  trained  held-out  accuracy  macro-recall     loss\n") == 0);
  CHECK(table.find("2          3      3/3        10     70.0%         60.0%   0.5000\n") !=
        std::string::npos);
  CHECK(table.find("mean                                60.0%         60.0%   0.7500\n") !=
        std::string::npos);
  CHECK(table.find("std                                 10.0%         20.0%   0.2500\n") !=
        std::string::npos);
}

TEST_CASE("cross-validation: K runs in fold folders, folds.json, and --resume skips the finished folds") {
  const ScratchFolder scratch("kiln-cross-validation-test", "run");
  const train::TrainConfig config =
      two_folds(make_two_class_data(scratch.path() / "data", 6, 2), scratch.path() / "cv");
  FoldRecorder recorder;
  const train::CrossValidationSummary summary =
      train::cross_validate(config, train::RunStart::Fresh, recorder);

  CHECK(recorder.plan.at("unused_splits") == nlohmann::json{"test"});
  CHECK(recorder.plan.at("fold_sizes") == nlohmann::json{6, 6});
  CHECK(recorder.trained == std::vector<std::int64_t>{1, 2});
  REQUIRE(recorder.fold_plans.size() == 2);
  for (std::size_t k = 0; k < 2; ++k) {
    CHECK(recorder.fold_plans[k].at("train_images") == 6);  // the other fold
    CHECK(recorder.fold_plans[k].at("eval_split") == "fold " + std::to_string(k + 1));
    CHECK(recorder.fold_plans[k].at("fold") == nlohmann::json{{"fold", k + 1}, {"folds", 2}});
    const fs::path fold_dir = config.run_dir / ("fold-" + std::to_string(k + 1));
    for (const char* file : {"last.kiln", "best.kiln", "metrics.jsonl", "loss.png"}) {
      CHECK_MESSAGE(fs::exists(fold_dir / file), (fold_dir / file).string());
    }
  }
  REQUIRE(summary.per_fold.size() == 2);
  CHECK(summary.per_fold[0].held_out_images == 6);
  CHECK(summary.per_fold[0].train_images == 6);
  CHECK(summary.scored_at == "last epoch");
  CHECK(summary.accuracy.mean ==
        doctest::Approx((summary.per_fold[0].accuracy + summary.per_fold[1].accuracy) / 2));
  const nlohmann::json written = read_json(config.run_dir / "folds.json");
  CHECK(written == summary.to_json());

  // A fresh start refuses to overwrite the folds; --resume with nothing left to do trains nothing.
  CHECK_THROWS_WITH_AS(
      train::cross_validate(config, train::RunStart::Fresh, recorder),
      doctest::Contains("fold-1/last.kiln already exists; continue the cross-validation with --resume"),
      Error);
  FoldRecorder resumed;
  train::cross_validate(config, train::RunStart::Resume, resumed);
  CHECK(resumed.skipped == std::vector<std::int64_t>{1, 2});
  CHECK(resumed.fold_plans.empty());

  // A fold lost (or never begun) is trained again from the stored configuration, to the same scores.
  fs::remove_all(config.run_dir / "fold-2");
  FoldRecorder redo;
  train::TrainConfig resume = config;
  resume.seed = 1234;  // ignored: the folds' seed is the stored one
  train::cross_validate(resume, train::RunStart::Resume, redo);
  CHECK(redo.skipped == std::vector<std::int64_t>{1});
  CHECK(redo.trained == std::vector<std::int64_t>{2});
  CHECK(read_json(config.run_dir / "folds.json") == written);
}

TEST_CASE("cross-validation: with --early-stop each fold is scored at its best epoch") {
  const ScratchFolder scratch("kiln-cross-validation-test", "early-stop");
  train::TrainConfig config =
      two_folds(make_two_class_data(scratch.path() / "data", 6, 2), scratch.path() / "cv");
  config.epochs = 10;
  config.learning_rate = 0;  // no epoch after the first improves, so each fold stops after epoch 2
  config.early_stop_patience = 1;
  FoldRecorder recorder;
  const train::CrossValidationSummary summary =
      train::cross_validate(config, train::RunStart::Fresh, recorder);
  CHECK(summary.scored_at == "best epoch by eval_loss");
  for (const train::FoldScore& score : summary.per_fold) {
    CHECK(score.epoch == 1);
    CHECK(score.epochs_trained == 2);
    CHECK(score.epochs_planned == 10);
  }
  // Stopped early counts as finished: --resume skips both folds.
  FoldRecorder resumed;
  train::cross_validate(config, train::RunStart::Resume, resumed);
  CHECK(resumed.skipped == std::vector<std::int64_t>{1, 2});
}

TEST_CASE("cross-validation: errors name the problem before any training") {
  const ScratchFolder scratch("kiln-cross-validation-test", "errors");
  train::TrainConfig config =
      two_folds(make_two_class_data(scratch.path() / "data", 6, 2), scratch.path() / "cv");
  FoldRecorder recorder;
  config.folds = 1;
  CHECK_THROWS_WITH_AS(
      train::cross_validate(config, train::RunStart::Fresh, recorder),
      "train: --folds must be at least 2 (each run trains on K-1 folds and holds one out), got 1", Error);
  config.folds = 7;
  CHECK_THROWS_WITH_AS(
      train::cross_validate(config, train::RunStart::Fresh, recorder),
      "train: --folds 7: class 'airplane' has only 6 training images; every class needs at least one "
      "per fold",
      Error);
  config.folds = 2;
  config.val_split = 0.2;
  CHECK_THROWS_WITH_AS(train::cross_validate(config, train::RunStart::Fresh, recorder),
                       "train: --folds and --val-split both hold out training images; use one of them",
                       Error);
  config.val_split = 0;
  CHECK_THROWS_WITH_AS(
      train::cross_validate(config, train::RunStart::Resume, recorder),
      doctest::Contains(
          ("cannot resume: " + (config.run_dir / "fold-1" / "last.kiln").string() + " does not exist")
              .c_str()),
      Error);
  CHECK(recorder.fold_plans.empty());
  CHECK_FALSE(fs::exists(config.run_dir));
}

}  // namespace train_cross_validation_test
