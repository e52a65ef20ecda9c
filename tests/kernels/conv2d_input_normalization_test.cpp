// Tests of a train-mode batch norm (and its activation) taken into the convolution after it
// (kernels/conv2d/conv2d.hpp, InputNormalization): Winograd's and the depthwise kernels' copies in normalize
// x, forward and for the weight gradient, and must give the bits of the same passes over x normalized
// beforehand, which training computed before the fusion; the batch norm's statistics alone
// (batchnorm2d_forward_train with no y) must be its full forward's.
//
// The kernels are called directly on odd shapes: Winograd's with channels 3, 5, 17, 33 (so the padding lanes
// of xp's pixels), planes of odd sides, stride 2, padding 0 and 2, batch 1, at both tiles; the depthwise
// ones (planes and channel blocks) with channels 5 to 40 (partial blocks), 3x3 and 5x5 kernels at strides
// 1, 2 and 3 (more than two column phases), dilation 2, 1x1 planes, batch 1. Every fast CPU level, each
// activation (none, the ReLU, ReLU6, the hard swish); every check is bitwise.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/conv2d/algorithm.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/elementwise/elementwise.hpp"
#include "tests/support/conv_shapes.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace kernels_conv2d_input_normalization_test {

namespace {

using kiln::Device;
using kiln::kernels::BatchNorm2dGeometry;
using kiln::kernels::Conv2dAlgorithm;
using kiln::kernels::Conv2dDirection;
using kiln::kernels::Conv2dGeometry;
using kiln::kernels::CpuLevel;
using kiln::kernels::InputNormalization;
using kiln::kernels::OutputNormalization;
using kiln::kernels::WinogradTile;
using kiln::testing::bitwise_equal;
using kiln::testing::conv3x3;
using kiln::testing::DispatchGuard;
using kiln::testing::fast_levels;
using kiln::testing::random_floats;
using kiln::testing::shape_name;
using kiln::testing::w_count;
using kiln::testing::x_count;
using kiln::testing::y_count;
namespace kernels = kiln::kernels;

// x normalized beforehand, as the batch norm's own pass would store it: x's planes taken as the outputs of
// a convolution of C_in channels and run through the same per-value arithmetic (conv2d_normalize_outputs,
// batchnorm_vector_ops.hpp's shift_scale_offset, the batch norm forward's normalizing run), the ReLU capped
// or not in it; the hard swish then as the elementwise op computes it (whose float bits batch norm's fused
// hard swish gives).
std::vector<float> normalized(const Conv2dGeometry& g, const std::vector<float>& x,
                              const InputNormalization& in) {
  Conv2dGeometry planes;  // [N, C_in, H, W] as a 1x1 convolution's output
  planes.batch = g.batch;
  planes.in_channels = planes.out_channels = g.in_channels;
  planes.in_height = g.in_height;
  planes.in_width = g.in_width;
  std::vector<float> out = x;
  kernels::conv2d_normalize_outputs(planes,
                                    {.shift = in.shift,
                                     .scale = in.scale,
                                     .offset = in.offset,
                                     .residual = nullptr,
                                     .relu = in.relu,
                                     .relu_upper = in.relu_upper},
                                    out.data());
  if (in.hardswish) {
    kernels::unary_forward<float>(Device::cpu(), kernels::UnaryOp::Hardswish, {},
                                  static_cast<std::int64_t>(out.size()), out.data(), out.data());
  }
  return out;
}

// The activations an input normalization takes, by name: none, the ReLU, ReLU6, the hard swish.
std::vector<std::pair<std::string, InputNormalization>> activations(const float* shift, const float* scale,
                                                                    const float* offset) {
  const InputNormalization plain{.shift = shift, .scale = scale, .offset = offset};
  InputNormalization relu = plain, relu6 = plain, hardswish = plain;
  relu.relu = relu6.relu = true;
  relu6.relu_upper = 6.0f;
  hardswish.hardswish = true;
  return {{"none", plain}, {"relu", relu}, {"relu6", relu6}, {"hardswish", hardswish}};
}

void winograd_forward(CpuLevel level, WinogradTile tile, const Conv2dGeometry& g, const float* x,
                      const float* w, const float* bias, float* y, const InputNormalization* input) {
  if (level == CpuLevel::Avx512)
    return kernels::avx512::winograd_conv2d_forward(tile, g, x, w, bias, y, nullptr, input);
  kernels::avx2::winograd_conv2d_forward(tile, g, x, w, bias, y, nullptr, input);
}
void winograd_weight_gradient(CpuLevel level, WinogradTile tile, const Conv2dGeometry& g, const float* gy,
                              const float* x, float* gw, const InputNormalization* input) {
  if (level == CpuLevel::Avx512)
    return kernels::avx512::winograd_conv2d_backward_weight(tile, g, gy, x, gw, input);
  kernels::avx2::winograd_conv2d_backward_weight(tile, g, gy, x, gw, input);
}

// Whether `pass(input, normalization, out)` gives the same bits over x normalized beforehand (no
// normalization) as over x with `input` applied in its copies; each output of `count` floats poisoned first,
// differently.
template <typename Pass>
bool same_bits_normalizing(std::int64_t count, const std::vector<float>& x,
                           const std::vector<float>& x_normalized, const InputNormalization& input,
                           Pass pass) {
  std::vector<float> expected(static_cast<std::size_t>(count), -7.0f), fused(expected.size(), -9.0f);
  pass(x_normalized.data(), nullptr, expected.data());
  pass(x.data(), &input, fused.data());
  return bitwise_equal(fused, expected);
}

// A depthwise convolution: groups = C_in = C_out.
Conv2dGeometry depthwise(std::int64_t batch, std::int64_t channels, std::int64_t height, std::int64_t width,
                         std::int64_t kernel, std::int64_t stride, std::int64_t pad,
                         std::int64_t dilation = 1) {
  Conv2dGeometry g = kiln::testing::conv3x3(batch, channels, height, width, channels, stride, pad);
  g.kernel_h = g.kernel_w = kernel;
  g.dilation_h = g.dilation_w = dilation;
  g.groups = channels;
  return g;
}

// The depthwise kernels, planes (Depthwise) or channel blocks (DepthwiseChannels), at `level`.
void depthwise_forward(CpuLevel level, Conv2dAlgorithm algorithm, const Conv2dGeometry& g, const float* x,
                       const float* w, const float* bias, float* y, const InputNormalization* input) {
  const bool avx512 = level == CpuLevel::Avx512;
  if (algorithm == Conv2dAlgorithm::Depthwise) {
    if (avx512) return kernels::avx512::depthwise_conv2d_forward(g, x, w, bias, y, nullptr, input);
    return kernels::avx2::depthwise_conv2d_forward(g, x, w, bias, y, nullptr, input);
  }
  if (avx512) return kernels::avx512::depthwise_channels_conv2d_forward(g, x, w, bias, y, input);
  kernels::avx2::depthwise_channels_conv2d_forward(g, x, w, bias, y, input);
}
void depthwise_weight_gradient(CpuLevel level, Conv2dAlgorithm algorithm, const Conv2dGeometry& g,
                               const float* gy, const float* x, float* gw, const InputNormalization* input) {
  const bool avx512 = level == CpuLevel::Avx512;
  if (algorithm == Conv2dAlgorithm::Depthwise) {
    if (avx512) return kernels::avx512::depthwise_conv2d_backward_weight(g, gy, x, gw, input);
    return kernels::avx2::depthwise_conv2d_backward_weight(g, gy, x, gw, input);
  }
  if (avx512) return kernels::avx512::depthwise_channels_conv2d_backward_weight(g, gy, x, gw, input);
  kernels::avx2::depthwise_channels_conv2d_backward_weight(g, gy, x, gw, input);
}

}  // namespace

