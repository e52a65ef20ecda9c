// Tests of the vectorized im2col / col2im_add (kernels/conv2d/im2col_kernel.hpp, avx512_im2col.cpp,
// avx2_im2col.cpp) against the portable ones (im2col.cpp).
//
// im2col is a pure copy and col2im_add adds each gx element's taps in the same order as the portable loops,
// so both must match bitwise, not within a tolerance. The shapes are the ones that exercise the lane
// masks: row widths 1..40 (most not multiples of 8 or 16), 1x1 inputs, stride 1, 2 and 3, padding 0/1/2,
// dilation 2, non-square kernels, and a col row stride wider than one image (the side-by-side chunks
// gemm_conv.cpp unfolds). Buffers start as NaN around the written region, so a stray write shows up, and
// gx holds -0.0 in places, which an added 0.0 would turn into +0.0.
#include "kernels/conv2d/im2col.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/conv2d/conv2d.hpp"
#include "kernels/cpu_level.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace kernels_im2col_test {

namespace {

using kiln::kernels::Conv2dGeometry;
using kiln::kernels::CpuLevel;
using kiln::kernels::Im2colKernels;
using kiln::testing::bitwise_equal;
using kiln::testing::fast_levels;
using kiln::testing::random_floats;
namespace kernels = kiln::kernels;
using Floats = std::vector<float>;

struct NamedKernels {
  const char* name;
  CpuLevel level;
  Im2colKernels kernels;
};

// The vectorized pairs this CPU can run; fast_levels() reports a missing level, never fails.
std::vector<NamedKernels> vector_kernels() {
  const std::vector<NamedKernels> all = {
      {"avx512", CpuLevel::Avx512, {kernels::avx512::im2col, kernels::avx512::col2im_add}},
      {"avx2", CpuLevel::Avx2, {kernels::avx2::im2col, kernels::avx2::col2im_add}},
  };
  const std::vector<CpuLevel> levels = fast_levels();
  std::vector<NamedKernels> usable;
  for (const NamedKernels& k : all) {
    if (std::find(levels.begin(), levels.end(), k.level) != levels.end()) usable.push_back(k);
  }
  return usable;
}

Conv2dGeometry geometry(std::int64_t channels, std::int64_t height, std::int64_t width, std::int64_t kernel,
                        std::int64_t stride, std::int64_t pad, std::int64_t dilation) {
  Conv2dGeometry g;
  g.in_channels = channels;
  g.in_height = height;
  g.in_width = width;
  g.kernel_h = g.kernel_w = kernel;
  g.stride_h = g.stride_w = stride;
  g.pad_h = g.pad_w = pad;
  g.dilation_h = g.dilation_w = dilation;
  return g;
}

std::string describe(const Conv2dGeometry& g) {
  std::ostringstream out;
  out << "C" << g.in_channels << " " << g.in_height << "x" << g.in_width << " k" << g.kernel_h << "x"
      << g.kernel_w << " stride " << g.stride_h << "," << g.stride_w << " pad " << g.pad_h << "," << g.pad_w
      << " dilation " << g.dilation_h << "," << g.dilation_w;
  return out.str();
}

std::vector<Conv2dGeometry> shapes() {
  std::vector<Conv2dGeometry> all;
  // Every row width 1..40 through the ResNet 3x3 (stride 1 and 2, pad 1), and a few through pad 0 / 2.
  for (std::int64_t width = 1; width <= 40; ++width) {
    all.push_back(geometry(2, 3, width, 3, 1, 1, 1));
    all.push_back(geometry(2, 4, width, 3, 2, 1, 1));
    if (width % 3 == 0) all.push_back(geometry(1, 5, width, 3, 1, 0, 1));
    if (width % 4 == 1) all.push_back(geometry(1, 5, width, 3, 2, 2, 1));
  }
  all.push_back(geometry(3, 1, 1, 1, 1, 0, 1));    // 1x1 input, 1x1 kernel
  all.push_back(geometry(3, 1, 1, 3, 1, 1, 1));    // 1x1 input through a padded 3x3: almost all padding
  all.push_back(geometry(2, 1, 1, 3, 2, 2, 1));    // 1x1 input, pad 2, stride 2
  all.push_back(geometry(2, 11, 10, 3, 1, 2, 2));  // dilation 2
  all.push_back(geometry(2, 13, 37, 3, 2, 2, 2));  // dilation 2, stride 2
  all.push_back(geometry(2, 9, 23, 3, 3, 1, 1));   // stride 3 (the scalar path)
  all.push_back(geometry(2, 7, 35, 1, 2, 0, 1));   // 1x1 kernel, stride 2 (a ResNet shortcut)
  all.push_back(geometry(3, 32, 32, 3, 1, 1, 1));  // the ResNet-20 shapes
  all.push_back(geometry(2, 32, 32, 3, 2, 1, 1));
  all.push_back(geometry(2, 16, 16, 3, 2, 1, 1));
  all.push_back(geometry(2, 8, 8, 3, 1, 1, 1));
  Conv2dGeometry non_square = geometry(2, 9, 13, 3, 1, 1, 1);  // 3x5 kernel, strides 2 / 1, pads 1 / 2
  non_square.kernel_w = 5;
  non_square.stride_h = 2;
  non_square.pad_w = 2;
  all.push_back(non_square);
  return all;
}

// The col matrix of `images` images side by side, as gemm_conv.cpp lays out a chunk, with one NaN row of
// slack after it. Returns col and its row stride.
struct ColLayout {
  std::int64_t rows, plane, images, stride;
  std::int64_t floats() const { return (rows + 1) * stride; }
};
ColLayout col_layout(const Conv2dGeometry& g, std::int64_t images) {
  const std::int64_t plane = g.out_height() * g.out_width();
  return {g.in_channels * g.kernel_h * g.kernel_w, plane, images, images * plane};
}

}  // namespace

