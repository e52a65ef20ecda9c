// Tests of conv2d on a CUDA device (kernels/conv2d/cuda_*.cu) against the reference kernels, float,
// double and bfloat16, all four directions (forward with and without bias, backward-data, backward-weight,
// backward-bias), through the dispatch functions with Device::cuda():
//   - odd geometries: 1x1 (the no-im2col path), 3x3 pad 1, stride 2 and 3, dilation 2, groups 2 and 3, a
//     channel multiplier, depthwise with stride 2 and dilation, channels 3 / 5 / 17 / 33, batch 1 and 5, 7x9
//     and 1x1 images, a kernel as large as the padded input;
//   - the im2col + GEMM path cut into several chunks of images (through its workspace_bytes parameter);
//   - NaN propagation, the same bits on every run, and a shape large enough that every kernel takes several
//     grid-stride passes;
//   - raw::conv2d_* on CUDA tensors against the same calls on the CPU.
// Every output buffer has a poisoned (NaN) guard past its end that must survive. Each test skips (with a
// message) where there is no GPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/op_options.hpp"
#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/cuda_grid.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace cuda_conv2d_cuda_test {

namespace {

using namespace kiln;
using kernels::Conv2dGeometry;
using testing::matches_reference;
using testing::random_values;
using testing::Tolerance;

// ---- sizes, data, tolerances ---------------------------------------------------------------------------

std::int64_t x_size(const Conv2dGeometry& g) { return g.batch * g.in_channels * g.in_height * g.in_width; }
std::int64_t w_size(const Conv2dGeometry& g) {
  return g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w;
}
std::int64_t y_size(const Conv2dGeometry& g) {
  return g.batch * g.out_channels * g.out_height() * g.out_width();
}

std::string describe(const Conv2dGeometry& g) {
  const auto pair = [](std::int64_t a, std::int64_t b) {
    return std::to_string(a) + "x" + std::to_string(b);
  };
  return "N=" + std::to_string(g.batch) + " C_in=" + std::to_string(g.in_channels) +
         " C_out=" + std::to_string(g.out_channels) + " image " + pair(g.in_height, g.in_width) + " kernel " +
         pair(g.kernel_h, g.kernel_w) + " stride " + pair(g.stride_h, g.stride_w) + " pad " +
         pair(g.pad_h, g.pad_w) + " dilation " + pair(g.dilation_h, g.dilation_w) +
         " groups=" + std::to_string(g.groups);
}

// A sum of `terms` products of values in [-1, 1) rounds each addition, by about 2^-24 (float) or 2^-53
// (double) of a partial sum that grows like sqrt(terms): about 1.5e-8 * terms in all for float, in whatever
// order the GPU adds. The tolerance allows ten times that (at least the usual 1e-5); a wrong index or a
// missed term is off by the size of a term, and a sum of the wrong terms by about sqrt(terms) / 3.
//
// bfloat16: every sum runs in float (or double) with that float error, and is rounded once to bfloat16, which
// may land one bfloat16 step (at most 2^-7 of the value) from the reference's rounding of the exact sum.
template <typename T>
Tolerance sum_tolerance(std::int64_t terms) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    return {std::max(1e-5, 2e-7 * static_cast<double>(terms)), 1.0 / 128};
  } else if constexpr (std::is_same_v<T, float>) {
    return {std::max(1e-5, 2e-7 * static_cast<double>(terms)), 1e-4};
  } else {
    return {std::max(1e-12, 4e-16 * static_cast<double>(terms)), 1e-10};
  }
}

// A quiet NaN of T (std::numeric_limits has none for bfloat16).
template <typename T>
T quiet_nan() {
  return T(std::numeric_limits<float>::quiet_NaN());
}

constexpr std::int64_t kGuard = 7;  // poisoned elements past the end of every output buffer

