// --eval-every N in real (tiny) runs: lenet5 on 12 training and 6 test images of the bundled CIFAR-10
// subset. Only every N-th epoch and the last evaluate; best.kiln is chosen among them and --early-stop
// counts them; the epoch lines and metrics.jsonl say which epochs evaluated and how long each part took;
// the run's time-left estimate falls to 0 at the end; --resume may change N; a bad N is an error.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer.hpp"

namespace train_eval_every_test {

using namespace kiln;
using kiln::testing::make_two_class_data;
using kiln::testing::ScratchFolder;
namespace fs = std::filesystem;

namespace {

train::TrainConfig tiny_config(const fs::path& data, const fs::path& run_dir, std::int64_t epochs,
                               std::int64_t eval_every) {
  train::TrainConfig config = kiln::testing::tiny_lenet5_config(data, run_dir, 5);
  config.epochs = epochs;
  config.eval_every = eval_every;
  config.schedule = "constant";
  return config;
}

// The 1-based epochs of `history` that evaluated.
std::vector<std::int64_t> evaluated_epochs(const std::vector<train::EpochSummary>& history) {
  std::vector<std::int64_t> epochs;
  for (const train::EpochSummary& summary : history) {
    if (summary.validation) epochs.push_back(summary.epoch + 1);
  }
  return epochs;
}

// What the run reported: the plan, every step's time-left estimate, and every epoch's summary.
class Recorder : public train::TrainingObserver {
 public:
  void on_start(const nlohmann::json& start) override { plan = start; }
  void on_step(const train::StepProgress& progress) override {
    step_seconds_left.push_back(progress.run_seconds_left);
  }
  void on_epoch(const train::EpochSummary& summary) override { epochs.push_back(summary); }

