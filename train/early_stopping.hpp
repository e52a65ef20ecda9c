// Overfitting guards, the decision part: which held-out number the run watches (--monitor, --min-delta),
// when an epoch counts as an improvement (then the trainer writes RUNDIR/best.kiln), and when the run has
// gone --early-stop PATIENCE epochs without one (then it stops). Only evaluated epochs count: with
// --eval-every N the patience is a number of evaluations, N epochs apart.
//
// A run that trains long enough starts fitting its training images rather than the task: the training
// loss keeps falling while the held-out loss turns back up. best.kiln keeps the model from the epoch
// the held-out split liked best, and early stopping saves the epochs that would only make it worse.
//
// An epoch with held-out value v improves on the best value b so far when
//     eval_loss (minimized)                          v < b - min_delta
//     eval_accuracy, eval_macro_recall (maximized)   v > b + min_delta
// The first held-out value always improves (there is no b yet); a NaN never does. So with min_delta 0 a
// tie is not an improvement, and best.kiln holds the first epoch that reached the best value.
//
// The state (best value, its epoch, epochs since) is stored in every checkpoint, so --resume continues
// the patience count exactly where the interrupted run left it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <optional>
#include <string>

#include "train/metrics.hpp"

namespace kiln::train {

// The --monitor names, which are also the epoch lines' keys (EpochSummary::to_json).
inline constexpr const char* kMonitoredMetrics[] = {"eval_loss", "eval_accuracy", "eval_macro_recall"};

class Monitor {
 public:
  // Throws kiln::Error naming the problem: an unknown metric (listing the known ones) or a min_delta
  // that is negative or not finite.
  Monitor(const std::string& metric, double min_delta);

  const std::string& metric() const { return metric_; }
  double min_delta() const { return min_delta_; }
  bool maximized() const { return maximized_; }
  // The monitored number of a held-out evaluation.
  double value_of(const MetricsReport& report) const;
  // Whether `value` improves on `best` by more than min_delta, in the metric's direction.
  bool improves(double value, double best) const;
  // "eval_loss (lower is better)", with ", min-delta 0.01" when min_delta is not 0.
  std::string describe() const;

 private:
  std::string metric_;
  double min_delta_;
  bool maximized_;
};

struct EarlyStoppingState {
  std::optional<double> best;                   // the best value so far; none before the first
  std::int64_t best_epoch = 0;                  // 1-based: the epoch best.kiln holds (0: none yet)
  std::int64_t epochs_without_improvement = 0;  // evaluated epochs since best_epoch (--eval-every)

  // {"best": value or null, "best_epoch", "epochs_without_improvement"}; from_json of null (a checkpoint
  // written before kiln had best.kiln) is the empty state.
  nlohmann::json to_json() const;
  static EarlyStoppingState from_json(const nlohmann::json& json);
};

// Records the held-out value of `epoch` (1-based). Returns true, and makes the epoch the best, when the
// value improves on the best so far; otherwise counts one more evaluated epoch without improvement.
bool record_epoch(EarlyStoppingState& state, const Monitor& monitor, std::int64_t epoch, double value);

// A count of evaluated epochs in words: "1 epoch", "5 epochs", and with --eval-every N > 1, when only
// every N-th epoch is evaluated, "1 evaluation", "2 evaluations".
std::string evaluated_epochs_phrase(std::int64_t count, std::int64_t eval_every);

// --early-stop PATIENCE: true once PATIENCE evaluated epochs in a row have passed without improvement.
// Patience 0 means early stopping is off: never true.
bool patience_exhausted(const EarlyStoppingState& state, std::int64_t patience);

// --early-stop ended the run: now, or before this --resume (which then trained nothing).
struct EarlyStop {
  bool before_resume = false;
  std::int64_t epoch = 0, epochs = 0;  // the last epoch trained, of those planned
  std::int64_t patience = 0;
  std::string metric;  // the --monitor: "eval_loss"
  double min_delta = 0;
  double best_value = 0;
  std::int64_t best_epoch = 0;
  std::filesystem::path best_checkpoint;
  std::int64_t epochs_without_improvement = 0;  // evaluated epochs
  std::int64_t eval_every = 1;                  // --eval-every: the evaluated epochs are every N-th
  // "eval_loss has not improved for 3 epochs (--early-stop 3); best.kiln holds epoch 4 (eval_loss 0.4622)",
  // with --eval-every 2 "... for 3 evaluations, every 2 epochs (--early-stop 3) ...",
  // and for a run stopped before this --resume: "the run already stopped at epoch 7: eval_loss had not
  // improved ... Nothing was trained; a larger --early-stop continues the run".
  std::string message() const;
  // {"before_resume", "epoch", "epochs", "patience", "monitor", "min_delta", "epochs_without_improvement",
  //  "eval_every", "best_epoch", "best_value", "best_checkpoint", "message"}
  nlohmann::json to_json() const;
};

}  // namespace kiln::train
