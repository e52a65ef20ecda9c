// Tests of the GEMM ladder (kernels/gemm/ladder): the table itself (on any machine), each launcher's refusal
// of a problem it cannot run (before it touches a GPU, so also on any machine built with CUDA), and every
// step on a GPU against the reference GEMM in double over the cases of tests/support/gemm_ladder_cases.hpp
// and a few large ones. The same cases run in the CPU emulator in CI (tests/emulation/
// ladder_emulation_test.cpp). The GPU cases skip (with a message) where there is no GPU.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "kernels/gemm/ladder/ladder.hpp"
#include "kernels/ladder/hopper.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/gemm_ladder_cases.hpp"

namespace cuda_gemm_ladder_test {

namespace {

using namespace kiln;
using kernels::gemm_ladder::Problem;
using kernels::gemm_ladder::Step;
namespace ladder = kernels::gemm_ladder;

// A and B on cuda:0 as the step reads them (float, or bfloat16 for a bf16 step: exact, the values were
// rounded already), C with its initial contents; returns C.
std::vector<float> run_on_gpu(const Step& step, const Problem& problem, const std::vector<float>& a,
                              const std::vector<float>& b, const std::vector<float>& c) {
  const bool bf16 = step.precision == kernels::ladder::Precision::Bf16;
  const Tensor a_gpu = bf16 ? testing::to_gpu(testing::to_bfloat16(a)) : testing::to_gpu(a);
  const Tensor b_gpu = bf16 ? testing::to_gpu(testing::to_bfloat16(b)) : testing::to_gpu(b);
  const Tensor c_gpu = testing::to_gpu(c);
  step.launch(problem, testing::device_pointer(a_gpu), testing::device_pointer(b_gpu), c_gpu.data<float>());
  return testing::to_host<float>(c_gpu);
}

TEST_CASE("gemm ladder: the table lists each step's file, in order, once") {
  const auto steps = ladder::steps();
  if (!cuda::built_with_cuda()) {
    CHECK(steps.empty());
    return;
  }
  REQUIRE(steps.size() >= 6);
  std::set<std::string> names;
  int previous_number = 0;
  for (const Step& step : steps) {
    INFO(step.name);
    CHECK(names.insert(std::string(step.name)).second);
    const int number = std::stoi(std::string(step.name.substr(0, 2)));
    CHECK(number > previous_number);
    previous_number = number;
    CHECK(std::filesystem::exists(std::filesystem::path(KILN_SOURCE_DIR) / "kernels/gemm/ladder" /
                                  (std::string(step.name) + ".cu")));
    CHECK(!step.summary.empty());
    CHECK(step.alignment >= 1);
  }
}

TEST_CASE("gemm ladder: supports() follows the alignment and the int range") {
  for (const Step& step : ladder::steps()) {
    INFO(step.name);
    // A Hopper step runs only where the build and the GPU have wgmma (none in CI).
    const bool runs_here = !step.needs_wgmma || kernels::ladder::wgmma_available();
    CHECK(ladder::supports(step, {64, 64, 64}) == runs_here);
    CHECK(!ladder::supports(step, {0, 8, 8}));
    CHECK(!ladder::supports(step, {1 << 16, 8, 1 << 16}));  // A has 2^32 elements
    CHECK(ladder::supports(step, {3, step.alignment, step.alignment}) == runs_here);
    if (step.alignment > 1) {
      CHECK(!ladder::supports(step, {64, 64, 64 + 1}));
      CHECK(!ladder::supports(step, {64, 64 + step.alignment / 2, 64}));
    }
  }
}

TEST_CASE(
    "gemm ladder: a launcher refuses what its step cannot run, naming the step, before touching a GPU") {
  for (const Step& step : ladder::steps()) {
    INFO(step.name);
    const std::string empty = testing::launch_error(step, Problem{16, 0, 16});
    CHECK(empty.find("gemm ladder " + std::string(step.name)) != std::string::npos);
    if (step.alignment > 1) {
      const std::string unaligned = testing::launch_error(step, Problem{16, 16, 16 + 1});
      CHECK(unaligned.find("multiples of " + std::to_string(step.alignment)) != std::string::npos);
    }
  }
}

TEST_CASE("cuda: gemm ladder: every step matches the reference over odd and aligned shapes") {
  if (!testing::have_gpu()) return;
  testing::check_every_gemm_ladder_step(testing::gemm_ladder_problems(), /*seed=*/1000, /*minimum_cases=*/8,
                                        run_on_gpu);
}

TEST_CASE("cuda: gemm ladder: large square and skinny problems") {
  if (!testing::have_gpu()) return;
  testing::check_every_gemm_ladder_step(
      {{512, 512, 512}, {1000, 1024, 520}, {2048, 64, 256}, {16, 2048, 1024}},
      /*seed=*/5000, /*minimum_cases=*/3, run_on_gpu);
}

}  // namespace

}  // namespace cuda_gemm_ladder_test