TEST_CASE("im2col: vectorized builds copy exactly what the portable one does") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const NamedKernels& k : vector_kernels()) {
    for (const Conv2dGeometry& g : shapes()) {
      const ColLayout layout = col_layout(g, 2);
      const std::int64_t plane_in = g.in_height * g.in_width;
      const Floats x = random_floats<std::mt19937>(2 * g.in_channels * plane_in, 1);
      Floats expected(static_cast<std::size_t>(layout.floats()), nan), actual = expected;
      for (std::int64_t b = 0; b < 2; ++b) {  // image 1 second: its rows lie between image 0's
        const float* x_image = x.data() + b * g.in_channels * plane_in;
        kernels::im2col(g, x_image, g.in_channels, expected.data() + b * layout.plane, layout.stride);
        k.kernels.im2col(g, x_image, g.in_channels, actual.data() + b * layout.plane, layout.stride);
      }
      CHECK_MESSAGE(bitwise_equal(actual, expected), k.name, " im2col differs on ", describe(g));
    }
  }
}

TEST_CASE("col2im_add: vectorized builds add exactly what the portable one does") {
  for (const NamedKernels& k : vector_kernels()) {
    for (const Conv2dGeometry& g : shapes()) {
      const ColLayout layout = col_layout(g, 2);
      const std::int64_t plane_in = g.in_height * g.in_width;
      const Floats col = random_floats<std::mt19937>(layout.floats(), 2);
      // gx: random, with every third element -0.0, and a NaN guard on either side of the two images.
      Floats start = random_floats<std::mt19937>(2 * g.in_channels * plane_in + 2, 3);
      for (std::size_t i = 0; i < start.size(); i += 3) start[i] = -0.0f;
      start.front() = start.back() = std::numeric_limits<float>::quiet_NaN();
      Floats expected = start, actual = start;
      for (std::int64_t b = 0; b < 2; ++b) {
        const std::int64_t gx_offset = 1 + b * g.in_channels * plane_in;
        kernels::col2im_add(g, col.data() + b * layout.plane, g.in_channels, layout.stride,
                            expected.data() + gx_offset);
        k.kernels.col2im_add(g, col.data() + b * layout.plane, g.in_channels, layout.stride,
                             actual.data() + gx_offset);
      }
      CHECK_MESSAGE(bitwise_equal(actual, expected), k.name, " col2im_add differs on ", describe(g));
    }
  }
}

}  // namespace kernels_im2col_test
