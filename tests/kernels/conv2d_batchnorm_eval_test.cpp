// Tests of the convolution with an eval-mode batch norm on its output (kernels/conv2d/conv2d.hpp,
// conv2d_forward_batchnorm_eval): Winograd's stores, Depthwise's planes and Pointwise's chunks of images
// normalize their own outputs (OutputNormalization), every other path is conv2d_forward then
// batchnorm2d_forward_eval, and all must give exactly the bits of those two calls, which inference took
// before the fusion. So every check here is bitwise.
//
// The Winograd, Depthwise and Pointwise kernels are called directly on odd shapes (channels 3, 5, 17, 33;
// planes of odd sides; stride 2; padding 0 and 2; a 5x5 kernel; groups 2; batch 1, and chunks of many
// images; with and without a bias, residual and ReLU), at every fast CPU level (Winograd at both tiles); the
// dispatch on shapes it sends to those (fused: one profiled op) and elsewhere (two).
#include <doctest/doctest.h>

#include <cstdint>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/profiler.hpp"
#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/conv2d/algorithm.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/cpu_level.hpp"
#include "tests/support/conv_shapes.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace kernels_conv2d_batchnorm_eval_test {

namespace {

using kiln::Device;
using kiln::kernels::BatchNorm2dGeometry;
using kiln::kernels::BatchNormEval;
using kiln::kernels::Conv2dGeometry;
using kiln::kernels::CpuLevel;
using kiln::kernels::OutputNormalization;
using kiln::kernels::WinogradTile;
using kiln::testing::bitwise_equal;
using kiln::testing::conv3x3;
using kiln::testing::DispatchGuard;
using kiln::testing::fast_levels;
using kiln::testing::random_floats;
using kiln::testing::random_values;
using kiln::testing::shape_name;
using kiln::testing::w_count;
using kiln::testing::x_count;
using kiln::testing::y_count;
namespace kernels = kiln::kernels;

constexpr float kNoCap = std::numeric_limits<float>::infinity();
// The capped ReLU's cap in these tests: low enough that a good share of the outputs reach it.
constexpr float kCap = 0.5f;

BatchNorm2dGeometry norm_geometry(const Conv2dGeometry& g, bool relu, float cap = kNoCap) {
  return {.batch = g.batch,
          .channels = g.out_channels,
          .height = g.out_height(),
          .width = g.out_width(),
          .fused_relu = relu,
          .relu_upper = cap,
          .channels_last = g.channels_last};
}

// Per-channel parameters of an eval-mode batch norm in float: gamma of either sign (a negative scale flips
// which outputs the ReLU keeps), running variances from 0.05 up.
struct NormParameters {
  std::vector<float> gamma, beta, mean, var;
  explicit NormParameters(std::int64_t channels, std::uint64_t seed)
      : gamma(random_floats(channels, seed, -1.5f, 1.5f)),
        beta(random_floats(channels, seed + 1, -0.5f, 0.5f)),
        mean(random_floats(channels, seed + 2, -0.3f, 0.3f)),
        var(random_floats(channels, seed + 3, 0.05f, 2.0f)) {}
};
constexpr float kEps = 1e-5f;

// The per-channel scale the vectorized eval kernel computes, as the dispatch hands it to the stores.
std::vector<float> eval_scales(const NormParameters& p) {
  std::vector<float> scale(p.gamma.size());
  for (std::size_t c = 0; c < scale.size(); ++c)
    scale[c] = kernels::batchnorm_eval_scale(p.gamma[c], p.var[c], kEps);
  return scale;
}

void winograd_forward(CpuLevel level, WinogradTile tile, const Conv2dGeometry& g, const float* x,
                      const float* w, const float* bias, float* y, const OutputNormalization* normalization) {
  if (level == CpuLevel::Avx512)
    return kernels::avx512::winograd_conv2d_forward(tile, g, x, w, bias, y, normalization);
  kernels::avx2::winograd_conv2d_forward(tile, g, x, w, bias, y, normalization);
}

struct Case {
  bool bias, residual, relu;
  float cap = kNoCap;
};
constexpr Case kCases[] = {{false, false, false},
                           {false, false, true},
                           {true, false, true},
                           {false, true, true},
                           {true, true, true}};
// The same with the ReLU capped (ReLU6's kind): without a residual the cap rides the affine part's stores,
// with one it follows the sum.
constexpr Case kCappedCases[] = {{false, false, true, kCap}, {true, true, true, kCap}};

}  // namespace

