// matches_reference: compares an optimized kernel's output with the reference kernel's, element by
// element, under a tolerance stated per precision, and reports the worst element.
//
//   auto report = matches_reference(fast_output, reference_output, Tolerance::float32());
//   CHECK_MESSAGE(report.ok, report.message);
#pragma once

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace kiln::testing {

struct Tolerance {
  double atol;
  double rtol;
  static constexpr Tolerance float64() { return {1e-12, 1e-10}; }
  static constexpr Tolerance float32() { return {1e-5, 1e-4}; }
  static constexpr Tolerance bfloat16() { return {1e-2, 1e-2}; }
};

struct MatchReport {
  bool ok = true;
  std::string message;
  double max_abs_error = 0.0;
};

// |actual - expected| <= atol + rtol * |expected| everywhere; NaN matches only NaN, an infinity only itself.
template <typename T>
MatchReport matches_reference(const T* actual, const T* expected, std::int64_t n, Tolerance tolerance) {
  MatchReport report;
  double worst_excess = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double a = static_cast<double>(actual[i]), e = static_cast<double>(expected[i]);
    if (std::isnan(a) && std::isnan(e)) continue;
    if (a == e) continue;  // also equal infinities, whose difference would be NaN
    const double error = std::fabs(a - e);
    report.max_abs_error = std::isnan(error) ? INFINITY : std::max(report.max_abs_error, error);
    const double excess = error - (tolerance.atol + tolerance.rtol * std::fabs(e));
    if (!(excess <= 0.0) && (report.ok || excess > worst_excess || std::isnan(excess))) {
      worst_excess = std::isnan(excess) ? INFINITY : excess;
      std::ostringstream message;
      message << "element " << i << " of " << n << ": got " << a << ", reference " << e << " (|error| " << error
              << ", allowed " << tolerance.atol + tolerance.rtol * std::fabs(e) << ")";
      report.ok = false;
      report.message = message.str();
    }
  }
  return report;
}

inline MatchReport matches_reference(const Tensor& actual, const Tensor& expected, Tolerance tolerance) {
  if (actual.shape() != expected.shape()) {
    return {false, "shape " + actual.shape().str() + " differs from the reference's " + expected.shape().str(), 0.0};
  }
  const std::vector<double> a = actual.to_vector<double>(), e = expected.to_vector<double>();
  return matches_reference(a.data(), e.data(), actual.numel(), tolerance);
}

}  // namespace kiln::testing