// `actual` (with its guard) against `expected`; the guard must still be NaN.
template <typename T>
void check_output(const char* what, const std::vector<T>& actual, const std::vector<T>& expected,
                  Tolerance tolerance) {
  INFO(what);
  REQUIRE(actual.size() == expected.size() + kGuard);
  const auto report = matches_reference(actual.data(), expected.data(),
                                        static_cast<std::int64_t>(expected.size()), tolerance);
  CHECK_MESSAGE(report.ok, report.message);
  const bool guard_intact = std::all_of(actual.end() - kGuard, actual.end(),
                                        [](T v) { return std::isnan(static_cast<double>(v)); });
  CHECK_MESSAGE(guard_intact, what, " wrote past the end of its output");
}

// ---- one geometry, every direction ---------------------------------------------------------------------

template <typename T>
struct ConvInputs {
  std::vector<T> x, w, bias, gy;
};

template <typename T>
ConvInputs<T> random_inputs(const Conv2dGeometry& g, unsigned seed) {
  return {random_values<T>(x_size(g), seed), random_values<T>(w_size(g), seed + 1),
          random_values<T>(g.out_channels, seed + 2), random_values<T>(y_size(g), seed + 3)};
}

template <typename T>
struct ConvOutputs {
  std::vector<T> y, y_no_bias, gx, gw, gb;
};

template <typename T>
ConvOutputs<T> reference_outputs(const Conv2dGeometry& g, const ConvInputs<T>& in) {
  ConvOutputs<T> out{std::vector<T>(y_size(g)), std::vector<T>(y_size(g)), std::vector<T>(x_size(g)),
                     std::vector<T>(w_size(g)), std::vector<T>(g.out_channels)};
  kernels::reference::conv2d_forward(g, in.x.data(), in.w.data(), in.bias.data(), out.y.data());
  kernels::reference::conv2d_forward(g, in.x.data(), in.w.data(), static_cast<const T*>(nullptr),
                                     out.y_no_bias.data());
  kernels::reference::conv2d_backward_data(g, in.gy.data(), in.w.data(), out.gx.data());
  kernels::reference::conv2d_backward_weight(g, in.gy.data(), in.x.data(), out.gw.data());
  kernels::reference::conv2d_backward_bias(g, in.gy.data(), out.gb.data());
  return out;
}

// The GPU outputs, each with its guard. With `workspace_bytes`, the im2col + GEMM kernels are called
// directly with that bound on their scratch (to force chunks); otherwise through the dispatch functions.
template <typename T>
ConvOutputs<T> gpu_outputs(const Conv2dGeometry& g, const ConvInputs<T>& in,
                           std::optional<std::size_t> workspace_bytes = std::nullopt) {
  const Tensor x = testing::to_gpu(in.x), w = testing::to_gpu(in.w), bias = testing::to_gpu(in.bias),
               gy = testing::to_gpu(in.gy);
  const Tensor y = testing::empty_gpu<T>(y_size(g) + kGuard),
               y_no_bias = testing::empty_gpu<T>(y_size(g) + kGuard),
               gx = testing::empty_gpu<T>(x_size(g) + kGuard), gw = testing::empty_gpu<T>(w_size(g) + kGuard),
               gb = testing::empty_gpu<T>(g.out_channels + kGuard);
  if (workspace_bytes) {
    // Only a CUDA build has these kernels; without one, have_gpu() is false and no test gets here.
#ifdef KILN_WITH_CUDA
    namespace cuda = kernels::cuda;
    cuda::gemm_conv2d_forward(g, x.data<T>(), w.data<T>(), bias.data<T>(), y.data<T>(), *workspace_bytes);
    cuda::gemm_conv2d_forward(g, x.data<T>(), w.data<T>(), static_cast<const T*>(nullptr),
                              y_no_bias.data<T>(), *workspace_bytes);
    cuda::gemm_conv2d_backward_data(g, gy.data<T>(), w.data<T>(), gx.data<T>(), *workspace_bytes);
    cuda::gemm_conv2d_backward_weight(g, gy.data<T>(), x.data<T>(), gw.data<T>(), *workspace_bytes);
#endif
  } else {
    const Device gpu = Device::cuda();
    kernels::conv2d_forward(gpu, g, x.data<T>(), w.data<T>(), bias.data<T>(), y.data<T>());
    kernels::conv2d_forward(gpu, g, x.data<T>(), w.data<T>(), static_cast<const T*>(nullptr),
                            y_no_bias.data<T>());
    kernels::conv2d_backward_data(gpu, g, gy.data<T>(), w.data<T>(), gx.data<T>());
    kernels::conv2d_backward_weight(gpu, g, gy.data<T>(), x.data<T>(), gw.data<T>());
  }
  kernels::conv2d_backward_bias(Device::cuda(), g, gy.data<T>(), gb.data<T>());
  return {testing::to_host<T>(y), testing::to_host<T>(y_no_bias), testing::to_host<T>(gx),
          testing::to_host<T>(gw), testing::to_host<T>(gb)};
}