namespace {

// For a forward pass forward(x, w, bias, normalization, y) of g that takes an OutputNormalization: in every
// case (bias, residual, ReLU, capped ReLU), the pass with the normalization gives the bits of the plain pass
// followed by the eval kernel over its output, the two calls inference made before.
template <class Forward>
void check_normalizing_forward(const Conv2dGeometry& g, Forward&& forward) {
  const std::vector<float> x = random_floats(x_count(g), 1), w = random_floats(w_count(g), 2, -0.3f, 0.3f);
  const std::vector<float> bias = random_floats(g.out_channels, 3), residual = random_floats(y_count(g), 4);
  const NormParameters p(g.out_channels, 5);
  const std::vector<float> scale = eval_scales(p);
  std::vector<Case> cases(std::begin(kCases), std::end(kCases));
  cases.insert(cases.end(), std::begin(kCappedCases), std::end(kCappedCases));
  for (const Case& c : cases) {
    CAPTURE(c.bias);
    CAPTURE(c.residual);
    CAPTURE(c.relu);
    CAPTURE(c.cap);
    const float* b = c.bias ? bias.data() : nullptr;
    const float* r = c.residual ? residual.data() : nullptr;
    std::vector<float> expected(static_cast<std::size_t>(y_count(g)), -7.0f);
    forward(x.data(), w.data(), b, nullptr, expected.data());
    kernels::batchnorm2d_forward_eval(Device::cpu(), norm_geometry(g, c.relu, c.cap), expected.data(),
                                      p.gamma.data(), p.beta.data(), p.mean.data(), p.var.data(), kEps,
                                      expected.data(), r);
    std::vector<float> fused(expected.size(), -9.0f);
    const OutputNormalization normalization{.shift = p.mean.data(),
                                            .scale = scale.data(),
                                            .offset = p.beta.data(),
                                            .residual = r,
                                            .relu = c.relu,
                                            .relu_upper = c.cap};
    forward(x.data(), w.data(), b, &normalization, fused.data());
    CHECK(bitwise_equal(fused, expected));
  }
}

}  // namespace

TEST_CASE("conv2d + batch norm eval: Winograd's normalizing stores give the eval kernel's bits, odd shapes") {
  const DispatchGuard guard;
  for (const CpuLevel level : fast_levels()) {
    kernels::set_cpu_level(level);
    for (const Conv2dGeometry& g : kiln::testing::odd_3x3_shapes()) {
      for (const WinogradTile tile : {WinogradTile::F2x2, WinogradTile::F4x4}) {
        const auto algorithm = tile == WinogradTile::F2x2 ? kernels::Conv2dAlgorithm::Winograd2x2
                                                          : kernels::Conv2dAlgorithm::Winograd4x4;
        if (!kernels::conv2d_algorithm_supports(algorithm, g, kernels::Conv2dDirection::Forward, level))
          continue;
        CAPTURE(kernels::cpu_level_name(level));
        CAPTURE(shape_name(g));
        CAPTURE(static_cast<int>(tile));
        check_normalizing_forward(
            g, [&](const float* x, const float* w, const float* b, const OutputNormalization* normalization,
                   float* y) { winograd_forward(level, tile, g, x, w, b, y, normalization); });
      }
    }
  }
}

TEST_CASE(
    "conv2d + batch norm eval: Depthwise's planes and Pointwise's chunks normalize to the eval kernel's "
    "bits, odd shapes") {
  const DispatchGuard guard;
  std::vector<Conv2dGeometry> depthwise = {conv3x3(1, 5, 7, 9, 5, 1, 1), conv3x3(3, 17, 11, 6, 17, 2, 1),
                                           conv3x3(2, 3, 4, 4, 3, 1, 0)};
  Conv2dGeometry five_by_five = conv3x3(2, 4, 9, 8, 4, 2, 2);
  five_by_five.kernel_h = five_by_five.kernel_w = 5;
  depthwise.push_back(five_by_five);
  for (Conv2dGeometry& g : depthwise) g.groups = g.in_channels;
  // Pointwise: groups 2, planes of 2x3 pixels over 40 images (several chunks of images), one image of 17x13.
  std::vector<Conv2dGeometry> pointwise = {conv3x3(40, 6, 2, 3, 10, 1, 0), conv3x3(1, 7, 17, 13, 9, 1, 0)};
  pointwise[0].groups = 2;
  for (Conv2dGeometry& g : pointwise) g.kernel_h = g.kernel_w = 1;

  for (const CpuLevel level : fast_levels()) {
    kernels::set_cpu_level(level);
    for (const Conv2dGeometry& g : depthwise) {
      CAPTURE(kernels::cpu_level_name(level));
      CAPTURE(shape_name(g));
      check_normalizing_forward(g, [&](const float* x, const float* w, const float* b,
                                       const OutputNormalization* normalization, float* y) {
        if (level == CpuLevel::Avx512)
          return kernels::avx512::depthwise_conv2d_forward(g, x, w, b, y, normalization);
        kernels::avx2::depthwise_conv2d_forward(g, x, w, b, y, normalization);
      });
    }
    for (const Conv2dGeometry& g : pointwise) {
      CAPTURE(kernels::cpu_level_name(level));
      CAPTURE(shape_name(g));
      check_normalizing_forward(
          g, [&](const float* x, const float* w, const float* b, const OutputNormalization* normalization,
                 float* y) { kernels::pointwise::conv2d_forward(g, x, w, b, y, normalization); });
    }
  }
}

