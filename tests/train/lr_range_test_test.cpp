// The learning-rate range test (train/lr_range_test.hpp): its rates, its moving average and its choice of
// rate on made-up curves, then whole tests on a tiny folder, one that diverges, and its refusals.
#include "train/lr_range_test.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "core/error.hpp"
#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"

namespace train_lr_range_test_test {

using namespace kiln;
namespace fs = std::filesystem;

namespace {

// Points at rates 10^-6 .. 10^0 (61 of them, 0.1 decade apart) whose smoothed loss is loss_at(log10 rate).
template <class Curve>
train::LrRangeResult made_up_curve(Curve loss_at) {
  train::LrRangeResult result;
  for (int i = 0; i <= 60; ++i) {
    const double decade = -6.0 + 0.1 * i;
    result.points.push_back({std::pow(10.0, decade), loss_at(decade), loss_at(decade)});
  }
  return result;
}

}  // namespace

TEST_CASE("lr range test: the rates grow geometrically from the start to the end") {
  const train::LrRangeOptions options{.start = 1e-6, .end = 1.0, .steps = 7};
  CHECK(train::range_rate(options, 0) == doctest::Approx(1e-6));
  CHECK(train::range_rate(options, 6) == doctest::Approx(1.0));
  for (std::int64_t step = 1; step < 7; ++step) {
    INFO("step ", step);
    CHECK(train::range_rate(options, step) / train::range_rate(options, step - 1) == doctest::Approx(10.0));
  }
}

TEST_CASE("lr range test: the moving average is bias-corrected and spans a twentieth of the steps") {
  CHECK(train::smoothing_for(100) == doctest::Approx(0.8));
  CHECK(train::smoothing_for(1000) == doctest::Approx(0.98));
  CHECK(train::smoothing_for(10) == 0.0);  // a span under one step: no averaging
  train::LossAverage constant(0.9);
  for (int i = 0; i < 4; ++i) CHECK(constant.add(2.5) == doctest::Approx(2.5));
  // past 0.5: 3, then (0.25 * 3 + 0.5 * 6) / (1 - 0.25) = 5.
  train::LossAverage two(0.5);
  CHECK(two.add(3.0) == doctest::Approx(3.0));
  CHECK(two.add(6.0) == doctest::Approx(5.0));
}

TEST_CASE("lr range test: the suggestion is the steepest fall before the minimum") {
  // Flat at 2, falling fastest at 10^-3 (a logistic step down to 1), then rising again past 10^-1.
  train::LrRangeResult result = made_up_curve([](double decade) {
    const double fallen = 1.0 / (1.0 + std::exp(-4.0 * (decade + 3.0)));
    return 2.0 - fallen + (decade > -1.0 ? 3.0 * (decade + 1.0) * (decade + 1.0) : 0.0);
  });
  train::choose_rates(result);
  REQUIRE(result.steepest >= 0);
  CHECK(std::log10(result.suggested_rate()) == doctest::Approx(-3.0).epsilon(0.05));
  CHECK(std::log10(result.points[static_cast<std::size_t>(result.minimum)].learning_rate) ==
        doctest::Approx(-1.0).epsilon(0.15));
  CHECK(result.minimum_rate_over_10() ==
        doctest::Approx(result.points[static_cast<std::size_t>(result.minimum)].learning_rate / 10));
}

TEST_CASE("lr range test: a loss that never falls gets no suggestion") {
  train::LrRangeResult result = made_up_curve([](double decade) { return 3.0 + decade; });  // rising
  train::choose_rates(result);
  CHECK(result.minimum == 0);
  CHECK(result.steepest == -1);
  CHECK(std::isnan(result.suggested_rate()));
}

TEST_CASE("lr range test: a whole test trains at rising rates and writes nothing") {
  testing::ScratchFolder scratch("kiln-lr-range-test", "whole");
  const fs::path data = testing::make_two_class_data(scratch.path() / "data", 8, 2);
  const train::TrainConfig config = testing::tiny_lenet5_config(data, scratch.path() / "run", 3);
  std::vector<std::int64_t> seen;
  const train::LrRangeResult result =
      train::lr_range_test(config, {.start = 1e-5, .end = 1e-1, .steps = 12},
                           [&](const train::LrRangePoint&, std::int64_t step) { seen.push_back(step); });
  // 16 images in batches of 4: the 12 steps run through three epochs' batches.
  REQUIRE(result.points.size() == 12);
  CHECK_FALSE(result.diverged);
  CHECK(seen.size() == 12);
  CHECK(seen.back() == 11);
  CHECK(result.points.front().learning_rate == doctest::Approx(1e-5));
  CHECK(result.points.back().learning_rate == doctest::Approx(1e-1));
  for (std::size_t i = 1; i < result.points.size(); ++i) {
    CHECK(result.points[i].learning_rate > result.points[i - 1].learning_rate);
    CHECK(std::isfinite(result.points[i].loss));
  }
  CHECK(result.minimum >= 0);
  CHECK_FALSE(fs::exists(scratch.path() / "run"));  // no checkpoint, no metrics, no folder
  // The same seed gives the same losses.
  const train::LrRangeResult again = train::lr_range_test(config, {.start = 1e-5, .end = 1e-1, .steps = 12});
  REQUIRE(again.points.size() == result.points.size());
  for (std::size_t i = 0; i < result.points.size(); ++i) CHECK(again.points[i].loss == result.points[i].loss);
}

TEST_CASE("lr range test: rates far too large blow the loss up, and the test stops there") {
  testing::ScratchFolder scratch("kiln-lr-range-test", "diverges");
  const fs::path data = testing::make_two_class_data(scratch.path() / "data", 8, 2);
  const train::TrainConfig config = testing::tiny_lenet5_config(data, scratch.path() / "run", 3);
  const train::LrRangeResult result = train::lr_range_test(config, {.start = 1e-3, .end = 1e6, .steps = 40});
  CHECK(result.diverged);
  CHECK(result.points.size() < 40);
  for (const train::LrRangePoint& point : result.points) CHECK(std::isfinite(point.loss));
}

TEST_CASE("lr range test: a start rate of 0, an end below the start and too few steps are refused") {
  testing::ScratchFolder scratch("kiln-lr-range-test", "refused");
  const fs::path data = testing::make_two_class_data(scratch.path() / "data", 4, 2);
  const train::TrainConfig config = testing::tiny_lenet5_config(data, scratch.path() / "run", 3);
  CHECK_THROWS_WITH_AS(train::lr_range_test(config, {.start = 0.0, .end = 1.0, .steps = 10}),
                       doctest::Contains("start rate must be > 0"), Error);
  CHECK_THROWS_WITH_AS(train::lr_range_test(config, {.start = 1e-3, .end = 1e-4, .steps = 10}),
                       doctest::Contains("end rate must be above the start rate"), Error);
  CHECK_THROWS_WITH_AS(train::lr_range_test(config, {.start = 1e-3, .end = 1.0, .steps = 4}),
                       doctest::Contains("at least 5 steps"), Error);
}

}  // namespace train_lr_range_test_test
