// best.kiln and --early-stop in real (tiny) runs: lenet5 on 12 training and 6 test images copied from the
// bundled CIFAR-10 subset. best.kiln is rewritten exactly when the monitored metric improves and holds
// that epoch; a run whose held-out loss stands still stops after PATIENCE epochs (a learning rate of 0
// keeps the weights, so every epoch's held-out loss equals the first); --resume continues the count; and
// the settings that cannot work are errors naming the problem.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>

#include "core/error.hpp"
#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"
#include "train/checkpoint.hpp"
#include "train/model_io.hpp"
#include "train/trainer.hpp"

namespace train_overfitting_guards_test {

using namespace kiln;
using kiln::testing::make_two_class_data;
using kiln::testing::ScratchFolder;
namespace fs = std::filesystem;

namespace {

// Five epochs at a constant rate, so the held-out loss moves both ways.
train::TrainConfig tiny_config(const fs::path& data, const fs::path& run_dir) {
  train::TrainConfig config = kiln::testing::tiny_lenet5_config(data, run_dir, 5);
  config.epochs = 5;
  config.schedule = "constant";
  return config;
}

std::int64_t epoch_of(const fs::path& checkpoint) {
  return train::load_checkpoint(checkpoint).header.at("epoch").get<std::int64_t>();
}

// After every epoch (the checkpoints are written by then): the epoch best.kiln holds (0: none), and
// whether the epoch improved.
class BestWatcher : public train::TrainingObserver {
 public:
  explicit BestWatcher(fs::path run_dir) : best_(std::move(run_dir) / "best.kiln") {}
  void on_start(const nlohmann::json& start) override { plan = start; }
  void on_epoch(const train::EpochSummary& summary) override {
    best_epoch_on_disk.push_back(fs::exists(best_) ? epoch_of(best_) : 0);
    improved.push_back(summary.improved);
    best_epoch.push_back(summary.best_epoch);
  }
  void on_early_stop(const train::EarlyStop& stop) override { stops.push_back(stop); }

  nlohmann::json plan;
  std::vector<std::int64_t> best_epoch_on_disk, best_epoch;
  std::vector<bool> improved;
  std::vector<train::EarlyStop> stops;