TEST_CASE(
    "conv2d input normalization: the depthwise kernels' copies in give the bits of the normalized input, "
    "odd shapes") {
  const DispatchGuard guard;
  const std::vector<Conv2dGeometry> shapes = {
      depthwise(2, 17, 9, 11, 3, 1, 1),     depthwise(1, 33, 16, 16, 3, 1, 1),
      depthwise(3, 5, 5, 7, 3, 1, 1),       depthwise(2, 24, 17, 15, 3, 2, 1),
      depthwise(1, 16, 32, 32, 3, 2, 1),    depthwise(2, 19, 9, 9, 5, 1, 2),
      depthwise(2, 40, 16, 16, 5, 2, 2),    depthwise(1, 6, 10, 11, 3, 3, 0),
      depthwise(2, 18, 12, 12, 3, 1, 2, 2), depthwise(4, 32, 1, 1, 3, 1, 1),
      depthwise(2, 20, 4, 4, 3, 1, 1)};
  for (const CpuLevel level : fast_levels()) {
    kernels::set_cpu_level(level);
    for (const Conv2dGeometry& g : shapes) {
      const std::vector<float> x = random_floats(x_count(g), 51, -4.0f, 4.0f),
                               w = random_floats(w_count(g), 52, -0.5f, 0.5f);
      const std::vector<float> bias = random_floats(g.out_channels, 53), gy = random_floats(y_count(g), 54);
      // Coefficients that carry values past ReLU6's cap and both of the hard swish's kinks (-3 and 3).
      const std::vector<float> shift = random_floats(g.in_channels, 55, -0.5f, 0.5f);
      const std::vector<float> scale = random_floats(g.in_channels, 56, -2.5f, 2.5f);
      const std::vector<float> offset = random_floats(g.in_channels, 57, -1.0f, 1.0f);
      for (const auto& [name, input] : activations(shift.data(), scale.data(), offset.data())) {
        const std::vector<float> x_normalized = normalized(g, x, input);
        for (const Conv2dAlgorithm algorithm :
             {Conv2dAlgorithm::Depthwise, Conv2dAlgorithm::DepthwiseChannels}) {
          CAPTURE(kernels::cpu_level_name(level));
          CAPTURE(shape_name(g));
          CAPTURE(kernels::conv2d_algorithm_name(algorithm));
          CAPTURE(name);
          REQUIRE(kernels::conv2d_algorithm_supports(algorithm, g, Conv2dDirection::Forward, level));
          CHECK(same_bits_normalizing(
              y_count(g), x, x_normalized, input,
              [&](const float* in, const InputNormalization* normalization, float* y) {
                depthwise_forward(level, algorithm, g, in, w.data(), bias.data(), y, normalization);
              }));
          CHECK(same_bits_normalizing(
              w_count(g), x, x_normalized, input,
              [&](const float* in, const InputNormalization* normalization, float* gw) {
                depthwise_weight_gradient(level, algorithm, g, gy.data(), in, gw, normalization);
              }));
        }
      }
    }
  }
}

