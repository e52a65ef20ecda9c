#include "train/run_eta.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace kiln::train {

bool evaluates_after_epoch(std::int64_t epoch, std::int64_t epochs, std::int64_t eval_every) {
  return (epoch + 1) % eval_every == 0 || epoch + 1 == epochs;
}

RunEta::RunEta(std::int64_t epochs, std::int64_t eval_every) : epochs_(epochs), eval_every_(eval_every) {
  KILN_CHECK(epochs >= 1, "run ETA: epochs must be >= 1, got ", epochs);
  KILN_CHECK(eval_every >= 1, "run ETA: eval_every must be >= 1, got ", eval_every);
}

void RunEta::record_training(double seconds) {
  training_seconds_ += seconds;
  ++trainings_;
}

void RunEta::record_evaluation(double seconds) {
  evaluation_seconds_ += seconds;
  ++evaluations_;
}

double RunEta::after_epoch(std::int64_t epoch) const {
  KILN_CHECK(trainings_ > 0, "run ETA: no training pass has been timed yet");
  return remaining_after(epoch, mean_training());
}

double RunEta::during_epoch(std::int64_t epoch, std::int64_t steps_done, std::int64_t steps,
                            double seconds) const {
  KILN_CHECK(steps_done >= 1 && steps_done <= steps, "run ETA: ", steps_done, " of ", steps, " steps done");
  const double per_step = seconds / static_cast<double>(steps_done);
  const double training_pass = trainings_ > 0 ? mean_training() : per_step * static_cast<double>(steps);
  const double this_epoch = per_step * static_cast<double>(steps - steps_done) +
                            (evaluates_after_epoch(epoch, epochs_, eval_every_) ? mean_evaluation() : 0.0);
  return this_epoch + remaining_after(epoch, training_pass);
}

// The epochs after `epoch`: their training passes at `training_pass` seconds each, and their evaluations.
double RunEta::remaining_after(std::int64_t epoch, double training_pass) const {
  const std::int64_t later = std::max<std::int64_t>(epochs_ - epoch - 1, 0);
  std::int64_t evaluations = 0;
  for (std::int64_t e = epoch + 1; e < epochs_; ++e)
    evaluations += evaluates_after_epoch(e, epochs_, eval_every_);
  return static_cast<double>(later) * training_pass + static_cast<double>(evaluations) * mean_evaluation();
}

double RunEta::mean_training() const { return training_seconds_ / static_cast<double>(trainings_); }

double RunEta::mean_evaluation() const {
  return evaluations_ > 0 ? evaluation_seconds_ / static_cast<double>(evaluations_) : 0.0;
}

}  // namespace kiln::train
