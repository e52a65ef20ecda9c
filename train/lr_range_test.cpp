#include "train/lr_range_test.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace kiln::train {

nlohmann::json LrRangePoint::to_json() const {
  return {{"learning_rate", learning_rate}, {"loss", loss}, {"smoothed_loss", smoothed_loss}};
}

double LrRangeResult::suggested_rate() const {
  return steepest >= 0 ? points[static_cast<std::size_t>(steepest)].learning_rate
                       : std::numeric_limits<double>::quiet_NaN();
}

double LrRangeResult::minimum_rate_over_10() const {
  return minimum >= 0 ? points[static_cast<std::size_t>(minimum)].learning_rate / 10
                      : std::numeric_limits<double>::quiet_NaN();
}

nlohmann::json LrRangeResult::to_json() const {
  nlohmann::json json{{"event", "lr_range_test"}, {"steps", points.size()}, {"diverged", diverged}};
  // JSON has no NaN: a missing suggestion is null.
  json["suggested_lr"] = steepest >= 0 ? nlohmann::json(suggested_rate()) : nlohmann::json(nullptr);
  json["minimum_lr_over_10"] =
      minimum >= 0 ? nlohmann::json(minimum_rate_over_10()) : nlohmann::json(nullptr);
  json["points"] = nlohmann::json::array();
  for (const LrRangePoint& point : points) json["points"].push_back(point.to_json());
  return json;
}

void check_range_options(const LrRangeOptions& options) {
  KILN_CHECK(std::isfinite(options.start) && options.start > 0,
             "lr range test (--lr-find-range): the start rate must be > 0, got ", options.start);
  KILN_CHECK(std::isfinite(options.end) && options.end > options.start,
             "lr range test (--lr-find-range): the end rate must be above the start rate (", options.start,
             "), got ", options.end);
  KILN_CHECK(options.steps >= 5, "lr range test (--lr-find-steps): needs at least 5 steps, got ",
             options.steps);
}

double range_rate(const LrRangeOptions& options, std::int64_t step) {
  if (options.steps <= 1) return options.start;
  const double fraction = static_cast<double>(step) / static_cast<double>(options.steps - 1);
  return options.start * std::pow(options.end / options.start, fraction);
}

double smoothing_for(std::int64_t steps) {
  return std::max(0.0, 1.0 - 1.0 / (kSmoothingSpan * static_cast<double>(steps)));
}

double LossAverage::add(double loss) {
  average_ = past_ * average_ + (1 - past_) * loss;
  owed_ *= past_;
  return average_ / (1 - owed_);
}

void choose_rates(LrRangeResult& result) {
  const std::vector<LrRangePoint>& points = result.points;
  result.minimum = result.steepest = -1;
  if (points.empty()) return;
  std::int64_t minimum = 0;
  for (std::size_t i = 1; i < points.size(); ++i) {
    if (points[i].smoothed_loss < points[static_cast<std::size_t>(minimum)].smoothed_loss)
      minimum = static_cast<std::int64_t>(i);
  }
  result.minimum = minimum;
  if (minimum < 4) return;
  // Each side of the difference reaches as far as the average does, so one noisy batch cannot make a slope.
  const std::int64_t reach =
      std::max<std::int64_t>(1, std::llround(kSmoothingSpan * static_cast<double>(points.size())));
  double steepest_slope = 0.0;
  for (std::int64_t i = std::max<std::int64_t>(1, minimum / 10); i < minimum; ++i) {
    const LrRangePoint& before = points[static_cast<std::size_t>(std::max<std::int64_t>(0, i - reach))];
    const LrRangePoint& after = points[static_cast<std::size_t>(std::min(minimum, i + reach))];
    const double slope = (after.smoothed_loss - before.smoothed_loss) /
                         (std::log10(after.learning_rate) - std::log10(before.learning_rate));
    if (slope < steepest_slope) {
      steepest_slope = slope;
      result.steepest = i;
    }
  }
}

LrRangeResult lr_range_test(const TrainConfig& config, const LrRangeOptions& options,
                            const std::function<void(const LrRangePoint&, std::int64_t step)>& on_point) {
  check_range_options(options);
  LrRangeResult result;
  LossAverage average(smoothing_for(options.steps));
  double lowest = std::numeric_limits<double>::infinity();
  train_at_rates(
      config, options.steps, [&](std::int64_t step) { return range_rate(options, step); },
      [&](const RateStep& step) {
        if (!std::isfinite(step.loss)) {  // blown up outright: the point would only spoil the curve
          result.diverged = true;
          return false;
        }
        const double smoothed = average.add(step.loss);
        result.points.push_back({step.learning_rate, step.loss, smoothed});
        if (on_point) on_point(result.points.back(), step.step);
        lowest = std::min(lowest, smoothed);
        if (smoothed > kDivergence * lowest) {
          result.diverged = true;
          return false;
        }
        return true;
      });
  choose_rates(result);
  return result;
}

}  // namespace kiln::train
