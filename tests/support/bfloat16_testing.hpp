// bfloat16_testing: what the bfloat16 kernel tests share. Results are compared in bfloat16 steps (ulps):
// a bfloat16 reference computes in double and rounds once, so it must equal the double reference rounded
// to bfloat16 bit for bit, and lie within one step of the float reference rounded (a rounding through
// float first may land on the neighbouring value).
//
//   check_bfloat16_against_wider(actual, double_result, float_result, "forward");
//   const std::string difference = bfloat16_difference(actual, expected, /*max_steps=*/1);
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "core/bfloat16.hpp"

namespace kiln::testing {

// Each element converted on its own with To(value): exact when widening a bfloat16, one rounding when
// narrowing to one.
template <typename To, typename From>
std::vector<To> converted(const std::vector<From>& values) {
  return std::vector<To>(values.begin(), values.end());
}

// A predicate for std::count_if and friends (std::isnan itself is an overload set).
inline bool is_nan(bfloat16 v) { return std::isnan(static_cast<float>(v)); }

// How many bfloat16 steps lie between a and b: 0 for two NaNs and for -0 against +0, "far" for a NaN
// against a number. The bit patterns of one sign are ordered like the values, so a signed magnitude is a
// position on the number line.
inline std::int64_t bfloat16_steps_apart(bfloat16 a, bfloat16 b) {
  constexpr std::int64_t kFar = std::int64_t{1} << 20;
  if (is_nan(a) || is_nan(b)) return is_nan(a) && is_nan(b) ? 0 : kFar;
  const auto position = [](bfloat16 v) -> std::int64_t {
    const std::int64_t magnitude = v.bits & 0x7fff;
    return (v.bits & 0x8000) != 0 ? -magnitude : magnitude;
  };
  return std::llabs(position(a) - position(b));
}

// "" when actual and expected agree everywhere within max_steps bfloat16 steps (with max_steps 0: the same
// bits, any NaN matching any NaN, -0 differing from +0), else the first element that does not.
inline std::string bfloat16_difference(const std::vector<bfloat16>& actual,
                                       const std::vector<bfloat16>& expected, std::int64_t max_steps) {
  if (actual.size() != expected.size()) return "sizes differ";
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const bool both_nan = is_nan(actual[i]) && is_nan(expected[i]);
    const bool same = max_steps == 0 ? both_nan || actual[i].bits == expected[i].bits
                                     : bfloat16_steps_apart(actual[i], expected[i]) <= max_steps;
    if (!same) {
      std::ostringstream message;
      message << "element " << i << " of " << actual.size() << ": got " << static_cast<float>(actual[i])
              << " (bits 0x" << std::hex << actual[i].bits << "), expected "
              << static_cast<float>(expected[i]) << " (bits 0x" << expected[i].bits << std::dec
              << "), more than " << max_steps << " bfloat16 steps apart";
      return message.str();
    }
  }
  return "";
}

// A bfloat16 reference's result against the double and float references run on the same (widened)
// inputs: the double result rounded once, bit for bit; the float result rounded, within one step.
inline void check_bfloat16_against_wider(const std::vector<bfloat16>& actual,
                                         const std::vector<double>& from_double,
                                         const std::vector<float>& from_float, const std::string& what) {
  const std::string exact = bfloat16_difference(actual, converted<bfloat16>(from_double), 0);
  CHECK_MESSAGE(exact.empty(), what, " vs the double reference: ", exact);
  const std::string close = bfloat16_difference(actual, converted<bfloat16>(from_float), 1);
  CHECK_MESSAGE(close.empty(), what, " vs the float reference: ", close);
}

}  // namespace kiln::testing
