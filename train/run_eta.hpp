// How long a training run still needs, and which epochs evaluate the held-out split (--eval-every).
//
// The trainer times each epoch's two parts, the training pass and the held-out evaluation, and the
// estimate is the means of what this process has timed times what is left (a resumed run starts afresh:
// the epochs before it may have run on another machine, or beside other work):
//
//   after epoch e (0-based, of E)        left = (E - e - 1) * train + (evaluations in e+1 .. E-1) * eval
//   during epoch e, s of its S steps     left = t / s * (S - s)                   the rest of this pass
//   done t seconds into it                    + (e evaluates ? eval : 0)          its evaluation
//                                             + the after-epoch-e estimate        the epochs after it
//
// where train is the mean timed training pass (before the first one ends: this one projected, t / s * S)
// and eval the mean timed evaluation (0 until one has been timed, and in a run with no held-out split).
// It assumes the run goes to its last epoch: an early stop only makes it shorter.
#pragma once

#include <cstdint>

namespace kiln::train {

// Whether the run evaluates the held-out split after epoch `epoch` (0-based) of `epochs`: after every
// `eval_every`-th epoch, and always after the last, so a run ends with a held-out score.
bool evaluates_after_epoch(std::int64_t epoch, std::int64_t epochs, std::int64_t eval_every);

class RunEta {
 public:
  // Throws kiln::Error unless epochs >= 1 and eval_every >= 1.
  RunEta(std::int64_t epochs, std::int64_t eval_every);

  void record_training(double seconds);    // one epoch's training pass
  void record_evaluation(double seconds);  // one held-out evaluation

  // Seconds left once epoch `epoch` has ended (0 after the last); needs one timed training pass.
  double after_epoch(std::int64_t epoch) const;
  // Seconds left while epoch `epoch` runs, `steps_done` of its `steps` finished `seconds` into it.
  double during_epoch(std::int64_t epoch, std::int64_t steps_done, std::int64_t steps, double seconds) const;

 private:
  double remaining_after(std::int64_t epoch, double training_pass) const;
  double mean_training() const;    // needs trainings_ > 0
  double mean_evaluation() const;  // 0 before any evaluation was timed

  std::int64_t epochs_, eval_every_;
  double training_seconds_ = 0.0, evaluation_seconds_ = 0.0;  // totals of what was timed
  std::int64_t trainings_ = 0, evaluations_ = 0;
};

}  // namespace kiln::train
