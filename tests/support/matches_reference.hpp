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
#include <type_traits>
#include <vector>

#include "core/tensor.hpp"

namespace kiln::testing {

struct Tolerance {
  double atol;
  double rtol;
  static constexpr Tolerance float64() { return {1e-12, 1e-10}; }
  static constexpr Tolerance float32() { return {1e-5, 1e-4}; }
  static constexpr Tolerance bfloat16() { return {1e-2, 1e-2}; }
  // float32() or float64(), by the element type.
  template <typename T>
  static constexpr Tolerance of() {
    return sizeof(T) == sizeof(float) ? float32() : float64();
  }
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

// "" when actual and expected hold the same values exactly (a NaN matching any NaN, -0 differing from +0),
// else the first difference: for kernels that must equal their reference, not merely come close.
template <typename T>
std::string first_difference(const std::vector<T>& actual, const std::vector<T>& expected) {
  if (actual.size() != expected.size()) return "sizes differ";
  for (std::size_t i = 0; i < actual.size(); ++i) {
    bool same = actual[i] == expected[i];
    if constexpr (std::is_floating_point_v<T>) {
      same = (std::isnan(actual[i]) && std::isnan(expected[i])) ||
             (same && std::signbit(actual[i]) == std::signbit(expected[i]));
    }
    if (!same) {
      std::ostringstream message;
      message << "element " << i << " of " << actual.size() << ": got " << actual[i] << ", reference "
              << expected[i];
      return message.str();
    }
  }
  return "";
}

inline MatchReport matches_reference(const Tensor& actual, const Tensor& expected, Tolerance tolerance) {
  if (actual.shape() != expected.shape()) {
    return {false, "shape " + actual.shape().str() + " differs from the reference's " + expected.shape().str(), 0.0};
  }
  const std::vector<double> a = actual.to_vector<double>(), e = expected.to_vector<double>();
  return matches_reference(a.data(), e.data(), actual.numel(), tolerance);
}

}  // namespace kiln::testing
