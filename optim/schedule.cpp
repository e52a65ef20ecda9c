#include "optim/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numbers>
#include <string>
#include <utility>

#include "core/error.hpp"
#include "optim/json_fields.hpp"

namespace kiln::optim {
namespace {

void check_rate(double lr, const char* schedule, const char* field) {
  KILN_CHECK(std::isfinite(lr) && lr >= 0.0, schedule, " schedule: ", field, " ", lr,
             " should be a finite number >= 0");
}

void check_step(std::int64_t step, const char* schedule) {
  KILN_CHECK(step >= 0, schedule, " schedule: step ", step, " is negative (steps count from 0)");
}

// Half a cosine from `start` (fraction 0) to `end` (fraction 1), flat at both ends.
double cosine_between(double start, double end, double fraction) {
  return end + (start - end) * (1.0 + std::cos(std::numbers::pi * fraction)) / 2.0;
}

// How far `t` is through the phase [start, end], from 0 to 1; an empty phase counts as finished.
double phase_fraction(double t, double start, double end) {
  return end > start ? (t - start) / (end - start) : 1.0;
}

}  // namespace

// ---- constant --------------------------------------------------------------------------------------------

ConstantSchedule::ConstantSchedule(double lr) : lr_(lr) { check_rate(lr, "constant", "lr"); }

double ConstantSchedule::learning_rate(std::int64_t step) const {
  check_step(step, "constant");
  return lr_;
}

nlohmann::json ConstantSchedule::to_json() const { return {{"kind", "constant"}, {"lr", lr_}}; }

// ---- step ------------------------------------------------------------------------------------------------

StepSchedule::StepSchedule(double lr, std::int64_t step_size, double gamma)
    : lr_(lr), step_size_(step_size), gamma_(gamma) {
  check_rate(lr, "step", "lr");
  KILN_CHECK(step_size >= 1, "step schedule: step_size ", step_size, " should be >= 1");
  check_rate(gamma, "step", "gamma");
}

double StepSchedule::learning_rate(std::int64_t step) const {
  check_step(step, "step");
  return lr_ * std::pow(gamma_, static_cast<double>(step / step_size_));
}

nlohmann::json StepSchedule::to_json() const {
  return {{"kind", "step"}, {"lr", lr_}, {"step_size", step_size_}, {"gamma", gamma_}};
}

// ---- multistep -------------------------------------------------------------------------------------------

MultiStepSchedule::MultiStepSchedule(double lr, std::vector<std::int64_t> milestones, double gamma)
    : lr_(lr), milestones_(std::move(milestones)), gamma_(gamma) {
  check_rate(lr, "multistep", "lr");
  check_rate(gamma, "multistep", "gamma");
  for (std::int64_t milestone : milestones_) {
    KILN_CHECK(milestone >= 0, "multistep schedule: milestone ", milestone, " is negative");
  }
  std::sort(milestones_.begin(), milestones_.end());
}

double MultiStepSchedule::learning_rate(std::int64_t step) const {
  check_step(step, "multistep");
  // Milestones are sorted, so those reached are the ones before the first milestone > step.
  const auto reached = std::upper_bound(milestones_.begin(), milestones_.end(), step) - milestones_.begin();
  return lr_ * std::pow(gamma_, static_cast<double>(reached));
}

nlohmann::json MultiStepSchedule::to_json() const {
  return {{"kind", "multistep"}, {"lr", lr_}, {"milestones", milestones_}, {"gamma", gamma_}};
}

// ---- cosine ----------------------------------------------------------------------------------------------

CosineSchedule::CosineSchedule(double lr, std::int64_t total_steps, double min_lr)
    : lr_(lr), total_steps_(total_steps), min_lr_(min_lr) {
  check_rate(lr, "cosine", "lr");
  KILN_CHECK(total_steps >= 1, "cosine schedule: total_steps ", total_steps, " should be >= 1");
  check_rate(min_lr, "cosine", "min_lr");
}

double CosineSchedule::learning_rate(std::int64_t step) const {
  check_step(step, "cosine");
  const std::int64_t t = std::min(step, total_steps_);
  return cosine_between(lr_, min_lr_, static_cast<double>(t) / static_cast<double>(total_steps_));
}

nlohmann::json CosineSchedule::to_json() const {
  return {{"kind", "cosine"}, {"lr", lr_}, {"total_steps", total_steps_}, {"min_lr", min_lr_}};
}

// ---- one-cycle -------------------------------------------------------------------------------------------

OneCycleSchedule::OneCycleSchedule(double max_lr, std::int64_t total_steps, double pct_start,
                                   double div_factor, double final_div_factor)
    : max_lr_(max_lr),
      total_steps_(total_steps),
      pct_start_(pct_start),
      div_factor_(div_factor),
      final_div_factor_(final_div_factor) {
  check_rate(max_lr, "onecycle", "max_lr");
  KILN_CHECK(total_steps >= 1, "onecycle schedule: total_steps ", total_steps, " should be >= 1");
  KILN_CHECK(pct_start >= 0.0 && pct_start <= 1.0, "onecycle schedule: pct_start ", pct_start,
             " should be in [0, 1]");
  KILN_CHECK(std::isfinite(div_factor) && div_factor > 0.0, "onecycle schedule: div_factor ", div_factor,
             " should be a finite number > 0");
  KILN_CHECK(std::isfinite(final_div_factor) && final_div_factor > 0.0,
             "onecycle schedule: final_div_factor ", final_div_factor, " should be a finite number > 0");
}

double OneCycleSchedule::learning_rate(std::int64_t step) const {
  check_step(step, "onecycle");
  const double initial_lr = max_lr_ / div_factor_;
  const double final_lr = initial_lr / final_div_factor_;
  // Where PyTorch puts the phase ends: the peak at the (possibly fractional) step pct_start * total - 1,
  // the bottom at the last step.
  const double peak_step = pct_start_ * static_cast<double>(total_steps_) - 1.0;
  const double last_step = static_cast<double>(total_steps_ - 1);
  const double t = std::min(static_cast<double>(step), last_step);
  if (t <= peak_step) return cosine_between(initial_lr, max_lr_, phase_fraction(t, 0.0, peak_step));
  return cosine_between(max_lr_, final_lr, phase_fraction(t, peak_step, last_step));
}

nlohmann::json OneCycleSchedule::to_json() const {
  return {{"kind", "onecycle"},      {"max_lr", max_lr_},         {"total_steps", total_steps_},
          {"pct_start", pct_start_}, {"div_factor", div_factor_}, {"final_div_factor", final_div_factor_}};
}

// ---- warmup ----------------------------------------------------------------------------------------------

WarmupSchedule::WarmupSchedule(std::unique_ptr<Schedule> inner, std::int64_t warmup_steps)
    : inner_(std::move(inner)), warmup_steps_(warmup_steps) {
  KILN_CHECK(inner_ != nullptr, "warmup schedule: the inner schedule is null");
  KILN_CHECK(warmup_steps >= 0, "warmup schedule: warmup_steps ", warmup_steps, " should be >= 0");
}

double WarmupSchedule::learning_rate(std::int64_t step) const {
  check_step(step, "warmup");
  const double rate = inner_->learning_rate(step);
  if (step >= warmup_steps_) return rate;
  return rate * static_cast<double>(step + 1) / static_cast<double>(warmup_steps_);
}

nlohmann::json WarmupSchedule::to_json() const {
  return {{"kind", "warmup"}, {"warmup_steps", warmup_steps_}, {"inner", inner_->to_json()}};
}

// ---- from json -------------------------------------------------------------------------------------------

std::unique_ptr<Schedule> schedule_from_json(const nlohmann::json& json) {
  const std::string kind = string_field(json, "kind", "schedule");
  const std::string where = "schedule '" + kind + "'";
  if (kind == "constant") {
    reject_unknown_fields(json, {"kind", "lr"}, where);
    return std::make_unique<ConstantSchedule>(number_field(json, "lr", where));
  }
  if (kind == "step") {
    reject_unknown_fields(json, {"kind", "lr", "step_size", "gamma"}, where);
    return std::make_unique<StepSchedule>(number_field(json, "lr", where),
                                          integer_field(json, "step_size", where),
                                          number_field(json, "gamma", where));
  }
  if (kind == "multistep") {
    reject_unknown_fields(json, {"kind", "lr", "milestones", "gamma"}, where);
    const nlohmann::json& stored = json_field(json, "milestones", where);
    KILN_CHECK(stored.is_array(), where, ": field 'milestones' should be an array, got ", stored.dump());
    std::vector<std::int64_t> milestones;
    for (const nlohmann::json& milestone : stored) {
      KILN_CHECK(milestone.is_number_integer(), where, ": field 'milestones' should hold integers, got ",
                 milestone.dump());
      milestones.push_back(milestone.get<std::int64_t>());
    }
    return std::make_unique<MultiStepSchedule>(number_field(json, "lr", where), std::move(milestones),
                                               number_field(json, "gamma", where));
  }
  if (kind == "cosine") {
    reject_unknown_fields(json, {"kind", "lr", "total_steps", "min_lr"}, where);
    return std::make_unique<CosineSchedule>(number_field(json, "lr", where),
                                            integer_field(json, "total_steps", where),
                                            number_field(json, "min_lr", where));
  }
  if (kind == "onecycle") {
    reject_unknown_fields(
        json, {"kind", "max_lr", "total_steps", "pct_start", "div_factor", "final_div_factor"}, where);
    return std::make_unique<OneCycleSchedule>(
        number_field(json, "max_lr", where), integer_field(json, "total_steps", where),
        number_field(json, "pct_start", where), number_field(json, "div_factor", where),
        number_field(json, "final_div_factor", where));
  }
  if (kind == "warmup") {
    reject_unknown_fields(json, {"kind", "warmup_steps", "inner"}, where);
    return std::make_unique<WarmupSchedule>(schedule_from_json(json_field(json, "inner", where)),
                                            integer_field(json, "warmup_steps", where));
  }
  fail("schedule: unknown kind '", kind, "' (known: constant, step, multistep, cosine, onecycle, warmup)");
}

}  // namespace kiln::optim
