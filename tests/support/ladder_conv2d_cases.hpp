// A ladder step run as one of kiln's convolutions (kernels/conv2d/cuda_ladder_conv2d.hpp), checked against
// the reference: NCHW tensors of T in and out, the bias added forward, the output rounded to T once. What
// this adds to conv2d_ladder_cases.hpp (the steps alone, in their own layouts) is the wrapping training runs:
// the NCHW <-> NHWC transposes, the bias, the rounding, the scratch. Shared by the GPU test
// (tests/cuda/conv2d_tuning_test.cpp) and the CPU emulation
// (tests/emulation/ladder_conv2d_emulation_test.cpp), which differ only in the runner.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/bfloat16.hpp"
#include "kernels/conv2d/cuda_ladder_conv2d.hpp"
#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/hopper.hpp"
#include "tests/support/conv2d_ladder_cases.hpp"
#include "tests/support/ladder_testing.hpp"

namespace kiln::testing {

// Runs run_ladder_step<T>(step, g, first, second, bias, output) with the tensors where the step can read them
// (bias null when `bias` is empty) and returns the output, poisoned before the run.
template <typename T>
using LadderConv2dRunner = std::function<std::vector<T>(
    const kernels::conv2d_ladder::Step& step, const Conv2dGeometry& g, const std::vector<T>& first,
    const std::vector<T>& second, const std::vector<T>& bias, std::int64_t output_count)>;

template <typename T>
std::vector<T> narrowed(const std::vector<float>& values) {
  if constexpr (std::is_same_v<T, float>) {
    return values;
  } else {
    return to_bfloat16(values);
  }
}

// The precision of T's own values: what a step must compute in to serve T.
template <typename T>
constexpr kernels::ladder::Precision precision_of =
    std::is_same_v<T, float> ? kernels::ladder::Precision::Fp32 : kernels::ladder::Precision::Bf16;

// The reference pass in double and its magnitude (the same sum over absolute values), the bias added forward
// (`bias` empty otherwise).
struct ReferenceWithBias {
  std::vector<double> expected, magnitude;
};
inline ReferenceWithBias reference_with_bias(Pass pass, const Conv2dGeometry& g,
                                             const std::vector<float>& first,
                                             const std::vector<float>& second,
                                             const std::vector<float>& bias) {
  const std::int64_t count = pass_sizes(pass, g).output.count();
  ReferenceWithBias r{reference_pass(pass, g, widened(first), widened(second), count),
                      reference_pass(pass, g, absolute(widened(first)), absolute(widened(second)), count)};
  const std::int64_t plane = g.out_height() * g.out_width();
  for (std::size_t i = 0; i < r.expected.size() && !bias.empty(); ++i) {
    const double b = bias[static_cast<std::size_t>(static_cast<std::int64_t>(i) / plane % g.out_channels)];
    r.expected[i] += b;
    r.magnitude[i] += std::abs(b);
  }
  return r;
}

template <typename T>
void check_ladder_step_as_conv2d(const kernels::conv2d_ladder::Step& step, const Conv2dGeometry& g,
                                 std::uint64_t seed, const LadderConv2dRunner<T>& run) {
  INFO(step.name, " as a convolution of ", std::string(std::is_same_v<T, float> ? "float" : "bfloat16"), ": ",
       describe(g));
  const PassSizes sizes = pass_sizes(step.pass, g);
  // Values T holds exactly, so the reference multiplies what the step multiplies.
  const kernels::ladder::Precision operand_precision = precision_of<T>;
  const std::vector<float> first = ladder_operands(operand_precision, sizes.first.count(), seed);
  const std::vector<float> second = ladder_operands(operand_precision, sizes.second.count(), seed + 1);
  const bool forward = step.pass == Pass::Forward;
  const std::vector<float> bias =
      forward ? ladder_operands(operand_precision, g.out_channels, seed + 2) : std::vector<float>();

  const std::vector<T> output =
      run(step, g, narrowed<T>(first), narrowed<T>(second), narrowed<T>(bias), sizes.output.count());

  const ReferenceWithBias reference = reference_with_bias(step.pass, g, first, second, bias);
  const std::vector<float> actual(output.begin(), output.end());
  const double output_rounding = std::is_same_v<T, bfloat16> ? 0x1p-8 : 0.0;
  const LadderReport report = within_ladder_bound(actual, reference.expected, reference.magnitude,
                                                  ladder_bound(step.precision, sizes.terms), output_rounding);
  CHECK_MESSAGE(report.ok, report.message);
}

// Every step in T's precision, on every geometry it serves; each must serve at least `minimum_cases`.
template <typename T>
void check_every_ladder_step_as_conv2d(std::uint64_t seed, int minimum_cases,
                                       const LadderConv2dRunner<T>& run) {
  int steps_checked = 0;
  for (const kernels::conv2d_ladder::Step& step : kernels::conv2d_ladder::steps()) {
    if (step.precision != precision_of<T>) continue;
    if (step.needs_wgmma && !kernels::ladder::wgmma_available()) {
      MESSAGE(std::string(step.name), ": not run (a Hopper step; this build or GPU has no wgmma)");
      continue;
    }
    int checked = 0;
    for (const Conv2dGeometry& g : conv2d_ladder_geometries()) {
      if (!kernels::cuda::ladder_step_serves<T>(step, g)) continue;
      check_ladder_step_as_conv2d<T>(step, g, seed += 3, run);
      ++checked;
    }
    ++steps_checked;
    INFO(step.name);
    CHECK(checked >= minimum_cases);
  }
  CHECK(steps_checked > 0);
}

}  // namespace kiln::testing