template <typename T>
void check_conv(const Conv2dGeometry& g, unsigned seed,
                std::optional<std::size_t> workspace_bytes = std::nullopt) {
  INFO(describe(g), workspace_bytes ? " workspace " + std::to_string(*workspace_bytes) + " bytes" : "");
  const ConvInputs<T> in = random_inputs<T>(g, seed);
  const ConvOutputs<T> expected = reference_outputs(g, in);
  const ConvOutputs<T> actual = gpu_outputs(g, in, workspace_bytes);
  // Terms per sum: forward C_in/groups * KH*KW products (+ the bias); backward-data at most C_out/groups *
  // KH*KW; backward-weight and the bias N * OH*OW.
  const std::int64_t taps = g.kernel_h * g.kernel_w, positions = g.batch * g.out_height() * g.out_width();
  check_output("forward", actual.y, expected.y, sum_tolerance<T>(g.in_channels_per_group() * taps + 1));
  check_output("forward without bias", actual.y_no_bias, expected.y_no_bias,
               sum_tolerance<T>(g.in_channels_per_group() * taps));
  check_output("backward_data", actual.gx, expected.gx, sum_tolerance<T>(g.out_channels_per_group() * taps));
  check_output("backward_weight", actual.gw, expected.gw, sum_tolerance<T>(positions));
  check_output("backward_bias", actual.gb, expected.gb, sum_tolerance<T>(positions));
}

// ---- the geometries ------------------------------------------------------------------------------------

struct NamedGeometry {
  const char* name;
  Conv2dGeometry g;
};