TEST_CASE(
    "conv2d input normalization: Winograd's copies in give the bits of the normalized input, odd shapes") {
  const DispatchGuard guard;
  const std::vector<Conv2dGeometry> shapes = kiln::testing::odd_3x3_shapes();
  for (const CpuLevel level : fast_levels()) {
    kernels::set_cpu_level(level);
    for (const Conv2dGeometry& g : shapes) {
      const std::vector<float> x = random_floats(x_count(g), 31, -4.0f, 4.0f),
                               w = random_floats(w_count(g), 32, -0.3f, 0.3f);
      const std::vector<float> bias = random_floats(g.out_channels, 33), gy = random_floats(y_count(g), 34);
      // A batch norm's coefficients: shift near the mean, a scale of either sign, an offset; values reach
      // past ReLU6's cap and both of the hard swish's kinks.
      const std::vector<float> shift = random_floats(g.in_channels, 35, -0.2f, 0.2f);
      const std::vector<float> scale = random_floats(g.in_channels, 36, -2.5f, 2.5f);
      const std::vector<float> offset = random_floats(g.in_channels, 37, -0.5f, 0.5f);
      for (const auto& [name, input] : activations(shift.data(), scale.data(), offset.data())) {
        const std::vector<float> x_normalized = normalized(g, x, input);
        for (const WinogradTile tile : {WinogradTile::F2x2, WinogradTile::F4x4}) {
          const auto algorithm =
              tile == WinogradTile::F2x2 ? Conv2dAlgorithm::Winograd2x2 : Conv2dAlgorithm::Winograd4x4;
          CAPTURE(kernels::cpu_level_name(level));
          CAPTURE(shape_name(g));
          CAPTURE(static_cast<int>(tile));
          CAPTURE(name);
          if (kernels::conv2d_algorithm_supports(algorithm, g, Conv2dDirection::Forward, level)) {
            CHECK(same_bits_normalizing(
                y_count(g), x, x_normalized, input,
                [&](const float* in, const InputNormalization* normalization, float* y) {
                  winograd_forward(level, tile, g, in, w.data(), bias.data(), y, normalization);
                }));
          }
          if (kernels::conv2d_algorithm_supports(algorithm, g, Conv2dDirection::BackwardWeight, level)) {
            CHECK(same_bits_normalizing(
                w_count(g), x, x_normalized, input,
                [&](const float* in, const InputNormalization* normalization, float* gw) {
                  winograd_weight_gradient(level, tile, g, gy.data(), in, gw, normalization);
                }));
          }
        }
      }
    }
  }
}

