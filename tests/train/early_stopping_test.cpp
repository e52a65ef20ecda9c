// The early-stopping decision on made-up metric sequences: what counts as an improvement for each
// --monitor, with and without --min-delta, after how many epochs --early-stop PATIENCE stops, and the
// state a checkpoint stores to continue the count on --resume.
#include "train/early_stopping.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.hpp"

namespace train_early_stopping_test {

using namespace kiln;
using train::EarlyStoppingState;
using train::Monitor;

namespace {

// What a run watching `monitor` with this patience does on the held-out values, epoch by epoch.
struct Outcome {
  std::int64_t stopped_after = 0;  // the epoch after which the run stops; 0: it trains every epoch
  std::int64_t best_epoch = 0;
  std::vector<std::int64_t> improved_epochs;  // the epochs that rewrote best.kiln
};

Outcome run_sequence(const std::vector<double>& values, const Monitor& monitor, std::int64_t patience) {
  EarlyStoppingState state;
  Outcome outcome;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const auto epoch = static_cast<std::int64_t>(i + 1);
    if (train::record_epoch(state, monitor, epoch, values[i])) outcome.improved_epochs.push_back(epoch);
    if (train::patience_exhausted(state, patience)) {
      outcome.stopped_after = epoch;
      break;
    }
  }
  outcome.best_epoch = state.best_epoch;
  return outcome;
}

}  // namespace

TEST_CASE("early stopping: eval_loss must fall by more than min-delta, and the first value always improves") {
  const Monitor loss("eval_loss", 0.0);
  CHECK_FALSE(loss.maximized());
  CHECK(loss.improves(0.9, 1.0));
  CHECK_FALSE(loss.improves(1.0, 1.0));  // a tie is not an improvement: best.kiln keeps the earlier epoch
  CHECK_FALSE(loss.improves(1.1, 1.0));
  const Monitor strict("eval_loss", 0.05);
  CHECK(strict.improves(0.94, 1.0));
  CHECK_FALSE(strict.improves(0.95, 1.0));
  CHECK(strict.describe() == "eval_loss (lower is better, min-delta 0.05)");

  EarlyStoppingState state;
  CHECK(train::record_epoch(state, loss, 1, 5.0));  // any first value, however bad
  CHECK(state.best == 5.0);
  CHECK(state.best_epoch == 1);
  CHECK_FALSE(train::record_epoch(state, loss, 2, std::nan("")));  // a NaN never improves
  CHECK(state.epochs_without_improvement == 1);
  CHECK(train::record_epoch(state, loss, 3, 4.0));
  CHECK(state.epochs_without_improvement == 0);
}

TEST_CASE("early stopping: eval_accuracy and eval_macro_recall are maximized") {
  for (const char* metric : {"eval_accuracy", "eval_macro_recall"}) {
    CAPTURE(metric);
    const Monitor monitor(metric, 0.01);
    CHECK(monitor.maximized());
    CHECK(monitor.improves(0.62, 0.6));
    CHECK_FALSE(monitor.improves(0.605, 0.6));
    CHECK_FALSE(monitor.improves(0.5, 0.6));
    const Outcome outcome = run_sequence({0.3, 0.5, 0.45, 0.505, 0.7, 0.69}, monitor, 0);
    CHECK(outcome.improved_epochs == std::vector<std::int64_t>{1, 2, 5});
    CHECK(outcome.best_epoch == 5);
  }
  train::MetricsReport report;
  report.loss = 1.5;
  report.accuracy = 0.6;
  report.macro_recall = 0.55;
  CHECK(Monitor("eval_loss", 0).value_of(report) == 1.5);
  CHECK(Monitor("eval_accuracy", 0).value_of(report) == 0.6);
  CHECK(Monitor("eval_macro_recall", 0).value_of(report) == 0.55);
}

TEST_CASE("early stopping: a made-up loss sequence stops after PATIENCE epochs without improvement") {
  const std::vector<double> losses = {1.0, 0.8, 0.85, 0.79, 0.80, 0.81, 0.82, 0.5};
  const Monitor loss("eval_loss", 0.0);

  // Improvements at epochs 1, 2 and 4; then 5, 6, 7 bring none, so patience 3 stops after epoch 7 and
  // the 0.5 of epoch 8 is never seen.
  Outcome outcome = run_sequence(losses, loss, 3);
  CHECK(outcome.improved_epochs == std::vector<std::int64_t>{1, 2, 4});
  CHECK(outcome.stopped_after == 7);
  CHECK(outcome.best_epoch == 4);

  // The count restarts at each improvement: patience 2 passes epoch 3 (one without) and stops after 6.
  outcome = run_sequence(losses, loss, 2);
  CHECK(outcome.stopped_after == 6);

  // With min-delta 0.02 epoch 4's 0.79 is not enough (it must be below 0.8 - 0.02).
  outcome = run_sequence(losses, Monitor("eval_loss", 0.02), 3);
  CHECK(outcome.improved_epochs == std::vector<std::int64_t>{1, 2});
  CHECK(outcome.stopped_after == 5);
  CHECK(outcome.best_epoch == 2);

  // Patience 0 is off: every epoch trains, and epoch 8 becomes the best.
  outcome = run_sequence(losses, loss, 0);
  CHECK(outcome.stopped_after == 0);
  CHECK(outcome.best_epoch == 8);
}

TEST_CASE("early stopping: the state round-trips through the checkpoint's JSON") {
  EarlyStoppingState state;
  state.best = 0.4622;
  state.best_epoch = 4;
  state.epochs_without_improvement = 2;
  const EarlyStoppingState back =
      EarlyStoppingState::from_json(nlohmann::json::parse(state.to_json().dump()));
  CHECK(back.best == 0.4622);
  CHECK(back.best_epoch == 4);
  CHECK(back.epochs_without_improvement == 2);
  // No best yet, and a checkpoint from before best.kiln existed.
  CHECK_FALSE(EarlyStoppingState::from_json(EarlyStoppingState{}.to_json()).best.has_value());
  const EarlyStoppingState old = EarlyStoppingState::from_json(nullptr);
  CHECK_FALSE(old.best.has_value());
  CHECK(old.epochs_without_improvement == 0);
}

TEST_CASE("early stopping: an unknown --monitor or a negative --min-delta is an error naming it") {
  CHECK_THROWS_WITH_AS(
      Monitor("val_acc", 0),
      "train: unknown --monitor 'val_acc' (known: eval_loss, eval_accuracy, eval_macro_recall)", Error);
  CHECK_THROWS_WITH_AS(Monitor("eval_loss", -0.1), "train: --min-delta must be a number >= 0, got -0.1",
                       Error);
  CHECK_THROWS_AS(Monitor("eval_loss", std::nan("")), Error);
}

}  // namespace train_early_stopping_test
