// Convolution shapes for kernel tests: a 3x3 geometry in one call, a set of odd ones, their buffers' sizes,
// and a name for failure messages (tests/kernels/conv2d_batchnorm_eval_test.cpp,
// conv2d_input_normalization_test.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/conv2d/conv2d.hpp"

namespace kiln::testing {

// A 3x3 convolution, dilation 1, one group (set .groups or .kernel_h / .kernel_w after for others).
inline kernels::Conv2dGeometry conv3x3(std::int64_t batch, std::int64_t in_channels, std::int64_t height,
                                       std::int64_t width, std::int64_t out_channels, std::int64_t stride,
                                       std::int64_t pad) {
  kernels::Conv2dGeometry g;
  g.batch = batch;
  g.in_channels = in_channels;
  g.in_height = height;
  g.in_width = width;
  g.out_channels = out_channels;
  g.kernel_h = g.kernel_w = 3;
  g.stride_h = g.stride_w = stride;
  g.pad_h = g.pad_w = pad;
  return g;
}

// Odd 3x3 shapes for the Winograd kernels forced on them: channels 3, 5, 17, 33 (xp's padding lanes),
// planes of odd sides, stride 2, padding 0 and 2, batch 1.
inline std::vector<kernels::Conv2dGeometry> odd_3x3_shapes() {
  return {conv3x3(1, 5, 9, 11, 7, 1, 1),   conv3x3(3, 16, 8, 8, 16, 1, 1),   conv3x3(2, 17, 13, 7, 33, 1, 1),
          conv3x3(2, 3, 12, 10, 20, 1, 0), conv3x3(1, 16, 10, 10, 16, 1, 2), conv3x3(2, 16, 12, 10, 32, 2, 1),
          conv3x3(1, 5, 11, 13, 17, 2, 1), conv3x3(2, 33, 6, 6, 40, 1, 1)};
}

inline std::int64_t x_count(const kernels::Conv2dGeometry& g) {
  return g.batch * g.in_channels * g.in_height * g.in_width;
}
inline std::int64_t w_count(const kernels::Conv2dGeometry& g) {
  return g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w;
}
inline std::int64_t y_count(const kernels::Conv2dGeometry& g) {
  return g.batch * g.out_channels * g.out_height() * g.out_width();
}

// "2x16x12x10 -> 32, 3x3 stride 2 pad 1 groups 1"
inline std::string shape_name(const kernels::Conv2dGeometry& g) {
  return std::to_string(g.batch) + "x" + std::to_string(g.in_channels) + "x" + std::to_string(g.in_height) +
         "x" + std::to_string(g.in_width) + " -> " + std::to_string(g.out_channels) + ", " +
         std::to_string(g.kernel_h) + "x" + std::to_string(g.kernel_w) + " stride " +
         std::to_string(g.stride_h) + " pad " + std::to_string(g.pad_h) + " groups " +
         std::to_string(g.groups);
}

}  // namespace kiln::testing
