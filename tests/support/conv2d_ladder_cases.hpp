// The convolution ladder's test cases and their check, shared by the GPU tests
// (tests/cuda/conv2d_ladder_test.cpp) and the CPU emulation of the same kernels
// (tests/emulation/ladder_emulation_test.cpp): they differ only in the runner that puts the operands where
// the step reads them and launches it. The cases: 1x1 kernels and 1x1 images, stride 2, padding, dilation,
// asymmetric kernels, groups and depthwise, batch 1, channel counts that are not multiples of 8 or 16. NHWC
// steps get their operands converted on the host and their output converted back.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/hopper.hpp"
#include "tests/support/ladder_testing.hpp"

namespace kiln::testing {

using kernels::Conv2dGeometry;
using kernels::conv2d_ladder::Layout;
using kernels::conv2d_ladder::Pass;

inline std::string describe(const Conv2dGeometry& g) {
  return "N=" + std::to_string(g.batch) + " C=" + std::to_string(g.in_channels) + " " +
         std::to_string(g.in_height) + "x" + std::to_string(g.in_width) +
         " K=" + std::to_string(g.out_channels) + " " + std::to_string(g.kernel_h) + "x" +
         std::to_string(g.kernel_w) + " stride " + std::to_string(g.stride_h) + "," +
         std::to_string(g.stride_w) + " pad " + std::to_string(g.pad_h) + "," + std::to_string(g.pad_w) +
         " dilation " + std::to_string(g.dilation_h) + "," + std::to_string(g.dilation_w) + " groups " +
         std::to_string(g.groups);
}

inline Conv2dGeometry convolution(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w,
                                  std::int64_t k, std::int64_t r, std::int64_t s, std::int64_t stride,
                                  std::int64_t pad, std::int64_t dilation = 1, std::int64_t groups = 1) {
  return {.batch = n,
          .in_channels = c,
          .in_height = h,
          .in_width = w,
          .out_channels = k,
          .kernel_h = r,
          .kernel_w = s,
          .stride_h = stride,
          .stride_w = stride,
          .pad_h = pad,
          .pad_w = pad,
          .dilation_h = dilation,
          .dilation_w = dilation,
          .groups = groups};
}

inline std::vector<Conv2dGeometry> conv2d_ladder_geometries() {
  std::vector<Conv2dGeometry> list = {
      convolution(2, 8, 9, 9, 16, 3, 3, 1, 1),          // the common case, every step takes it
      convolution(1, 3, 7, 7, 5, 3, 3, 1, 1),           // a network's first layer: 3 channels, batch 1
      convolution(3, 16, 11, 13, 24, 3, 3, 2, 1),       // stride 2 over odd sizes
      convolution(2, 12, 10, 10, 20, 1, 1, 1, 0),       // 1x1
      convolution(3, 16, 5, 6, 24, 1, 1, 1, 0),         // 1x1 on a non-square map, channels in 8s
      convolution(2, 8, 12, 12, 8, 3, 3, 1, 2, 2),      // dilation 2
      convolution(2, 8, 8, 8, 12, 3, 3, 1, 1, 1, 4),    // groups
      convolution(2, 16, 9, 9, 16, 3, 3, 1, 1, 1, 16),  // depthwise
      convolution(1, 32, 16, 16, 64, 3, 3, 2, 1),       // a ResNet downsampling layer
      convolution(4, 64, 8, 8, 64, 3, 3, 1, 1),         // ResNet's last stage: forward split 9 ways
      convolution(4, 16, 32, 32, 16, 3, 3, 1, 1),  // ResNet's first stage: backward weight split 8, 16 ways
      convolution(1, 8, 1, 1, 3, 1, 1, 1, 0),      // a 1x1 image
      convolution(5, 24, 17, 17, 40, 3, 3, 1, 0),  // unpadded, many output positions
      convolution(2, 20, 6, 6, 36, 1, 1, 2, 0),    // a 1x1 projection shortcut with stride 2
      convolution(3, 16, 7, 7, 32, 1, 1, 2, 0),    // ResNet's projection shortcut, 16 -> 32, stride 2
      convolution(1, 72, 6, 6, 136, 3, 3, 1, 1),   // wide (VGG-style): the widest tiles, K past one
  };
  Conv2dGeometry asymmetric = convolution(2, 16, 5, 7, 33, 5, 3, 1, 0);  // 5x3 kernel, strides 2 and 1
  asymmetric.stride_h = 2;
  asymmetric.pad_h = 2;
  list.push_back(asymmetric);
  return list;
}

// A tensor's sizes in kiln's layout: x [N, C, H, W], w [K, C/groups, R, S], y [N, K, P, Q].
struct Sizes {
  std::int64_t d0, d1, d2, d3;
  std::int64_t count() const { return d0 * d1 * d2 * d3; }
};
inline Sizes x_sizes(const Conv2dGeometry& g) { return {g.batch, g.in_channels, g.in_height, g.in_width}; }
inline Sizes w_sizes(const Conv2dGeometry& g) {
  return {g.out_channels, g.in_channels_per_group(), g.kernel_h, g.kernel_w};
}
inline Sizes y_sizes(const Conv2dGeometry& g) {
  return {g.batch, g.out_channels, g.out_height(), g.out_width()};
}

// [d0, d1, d2, d3] <-> [d0, d2, d3, d1]: NCHW to NHWC for activations, KCRS to KRSC for filters.
inline std::vector<float> channels_last(const std::vector<float>& v, const Sizes& s) {
  std::vector<float> out(v.size());
  for (std::int64_t a = 0; a < s.d0; ++a)
    for (std::int64_t b = 0; b < s.d1; ++b)
      for (std::int64_t c = 0; c < s.d2; ++c)
        for (std::int64_t d = 0; d < s.d3; ++d)
          out[((a * s.d2 + c) * s.d3 + d) * s.d1 + b] = v[((a * s.d1 + b) * s.d2 + c) * s.d3 + d];
  return out;
}
inline std::vector<float> channels_first(const std::vector<float>& v, const Sizes& s) {
  std::vector<float> out(v.size());
  for (std::int64_t a = 0; a < s.d0; ++a)
    for (std::int64_t b = 0; b < s.d1; ++b)
      for (std::int64_t c = 0; c < s.d2; ++c)
        for (std::int64_t d = 0; d < s.d3; ++d)
          out[((a * s.d1 + b) * s.d2 + c) * s.d3 + d] = v[((a * s.d2 + c) * s.d3 + d) * s.d1 + b];
  return out;
}

// The pass's inputs and output, in kiln's layout: forward (x, w) -> y, backward data (gy, w) -> gx,
// backward weight (gy, x) -> gw.
struct PassSizes {
  Sizes first, second, output;
  std::int64_t terms;  // products summed into one output element, at most
};
inline PassSizes pass_sizes(Pass pass, const Conv2dGeometry& g) {
  const std::int64_t taps = g.kernel_h * g.kernel_w;
  switch (pass) {
    case Pass::Forward:
      return {x_sizes(g), w_sizes(g), y_sizes(g), g.in_channels_per_group() * taps};
    case Pass::BackwardData:
      return {y_sizes(g), w_sizes(g), x_sizes(g), g.out_channels_per_group() * taps};
    case Pass::BackwardWeight:
      return {y_sizes(g), x_sizes(g), w_sizes(g), g.batch * g.out_height() * g.out_width()};
  }
  return {};
}

// The reference pass in double (reference.cpp's kernels: every sum in double).
inline std::vector<double> reference_pass(Pass pass, const Conv2dGeometry& g,
                                          const std::vector<double>& first, const std::vector<double>& second,
                                          std::int64_t output_count) {
  std::vector<double> output(static_cast<std::size_t>(output_count));
  switch (pass) {
    case Pass::Forward:
      kernels::reference::conv2d_forward<double>(g, first.data(), second.data(), nullptr, output.data());
      break;
    case Pass::BackwardData:
      kernels::reference::conv2d_backward_data<double>(g, first.data(), second.data(), output.data());
      break;
    case Pass::BackwardWeight:
      kernels::reference::conv2d_backward_weight<double>(g, first.data(), second.data(), output.data());
      break;
  }
  return output;
}

// Runs `step` on `g`: its two inputs as floats in the step's layout (exactly bfloat16 values for a bf16 step,
// which the runner hands over as bfloat16). The runner poisons the output (NaN) before the launch and returns
// it, in the step's layout.
using Conv2dLadderRunner = std::function<std::vector<float>(
    const kernels::conv2d_ladder::Step& step, const Conv2dGeometry& g, const std::vector<float>& first,
    const std::vector<float>& second, std::int64_t output_count)>;

// Runs `step` on `g` with fresh operands drawn from `seed` and checks its output against the reference.
inline void check_conv2d_ladder_step(const kernels::conv2d_ladder::Step& step, const Conv2dGeometry& g,
                                     std::uint64_t seed, const Conv2dLadderRunner& run) {
  INFO(step.name, ": ", describe(g));
  const PassSizes sizes = pass_sizes(step.pass, g);
  const std::vector<float> first = ladder_operands(step.precision, sizes.first.count(), seed);
  const std::vector<float> second = ladder_operands(step.precision, sizes.second.count(), seed + 1);

  const bool nhwc = step.layout == Layout::Nhwc;
  std::vector<float> output = run(step, g, nhwc ? channels_last(first, sizes.first) : first,
                                  nhwc ? channels_last(second, sizes.second) : second, sizes.output.count());
  if (nhwc) output = channels_first(output, sizes.output);

  const std::vector<double> expected =
      reference_pass(step.pass, g, widened(first), widened(second), sizes.output.count());
  const std::vector<double> magnitude =
      reference_pass(step.pass, g, absolute(widened(first)), absolute(widened(second)), sizes.output.count());
  const LadderReport report =
      within_ladder_bound(output, expected, magnitude, ladder_bound(step.precision, sizes.terms));
  CHECK_MESSAGE(report.ok, report.message);
}

// Every step of every pass on every geometry it supports; each must meet at least `minimum_cases` (strides,
// padding, 1x1 and odd sizes, not only the easy case).
inline void check_every_conv2d_ladder_step(std::uint64_t seed, int minimum_cases,
                                           const Conv2dLadderRunner& run) {
  for (const kernels::conv2d_ladder::Step& step : kernels::conv2d_ladder::steps()) {
    if (step.needs_wgmma && !kernels::ladder::wgmma_available()) {
      MESSAGE(std::string(step.name), ": not run (a Hopper step; this build or GPU has no wgmma)");
      continue;
    }
    int checked = 0;
    for (const Conv2dGeometry& g : conv2d_ladder_geometries()) {
      if (!kernels::conv2d_ladder::supports(step, g)) continue;
      check_conv2d_ladder_step(step, g, seed += 2, run);
      ++checked;
    }
    INFO(step.name);
    CHECK(checked >= minimum_cases);
  }
}

}  // namespace kiln::testing
