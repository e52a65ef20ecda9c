// The CUDA convolution as training runs it: the ladder's steps wrapped for kiln's NCHW tensors
// (kernels/conv2d/cuda_ladder_conv2d.hpp), and the measured choice between them and the library path
// (cuda_tuning.hpp) behind conv2d.hpp's dispatch. Every case skips, with a message, where there is no GPU;
// the wrapping is also checked on the CPU emulator in every CI
// (tests/emulation/ladder_conv2d_emulation_test.cpp).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/caching_allocator.hpp"
#include "core/cuda_runtime.hpp"
#include "core/device.hpp"
#include "core/storage.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/cuda_ladder_conv2d.hpp"
#include "kernels/conv2d/cuda_tuning.hpp"
#include "tests/support/conv2d_ladder_cases.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/ladder_conv2d_cases.hpp"

namespace cuda_conv2d_tuning_test {

namespace {

using namespace kiln;
using kernels::Conv2dDirection;
using kernels::Conv2dGeometry;
using kernels::conv2d_ladder::Pass;
namespace cuda = kernels::cuda;

#ifdef KILN_WITH_CUDA  // the wrapped steps exist only in a CUDA build
template <typename T>
std::vector<T> run_on_gpu(const kernels::conv2d_ladder::Step& step, const Conv2dGeometry& g,
                          const std::vector<T>& first, const std::vector<T>& second,
                          const std::vector<T>& bias, std::int64_t output_count) {
  const Tensor first_gpu = testing::to_gpu(first), second_gpu = testing::to_gpu(second);
  const Tensor bias_gpu = testing::to_gpu(bias);
  const Tensor output = testing::empty_gpu<T>(output_count);
  cuda::run_ladder_step<T>(step, g, first_gpu.data<T>(), second_gpu.data<T>(),
                           bias.empty() ? nullptr : bias_gpu.data<T>(), output.data<T>());
  return testing::to_host<T>(output);
}

TEST_CASE(
    "cuda: every fp32 and bf16 ladder step, run on kiln's NCHW tensors with a bias, matches the reference") {
  if (!testing::have_gpu()) return;
  testing::check_every_ladder_step_as_conv2d<float>(/*seed=*/5000, /*minimum_cases=*/6, run_on_gpu<float>);
  testing::check_every_ladder_step_as_conv2d<bfloat16>(/*seed=*/6000, /*minimum_cases=*/6,
                                                       run_on_gpu<bfloat16>);
}
#endif

// Runs `pass` through the CUDA dispatch (conv2d.hpp) and returns its output.
template <typename T>
std::vector<T> dispatched(Pass pass, const Conv2dGeometry& g, const std::vector<T>& first,
                          const std::vector<T>& second, const std::vector<T>& bias,
                          std::int64_t output_count) {
  const Tensor first_gpu = testing::to_gpu(first), second_gpu = testing::to_gpu(second);
  const Tensor bias_gpu = testing::to_gpu(bias);
  const Tensor output = testing::empty_gpu<T>(output_count);
  const Device gpu = Device::cuda();
  switch (pass) {
    case Pass::Forward:
      kernels::conv2d_forward<T>(gpu, g, first_gpu.data<T>(), second_gpu.data<T>(),
                                 bias.empty() ? nullptr : bias_gpu.data<T>(), output.data<T>());
      break;
    case Pass::BackwardData:
      kernels::conv2d_backward_data<T>(gpu, g, first_gpu.data<T>(), second_gpu.data<T>(), output.data<T>());
      break;
    case Pass::BackwardWeight:
      kernels::conv2d_backward_weight<T>(gpu, g, first_gpu.data<T>(), second_gpu.data<T>(), output.data<T>());
      break;
  }
  return testing::to_host<T>(output);
}

// A pass's activations in the layout of g (channels-last: [N, H, W, C]) from kiln's NCHW, and back; the
// filter and its gradient, [K, C/groups, R, S] in both, pass through.
std::vector<float> in_layout(const std::vector<float>& nchw, const testing::Sizes& sizes, bool activation,
                             const Conv2dGeometry& g) {
  return g.channels_last && activation ? testing::channels_last(nchw, sizes) : nchw;
}
template <typename T>
std::vector<float> as_nchw(const std::vector<T>& stored, const testing::Sizes& sizes, bool activation,
                           const Conv2dGeometry& g) {
  const std::vector<float> values(stored.begin(), stored.end());
  return g.channels_last && activation ? testing::channels_first(values, sizes) : values;
}

// Every pass of each geometry through the measured dispatch, twice (the first call measures, the second runs
// the recorded choice), each output checked against the reference; then the record: one choice per pass,
// the library path among its trials, and no ladder step rejected (a rejection means a step computes
// something else on this GPU than in the emulator: a bug to find, even though training would stay correct).
// With channels_last, the activations are [N, H, W, C] (the NHWC steps read them where they lie; the library
// path and the NCHW steps run behind transposes).
template <typename T>
void check_measured_dispatch(std::uint64_t seed, bool channels_last = false) {
  cuda::forget_conv_choices();
  cuda::set_conv_policy(cuda::ConvPolicy::Measured);
  std::vector<Conv2dGeometry> geometries = {
      testing::convolution(8, 16, 16, 16, 16, 3, 3, 1, 1),       // ResNet-20's first stage
      testing::convolution(8, 16, 16, 16, 32, 3, 3, 2, 1),       // its downsampling
      testing::convolution(4, 24, 9, 9, 40, 1, 1, 1, 0),         // a 1x1
      testing::convolution(2, 16, 9, 9, 16, 3, 3, 1, 1, 1, 16),  // depthwise: only the naive steps take it
  };
  for (Conv2dGeometry& g : geometries) g.channels_last = channels_last;
  std::size_t calls = 0;
  for (const Conv2dGeometry& g : geometries) {
    for (const Pass pass : {Pass::Forward, Pass::BackwardData, Pass::BackwardWeight}) {
      INFO(kernels::conv2d_ladder::pass_name(pass), " ", testing::describe(g));
      const testing::PassSizes sizes = testing::pass_sizes(pass, g);
      const auto precision = testing::precision_of<T>;
      const std::vector<float> first = testing::ladder_operands(precision, sizes.first.count(), seed++);
      const std::vector<float> second = testing::ladder_operands(precision, sizes.second.count(), seed++);
      const std::vector<float> bias = pass == Pass::Forward
                                          ? testing::ladder_operands(precision, g.out_channels, seed++)
                                          : std::vector<float>();
      Conv2dGeometry nchw = g;
      nchw.channels_last = false;
      const testing::ReferenceWithBias reference =
          testing::reference_with_bias(pass, nchw, first, second, bias);
      const bool first_is_activation = true, second_is_activation = pass == Pass::BackwardWeight,
                 output_is_activation = pass != Pass::BackwardWeight;
      for (int call = 0; call < 2; ++call) {
        INFO((call == 0 ? "the measuring call" : "the call served by the record"));
        const std::vector<T> output = dispatched<T>(
            pass, g, testing::narrowed<T>(in_layout(first, sizes.first, first_is_activation, g)),
            testing::narrowed<T>(in_layout(second, sizes.second, second_is_activation, g)),
            testing::narrowed<T>(bias), sizes.output.count());
        const testing::LadderReport report = testing::within_ladder_bound(
            as_nchw(output, sizes.output, output_is_activation, g), reference.expected, reference.magnitude,
            testing::ladder_bound(precision, sizes.terms), std::is_same_v<T, bfloat16> ? 0x1p-8 : 0.0);
        CHECK_MESSAGE(report.ok, report.message);
      }
      ++calls;
      const auto recorded = cuda::find_conv_choice(
          g, pass, std::is_same_v<T, bfloat16> ? "bfloat16" : "float", kiln::cuda::current_device());
      CHECK(recorded.found);
    }
  }
  const std::vector<cuda::ConvChoice> choices = cuda::conv_choices();
  CHECK(choices.size() == calls);
  for (const cuda::ConvChoice& choice : choices) {
    INFO(kernels::conv2d_direction_name(choice.direction), " ", testing::describe(choice.geometry));
    // Trials only where a step competes with the library path (for depthwise, the steps that take any
    // grouping).
    const bool contested = std::ranges::any_of(kernels::conv2d_ladder::steps(), [&](const auto& step) {
      return step.pass == choice.direction &&
             cuda::ladder_step_serves(step, choice.geometry, choice.element_type);
    });
    CHECK(choice.trials.empty() == !contested);
    for (const cuda::ConvTrial& trial : choice.trials) {
      INFO(trial.candidate);
      CHECK(trial.rejected == "");
      CHECK(trial.median_milliseconds > 0.0);
    }
    if (!choice.trials.empty()) CHECK(choice.trials.front().candidate == cuda::kLibraryCandidate);
    CHECK((choice.step == nullptr) == (choice.chosen == cuda::kLibraryCandidate));
  }
  cuda::forget_conv_choices();
}

TEST_CASE(
    "cuda: measured conv2d dispatch, float: every call matches the reference, and each shape is recorded "
    "once") {
  if (!testing::have_gpu()) return;
  check_measured_dispatch<float>(7000);
}

TEST_CASE(
    "cuda: measured conv2d dispatch, bfloat16: every call matches the reference, and each shape is recorded "
    "once") {
  if (!testing::have_gpu()) return;
  check_measured_dispatch<bfloat16>(8000);
}

TEST_CASE(
    "cuda: measured conv2d dispatch on channels-last activations matches the reference, float and bf16") {
  if (!testing::have_gpu()) return;
  check_measured_dispatch<float>(9000, /*channels_last=*/true);
  check_measured_dispatch<bfloat16>(9500, /*channels_last=*/true);
}

// Measuring happens at a training run's first step, where every activation is alive, so what it allocates
// beyond the call's own tensors raises the run's peak: a copy of |each input| and a magnitude output (at most
// about three tensors of the call's size) and the library path's columns, held to kMeasuringWorkspaceBytes.
// Here the library's columns over the whole batch (32 images x [8*3*3, 64*64] floats, 36 MiB) are more than
// twice that cap: allocated in full, as before the cap, they break the bound.
TEST_CASE("cuda: measuring a shape holds the library path's columns to kMeasuringWorkspaceBytes") {
  if (!testing::have_gpu()) return;
  cuda::forget_conv_choices();
  cuda::set_conv_policy(cuda::ConvPolicy::Measured);
  const Conv2dGeometry g = testing::convolution(32, 8, 64, 64, 1, 3, 3, 1, 1);
  const testing::PassSizes sizes = testing::pass_sizes(Pass::BackwardData, g);
  const auto precision = kernels::ladder::Precision::Fp32;
  const Tensor gy = testing::to_gpu(testing::ladder_operands(precision, sizes.first.count(), 11));
  const Tensor w = testing::to_gpu(testing::ladder_operands(precision, sizes.second.count(), 12));
  const Tensor gx = testing::empty_gpu<float>(sizes.output.count());
  const std::size_t largest_tensor = static_cast<std::size_t>(sizes.output.count()) * sizeof(float);  // gx
  const std::size_t full_columns = static_cast<std::size_t>(g.batch * g.in_channels * g.kernel_h *
                                                            g.kernel_w * g.out_height() * g.out_width()) *
                                   sizeof(float);
  REQUIRE(full_columns > 2 * cuda::kMeasuringWorkspaceBytes);

  CachingAllocator& allocator = cuda_caching_allocator(0);
  kiln::cuda::synchronize(0);
  allocator.reset_peak();
  const std::size_t before = allocator.stats().in_use_bytes;
  kernels::conv2d_backward_data<float>(Device::cuda(), g, gy.data<float>(), w.data<float>(),
                                       gx.data<float>());
  kiln::cuda::synchronize(0);
  const std::size_t measuring = allocator.stats().peak_in_use_bytes - before;
  INFO("measuring took ", measuring, " bytes beyond the call's tensors; the full columns are ", full_columns);
  CHECK(cuda::find_conv_choice(g, Pass::BackwardData, "float", 0).found);
  CHECK(measuring <= cuda::kMeasuringWorkspaceBytes + 4 * largest_tensor);
  cuda::forget_conv_choices();
}

TEST_CASE("cuda: the library policy measures nothing and records nothing") {
  if (!testing::have_gpu()) return;
  cuda::forget_conv_choices();
  const testing::ConvPolicyGuard library(cuda::ConvPolicy::Library);
  const Conv2dGeometry g = testing::convolution(2, 8, 9, 9, 16, 3, 3, 1, 1);
  const testing::PassSizes sizes = testing::pass_sizes(Pass::Forward, g);
  const std::vector<float> x =
      testing::ladder_operands(kernels::ladder::Precision::Fp32, sizes.first.count(), 1);
  const std::vector<float> w =
      testing::ladder_operands(kernels::ladder::Precision::Fp32, sizes.second.count(), 2);
  const std::vector<float> y = dispatched<float>(Pass::Forward, g, x, w, {}, sizes.output.count());
  const testing::ReferenceWithBias reference = testing::reference_with_bias(Pass::Forward, g, x, w, {});
  const auto report =
      testing::within_ladder_bound(y, reference.expected, reference.magnitude,
                                   testing::ladder_bound(kernels::ladder::Precision::Fp32, sizes.terms));
  CHECK_MESSAGE(report.ok, report.message);
  CHECK(cuda::conv_choices().empty());
}

}  // namespace

}  // namespace cuda_conv2d_tuning_test