// Depthwise geometries (groups == C_in == C_out) run the direct kernels; the others im2col + GEMM.
const NamedGeometry kGeometries[] = {
    {"1x1 (pointwise: no im2col)",
     {.batch = 5, .in_channels = 17, .in_height = 7, .in_width = 9, .out_channels = 33}},
    {"1x1, batch 1, groups 3 (pointwise)",
     {.batch = 1, .in_channels = 33, .in_height = 7, .in_width = 9, .out_channels = 15, .groups = 3}},
    {"1x1 on 1x1 images", {.batch = 5, .in_channels = 3, .in_height = 1, .in_width = 1, .out_channels = 5}},
    {"1x1 stride 2 (im2col)",
     {.batch = 2,
      .in_channels = 5,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 3,
      .stride_h = 2,
      .stride_w = 2}},
    {"1x1 pad 1",
     {.batch = 1,
      .in_channels = 3,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 5,
      .pad_h = 1,
      .pad_w = 1}},
    {"3x3 pad 1",
     {.batch = 5,
      .in_channels = 17,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 33,
      .kernel_h = 3,
      .kernel_w = 3,
      .pad_h = 1,
      .pad_w = 1}},
    {"3x3 pad 1 on 1x1 images",
     {.batch = 5,
      .in_channels = 3,
      .in_height = 1,
      .in_width = 1,
      .out_channels = 5,
      .kernel_h = 3,
      .kernel_w = 3,
      .pad_h = 1,
      .pad_w = 1}},
    {"3x3 stride 2 pad 1, batch 1",
     {.batch = 1,
      .in_channels = 3,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 5,
      .kernel_h = 3,
      .kernel_w = 3,
      .stride_h = 2,
      .stride_w = 2,
      .pad_h = 1,
      .pad_w = 1}},
    {"3x3 dilation 2 pad 2",
     {.batch = 5,
      .in_channels = 5,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 17,
      .kernel_h = 3,
      .kernel_w = 3,
      .pad_h = 2,
      .pad_w = 2,
      .dilation_h = 2,
      .dilation_w = 2}},
    {"4x3 stride 3 pad 2",
     {.batch = 5,
      .in_channels = 5,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 17,
      .kernel_h = 4,
      .kernel_w = 3,
      .stride_h = 3,
      .stride_w = 3,
      .pad_h = 2,
      .pad_w = 2}},
    {"3x3 groups 2",
     {.batch = 5,
      .in_channels = 10,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 6,
      .kernel_h = 3,
      .kernel_w = 3,
      .pad_h = 1,
      .pad_w = 1,
      .groups = 2}},
    {"3x2 groups 3, stride (2, 1), pad (1, 0), dilation (1, 2)",
     {.batch = 5,
      .in_channels = 33,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 15,
      .kernel_h = 3,
      .kernel_w = 2,
      .stride_h = 2,
      .stride_w = 1,
      .pad_h = 1,
      .pad_w = 0,
      .dilation_h = 1,
      .dilation_w = 2,
      .groups = 3}},
    {"channel multiplier 2 (groups == C_in != C_out: im2col + GEMM)",
     {.batch = 2,
      .in_channels = 5,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 10,
      .kernel_h = 3,
      .kernel_w = 3,
      .pad_h = 1,
      .pad_w = 1,
      .groups = 5}},
    {"9x11 kernel as large as the 7x9 input padded by 1 (one output)",
     {.batch = 2,
      .in_channels = 3,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 5,
      .kernel_h = 9,
      .kernel_w = 11,
      .pad_h = 1,
      .pad_w = 1}},
    {"depthwise 3x3 stride 2 pad 1",
     {.batch = 5,
      .in_channels = 17,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 17,
      .kernel_h = 3,
      .kernel_w = 3,
      .stride_h = 2,
      .stride_w = 2,
      .pad_h = 1,
      .pad_w = 1,
      .groups = 17}},
    {"depthwise 5x5 dilation 2 pad 3, batch 1",
     {.batch = 1,
      .in_channels = 33,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 33,
      .kernel_h = 5,
      .kernel_w = 5,
      .pad_h = 3,
      .pad_w = 3,
      .dilation_h = 2,
      .dilation_w = 2,
      .groups = 33}},
    {"depthwise 1x1",
     {.batch = 5, .in_channels = 3, .in_height = 7, .in_width = 9, .out_channels = 3, .groups = 3}},
    {"depthwise 3x2 stride (1, 3) pad (0, 2)",
     {.batch = 5,
      .in_channels = 3,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 3,
      .kernel_h = 3,
      .kernel_w = 2,
      .stride_h = 1,
      .stride_w = 3,
      .pad_h = 0,
      .pad_w = 2,
      .groups = 3}},
    {"depthwise 9x11 kernel as large as the padded input",
     {.batch = 2,
      .in_channels = 5,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 5,
      .kernel_h = 9,
      .kernel_w = 11,
      .pad_h = 1,
      .pad_w = 1,
      .groups = 5}},
    {"one channel (groups == C_in == C_out == 1: depthwise) stride 2 pad 1",
     {.batch = 5,
      .in_channels = 1,
      .in_height = 7,
      .in_width = 9,
      .out_channels = 1,
      .kernel_h = 3,
      .kernel_w = 3,
      .stride_h = 2,
      .stride_w = 2,
      .pad_h = 1,
      .pad_w = 1}},
};

// The geometry of kGeometries called `name`.
const Conv2dGeometry& geometry_named(std::string_view name) {
  const auto found = std::find_if(std::begin(kGeometries), std::end(kGeometries),
                                  [&](const NamedGeometry& named) { return named.name == name; });
  REQUIRE_MESSAGE(found != std::end(kGeometries), "no geometry named ", std::string(name));
  return found->g;
}