namespace {

// conv2d_forward_batchnorm_eval against conv2d_forward and batchnorm2d_forward_eval into separate buffers, in
// T, and whether the dispatch ran it as one profiled convolution (the fused stores) rather than the two ops.
template <typename T>
bool matches_two_calls(const Conv2dGeometry& g, bool residual, bool relu, bool* fused, float cap = kNoCap) {
  using P = kiln::opmath_t<T>;
  const std::vector<T> x = random_values<T>(x_count(g), 11),
                       w = random_values<T>(w_count(g), 12, -0.3f, 0.3f);
  const std::vector<T> bias = random_values<T>(g.out_channels, 13), added = random_values<T>(y_count(g), 14);
  const NormParameters p(g.out_channels, 15);
  const std::vector<P> gamma(p.gamma.begin(), p.gamma.end()), beta(p.beta.begin(), p.beta.end()),
      mean(p.mean.begin(), p.mean.end()), var(p.var.begin(), p.var.end());
  const T* r = residual ? added.data() : nullptr;

  std::vector<T> conv(static_cast<std::size_t>(y_count(g))), expected(conv.size());
  kernels::conv2d_forward<T>(Device::cpu(), g, x.data(), w.data(), bias.data(), conv.data());
  kernels::batchnorm2d_forward_eval<T>(Device::cpu(), norm_geometry(g, relu, cap), conv.data(), gamma.data(),
                                       beta.data(), mean.data(), var.data(), static_cast<P>(kEps),
                                       expected.data(), r);

  std::vector<T> out(conv.size());
  const BatchNormEval<T> norm{.gamma = gamma.data(),
                              .beta = beta.data(),
                              .running_mean = mean.data(),
                              .running_var = var.data(),
                              .eps = static_cast<P>(kEps),
                              .residual = r,
                              .relu = relu,
                              .relu_upper = cap};
  kiln::profiler::Session session(Device::cpu());
  kernels::conv2d_forward_batchnorm_eval<T>(Device::cpu(), g, x.data(), w.data(), bias.data(), norm,
                                            out.data());
  const kiln::profiler::Profile profile = session.finish();
  *fused = profile.ops.size() == 1 && profile.ops[0].op == "conv2d_forward" &&
           profile.ops[0].detail.find("+ batch norm") != std::string::npos;
  return bitwise_equal(out, expected);
}

}  // namespace

TEST_CASE(
    "conv2d + batch norm eval: the dispatch fuses where Winograd, Depthwise or Pointwise runs over NCHW "
    "floats, and matches the two calls everywhere") {
  const DispatchGuard guard;
  // 16 -> 16 at 16x16, batch 8: the float dispatch's Winograd (F(4x4, 3x3)) at both fast levels.
  const Conv2dGeometry winograd = conv3x3(8, 16, 16, 16, 16, 1, 1);
  Conv2dGeometry channels_last = winograd;
  channels_last.channels_last = true;
  Conv2dGeometry pointwise = conv3x3(2, 6, 5, 7, 9, 1, 0);  // Pointwise
  pointwise.kernel_h = pointwise.kernel_w = 1;
  Conv2dGeometry depthwise = conv3x3(2, 12, 9, 9, 12, 2, 1);  // Depthwise (under 16 channels)
  depthwise.groups = 12;
  const Conv2dGeometry small = conv3x3(1, 5, 9, 11, 7, 1, 1);  // im2col + GEMM

  std::vector<CpuLevel> levels = fast_levels();
  levels.push_back(CpuLevel::Reference);
  for (const CpuLevel level : levels) {
    kernels::set_cpu_level(level);
    for (const bool residual : {false, true}) {
      CAPTURE(kernels::cpu_level_name(level));
      CAPTURE(residual);
      bool fused = false;
      for (const Conv2dGeometry& g : {winograd, pointwise, depthwise}) {
        CAPTURE(shape_name(g));
        CHECK(matches_two_calls<float>(g, residual, true, &fused));
        CHECK(fused == (level != CpuLevel::Reference));
        CHECK(matches_two_calls<float>(g, false, false, &fused));
        // A capped ReLU (ReLU6's kind), capped in the same stores.
        CHECK(matches_two_calls<float>(g, residual, true, &fused, kCap));
        CHECK(fused == (level != CpuLevel::Reference));
      }
      for (const Conv2dGeometry& g : {channels_last, small}) {
        CAPTURE(shape_name(g));
        CHECK(matches_two_calls<float>(g, residual, true, &fused));
        CHECK_FALSE(fused);
        CHECK(matches_two_calls<float>(g, false, false, &fused));
      }
      CHECK(matches_two_calls<double>(small, residual, true, &fused));
      CHECK_FALSE(fused);
      CHECK(matches_two_calls<kiln::bfloat16>(winograd, residual, true, &fused));
      CHECK_FALSE(fused);
    }
  }
}

}  // namespace kernels_conv2d_batchnorm_eval_test