 private:
  fs::path best_;
};

// The epoch (1-based) a monitor should pick: the first best value of the run's history.
std::int64_t expected_best_epoch(const std::vector<train::EpochSummary>& history, bool maximized) {
  std::int64_t best = 0;
  for (std::size_t i = 0; i < history.size(); ++i) {
    const double value = maximized ? history[i].validation->accuracy : history[i].validation->loss;
    const double best_value =
        best == 0 ? 0
                  : (maximized ? history[best - 1].validation->accuracy : history[best - 1].validation->loss);
    if (best == 0 || (maximized ? value > best_value : value < best_value))
      best = static_cast<std::int64_t>(i + 1);
  }
  return best;
}

}  // namespace

TEST_CASE("best.kiln: rewritten exactly when eval_loss improves, holding that epoch") {
  const ScratchFolder scratch("kiln-guards-test", "best-loss");
  const train::TrainConfig config =
      tiny_config(make_two_class_data(scratch.path() / "data", 6, 3), scratch.path() / "run");
  BestWatcher watcher(config.run_dir);
  const train::TrainResult result = train::train(config, train::RunStart::Fresh, watcher);
  REQUIRE(result.history.size() == 5);
  CHECK(watcher.plan.at("best_checkpoint") == (config.run_dir / "best.kiln").string());
  CHECK(watcher.plan.at("monitor").at("metric") == "eval_loss");

  const std::int64_t best = expected_best_epoch(result.history, false);
  CHECK(result.monitored.best_epoch == best);
  CHECK(result.monitored.best == result.history[static_cast<std::size_t>(best - 1)].validation->loss);
  for (std::size_t i = 0; i < result.history.size(); ++i) {
    CAPTURE(i);
    // best.kiln changes on an improving epoch, to that epoch, and stays put otherwise.
    const std::int64_t before = i == 0 ? 0 : watcher.best_epoch_on_disk[i - 1];
    CHECK(watcher.best_epoch_on_disk[i] == (watcher.improved[i] ? static_cast<std::int64_t>(i + 1) : before));
    CHECK(watcher.best_epoch[i] == watcher.best_epoch_on_disk[i]);
  }
  CHECK(watcher.improved.front());  // the first epoch always improves
  // Not the trivial case: some epoch improved after the first, and some did not.
  CHECK(std::count(watcher.improved.begin() + 1, watcher.improved.end(), true) > 0);
  CHECK(std::count(watcher.improved.begin(), watcher.improved.end(), false) > 0);
  CHECK(epoch_of(config.run_dir / "last.kiln") == 5);
  // best.kiln is a whole checkpoint of its epoch: eval and info load it like last.kiln.
  const train::LoadedModel loaded = train::load_model(config.run_dir / "best.kiln");
  CHECK(loaded.header.at("history").size() == static_cast<std::size_t>(best));
  CHECK(loaded.header.at("early_stopping").at("best_epoch") == best);
  CHECK(result.best_checkpoint == config.run_dir / "best.kiln");
}

TEST_CASE("best.kiln: --monitor eval_accuracy keeps the epoch of the highest held-out accuracy") {
  const ScratchFolder scratch("kiln-guards-test", "best-accuracy");
  train::TrainConfig config =
      tiny_config(make_two_class_data(scratch.path() / "data", 6, 3), scratch.path() / "run");
  config.monitor = "eval_accuracy";
  BestWatcher watcher(config.run_dir);
  const train::TrainResult result = train::train(config, train::RunStart::Fresh, watcher);
  const std::int64_t best = expected_best_epoch(result.history, true);
  CHECK(epoch_of(config.run_dir / "best.kiln") == best);
  CHECK(best > 1);  // the accuracy rose (the loss alone would not show that accuracy was watched)
  CHECK(best != expected_best_epoch(result.history, false));
  CHECK(result.monitored_metric == "eval_accuracy");
  CHECK(watcher.plan.at("monitor").at("maximized") == true);
  CHECK(train::load_model(config.run_dir / "last.kiln").header.at("config").at("monitor") == "eval_accuracy");
}

TEST_CASE("early stop: a run whose held-out loss stands still stops after PATIENCE epochs") {
  const ScratchFolder scratch("kiln-guards-test", "stop");
  train::TrainConfig config =
      tiny_config(make_two_class_data(scratch.path() / "data", 6, 3), scratch.path() / "run");
  config.epochs = 20;
  config.learning_rate = 0;  // the weights never move: epoch 1 is the best, and no later epoch improves
  config.early_stop_patience = 2;
  BestWatcher watcher(config.run_dir);
  const train::TrainResult result = train::train(config, train::RunStart::Fresh, watcher);
  CHECK(result.history.size() == 3);  // epoch 1, then two without improvement
  REQUIRE(result.early_stop.has_value());
  CHECK_FALSE(result.early_stop->before_resume);
  CHECK(result.early_stop->epoch == 3);
  CHECK(result.early_stop->best_epoch == 1);
  CHECK(result.early_stop->message().starts_with(
      "eval_loss has not improved for 2 epochs (--early-stop 2); best.kiln holds epoch 1 (eval_loss "));
  CHECK(result.early_stop->to_json().at("best_checkpoint") == (config.run_dir / "best.kiln").string());
  CHECK(watcher.stops.size() == 1);
  CHECK(epoch_of(config.run_dir / "last.kiln") == 3);
  CHECK(epoch_of(config.run_dir / "best.kiln") == 1);
}

TEST_CASE("early stop: --resume continues the patience count, and a stopped run resumed stops at once") {
  const ScratchFolder scratch("kiln-guards-test", "resume");
  train::TrainConfig config =
      tiny_config(make_two_class_data(scratch.path() / "data", 6, 3), scratch.path() / "run");
  config.epochs = 2;
  config.learning_rate = 0;
  config.early_stop_patience = 3;
  BestWatcher first(config.run_dir);
  train::train(config, train::RunStart::Fresh, first);  // epoch 2 is one without improvement

  // Counting on from 1, the run stops after epoch 4 (a count started afresh would run to epoch 5).
  config.epochs = 20;
  BestWatcher resumed(config.run_dir);
  train::TrainResult result = train::train(config, train::RunStart::Resume, resumed);
  CHECK(resumed.plan.at("early_stopping").at("epochs_without_improvement") == 1);
  CHECK(result.history.size() == 2);
  REQUIRE(result.early_stop.has_value());
  CHECK(result.early_stop->epoch == 4);

  // The same settings again: nothing to train, and a message saying so.
  BestWatcher again(config.run_dir);
  result = train::train(config, train::RunStart::Resume, again);
  CHECK(result.history.empty());
  REQUIRE(result.early_stop.has_value());
  CHECK(result.early_stop->before_resume);
  CHECK(result.early_stop->message().starts_with(
      "the run already stopped at epoch 4: eval_loss had not improved"));
  CHECK(
      result.early_stop->message().ends_with("Nothing was trained; a larger --early-stop continues the run"));
  CHECK(epoch_of(config.run_dir / "last.kiln") == 4);

  // A larger patience continues it, to 5 epochs without improvement.
  config.early_stop_patience = 5;
  result = train::train(config, train::RunStart::Resume, again);
  CHECK(result.history.size() == 2);
  CHECK(epoch_of(config.run_dir / "last.kiln") == 6);
  CHECK(epoch_of(config.run_dir / "best.kiln") == 1);
}

TEST_CASE("overfitting guards: without held-out data there is no best.kiln, and --early-stop is an error") {
  const ScratchFolder scratch("kiln-guards-test", "no-held-out");
  const fs::path data = make_two_class_data(scratch.path() / "data", 6, 3);
  const fs::path train_only = data / "train";  // DATA/<class>/...: nothing held out without --val-split
  const fs::path run_dir = scratch.path() / "run";
  BestWatcher watcher(run_dir);
  train::TrainConfig config = tiny_config(data, run_dir);
  config.epochs = 1;
  train::train(config, train::RunStart::Fresh, watcher);
  REQUIRE(fs::exists(run_dir / "best.kiln"));

  // Replacing that run with one that holds nothing out removes its best.kiln, which is not the new run's.
  config.data = train_only;
  const train::TrainResult result = train::train(config, train::RunStart::Replace, watcher);
  CHECK(watcher.plan.at("best_checkpoint").is_null());
  CHECK_FALSE(result.best_checkpoint.has_value());
  CHECK_FALSE(fs::exists(run_dir / "best.kiln"));
  CHECK(result.history.at(0).to_json().contains("improved") == false);

  config.early_stop_patience = 3;
  config.run_dir = scratch.path() / "early";
  CHECK_THROWS_WITH_AS(
      train::train(config, train::RunStart::Fresh, watcher),
      doctest::Contains(("train: --early-stop 3 watches held-out data, but " + train_only.string() +
                         " has no val/ or test/ folder and --val-split is 0; add --val-split 0.1")
                            .c_str()),
      Error);
  config.val_split = 0.25;  // the remedy it names
  CHECK_NOTHROW(train::train(config, train::RunStart::Fresh, watcher));
  CHECK(fs::exists(config.run_dir / "best.kiln"));
}

TEST_CASE("overfitting guards: a bad --monitor fails before any work, and --resume keeps the run's monitor") {
  const ScratchFolder scratch("kiln-guards-test", "errors");
  train::TrainConfig config =
      tiny_config(make_two_class_data(scratch.path() / "data", 6, 3), scratch.path() / "run");
  config.epochs = 1;
  config.monitor = "val_accuracy";
  BestWatcher watcher(config.run_dir);
  CHECK_THROWS_WITH_AS(
      train::train(config, train::RunStart::Fresh, watcher),
      "train: unknown --monitor 'val_accuracy' (known: eval_loss, eval_accuracy, eval_macro_recall)", Error);
  CHECK_FALSE(fs::exists(config.run_dir));
  config.monitor = "eval_loss";
  config.early_stop_patience = -1;
  CHECK_THROWS_WITH_AS(train::train(config, train::RunStart::Fresh, watcher),
                       "train: --early-stop must be >= 0 (0: off), got -1", Error);

  config.early_stop_patience = 0;
  config.monitor = "eval_macro_recall";
  train::train(config, train::RunStart::Fresh, watcher);
  config.monitor = "eval_loss";
  config.epochs = 2;
  CHECK_THROWS_WITH_AS(
      train::train(config, train::RunStart::Resume, watcher),
      doctest::Contains("with --monitor eval_loss --min-delta 0: its best.kiln was chosen by "
                        "--monitor eval_macro_recall --min-delta 0"),
      Error);
}

}  // namespace train_overfitting_guards_test