template <typename T>
void check_every_geometry() {
  unsigned seed = 1;
  for (const bool channels_last : {false, true}) {  // the reference reads either layout as the GPU does
    for (NamedGeometry named : kGeometries) {
      INFO(named.name, (channels_last ? ", channels-last" : ""));
      named.g.channels_last = channels_last;
      check_conv<T>(named.g, seed += 5);
    }
  }
}

TEST_CASE("cuda: conv2d matches the reference in every direction over odd geometries") {
  if (!testing::have_gpu()) return;
  SUBCASE("float32") { check_every_geometry<float>(); }
  SUBCASE("float64") { check_every_geometry<double>(); }
  SUBCASE("bfloat16") { check_every_geometry<bfloat16>(); }
}

// ---- chunks of images ----------------------------------------------------------------------------------

// A workspace that fits `images` images of every direction's scratch: backward-weight needs the most per
// image, its columns [C_in*KH*KW, OH*OW] and its gy [C_out, OH*OW].
template <typename T>
std::size_t workspace_for(const Conv2dGeometry& g, std::int64_t images) {
  const std::int64_t per_image =
      (g.in_channels * g.kernel_h * g.kernel_w + g.out_channels) * g.out_height() * g.out_width();
  return static_cast<std::size_t>(images * per_image) * sizeof(T);
}

template <typename T>
void check_chunked() {
  unsigned seed = 101;
  for (const char* name : {"3x3 pad 1", "3x2 groups 3, stride (2, 1), pad (1, 0), dilation (1, 2)",
                           "1x1 (pointwise: no im2col)"}) {
    INFO(name);
    const Conv2dGeometry& g = geometry_named(name);
    // 2 images a chunk: chunks of 2, 2 and 1 image (the last one used in place by backward-weight).
    check_conv<T>(g, seed += 5, workspace_for<T>(g, 2));
    // 1 byte: one image a chunk, the least there is.
    check_conv<T>(g, seed += 5, 1);
  }
}

TEST_CASE("cuda: conv2d im2col + GEMM over several chunks of images matches the reference") {
  if (!testing::have_gpu()) return;
  SUBCASE("float32") { check_chunked<float>(); }
  SUBCASE("float64") { check_chunked<double>(); }
  // bfloat16's weight gradient sums the chunks in a float workspace and rounds once at the end: summing them
  // in bfloat16 would be off by a step per chunk, beyond sum_tolerance's one.
  SUBCASE("bfloat16") { check_chunked<bfloat16>(); }
}

// ---- NaN, determinism, large shapes ----------------------------------------------------------------------

// A NaN in x reaches exactly the outputs and weight gradients whose sums read it; a NaN in gy exactly the
// input gradients and the bias gradient it feeds. (A NaN in gy is not tried on the im2col + GEMM weight
// gradient: there it meets the zeros im2col writes for the padding, and NaN * 0 poisons taps the reference
// skips, as in the CPU's im2col path.)
template <typename T>
void check_nan_propagation(const Conv2dGeometry& g) {
  INFO(describe(g));
  const ConvInputs<T> clean = random_inputs<T>(g, 201);
  ConvInputs<T> x_poisoned = clean, gy_poisoned = clean;
  x_poisoned.x[static_cast<std::size_t>(x_size(g) / 2 + 3)] = quiet_nan<T>();
  gy_poisoned.gy[static_cast<std::size_t>(y_size(g) / 3 + 1)] = quiet_nan<T>();

  const ConvOutputs<T> expected_x = reference_outputs(g, x_poisoned), actual_x = gpu_outputs(g, x_poisoned);
  const ConvOutputs<T> expected_gy = reference_outputs(g, gy_poisoned),
                       actual_gy = gpu_outputs(g, gy_poisoned);
  const auto count_nan = [](const std::vector<T>& v) {
    return std::count_if(v.begin(), v.end(), [](T e) { return std::isnan(static_cast<double>(e)); });
  };
  REQUIRE(count_nan(expected_x.y) > 0);  // the test means something only if the NaN reached some output
  REQUIRE(count_nan(expected_gy.gx) > 0);
  const Tolerance tolerance = sum_tolerance<T>(g.batch * g.out_height() * g.out_width() + w_size(g));
  check_output("forward, NaN in x", actual_x.y, expected_x.y, tolerance);
  check_output("backward_weight, NaN in x", actual_x.gw, expected_x.gw, tolerance);
  check_output("backward_data, NaN in gy", actual_gy.gx, expected_gy.gx, tolerance);
  check_output("backward_bias, NaN in gy", actual_gy.gb, expected_gy.gb, tolerance);
}