TEST_CASE(
    "conv2d input normalization: the dispatch takes it where both passes run Winograd or depthwise kernels "
    "over NCHW floats") {
  const DispatchGuard guard;
  const Conv2dGeometry fused = conv3x3(8, 16, 32, 32, 16, 1, 1);  // F(4x4, 3x3) forward and weight gradient
  const Conv2dGeometry small = conv3x3(2, 16, 8, 8, 16, 1, 1);    // im2col + GEMM
  Conv2dGeometry channels_last = fused;
  channels_last.channels_last = true;
  // MobileNetV2's depthwise layers: planes forward and channel blocks backward at 32x32, channel blocks both
  // ways at 8x8, and stride 2.
  const std::vector<Conv2dGeometry> depthwise_layers = {depthwise(8, 144, 32, 32, 3, 1, 1),
                                                        depthwise(8, 384, 8, 8, 3, 1, 1),
                                                        depthwise(8, 144, 32, 32, 3, 2, 1)};
  const InputNormalization input{};
  for (const CpuLevel level : fast_levels()) {
    kernels::set_cpu_level(level);
    CAPTURE(kernels::cpu_level_name(level));
    CHECK(kernels::conv2d_normalizes_input(Device::cpu(), fused));
    for (const Conv2dGeometry& g : depthwise_layers) {
      CAPTURE(shape_name(g));
      CHECK(kernels::conv2d_normalizes_input(Device::cpu(), g));
    }
    CHECK_FALSE(kernels::conv2d_normalizes_input(Device::cpu(), small));
    CHECK_FALSE(kernels::conv2d_normalizes_input(Device::cpu(), channels_last));
    std::vector<float> buffer(static_cast<std::size_t>(x_count(small)));
    CHECK_THROWS_WITH_AS(kernels::conv2d_forward_normalized_input(Device::cpu(), small, buffer.data(), input,
                                                                  buffer.data(), nullptr, buffer.data()),
                         doctest::Contains("conv2d_normalizes_input"), kiln::Error);
    // An algorithm run by name refuses a normalization its copies do not apply.
    CHECK_THROWS_WITH_AS(kernels::conv2d_forward_using(Conv2dAlgorithm::Im2colGemm, small, buffer.data(),
                                                       buffer.data(), nullptr, buffer.data(), &input),
                         doctest::Contains("does not normalize its input"), kiln::Error);
    CHECK_THROWS_WITH_AS(
        kernels::conv2d_backward_weight_using(Conv2dAlgorithm::Im2colGemm, small, buffer.data(),
                                              buffer.data(), buffer.data(), &input),
        doctest::Contains("does not normalize its input"), kiln::Error);
  }
  kernels::set_cpu_level(CpuLevel::Reference);
  CHECK_FALSE(kernels::conv2d_normalizes_input(Device::cpu(), fused));
}

TEST_CASE("batchnorm2d_forward_train without y: the statistics and running statistics of the full forward") {
  const DispatchGuard guard;
  // Planes of 32x32 take the channel-group walk with y, and the plain walk without; 3x3 planes the rows.
  for (const BatchNorm2dGeometry g :
       {BatchNorm2dGeometry{.batch = 8, .channels = 16, .height = 32, .width = 32},
        BatchNorm2dGeometry{.batch = 5, .channels = 7, .height = 3, .width = 3}}) {
    const std::int64_t count = g.batch * g.channels * g.height * g.width;
    const std::vector<float> x = random_floats(count, 41, 0.5f, 2.5f), gamma = random_floats(g.channels, 42);
    const std::vector<float> beta = random_floats(g.channels, 43);
    for (const CpuLevel level : fast_levels()) {
      kernels::set_cpu_level(level);
      CAPTURE(kernels::cpu_level_name(level));
      CAPTURE(g.height);
      std::vector<float> mean(static_cast<std::size_t>(g.channels)), invstd(mean.size()),
          running_mean(mean.size(), 0.1f), running_var(mean.size(), 0.9f), y(static_cast<std::size_t>(count));
      std::vector<float> alone_mean(mean.size()), alone_invstd(mean.size()),
          alone_running_mean = running_mean, alone_running_var = running_var;
      kernels::batchnorm2d_forward_train<float>(Device::cpu(), g, x.data(), gamma.data(), beta.data(), 1e-5f,
                                                0.1f, running_mean.data(), running_var.data(), y.data(),
                                                mean.data(), invstd.data());
      kernels::batchnorm2d_forward_train<float>(Device::cpu(), g, x.data(), gamma.data(), beta.data(), 1e-5f,
                                                0.1f, alone_running_mean.data(), alone_running_var.data(),
                                                nullptr, alone_mean.data(), alone_invstd.data());
      CHECK(bitwise_equal(alone_mean, mean));
      CHECK(bitwise_equal(alone_invstd, invstd));
      CHECK(bitwise_equal(alone_running_mean, running_mean));
      CHECK(bitwise_equal(alone_running_var, running_var));
    }
    kernels::set_cpu_level(CpuLevel::Reference);
    std::vector<float> mean(static_cast<std::size_t>(g.channels)), invstd(mean.size());
    CHECK_THROWS_WITH_AS(kernels::batchnorm2d_forward_train<float>(Device::cpu(), g, x.data(), gamma.data(),
                                                                   beta.data(), 1e-5f, 0.1f, nullptr, nullptr,
                                                                   nullptr, mean.data(), invstd.data()),
                         doctest::Contains("statistics alone"), kiln::Error);
  }
}

}  // namespace kernels_conv2d_input_normalization_test
