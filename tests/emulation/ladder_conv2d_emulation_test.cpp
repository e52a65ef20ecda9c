// The ladder's steps as training runs them (kernels/conv2d/cuda_ladder_conv2d.cu): NCHW tensors of float or
// bfloat16, transposed to the step's layout and back with the bias and one rounding, all on the CPU emulator,
// against the reference (tests/support/ladder_conv2d_cases.hpp). The tensors sit in guarded buffers, the
// inputs read-only, so a transpose that reads or writes past a tensor faults at once.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/error.hpp"
#include "kernels/conv2d/cuda_ladder_conv2d.hpp"
#include "tests/emulation/guarded_buffer.hpp"
#include "tests/support/ladder_conv2d_cases.hpp"

namespace emulation_ladder_conv2d_emulation_test {

namespace {

using namespace kiln;
using testing::GuardedBuffer;

template <typename T>
T poison() {
  return T(std::numeric_limits<float>::quiet_NaN());
}

template <typename T>
std::vector<T> run_emulated(const kernels::conv2d_ladder::Step& step, const testing::Conv2dGeometry& g,
                            const std::vector<T>& first, const std::vector<T>& second,
                            const std::vector<T>& bias, std::int64_t output_count) {
  const GuardedBuffer<T> first_buffer(first, /*read_only=*/true), second_buffer(second, /*read_only=*/true);
  const GuardedBuffer<T> bias_buffer(bias, /*read_only=*/true);
  GuardedBuffer<T> output(std::vector<T>(static_cast<std::size_t>(output_count), poison<T>()),
                          /*read_only=*/false);
  try {
    kernels::cuda::run_ladder_step<T>(step, g, first_buffer.data(), second_buffer.data(),
                                      bias.empty() ? nullptr : bias_buffer.data(), output.data());
  } catch (const Error& error) {
    FAIL_CHECK(std::string(error.what()));
  }
  CHECK_MESSAGE(output.margins_intact(), step.name, " wrote outside its output");
  return output.values();
}

TEST_CASE(
    "emulated: every fp32 ladder step, run as a float NCHW convolution with a bias, matches the reference") {
  testing::check_every_ladder_step_as_conv2d<float>(/*seed=*/3000, /*minimum_cases=*/6, run_emulated<float>);
}

TEST_CASE(
    "emulated: every bf16 ladder step, run on bfloat16 NCHW tensors through the NHWC transposes, matches the "
    "reference") {
  testing::check_every_ladder_step_as_conv2d<bfloat16>(/*seed=*/4000, /*minimum_cases=*/6,
                                                       run_emulated<bfloat16>);
}

TEST_CASE("a ladder step refuses a convolution it cannot serve, naming itself") {
  for (const kernels::conv2d_ladder::Step& step : kernels::conv2d_ladder::steps()) {
    if (step.precision != kernels::ladder::Precision::Bf16) continue;
    const testing::Conv2dGeometry depthwise = testing::convolution(2, 16, 9, 9, 16, 3, 3, 1, 1, 1, 16);
    CHECK_FALSE(kernels::cuda::ladder_step_serves<bfloat16>(step, depthwise));
    CHECK_FALSE(
        kernels::cuda::ladder_step_serves<float>(step, testing::convolution(2, 8, 9, 9, 16, 3, 3, 1, 1)));
    try {
      kernels::cuda::run_ladder_step<bfloat16>(step, depthwise, nullptr, nullptr, nullptr, nullptr);
      FAIL("no error for ", step.name);
    } catch (const Error& error) {
      CHECK(std::string(error.what()).find(step.name) != std::string::npos);
    }
  }
}

}  // namespace

}  // namespace emulation_ladder_conv2d_emulation_test