TEST_CASE("cuda: conv2d propagates NaN where the reference does") {
  if (!testing::have_gpu()) return;
  check_nan_propagation<float>(geometry_named("3x3 pad 1"));  // im2col + GEMM
  check_nan_propagation<float>(geometry_named("depthwise 3x3 stride 2 pad 1"));
  check_nan_propagation<double>(geometry_named("3x2 groups 3, stride (2, 1), pad (1, 0), dilation (1, 2)"));
  check_nan_propagation<bfloat16>(geometry_named("3x3 pad 1"));
  check_nan_propagation<bfloat16>(geometry_named("depthwise 3x3 stride 2 pad 1"));
}

TEST_CASE("cuda: conv2d gradients give the same bits on every run") {
  if (!testing::have_gpu()) return;
  // The reductions: the chunked GEMM weight gradient (beta = 1 across chunks), the depthwise weight gradient
  // and the bias gradient (block reductions), and col2im's gathers.
  for (const char* name : {"3x3 pad 1", "depthwise 3x3 stride 2 pad 1"}) {
    INFO(name);
    const Conv2dGeometry& g = geometry_named(name);
    const ConvInputs<float> in = random_inputs<float>(g, 301);
    const ConvOutputs<float> first = gpu_outputs(g, in), second = gpu_outputs(g, in);
    // Bit for bit: operator== would fail on the NaN poison past each output's end (kGuard).
    CHECK(testing::bitwise_equal(first.gx, second.gx));
    CHECK(testing::bitwise_equal(first.gw, second.gw));
    CHECK(testing::bitwise_equal(first.gb, second.gb));
  }
  const Conv2dGeometry& g = geometry_named("3x3 pad 1");
  const ConvInputs<float> in = random_inputs<float>(g, 302);
  const ConvOutputs<float> first = gpu_outputs(g, in, workspace_for<float>(g, 2));
  const ConvOutputs<float> second = gpu_outputs(g, in, workspace_for<float>(g, 2));
  CHECK(testing::bitwise_equal(first.gw, second.gw));
  // bfloat16 through its float accumulators (backward-data's columns, backward-weight's chunk sum).
  const ConvInputs<bfloat16> in_bf16 = random_inputs<bfloat16>(g, 303);
  const ConvOutputs<bfloat16> first_bf16 = gpu_outputs(g, in_bf16, workspace_for<bfloat16>(g, 2));
  const ConvOutputs<bfloat16> second_bf16 = gpu_outputs(g, in_bf16, workspace_for<bfloat16>(g, 2));
  CHECK(testing::bitwise_equal(first_bf16.gx, second_bf16.gx));
  CHECK(testing::bitwise_equal(first_bf16.gw, second_bf16.gw));
}

TEST_CASE("cuda: conv2d kernels over more elements than one grid covers match the reference") {
  if (!testing::have_gpu()) return;
  // The kernels launch at most kMaxGridBlocks blocks of kThreadsPerBlock threads (16,776,960 threads on a
  // GPU; emulated, the cap is lower) and loop beyond. Here y, gy, im2col's columns and (depthwise) gx hold
  // 2 * 9 * side^2 elements, a little more than one grid's threads (2 * 9 * 967^2 = 16.8 million on a GPU).
  const std::int64_t side = testing::side_past_one_grid_pass(2 * 9);
  const Conv2dGeometry gemm_path{.batch = 2,
                                 .in_channels = 1,
                                 .in_height = side,
                                 .in_width = side,
                                 .out_channels = 9,
                                 .kernel_h = 3,
                                 .kernel_w = 3,
                                 .pad_h = 1,
                                 .pad_w = 1};
  Conv2dGeometry depthwise = gemm_path;
  depthwise.in_channels = 9;
  depthwise.groups = 9;
  check_conv<float>(gemm_path, 401);
  check_conv<float>(depthwise, 402);
}

