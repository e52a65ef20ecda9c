// Finite differences at raw-buffer level, for kernel tests that check a backward kernel against its own
// forward kernel without going through Tensor or the tape (tests/support/gradcheck.hpp does that).
//
//   auto numeric = numeric_gradient(x, [&] { return weighted_sum(weights, forward(x)); });
//   check_gradients_match(analytic_gx, numeric);
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace kiln::testing {

inline constexpr double kFiniteDifferenceStep = 1e-6;
inline constexpr double kFiniteDifferenceTolerance = 1e-6;  // relative to max(1, |gradient|)

// d loss / d values[i] for every i by central differences; `loss` reads `values`, which is restored.
inline std::vector<double> numeric_gradient(std::vector<double>& values,
                                            const std::function<double()>& loss) {
  std::vector<double> gradient(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double saved = values[i];
    values[i] = saved + kFiniteDifferenceStep;
    const double loss_plus = loss();
    values[i] = saved - kFiniteDifferenceStep;
    const double loss_minus = loss();
    values[i] = saved;
    gradient[i] = (loss_plus - loss_minus) / (2 * kFiniteDifferenceStep);
  }
  return gradient;
}

inline void check_gradients_match(const std::vector<double>& analytic, const std::vector<double>& numeric) {
  REQUIRE(analytic.size() == numeric.size());
  for (std::size_t i = 0; i < analytic.size(); ++i) {
    INFO("element ", i, ": analytic ", analytic[i], ", numeric ", numeric[i]);
    const double scale = std::max({1.0, std::abs(analytic[i]), std::abs(numeric[i])});
    CHECK(std::abs(analytic[i] - numeric[i]) <= kFiniteDifferenceTolerance * scale);
  }
}

// sum_j weights[j] * outputs[j]: a scalar loss whose gradient with respect to the outputs is `weights`.
inline double weighted_sum(const std::vector<double>& weights, const std::vector<double>& outputs) {
  double sum = 0.0;
  for (std::size_t j = 0; j < weights.size(); ++j) sum += weights[j] * outputs[j];
  return sum;
}

}  // namespace kiln::testing
