// Learning-rate schedules: the learning rate as a pure function of the optimizer step.
//
// `step` is 0-based and counts optimizer steps across epochs (epoch * steps_per_epoch + step in epoch),
// so a schedule needs no state of its own and a resumed run recomputes the same rate. Schedules written
// in epochs are converted by the caller (a milestone at epoch 30 is step 30 * steps_per_epoch).
//
// Each schedule stores itself as json ({"kind": "cosine", "lr": 0.1, "total_steps": 1000, "min_lr": 0})
// and schedule_from_json() rebuilds it, so a checkpoint records the schedule it was trained under.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <vector>

namespace kiln::optim {

class Schedule {
 public:
  virtual ~Schedule() = default;
  virtual double learning_rate(std::int64_t step) const = 0;
  virtual nlohmann::json to_json() const = 0;
};

// lr, always.
class ConstantSchedule : public Schedule {
 public:
  explicit ConstantSchedule(double lr);
  double learning_rate(std::int64_t step) const override;
  nlohmann::json to_json() const override;

 private:
  double lr_;
};

// lr * gamma^floor(step / step_size): decays by gamma every step_size steps (PyTorch's StepLR).
class StepSchedule : public Schedule {
 public:
  StepSchedule(double lr, std::int64_t step_size, double gamma);
  double learning_rate(std::int64_t step) const override;
  nlohmann::json to_json() const override;

 private:
  double lr_;
  std::int64_t step_size_;
  double gamma_;
};

// lr * gamma^(number of milestones <= step): decays by gamma on reaching each milestone (MultiStepLR).
class MultiStepSchedule : public Schedule {
 public:
  MultiStepSchedule(double lr, std::vector<std::int64_t> milestones, double gamma);
  double learning_rate(std::int64_t step) const override;
  nlohmann::json to_json() const override;

 private:
  double lr_;
  std::vector<std::int64_t> milestones_;  // ascending
  double gamma_;
};

// min_lr + (lr - min_lr) * (1 + cos(pi * step / total_steps)) / 2, then min_lr from total_steps on
// (PyTorch's CosineAnnealingLR with T_max = total_steps, held at the bottom instead of rising again).
class CosineSchedule : public Schedule {
 public:
  CosineSchedule(double lr, std::int64_t total_steps, double min_lr = 0.0);
  double learning_rate(std::int64_t step) const override;
  nlohmann::json to_json() const override;

 private:
  double lr_;
  std::int64_t total_steps_;
  double min_lr_;
};

// The one-cycle policy (Smith & Topin), as PyTorch's OneCycleLR with cosine annealing and two phases:
//   initial_lr = max_lr / div_factor,  final_lr = initial_lr / final_div_factor
//   phase 1, steps 0 .. pct_start * total_steps - 1:           initial_lr rises to max_lr
//   phase 2, from there to the last step, total_steps - 1:     max_lr falls to final_lr
// each along half a cosine: lr = end + (start - end) * (1 + cos(pi * fraction of the phase)) / 2.
// Steps past the last stay at final_lr.
class OneCycleSchedule : public Schedule {
 public:
  OneCycleSchedule(double max_lr, std::int64_t total_steps, double pct_start = 0.3, double div_factor = 25.0,
                   double final_div_factor = 1e4);
  double learning_rate(std::int64_t step) const override;
  nlohmann::json to_json() const override;

 private:
  double max_lr_;
  std::int64_t total_steps_;
  double pct_start_, div_factor_, final_div_factor_;
};

// Linear warmup in front of any schedule: inner(step) * (step + 1) / warmup_steps for the first
// warmup_steps steps, then inner(step). The first step runs at inner(0) / warmup_steps, the last warmup
// step at the full inner rate.
class WarmupSchedule : public Schedule {
 public:
  WarmupSchedule(std::unique_ptr<Schedule> inner, std::int64_t warmup_steps);
  double learning_rate(std::int64_t step) const override;
  nlohmann::json to_json() const override;

 private:
  std::unique_ptr<Schedule> inner_;
  std::int64_t warmup_steps_;
};

// Rebuilds a schedule from its to_json(); throws kiln::Error naming the field at fault.
std::unique_ptr<Schedule> schedule_from_json(const nlohmann::json& json);

}  // namespace kiln::optim