// ---- Tensor level --------------------------------------------------------------------------------------

// raw::conv2d_* on CUDA tensors (outputs allocated on the inputs' device) against the same calls on the CPU,
// the activations NCHW or channels-last on both devices (Tensor::to copies densely, so each side is brought
// to the layout where it lies).
template <typename T>
void check_raw_conv2d(const Shape& x_shape, const Shape& w_shape, const Conv2dOptions& options, unsigned seed,
                      bool channels_last) {
  INFO("x ", x_shape.str(), " w ", w_shape.str(), " groups ", options.groups,
       (channels_last ? " channels-last" : ""));
  const auto in_layout = [channels_last](const Tensor& t) {
    return channels_last ? raw::to_channels_last(t) : t;
  };
  const Tensor x = in_layout(Tensor::from_vector(random_values<T>(x_shape.numel(), seed), x_shape));
  const Tensor w = Tensor::from_vector(random_values<T>(w_shape.numel(), seed + 1), w_shape);
  const Tensor bias = Tensor::from_vector(random_values<T>(w_shape[0], seed + 2), Shape{w_shape[0]});
  const Tensor y = raw::conv2d_forward(x, w, bias, options);
  const Tensor gy = in_layout(Tensor::from_vector(random_values<T>(y.numel(), seed + 3), y.shape()));
  const Device gpu = Device::cuda();
  const Tensor x_gpu = in_layout(x.to(gpu)), w_gpu = w.to(gpu), gy_gpu = in_layout(gy.to(gpu));

  const Tensor y_gpu = raw::conv2d_forward(x_gpu, w_gpu, bias.to(gpu), options);
  const Tensor gx_gpu = raw::conv2d_backward_data(gy_gpu, w_gpu, x_shape, options);
  const Tensor gw_gpu = raw::conv2d_backward_weight(gy_gpu, x_gpu, w_shape, options);
  const Tensor gb_gpu = raw::conv2d_backward_bias(gy_gpu);
  for (const Tensor* result : {&y_gpu, &gx_gpu, &gw_gpu, &gb_gpu}) CHECK(result->device() == gpu);
  for (const Tensor* result : {&y_gpu, &gx_gpu, &gw_gpu, &gb_gpu}) CHECK(result->dtype() == dtype_of_v<T>);

  // bfloat16: the CPU (float kernels) and the GPU each round their own float sums once, so they may lie one
  // bfloat16 step either side of the exact value: twice sum_tolerance's relative part.
  const auto tolerance_for = [](std::int64_t terms) {
    Tolerance tolerance = sum_tolerance<T>(terms);
    if constexpr (std::is_same_v<T, bfloat16>) tolerance.rtol *= 2;
    return tolerance;
  };
  const std::int64_t positions = y.numel() / w_shape[0];  // N * OH * OW
  const std::int64_t taps = w_shape[2] * w_shape[3];
  auto report = matches_reference(y_gpu.to(Device::cpu()), y, tolerance_for(w_shape[1] * taps + 1));
  CHECK_MESSAGE(report.ok, "forward: ", report.message);
  report = matches_reference(gx_gpu.to(Device::cpu()), raw::conv2d_backward_data(gy, w, x_shape, options),
                             tolerance_for(w_shape[0] / options.groups * taps));
  CHECK_MESSAGE(report.ok, "backward_data: ", report.message);
  report = matches_reference(gw_gpu.to(Device::cpu()), raw::conv2d_backward_weight(gy, x, w_shape, options),
                             tolerance_for(positions));
  CHECK_MESSAGE(report.ok, "backward_weight: ", report.message);
  report =
      matches_reference(gb_gpu.to(Device::cpu()), raw::conv2d_backward_bias(gy), tolerance_for(positions));
  CHECK_MESSAGE(report.ok, "backward_bias: ", report.message);
}