  nlohmann::json plan;
  std::vector<double> step_seconds_left;
  std::vector<train::EpochSummary> epochs;
};

std::int64_t epoch_of(const fs::path& checkpoint) {
  return train::load_checkpoint(checkpoint).header.at("epoch").get<std::int64_t>();
}

}  // namespace

TEST_CASE("eval every: every N-th epoch and the last evaluate, and best.kiln is chosen among them") {
  const ScratchFolder scratch("kiln-eval-every-test", "schedule");
  const train::TrainConfig config =
      tiny_config(make_two_class_data(scratch.path() / "data", 6, 3), scratch.path() / "run", 5, 2);
  Recorder recorder;
  const train::TrainResult result = train::train(config, train::RunStart::Fresh, recorder);
  CHECK(recorder.plan.at("eval_every") == 2);
  REQUIRE(result.history.size() == 5);
  CHECK(evaluated_epochs(result.history) == std::vector<std::int64_t>{2, 4, 5});
  for (const train::EpochSummary& summary : result.history) {
    CHECK(summary.eval_seconds.has_value() == summary.validation.has_value());
    if (!summary.validation) CHECK_FALSE(summary.improved);  // only an evaluated epoch can improve
  }
  const std::int64_t best = result.monitored.best_epoch;
  CHECK((best == 2 || best == 4 || best == 5));
  CHECK(epoch_of(config.run_dir / "best.kiln") == best);

  // metrics.jsonl: held-out numbers and eval_seconds on the evaluated epochs only.
  std::ifstream metrics(config.run_dir / "metrics.jsonl");
  std::vector<bool> has_eval;
  for (std::string text; std::getline(metrics, text);) {
    const nlohmann::json line = nlohmann::json::parse(text);
    CHECK(line.contains("eval_loss") == line.contains("eval_seconds"));
    CHECK(line.contains("eval_loss") == line.contains("eval_confusion_matrix"));
    has_eval.push_back(line.contains("eval_loss"));
  }
  CHECK(has_eval == std::vector<bool>{false, true, false, true, true});
}

TEST_CASE("eval every: the run's time left is estimated at every step and epoch, and is 0 at the end") {
  const ScratchFolder scratch("kiln-eval-every-test", "eta");
  const train::TrainConfig config =
      tiny_config(make_two_class_data(scratch.path() / "data", 6, 3), scratch.path() / "run", 4, 3);
  Recorder recorder;
  train::train(config, train::RunStart::Fresh, recorder);
  REQUIRE(recorder.epochs.size() == 4);
  REQUIRE(recorder.step_seconds_left.size() == 4 * 3);  // 12 images in batches of 4
  for (const double left : recorder.step_seconds_left) CHECK((std::isfinite(left) && left >= 0));
  CHECK(recorder.step_seconds_left.front() > recorder.step_seconds_left.back());
  for (std::size_t i = 0; i + 1 < recorder.epochs.size(); ++i) CHECK(recorder.epochs[i].run_seconds_left > 0);
  CHECK(recorder.epochs.back().run_seconds_left == 0.0);
  CHECK(recorder.epochs.back().to_json().at("run_seconds_left") == 0.0);
  CHECK(recorder.epochs[2].to_json().contains("eval_seconds"));  // epoch 3 of 4: the 3rd
  CHECK_FALSE(recorder.epochs[1].to_json().contains("eval_seconds"));
}

TEST_CASE("eval every: --early-stop counts evaluations, not epochs") {
  const ScratchFolder scratch("kiln-eval-every-test", "early-stop");
  train::TrainConfig config =
      tiny_config(make_two_class_data(scratch.path() / "data", 6, 3), scratch.path() / "run", 20, 2);
  config.learning_rate = 0;  // the weights never move: the first evaluation (epoch 2) stays the best
  config.early_stop_patience = 2;
  Recorder recorder;
  const train::TrainResult result = train::train(config, train::RunStart::Fresh, recorder);
  REQUIRE(result.early_stop.has_value());
  CHECK(result.early_stop->epoch == 6);  // evaluations after 2, 4 and 6: two without improvement
  CHECK(result.early_stop->best_epoch == 2);
  CHECK(result.early_stop->to_json().at("eval_every") == 2);
  CHECK(result.early_stop->message().find("for 2 evaluations, every 2 epochs (--early-stop 2)") !=
        std::string::npos);
  CHECK(result.history.size() == 6);
  CHECK(epoch_of(config.run_dir / "best.kiln") == 2);
}

TEST_CASE("eval every: --resume may change N, and a checkpoint from before it evaluates every epoch") {
  const ScratchFolder scratch("kiln-eval-every-test", "resume");
  train::TrainConfig config =
      tiny_config(make_two_class_data(scratch.path() / "data", 6, 3), scratch.path() / "run", 2, 2);
  Recorder first;
  train::train(config, train::RunStart::Fresh, first);
  const nlohmann::json stored = train::load_checkpoint(config.run_dir / "last.kiln").header.at("config");
  CHECK(stored.at("eval_every") == 2);

  config.epochs = 4;
  config.eval_every = 1;
  Recorder resumed;
  const train::TrainResult result = train::train(config, train::RunStart::Resume, resumed);
  CHECK(resumed.plan.at("eval_every") == 1);
  CHECK(evaluated_epochs(result.history) == std::vector<std::int64_t>{3, 4});

  nlohmann::json older = stored;
  older.erase("eval_every");
  CHECK(train::TrainConfig::from_json(older).eval_every == 1);
}

TEST_CASE("eval every: an N below 1, or no epochs, is an error before any work") {
  const ScratchFolder scratch("kiln-eval-every-test", "errors");
  train::TrainConfig config =
      tiny_config(make_two_class_data(scratch.path() / "data", 6, 3), scratch.path() / "run", 2, 0);
  Recorder recorder;
  CHECK_THROWS_WITH_AS(train::train(config, train::RunStart::Fresh, recorder),
                       "train: --eval-every must be >= 1, got 0", Error);
  config.eval_every = 1;
  config.epochs = 0;
  CHECK_THROWS_WITH_AS(train::train(config, train::RunStart::Fresh, recorder),
                       "train: --epochs must be >= 1, got 0", Error);
  CHECK_FALSE(fs::exists(config.run_dir));
}

}  // namespace train_eval_every_test
