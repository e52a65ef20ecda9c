// The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017; the
// `lr_find` of fastai and PyTorch Lightning): train a fresh model for about a hundred steps while the rate
// grows geometrically from far too small to far too large, and watch the training loss. It stays flat while
// the rate is too small to move the weights, falls once the rate is useful, and blows up once it is too
// large. A good peak rate for a run lies on the falling stretch.
//
//   smoothed loss
//    |_____________
//    |             \                     /   diverged: the test stops
//    |              \                   /
//    |               \_______     _____/
//    |                       \___/
//    +----------------|----------|---------- log10(rate)
//                  steepest   minimum
//
// Each step's loss is one batch's, so it is noisy: the curve is an exponential moving average with bias
// correction (Adam's) over about a twentieth of the steps, so it spans the same stretch of log(rate)
// whatever the step count. (fastai's fixed 0.98 averages about the last 50 steps: in a 100-step test over 8
// decades that puts the average about 4 decades behind the rate it is drawn at.) The test stops once the
// average exceeds kDivergence times its lowest value, or the loss is not finite. The suggestion is the
// steepest point of the smoothed curve, by its slope against log10(rate), before its minimum; the minimum's
// rate divided by 10, the older rule of thumb, is reported beside it. Both are hints for --lr, not a
// measurement of the best one: a full run at the suggested rate decays it with its schedule.
//
// The steps train as `kiln train` would with the same options (train_at_rates in train/trainer.hpp), so
// the test sees the same data, augmentation, batch size, optimizer, momentum and weight decay; its schedule
// is ignored. Nothing is written to disk.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <vector>

#include "train/trainer.hpp"

namespace kiln::train {

struct LrRangeOptions {
  double start = 1e-7;  // the first step's rate
  double end = 10.0;    // the last step's rate, if the loss has not diverged by then
  // Steps from start to end, as fastai's. More give a smoother curve, not a different suggestion (ResNet-20
  // on the bundled subset: 0.0009 at 100 steps, 0.0005 at 200, 0.0004 at 300).
  std::int64_t steps = 100;
};

// The test stops once the smoothed loss exceeds this many times its lowest value (fastai's 4).
inline constexpr double kDivergence = 4.0;
// The moving average spans about this fraction of the test's steps.
inline constexpr double kSmoothingSpan = 0.05;

struct LrRangePoint {
  double learning_rate, loss, smoothed_loss;
  nlohmann::json to_json() const;
};

struct LrRangeResult {
  std::vector<LrRangePoint> points;  // one per step taken, rates increasing
  bool diverged = false;             // stopped before `steps` because the loss blew up
  std::int64_t steepest = -1;        // index into points of the suggestion (-1: too few points)
  std::int64_t minimum = -1;         // index of the lowest smoothed loss
  double suggested_rate() const;     // points[steepest].learning_rate (NaN when steepest < 0)
  double minimum_rate_over_10() const;
  nlohmann::json to_json() const;
};

// Throws kiln::Error naming what is wrong with `options`: a start rate not above 0, an end rate not above
// the start, fewer than 5 steps.
void check_range_options(const LrRangeOptions& options);

// The rate of step `step` of `options`: start * (end / start)^(step / (steps - 1)).
double range_rate(const LrRangeOptions& options, std::int64_t step);

// The moving average's weight on the past for a test of `steps` steps: 1 - 1 / (kSmoothingSpan * steps),
// at least 0 (0.8 for 100 steps, 0.98 for 1000).
double smoothing_for(std::int64_t steps);

// The bias-corrected moving average of the losses added so far, with weight `past` on the past: after the
// first loss it is that loss, and a constant sequence keeps it that constant.
class LossAverage {
 public:
  explicit LossAverage(double past) : past_(past) {}
  double add(double loss);  // adds a loss and returns the average, it included

 private:
  double past_;
  double average_ = 0.0, owed_ = 1.0;  // owed: past^n, the share the zero start still holds
};

// Fills in steepest and minimum from points (which hold their smoothed losses). The slope at point i is
// the difference of the smoothed loss over log10(rate) between the points as far before and after it as
// the average reaches (kSmoothingSpan of the points), taken between the minimum and the first tenth of the
// points before it, where the average is still settling. A minimum within the first 4 points (a loss that
// never falls) leaves steepest at -1.
void choose_rates(LrRangeResult& result);

// Runs the test: config as `kiln train` takes it (its --lr, --epochs and --schedule are not used).
// `on_point` sees each point as it comes (a progress bar, JSON lines). Throws kiln::Error on bad options
// (check_range_options) and on whatever train_at_rates throws (bad data).
LrRangeResult lr_range_test(const TrainConfig& config, const LrRangeOptions& options,
                            const std::function<void(const LrRangePoint&, std::int64_t step)>& on_point = {});

}  // namespace kiln::train