template <typename T>
void check_raw_cases() {
  for (const bool channels_last : {false, true}) {
    const Conv2dOptions grouped{.stride = {2, 1}, .padding = {1, 1}, .dilation = {1, 2}, .groups = 2};
    check_raw_conv2d<T>(Shape{5, 6, 7, 9}, Shape{4, 3, 3, 3}, grouped, 501, channels_last);
    const Conv2dOptions depthwise{.stride = {2, 2}, .padding = {1, 1}, .dilation = {1, 1}, .groups = 5};
    check_raw_conv2d<T>(Shape{2, 5, 7, 9}, Shape{5, 1, 3, 3}, depthwise, 502, channels_last);
    check_raw_conv2d<T>(Shape{3, 17, 5, 5}, Shape{33, 17, 1, 1}, Conv2dOptions{}, 503, channels_last);  // 1x1
  }
}

TEST_CASE("cuda: raw::conv2d_* on CUDA tensors match the CPU") {
  if (!testing::have_gpu()) return;
  SUBCASE("float32") { check_raw_cases<float>(); }
  SUBCASE("float64") { check_raw_cases<double>(); }
  SUBCASE("bfloat16") { check_raw_cases<bfloat16>(); }
}

// raw::conv2d_batchnorm_eval_forward on CUDA tensors: the device runs the convolution, then the eval-mode
// batch norm in place on its output (kernels/conv2d/dispatch.cpp), which must give the bits of the two ops
// into separate buffers, with and without the residual's sum and the ReLU.
template <typename T>
void check_conv_then_batchnorm(bool residual, bool relu) {
  INFO((residual ? "residual" : "no residual"), (relu ? ", relu" : ""));
  using P = opmath_t<T>;
  const Device gpu = Device::cuda();
  const Shape x_shape{3, 6, 9, 11}, w_shape{10, 6, 3, 3}, y_shape{3, 10, 9, 11};
  const Conv2dOptions same{.padding = {1, 1}};
  const Tensor x = Tensor::from_vector(random_values<T>(x_shape.numel(), 601), x_shape).to(gpu);
  const Tensor w = Tensor::from_vector(random_values<T>(w_shape.numel(), 602), w_shape).to(gpu);
  const Tensor added =
      residual ? Tensor::from_vector(random_values<T>(y_shape.numel(), 603), y_shape).to(gpu) : Tensor();
  const auto per_channel = [&](unsigned seed, float low, float high) {
    return Tensor::from_vector(random_values<P>(10, seed, low, high), Shape{10}).to(gpu);
  };
  const Tensor gamma = per_channel(604, -1.5f, 1.5f), beta = per_channel(605, -0.5f, 0.5f);
  const Tensor mean = per_channel(606, -0.3f, 0.3f), var = per_channel(607, 0.05f, 2.0f);
  const BatchNormOptions options{.training = false, .eps = 1e-5, .fused_relu = relu};

  const Tensor fused =
      raw::conv2d_batchnorm_eval_forward(x, w, Tensor(), same, gamma, beta, mean, var, options, added);
  const Tensor conv = raw::conv2d_forward(x, w, Tensor(), same);
  const Tensor two_ops = raw::batchnorm2d_forward(conv, gamma, beta, mean, var, options, added).output;
  CHECK(fused.device() == gpu);
  CHECK(testing::to_host<T>(fused) == testing::to_host<T>(two_ops));
}

TEST_CASE(
    "cuda: raw::conv2d_batchnorm_eval_forward is the convolution and the eval batch norm, bit for bit") {
  if (!testing::have_gpu()) return;
  for (const auto& [residual, relu] : {std::pair{false, false}, {false, true}, {true, true}}) {
    check_conv_then_batchnorm<float>(residual, relu);
    check_conv_then_batchnorm<bfloat16>(residual, relu);
  }
}

}  // namespace

}  // namespace cuda_conv2d_cuda_test
