// Tests of the convolution ladder (kernels/conv2d/ladder): the table itself (on any machine), each
// launcher's refusal of a geometry its step cannot run (before it touches a GPU, so also on any machine built
// with CUDA), and every step of every pass on a GPU against the reference convolution in double, over the
// cases of tests/support/conv2d_ladder_cases.hpp. The same cases run in the CPU emulator in CI
// (tests/emulation/ladder_emulation_test.cpp). The GPU case skips (with a message) where there is no GPU.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/hopper.hpp"
#include "tests/support/conv2d_ladder_cases.hpp"
#include "tests/support/cuda_testing.hpp"

namespace cuda_conv2d_ladder_test {

namespace {

using namespace kiln;
using kernels::conv2d_ladder::Step;
using testing::Conv2dGeometry;
using testing::Pass;
namespace ladder = kernels::conv2d_ladder;

// The inputs on cuda:0 as the step reads them (float, or bfloat16 for a bf16 step: exact, the values were
// rounded already), the output poisoned with NaN so that every element must be written.
std::vector<float> run_on_gpu(const Step& step, const Conv2dGeometry& g, const std::vector<float>& first,
                              const std::vector<float>& second, std::int64_t output_count) {
  const bool bf16 = step.precision == kernels::ladder::Precision::Bf16;
  const Tensor first_gpu = bf16 ? testing::to_gpu(testing::to_bfloat16(first)) : testing::to_gpu(first);
  const Tensor second_gpu = bf16 ? testing::to_gpu(testing::to_bfloat16(second)) : testing::to_gpu(second);
  const Tensor output_gpu = testing::empty_gpu<float>(output_count);
  step.launch(g, testing::device_pointer(first_gpu), testing::device_pointer(second_gpu),
              output_gpu.data<float>());
  return testing::to_host<float>(output_gpu);
}

// A step's name without its precision suffix: the rung it is ("06_backward_data_stride_phase" for the fp32
// step and its bf16 sibling).
std::string rung_of(std::string_view name) {
  for (const std::string_view suffix : {"_tf32", "_bf16"}) {
    if (name.ends_with(suffix)) return std::string(name.substr(0, name.size() - suffix.size()));
  }
  return std::string(name);
}

TEST_CASE("conv2d ladder: the table lists each step's file once, numbered in order within its pass") {
  const auto steps = ladder::steps();
  if (!cuda::built_with_cuda()) {
    CHECK(steps.empty());
    return;
  }
  std::set<std::string> names;
  std::map<Pass, int> previous_number;
  std::map<Pass, std::string> previous_name;
  for (const Step& step : steps) {
    INFO(step.name);
    CHECK(names.insert(std::string(step.name)).second);
    const int number = std::stoi(std::string(step.name.substr(0, 2)));
    // Numbers rise along a pass; two steps share one only as the same rung in two precisions.
    CHECK(number >= previous_number[step.pass]);
    if (number == previous_number[step.pass]) CHECK(rung_of(step.name) == rung_of(previous_name[step.pass]));
    previous_number[step.pass] = number;
    previous_name[step.pass] = std::string(step.name);
    CHECK(step.name.find(ladder::pass_name(step.pass)) == 3);  // "NN_<pass>_..."
    CHECK(std::filesystem::exists(std::filesystem::path(KILN_SOURCE_DIR) / "kernels/conv2d/ladder" /
                                  (std::string(step.name) + ".cu")));
    CHECK(!step.summary.empty());
    CHECK(step.takes(testing::conv2d_ladder_geometries().front()));  // the common case
  }
  for (const Pass pass : {Pass::Forward, Pass::BackwardData, Pass::BackwardWeight}) {
    INFO(ladder::pass_name(pass));
    CHECK(previous_number[pass] >= 1);  // every pass has a ladder
  }
}

TEST_CASE("conv2d ladder: supports() rejects geometries that are not convolutions") {
  for (const Step& step : ladder::steps()) {
    INFO(step.name);
    const Conv2dGeometry common = testing::conv2d_ladder_geometries().front();
    // A Hopper step runs only where the build and the GPU have wgmma (none in CI).
    CHECK(ladder::supports(step, common) == (!step.needs_wgmma || kernels::ladder::wgmma_available()));
    Conv2dGeometry bad = common;
    bad.in_channels = 0;
    CHECK(!ladder::supports(step, bad));
    bad = common;
    bad.kernel_h = 12;  // larger than the padded 9x9 image
    CHECK(!ladder::supports(step, bad));
    bad = common;
    bad.groups = 3;  // 8 channels do not split into 3 groups
    CHECK(!ladder::supports(step, bad));
    bad = common;
    bad.batch = 1 << 22;  // x holds 2^22 * 8 * 81 elements
    CHECK(!ladder::supports(step, bad));
  }
}

TEST_CASE(
    "conv2d ladder: a launcher refuses what its step cannot run, naming the step, before touching a GPU") {
  for (const Step& step : ladder::steps()) {
    INFO(step.name);
    Conv2dGeometry empty_output = testing::conv2d_ladder_geometries().front();
    empty_output.kernel_w = 20;  // no step takes a kernel wider than the padded image
    CHECK(testing::launch_error(step, empty_output).find("conv2d ladder " + std::string(step.name)) !=
          std::string::npos);
    // A step with a requirement refuses the first geometry outside it, and the message names the requirement.
    for (const Conv2dGeometry& g : testing::conv2d_ladder_geometries()) {
      if (step.takes(g)) continue;
      INFO(testing::describe(g));
      CHECK(!step.requirement.empty());
      CHECK(testing::launch_error(step, g).find(std::string(step.requirement)) != std::string::npos);
      break;
    }
  }
}

TEST_CASE("cuda: conv2d ladder: every step of every pass matches the reference") {
  if (!testing::have_gpu()) return;
  testing::check_every_conv2d_ladder_step(/*seed=*/2000, /*minimum_cases=*/6, run_on_gpu);
}

}  // namespace

}  // namespace cuda_conv2d_ladder_test
