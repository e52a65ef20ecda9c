// ladder_testing: how a kernel-ladder step is judged (kernels/gemm/ladder, kernels/conv2d/ladder), wherever
// it runs: on a GPU (tests/cuda/*_ladder_test.cpp) or in the CPU emulator (tests/emulation/). The check draws
// fresh operands, hands them to a runner (which puts them where the step can read them, launches it and
// returns its output), and compares the output with the reference computed in double on the very operand
// values the step saw, within an error bound that scales with the size of the sum, not a fixed tolerance.
//
// An output element is a sum of `terms` products. Its error is measured against `magnitude`, the same sum
// taken over absolute values (|alpha| sum |a| |b| + |beta| |c|): the scale at which float summation and
// operand rounding act, so the bound holds alike for an element near zero (cancellation) and a large one.
//
//   bound = 2 * operand_rounding(precision)   each operand of a product rounded once (tf32), or not at all
//         + (terms + 4) * 2^-23               float summation: one rounding per addition, the alpha/beta
//                                             epilogue; 2^-23, not 2^-24, because tensor cores may truncate
//
// A correct kernel stays well inside it whatever its summation order; an index error, a lost tile or a
// missing edge is off by the size of a whole term, orders of magnitude outside it.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/error.hpp"
#include "kernels/ladder/precision.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace kiln::testing {

inline double ladder_bound(kernels::ladder::Precision precision, std::int64_t terms) {
  return 2.0 * kernels::ladder::operand_rounding(precision) + static_cast<double>(terms + 4) * 0x1p-23;
}

// Operand values for a step of `precision`, uniform in [-1, 1): floats, already rounded to bfloat16 for a
// bf16 step, so the reference (in double, from these values) and the step multiply the same numbers.
inline std::vector<float> ladder_operands(kernels::ladder::Precision precision, std::int64_t count,
                                          std::uint64_t seed) {
  std::vector<float> values = random_floats(count, seed);
  if (precision == kernels::ladder::Precision::Bf16) {
    for (float& v : values) v = static_cast<float>(bfloat16(v));
  }
  return values;
}

inline std::vector<bfloat16> to_bfloat16(const std::vector<float>& values) {
  std::vector<bfloat16> rounded;
  rounded.reserve(values.size());
  for (const float v : values) rounded.push_back(bfloat16(v));
  return rounded;
}

inline std::vector<double> widened(const std::vector<float>& values) {
  return std::vector<double>(values.begin(), values.end());
}
inline std::vector<double> absolute(std::vector<double> values) {
  for (double& v : values) v = std::abs(v);
  return values;
}

// The message of the kiln::Error a step's launch throws for `problem` (a GEMM Problem or a Conv2dGeometry)
// with null operands, or "" when it throws none: how the tests see a launcher refuse, before any GPU work.
template <class Step, class Problem>
std::string launch_error(const Step& step, const Problem& problem) {
  try {
    step.launch(problem, nullptr, nullptr, nullptr);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

struct LadderReport {
  bool ok = true;
  std::string message;  // the worst element, for the failure message
};

// Checks every element: finite, and |actual - expected| <= bound * magnitude (plus a floor of 2^-100 for an
// all-zero sum), plus output_rounding * |expected| where the output was rounded once more after the sum (to
// bfloat16: 2^-8). Reports the worst element and how many failed.
inline LadderReport within_ladder_bound(const std::vector<float>& actual, const std::vector<double>& expected,
                                        const std::vector<double>& magnitude, double bound,
                                        double output_rounding = 0.0) {
  if (actual.size() != expected.size()) return {false, "sizes differ"};
  std::size_t failures = 0, worst = 0;
  double worst_ratio = -1.0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double error = std::abs(static_cast<double>(actual[i]) - expected[i]);
    const double allowed = bound * magnitude[i] + output_rounding * std::abs(expected[i]) + 0x1p-100;
    const double ratio = std::isfinite(actual[i]) ? error / allowed : INFINITY;
    if (!(ratio <= 1.0)) ++failures;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  std::ostringstream message;
  message << failures << " of " << actual.size() << " elements outside the bound; worst: element " << worst
          << " = " << actual[worst] << ", reference " << expected[worst] << ", magnitude " << magnitude[worst]
          << ", error " << std::abs(static_cast<double>(actual[worst]) - expected[worst]) << " = "
          << worst_ratio << " x the allowed " << bound << " x magnitude";
  if (output_rounding > 0) message << " + " << output_rounding << " x |reference|";
  return {failures == 0, message.str()};
}

}  // namespace kiln::testing
