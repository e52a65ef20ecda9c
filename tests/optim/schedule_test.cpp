// Tests for the learning-rate schedules (optim/schedule.hpp): each against values worked by hand from
// its formula (one-cycle's start, peak and end included), warmup in front of another schedule, the
// json round trip, and the errors for bad arguments and bad json.
#include "optim/schedule.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <numbers>
#include <vector>

#include "core/error.hpp"

namespace optim_schedule_test {

using namespace kiln;
using namespace kiln::optim;
using nlohmann::json;

namespace {

constexpr double kTolerance = 1e-12;
const double kPi = std::numbers::pi;

// Half a cosine from `start` to `end`, at fraction f of the way.
double cosine(double start, double end, double f) {
  return end + (start - end) * (1.0 + std::cos(kPi * f)) / 2.0;
}

}  // namespace

TEST_CASE("optim schedule: constant") {
  const ConstantSchedule schedule(0.1);
  CHECK(schedule.learning_rate(0) == 0.1);
  CHECK(schedule.learning_rate(1000000) == 0.1);
}

// lr 1, gamma 0.5 every 3 steps: 1 for steps 0-2, 0.5 for 3-5, 0.25 from 6.
TEST_CASE("optim schedule: step decays by gamma every step_size steps") {
  const StepSchedule schedule(1.0, 3, 0.5);
  CHECK(schedule.learning_rate(0) == 1.0);
  CHECK(schedule.learning_rate(2) == 1.0);
  CHECK(schedule.learning_rate(3) == 0.5);
  CHECK(schedule.learning_rate(5) == 0.5);
  CHECK(schedule.learning_rate(6) == 0.25);
}

// Milestones 2 and 5 (given out of order), gamma 0.1: 1 before step 2, 0.1 from step 2, 0.01 from 5.
TEST_CASE("optim schedule: multistep decays by gamma at each milestone") {
  const MultiStepSchedule schedule(1.0, {5, 2}, 0.1);
  CHECK(schedule.learning_rate(0) == 1.0);
  CHECK(schedule.learning_rate(1) == 1.0);
  CHECK(schedule.learning_rate(2) == doctest::Approx(0.1).epsilon(kTolerance));
  CHECK(schedule.learning_rate(4) == doctest::Approx(0.1).epsilon(kTolerance));
  CHECK(schedule.learning_rate(5) == doctest::Approx(0.01).epsilon(kTolerance));
  CHECK(schedule.learning_rate(500) == doctest::Approx(0.01).epsilon(kTolerance));
  CHECK(schedule.to_json().at("milestones") == json{2, 5});
}

// lr 1 over 4 steps: (1 + cos(pi t / 4)) / 2 = 1, 0.8536, 0.5, 0.1464, then 0 from step 4 on.
TEST_CASE("optim schedule: cosine anneals from lr to min_lr and stays there") {
  const CosineSchedule schedule(1.0, 4);
  CHECK(schedule.learning_rate(0) == 1.0);
  CHECK(schedule.learning_rate(1) == doctest::Approx((1.0 + std::sqrt(0.5)) / 2.0).epsilon(kTolerance));
  CHECK(schedule.learning_rate(2) == doctest::Approx(0.5).epsilon(kTolerance));
  CHECK(schedule.learning_rate(3) == doctest::Approx((1.0 - std::sqrt(0.5)) / 2.0).epsilon(kTolerance));
  CHECK(schedule.learning_rate(4) == 0.0);
  CHECK(schedule.learning_rate(40) == 0.0);
  // With a floor of 0.1 the halfway point is 0.1 + 0.9 / 2.
  const CosineSchedule floored(1.0, 4, 0.1);
  CHECK(floored.learning_rate(2) == doctest::Approx(0.55).epsilon(kTolerance));
  CHECK(floored.learning_rate(9) == doctest::Approx(0.1).epsilon(kTolerance));
}

// max_lr 1 over 10 steps, pct_start 0.3: initial 1 / 25 = 0.04, final 0.04 / 1e4 = 4e-6.
// The peak is at step 0.3 * 10 - 1 = 2 and the end at step 9, so phase 1 is steps 0-2, phase 2 is 2-9.
TEST_CASE("optim schedule: one-cycle rises to max_lr at pct_start and falls to max_lr / (div * final_div)") {
  const OneCycleSchedule schedule(1.0, 10);
  CHECK(schedule.learning_rate(0) == doctest::Approx(0.04).epsilon(kTolerance));
  CHECK(schedule.learning_rate(1) ==
        doctest::Approx(0.52).epsilon(kTolerance));  // halfway up: (0.04 + 1) / 2
  CHECK(schedule.learning_rate(2) == doctest::Approx(1.0).epsilon(kTolerance));
  CHECK(schedule.learning_rate(3) == doctest::Approx(cosine(1.0, 4e-6, 1.0 / 7.0)).epsilon(kTolerance));
  CHECK(schedule.learning_rate(6) == doctest::Approx(cosine(1.0, 4e-6, 4.0 / 7.0)).epsilon(kTolerance));
  CHECK(schedule.learning_rate(9) == doctest::Approx(4e-6).epsilon(kTolerance));
  CHECK(schedule.learning_rate(100) == doctest::Approx(4e-6).epsilon(kTolerance));

  // Other factors, and a peak between steps: pct_start 0.25 of 10 puts it at step 1.5.
  const OneCycleSchedule other(0.5, 10, 0.25, 10.0, 100.0);
  CHECK(other.learning_rate(0) == doctest::Approx(0.05).epsilon(kTolerance));
  CHECK(other.learning_rate(1) == doctest::Approx(cosine(0.05, 0.5, 1.0 / 1.5)).epsilon(kTolerance));
  CHECK(other.learning_rate(2) == doctest::Approx(cosine(0.5, 5e-4, 0.5 / 7.5)).epsilon(kTolerance));
  CHECK(other.learning_rate(9) == doctest::Approx(5e-4).epsilon(kTolerance));
}

// Warmup over 4 steps scales by 1/4, 2/4, 3/4, 4/4, then leaves the inner schedule alone.
TEST_CASE("optim schedule: warmup ramps linearly into the inner schedule") {
  const WarmupSchedule constant(std::make_unique<ConstantSchedule>(1.0), 4);
  CHECK(constant.learning_rate(0) == 0.25);
  CHECK(constant.learning_rate(1) == 0.5);
  CHECK(constant.learning_rate(2) == 0.75);
  CHECK(constant.learning_rate(3) == 1.0);
  CHECK(constant.learning_rate(4) == 1.0);
  CHECK(constant.learning_rate(100) == 1.0);

  // Over a cosine of 4 steps with a warmup of 2: 1 * 1/2, then the cosine's own 0.8536, 0.5, ...
  const WarmupSchedule over_cosine(std::make_unique<CosineSchedule>(1.0, 4), 2);
  CHECK(over_cosine.learning_rate(0) == 0.5);
  CHECK(over_cosine.learning_rate(1) == doctest::Approx((1.0 + std::sqrt(0.5)) / 2.0).epsilon(kTolerance));
  CHECK(over_cosine.learning_rate(2) == doctest::Approx(0.5).epsilon(kTolerance));

  const WarmupSchedule none(std::make_unique<ConstantSchedule>(1.0), 0);
  CHECK(none.learning_rate(0) == 1.0);
}

TEST_CASE("optim schedule: every schedule survives a json round trip") {
  std::vector<std::unique_ptr<Schedule>> schedules;
  schedules.push_back(std::make_unique<ConstantSchedule>(0.3));
  schedules.push_back(std::make_unique<StepSchedule>(0.1, 7, 0.3));
  schedules.push_back(std::make_unique<MultiStepSchedule>(0.1, std::vector<std::int64_t>{10, 30}, 0.2));
  schedules.push_back(std::make_unique<CosineSchedule>(0.1, 50, 1e-4));
  schedules.push_back(std::make_unique<OneCycleSchedule>(0.4, 60, 0.2, 20.0, 1e3));
  schedules.push_back(std::make_unique<WarmupSchedule>(std::make_unique<OneCycleSchedule>(0.4, 60), 5));
  for (const auto& schedule : schedules) {
    const json stored = json::parse(schedule->to_json().dump());  // through text, as a checkpoint stores it
    INFO(stored.dump());
    const std::unique_ptr<Schedule> restored = schedule_from_json(stored);
    CHECK(restored->to_json() == schedule->to_json());
    for (std::int64_t step = 0; step < 80; ++step)
      CHECK(restored->learning_rate(step) == schedule->learning_rate(step));
  }
}

TEST_CASE("optim schedule: schedule_from_json names the field at fault") {
  CHECK_THROWS_WITH_AS(schedule_from_json(json{{"kind", "linear"}}),
                       doctest::Contains("schedule: unknown kind 'linear' (known: constant, step, multistep"),
                       Error);
  CHECK_THROWS_WITH_AS(schedule_from_json(json{{"lr", 0.1}}),
                       doctest::Contains("schedule: field 'kind' is missing"), Error);
  CHECK_THROWS_WITH_AS(schedule_from_json(json{{"kind", "cosine"}, {"lr", 0.1}, {"min_lr", 0.0}}),
                       doctest::Contains("schedule 'cosine': field 'total_steps' is missing"), Error);
  CHECK_THROWS_WITH_AS(
      schedule_from_json(json{{"kind", "cosine"}, {"lr", 0.1}, {"total_steps", 2.5}, {"min_lr", 0}}),
      doctest::Contains("field 'total_steps' should be an integer, got 2.5"), Error);
  CHECK_THROWS_WITH_AS(schedule_from_json(json{{"kind", "constant"}, {"lr", "high"}}),
                       doctest::Contains("schedule 'constant': field 'lr' should be a number, got \"high\""),
                       Error);
  CHECK_THROWS_WITH_AS(schedule_from_json(json{{"kind", "constant"}, {"lr", 0.1}, {"gamma", 0.5}}),
                       doctest::Contains("schedule 'constant': unknown field 'gamma'"), Error);
  CHECK_THROWS_WITH_AS(
      schedule_from_json(json{{"kind", "multistep"}, {"lr", 0.1}, {"milestones", {1, "x"}}, {"gamma", 0.1}}),
      doctest::Contains("field 'milestones' should hold integers"), Error);
  CHECK_THROWS_WITH_AS(
      schedule_from_json(json{{"kind", "warmup"}, {"warmup_steps", 3}, {"inner", {{"kind", "constant"}}}}),
      doctest::Contains("schedule 'constant': field 'lr' is missing"), Error);
}

TEST_CASE("optim schedule: constructors and learning_rate reject bad arguments") {
  CHECK_THROWS_WITH_AS(StepSchedule(0.1, 0, 0.5),
                       doctest::Contains("step schedule: step_size 0 should be >= 1"), Error);
  CHECK_THROWS_WITH_AS(CosineSchedule(0.1, 0), doctest::Contains("cosine schedule: total_steps 0"), Error);
  CHECK_THROWS_WITH_AS(ConstantSchedule(-1.0), doctest::Contains("constant schedule: lr -1"), Error);
  CHECK_THROWS_WITH_AS(MultiStepSchedule(0.1, {-2}, 0.1), doctest::Contains("milestone -2 is negative"),
                       Error);
  CHECK_THROWS_WITH_AS(OneCycleSchedule(0.1, 10, 1.5), doctest::Contains("pct_start 1.5 should be in [0, 1]"),
                       Error);
  CHECK_THROWS_WITH_AS(OneCycleSchedule(0.1, 10, 0.3, 0.0), doctest::Contains("div_factor 0"), Error);
  CHECK_THROWS_WITH_AS(WarmupSchedule(nullptr, 3), doctest::Contains("inner schedule is null"), Error);
  CHECK_THROWS_WITH_AS(CosineSchedule(0.1, 10).learning_rate(-1), doctest::Contains("step -1 is negative"),
                       Error);
}

}  // namespace optim_schedule_test
