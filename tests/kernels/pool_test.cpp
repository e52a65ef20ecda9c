// Tests of the pooling kernels (kernels/pool): hand-worked forward values, the ceil-mode shape rule, and a
// finite-difference check of every backward kernel against its forward over odd shapes.
#include "kernels/pool/pool.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.hpp"
#include "tests/support/buffer_gradcheck.hpp"

namespace kernels_pool_test {

namespace {

using kiln::testing::check_gradients_match;
using kiln::testing::numeric_gradient;
using kiln::testing::weighted_sum;

using kiln::Device;
using kiln::kernels::Pool2dGeometry;
namespace ref = kiln::kernels::reference;

template <typename T>
std::vector<T> to(const std::vector<double>& values) {
  return std::vector<T>(values.begin(), values.end());
}

template <typename T>
void check_values(const std::vector<T>& actual, const std::vector<double>& expected) {
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    INFO("element ", i);
    CHECK(static_cast<double>(actual[i]) == doctest::Approx(expected[i]).epsilon(1e-6));
  }
}

std::int64_t input_size(const Pool2dGeometry& g) { return g.batch * g.channels * g.in_height * g.in_width; }
std::int64_t output_size(const Pool2dGeometry& g) {
  return g.batch * g.channels * g.out_height() * g.out_width();
}

std::vector<double> random_values(std::int64_t count, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<double> values(static_cast<std::size_t>(count));
  for (double& v : values) v = uniform(engine);
  return values;
}

// Values 0.01 apart in shuffled order: no two inputs tie, and a finite-difference nudge never changes a window's winner,
// so max pooling is differentiable at this point.
std::vector<double> distinct_values(std::int64_t count, std::uint64_t seed) {
  std::vector<double> values(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.01 * static_cast<double>(i) - 1.0;
  std::shuffle(values.begin(), values.end(), std::mt19937_64(seed));
  return values;
}

// Odd shapes: batch 1, 1x1 spatial, channels 3/5/7, stride 2, padding 1, rectangular inputs and kernels,
// overlapping windows (kernel 3 stride 2), and ceil-mode partial windows.
std::vector<Pool2dGeometry> odd_geometries() {
  return {
      // batch 1, stride 2, rectangular input
      {.batch = 1,
       .channels = 3,
       .in_height = 4,
       .in_width = 6,
       .kernel_h = 2,
       .kernel_w = 2,
       .stride_h = 2,
       .stride_w = 2},
      // kernel 3 stride 2 padding 1: overlapping windows over a rectangular input
      {.batch = 2,
       .channels = 5,
       .in_height = 7,
       .in_width = 5,
       .kernel_h = 3,
       .kernel_w = 3,
       .stride_h = 2,
       .stride_w = 2,
       .pad_h = 1,
       .pad_w = 1},
      // 1x1 spatial
      {.batch = 1, .channels = 7, .in_height = 1, .in_width = 1},
      // 1x1 spatial with padding 1: four windows share the one input
      {.batch = 1,
       .channels = 3,
       .in_height = 1,
       .in_width = 1,
       .kernel_h = 2,
       .kernel_w = 2,
       .pad_h = 1,
       .pad_w = 1},
      // ceil mode: the last row and column of windows are cut short by the input's edge
      {.batch = 2,
       .channels = 3,
       .in_height = 5,
       .in_width = 6,
       .kernel_h = 2,
       .kernel_w = 2,
       .stride_h = 2,
       .stride_w = 2,
       .ceil_mode = true},
      // ceil mode with padding: the last window reaches past the right padding
      {.batch = 1,
       .channels = 5,
       .in_height = 4,
       .in_width = 4,
       .kernel_h = 3,
       .kernel_w = 3,
       .stride_h = 2,
       .stride_w = 2,
       .pad_h = 1,
       .pad_w = 1,
       .ceil_mode = true},
      // rectangular kernel, different strides and paddings per axis
      {.batch = 2,
       .channels = 7,
       .in_height = 6,
       .in_width = 5,
       .kernel_h = 3,
       .kernel_w = 2,
       .stride_h = 2,
       .stride_w = 1,
       .pad_h = 1,
       .pad_w = 0},
  };
}

}  // namespace

// ---- geometry ----------------------------------------------------------------------------------------

TEST_CASE("pool2d_geometry: output sizes follow PyTorch's floor and ceil rules") {
  struct Case {
    std::int64_t in, kernel, stride, pad, floor_out, ceil_out;
  };
  // OH = floor_or_ceil((H + 2 pad - k) / s) + 1, and a ceil-mode window must start before H + pad.
  const Case cases[] = {
      {5, 2, 2, 0, 2, 3},  // ceil keeps the window at row 4 that holds one input row
      {4, 2, 2, 1, 3, 3},  // (4+2-2)/2 = 2 exactly: ceil changes nothing
      {5, 2, 2, 1, 3, 3},  // ceil would give 4, but window 3 would start at row 5, inside the right padding
      {4, 3, 2, 1, 2, 3},  // ceil(3/2) = 2: a third window starting at row 3
      {6, 3, 2, 0, 2, 3},  // ceil(3/2) = 2: a third window starting at row 4 holds rows 4 and 5
      {1, 1, 1, 0, 1, 1},  // 1x1 identity
      {7, 3, 3, 1, 3, 3},  // (7+2-3)/3 = 2 exactly
      {8, 3, 3, 1, 3,
       3},  // ceil would give 4, but window 3 would start at row 9-1 = 8, inside the right padding
      {9, 3, 3, 1, 3, 4},  // ceil(8/3) = 3: a fourth window starting at row 8, the last input row
  };
  for (const Case& c : cases) {
    INFO("H=", c.in, " k=", c.kernel, " s=", c.stride, " pad=", c.pad);
    Pool2dGeometry g{
        .in_height = c.in, .in_width = 1, .kernel_h = c.kernel, .stride_h = c.stride, .pad_h = c.pad};
    CHECK(g.out_height() == c.floor_out);
    g.ceil_mode = true;
    CHECK(g.out_height() == c.ceil_out);
  }
  // The width follows the same rule, independently of the height.
  const Pool2dGeometry rectangular{.in_height = 5,
                                   .in_width = 4,
                                   .kernel_h = 2,
                                   .kernel_w = 2,
                                   .stride_h = 2,
                                   .stride_w = 2,
                                   .ceil_mode = true};
  CHECK(rectangular.out_height() == 3);
  CHECK(rectangular.out_width() == 2);
}

// ---- max pooling -------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("max_pool2d_forward: hand-worked 2x2 stride 2 on a 4x4 plane", T, float, double) {
  // x:  1  2 |  5  3       window maxima and their flat indices ih*4+iw:
  //     4  0 |  6  7         top-left 4 at (1,0) -> 4      top-right 7 at (1,3) -> 7
  //    ------+------         bottom-left 10 at (3,1) -> 13 bottom-right 11 at (3,2) -> 14
  //     9  8 |  2  1
  //     3 10 | 11  4
  const Pool2dGeometry g{
      .in_height = 4, .in_width = 4, .kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2};
  const auto x = to<T>({1, 2, 5, 3, 4, 0, 6, 7, 9, 8, 2, 1, 3, 10, 11, 4});
  std::vector<T> y(4);
  std::vector<std::int32_t> argmax(4);
  ref::max_pool2d_forward(g, x.data(), y.data(), argmax.data());
  check_values(y, {4, 7, 10, 11});
  CHECK(argmax == std::vector<std::int32_t>{4, 7, 13, 14});
}

TEST_CASE_TEMPLATE("max_pool2d_forward: padding 1, padded cells never win", T, float, double) {
  // An all-negative 3x3 plane, kernel 2 stride 2 padding 1 -> 2x2 output. Window rows are {-1,0} and {1,2}
  // (likewise columns); row and column -1 are padding. Were padding a zero, it would win every window.
  //   x: -5 -2 -7     (0,0): {-5}             -> -5 at 0     (0,1): {-2,-7}          -> -2 at 1
  //      -1 -9 -3     (1,0): {-1,-6}          -> -1 at 3     (1,1): {-9,-3,-4,-8}    -> -3 at 5
  //      -6 -4 -8
  const Pool2dGeometry g{.in_height = 3,
                         .in_width = 3,
                         .kernel_h = 2,
                         .kernel_w = 2,
                         .stride_h = 2,
                         .stride_w = 2,
                         .pad_h = 1,
                         .pad_w = 1};
  REQUIRE(g.out_height() == 2);
  REQUIRE(g.out_width() == 2);
  const auto x = to<T>({-5, -2, -7, -1, -9, -3, -6, -4, -8});
  std::vector<T> y(4);
  std::vector<std::int32_t> argmax(4);
  ref::max_pool2d_forward(g, x.data(), y.data(), argmax.data());
  check_values(y, {-5, -2, -1, -3});
  CHECK(argmax == std::vector<std::int32_t>{0, 1, 3, 5});
}

TEST_CASE_TEMPLATE("max_pool2d_forward: ceil_mode keeps partial windows", T, float, double) {
  // 5x5 plane x[ih][iw] = -(5 ih + iw), kernel 2 stride 2, ceil mode -> 3x3 (floor mode would give 2x2).
  // Each window's maximum is its top-left cell (2 oh, 2 ow): y = -(10 oh + 2 ow) at flat index 10 oh + 2 ow.
  // The last row and column of windows hold only input row / column 4.
  const Pool2dGeometry g{.in_height = 5,
                         .in_width = 5,
                         .kernel_h = 2,
                         .kernel_w = 2,
                         .stride_h = 2,
                         .stride_w = 2,
                         .ceil_mode = true};
  REQUIRE(g.out_height() == 3);
  REQUIRE(g.out_width() == 3);
  std::vector<T> x(25);
  for (int i = 0; i < 25; ++i) x[i] = static_cast<T>(-i);
  std::vector<T> y(9);
  std::vector<std::int32_t> argmax(9);
  ref::max_pool2d_forward(g, x.data(), y.data(), argmax.data());
  check_values(y, {0, -2, -4, -10, -12, -14, -20, -22, -24});
  CHECK(argmax == std::vector<std::int32_t>{0, 2, 4, 10, 12, 14, 20, 22, 24});
}

TEST_CASE_TEMPLATE("max_pool2d_forward: ties go to the first position, NaN wins", T, float, double) {
  const Pool2dGeometry g{.in_height = 2, .in_width = 2, .kernel_h = 2, .kernel_w = 2};
  std::vector<T> y(1);
  std::vector<std::int32_t> argmax(1);

  // 1 3 / 2 3: the two 3s tie; the first in row-major order (index 1) wins.
  const auto tied = to<T>({1, 3, 2, 3});
  ref::max_pool2d_forward(g, tied.data(), y.data(), argmax.data());
  CHECK(y[0] == T{3});
  CHECK(argmax[0] == 1);

  // A window of -infinity still names a real input position, so the backward pass has somewhere to go.
  const T inf = std::numeric_limits<T>::infinity();
  const std::vector<T> all_minus_inf{-inf, -inf, -inf, -inf};
  ref::max_pool2d_forward(g, all_minus_inf.data(), y.data(), argmax.data());
  CHECK(y[0] == -inf);
  CHECK(argmax[0] == 0);

  // A NaN propagates to the output instead of being skipped by the comparisons.
  const std::vector<T> with_nan{T{1}, std::numeric_limits<T>::quiet_NaN(), T{5}, T{2}};
  ref::max_pool2d_forward(g, with_nan.data(), y.data(), argmax.data());
  CHECK(std::isnan(y[0]));
  CHECK(argmax[0] == 1);
}

TEST_CASE_TEMPLATE("max_pool2d_backward: overlapping windows add up at a shared winner", T, float, double) {
  // 1x4 plane x = [1 5 2 0], kernel 1x3 stride 1 -> two windows, both won by the 5 at index 1.
  // gy = [10 20] -> gx = [0 30 0 0]. The old contents of gx are overwritten.
  const Pool2dGeometry g{.in_height = 1, .in_width = 4, .kernel_h = 1, .kernel_w = 3};
  REQUIRE(g.out_width() == 2);
  const auto x = to<T>({1, 5, 2, 0});
  std::vector<T> y(2);
  std::vector<std::int32_t> argmax(2);
  ref::max_pool2d_forward(g, x.data(), y.data(), argmax.data());
  const auto gy = to<T>({10, 20});
  std::vector<T> gx(4, T{99});
  ref::max_pool2d_backward(g, gy.data(), argmax.data(), gx.data());
  check_values(gx, {0, 30, 0, 0});
}

TEST_CASE("max_pool2d_backward: matches finite differences over odd shapes") {
  std::uint64_t seed = 1;
  for (const Pool2dGeometry& g : odd_geometries()) {
    INFO("N=", g.batch, " C=", g.channels, " H=", g.in_height, " W=", g.in_width, " k=", g.kernel_h, "x",
         g.kernel_w, " s=", g.stride_h, "x", g.stride_w, " pad=", g.pad_h, "x", g.pad_w,
         " ceil=", g.ceil_mode);
    std::vector<double> x = distinct_values(input_size(g), seed++);
    const std::vector<double> weights = random_values(output_size(g), seed++);
    std::vector<double> y(weights.size());
    std::vector<std::int32_t> argmax(weights.size());
    const auto loss = [&] {
      ref::max_pool2d_forward(g, x.data(), y.data(), argmax.data());
      return weighted_sum(weights, y);
    };

    loss();
    std::vector<double> gx(x.size());
    ref::max_pool2d_backward(g, weights.data(), argmax.data(), gx.data());
    check_gradients_match(gx, numeric_gradient(x, loss));
  }
}

// ---- average pooling ---------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("avg_pool2d_forward: a padded corner with and without count_include_pad", T, float,
                   double) {
  // x: 1 2 3    kernel 2 stride 2 padding 1 -> 2x2. Windows and their real cells:
  //    4 5 6      (0,0): {1}        sum 1    (0,1): {2,3}       sum 5
  //    7 8 9      (1,0): {4,7}      sum 11   (1,1): {5,6,8,9}   sum 28
  // count_include_pad: every window divides by 4      -> 0.25, 1.25, 2.75, 7
  // otherwise: divide by the real cells (1, 2, 2, 4)  -> 1,    2.5,  5.5,  7
  Pool2dGeometry g{.in_height = 3,
                   .in_width = 3,
                   .kernel_h = 2,
                   .kernel_w = 2,
                   .stride_h = 2,
                   .stride_w = 2,
                   .pad_h = 1,
                   .pad_w = 1};
  const auto x = to<T>({1, 2, 3, 4, 5, 6, 7, 8, 9});
  std::vector<T> y(4);

  g.count_include_pad = true;
  ref::avg_pool2d_forward(g, x.data(), y.data());
  check_values(y, {0.25, 1.25, 2.75, 7});

  g.count_include_pad = false;
  ref::avg_pool2d_forward(g, x.data(), y.data());
  check_values(y, {1, 2.5, 5.5, 7});
}

TEST_CASE_TEMPLATE("avg_pool2d_forward: ceil_mode window past the right padding", T, float, double) {
  // 4x4 plane x = 1..16, kernel 3 stride 2 padding 1, ceil mode -> 3x3 (floor mode would give 2x2).
  //    1  2  3  4     Along each axis the windows start at -1, 1, 3. The padded input spans [-1, 5), so:
  //    5  6  7  8       window 0: real [0,2), 3 positions in the padded input
  //    9 10 11 12       window 1: real [1,4), 3 positions
  //   13 14 15 16       window 2: real [3,4), 2 positions (row 5 lies past the right padding and never
  //   counts)
  // sums:  (0,0) 1+2+5+6 = 14    (0,1) 2+3+4+6+7+8 = 30          (0,2) 4+8 = 12
  //        (1,0) 5+6+9+10+13+14 = 57  (1,1) 6+7+8+10+11+12+14+15+16 = 99  (1,2) 8+12+16 = 36
  //        (2,0) 13+14 = 27      (2,1) 14+15+16 = 45              (2,2) 16
  // count_include_pad divisors 9 9 6 / 9 9 6 / 6 6 4; real-cell divisors 4 6 2 / 6 9 3 / 2 3 1.
  Pool2dGeometry g{.in_height = 4,
                   .in_width = 4,
                   .kernel_h = 3,
                   .kernel_w = 3,
                   .stride_h = 2,
                   .stride_w = 2,
                   .pad_h = 1,
                   .pad_w = 1,
                   .ceil_mode = true};
  REQUIRE(g.out_height() == 3);
  REQUIRE(g.out_width() == 3);
  std::vector<T> x(16);
  for (int i = 0; i < 16; ++i) x[i] = static_cast<T>(i + 1);
  std::vector<T> y(9);

  g.count_include_pad = true;
  ref::avg_pool2d_forward(g, x.data(), y.data());
  check_values(y, {14.0 / 9, 30.0 / 9, 2, 57.0 / 9, 11, 6, 4.5, 7.5, 4});

  g.count_include_pad = false;
  ref::avg_pool2d_forward(g, x.data(), y.data());
  check_values(y, {3.5, 5, 6, 9.5, 11, 12, 13.5, 15, 16});
}

TEST_CASE_TEMPLATE("avg_pool2d_backward: hand-worked padded 3x3", T, float, double) {
  // The geometry of the padded-corner forward test, gy = [4 8 12 16]. Each window hands gy / divisor to
  // its real cells:
  //   count_include_pad (divisor 4):  1 to {0};  2 to {1,2};  3 to {3,6};  4 to {4,5,7,8}
  //   otherwise (divisors 1 2 2 4):   4 to {0};  4 to {1,2};  6 to {3,6};  4 to {4,5,7,8}
  Pool2dGeometry g{.in_height = 3,
                   .in_width = 3,
                   .kernel_h = 2,
                   .kernel_w = 2,
                   .stride_h = 2,
                   .stride_w = 2,
                   .pad_h = 1,
                   .pad_w = 1};
  const auto gy = to<T>({4, 8, 12, 16});
  std::vector<T> gx(9, T{99});

  g.count_include_pad = true;
  ref::avg_pool2d_backward(g, gy.data(), gx.data());
  check_values(gx, {1, 2, 2, 3, 4, 4, 3, 4, 4});

  g.count_include_pad = false;
  ref::avg_pool2d_backward(g, gy.data(), gx.data());
  check_values(gx, {4, 4, 4, 6, 4, 4, 6, 4, 4});
}

TEST_CASE("avg_pool2d_backward: without count_include_pad each gradient is handed out in full") {
  // Each window's weights 1/divisor sum to 1 over its real cells, so sum(gx) == sum(gy) for any geometry.
  std::uint64_t seed = 100;
  for (Pool2dGeometry g : odd_geometries()) {
    g.count_include_pad = false;
    const std::vector<double> gy = random_values(output_size(g), seed++);
    std::vector<double> gx(static_cast<std::size_t>(input_size(g)));
    ref::avg_pool2d_backward(g, gy.data(), gx.data());
    const double gy_total = std::accumulate(gy.begin(), gy.end(), 0.0);
    const double gx_total = std::accumulate(gx.begin(), gx.end(), 0.0);
    CHECK(gx_total == doctest::Approx(gy_total).epsilon(1e-12));
  }
}

TEST_CASE("avg_pool2d_backward: matches finite differences over odd shapes") {
  std::uint64_t seed = 200;
  for (Pool2dGeometry g : odd_geometries()) {
    for (const bool include_pad : {true, false}) {
      g.count_include_pad = include_pad;
      INFO("N=", g.batch, " C=", g.channels, " H=", g.in_height, " W=", g.in_width, " k=", g.kernel_h, "x",
           g.kernel_w, " s=", g.stride_h, "x", g.stride_w, " pad=", g.pad_h, "x", g.pad_w,
           " ceil=", g.ceil_mode, " count_include_pad=", include_pad);
      std::vector<double> x = random_values(input_size(g), seed++);
      const std::vector<double> weights = random_values(output_size(g), seed++);
      std::vector<double> y(weights.size());
      const auto loss = [&] {
        ref::avg_pool2d_forward(g, x.data(), y.data());
        return weighted_sum(weights, y);
      };

      std::vector<double> gx(x.size());
      ref::avg_pool2d_backward(g, weights.data(), gx.data());
      check_gradients_match(gx, numeric_gradient(x, loss));
    }
  }
}

// ---- global average pooling --------------------------------------------------------------------------

TEST_CASE_TEMPLATE("global_avg_pool2d_forward: hand-worked plane means", T, float, double) {
  // Two planes of three: (1 + 2 + 6) / 3 = 3 and (-3 + 0 + 9) / 3 = 2.
  const auto x = to<T>({1, 2, 6, -3, 0, 9});
  std::vector<T> y(2);
  ref::global_avg_pool2d_forward<T>({.channels = 2, .plane_size = 3}, x.data(), y.data());
  check_values(y, {3, 2});
}

TEST_CASE_TEMPLATE("global_avg_pool2d_backward: hand-worked shares", T, float, double) {
  // gy = [3 -6] over planes of three: each element gets gy / 3.
  const auto gy = to<T>({3, -6});
  std::vector<T> gx(6);
  ref::global_avg_pool2d_backward<T>({.channels = 2, .plane_size = 3}, gy.data(), gx.data());
  check_values(gx, {1, 1, 1, -2, -2, -2});
}

TEST_CASE("global_avg_pool2d_backward: matches finite differences over odd shapes") {
  // plane_size = H * W: [1,3,1,1], [2,5,3,3], [1,7,5,4], [3,3,7,1], each in both layouts
  const kiln::kernels::GlobalPool2dGeometry shapes[] = {{.batch = 1, .channels = 3, .plane_size = 1},
                                                        {.batch = 2, .channels = 5, .plane_size = 9},
                                                        {.batch = 1, .channels = 7, .plane_size = 20},
                                                        {.batch = 3, .channels = 3, .plane_size = 7}};
  std::uint64_t seed = 300;
  for (kiln::kernels::GlobalPool2dGeometry g : shapes) {
    for (const bool channels_last : {false, true}) {
      g.channels_last = channels_last;
      INFO("[", g.batch, ", ", g.channels, "] planes of ", g.plane_size,
           (channels_last ? " channels-last" : ""));
      std::vector<double> x = random_values(g.planes() * g.plane_size, seed++);
      const std::vector<double> weights = random_values(g.planes(), seed++);
      std::vector<double> y(weights.size());
      const auto loss = [&] {
        ref::global_avg_pool2d_forward(g, x.data(), y.data());
        return weighted_sum(weights, y);
      };

      std::vector<double> gx(x.size());
      ref::global_avg_pool2d_backward(g, weights.data(), gx.data());
      check_gradients_match(gx, numeric_gradient(x, loss));
    }
  }
}

// ---- layouts -------------------------------------------------------------------------------------------

namespace {

// [N, C, H, W] values stored NCHW -> the same values stored [N, H, W, C].
template <typename T>
std::vector<T> nchw_to_channels_last(const std::vector<T>& nchw, std::int64_t n, std::int64_t c,
                                     std::int64_t positions) {
  std::vector<T> out(nchw.size());
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t ch = 0; ch < c; ++ch) {
      for (std::int64_t p = 0; p < positions; ++p) {
        out[static_cast<std::size_t>((i * positions + p) * c + ch)] =
            nchw[static_cast<std::size_t>((i * c + ch) * positions + p)];
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("pool reference: channels-last results are the NCHW results, stored channels-last") {
  // Every pool reads a plane's element i at plane[i * step] in either layout, in the same order: the
  // channels-last results must be the NCHW ones, moved, bit for bit (argmax indices unchanged).
  std::uint64_t seed = 700;
  for (Pool2dGeometry g : odd_geometries()) {
    INFO("[", g.batch, ", ", g.channels, ", ", g.in_height, ", ", g.in_width, "] kernel ", g.kernel_h, "x",
         g.kernel_w);
    const std::int64_t in_positions = g.in_height * g.in_width,
                       out_positions = g.out_height() * g.out_width();
    const auto in_cl = [&](const std::vector<double>& v) {
      return nchw_to_channels_last(v, g.batch, g.channels, in_positions);
    };
    const auto out_cl = [&](const auto& v) {
      return nchw_to_channels_last(v, g.batch, g.channels, out_positions);
    };
    const std::vector<double> x = random_values(input_size(g), seed++),
                              gy = random_values(output_size(g), seed++);
    const std::vector<double> x_cl = in_cl(x), gy_cl = out_cl(gy);
    const auto out = static_cast<std::size_t>(output_size(g)), in = static_cast<std::size_t>(input_size(g));
    Pool2dGeometry g_cl = g;
    g_cl.channels_last = true;

    std::vector<double> y(out), y_cl(out), gx(in), gx_cl(in);
    std::vector<std::int32_t> argmax(out), argmax_cl(out);
    ref::max_pool2d_forward(g, x.data(), y.data(), argmax.data());
    ref::max_pool2d_forward(g_cl, x_cl.data(), y_cl.data(), argmax_cl.data());
    CHECK(y_cl == out_cl(y));
    CHECK(argmax_cl == out_cl(argmax));
    ref::max_pool2d_backward(g, gy.data(), argmax.data(), gx.data());
    ref::max_pool2d_backward(g_cl, gy_cl.data(), argmax_cl.data(), gx_cl.data());
    CHECK(gx_cl == in_cl(gx));

    ref::avg_pool2d_forward(g, x.data(), y.data());
    ref::avg_pool2d_forward(g_cl, x_cl.data(), y_cl.data());
    CHECK(y_cl == out_cl(y));
    ref::avg_pool2d_backward(g, gy.data(), gx.data());
    ref::avg_pool2d_backward(g_cl, gy_cl.data(), gx_cl.data());
    CHECK(gx_cl == in_cl(gx));

    kiln::kernels::GlobalPool2dGeometry global{
        .batch = g.batch, .channels = g.channels, .plane_size = in_positions};
    std::vector<double> means(static_cast<std::size_t>(global.planes())), means_cl(means.size());
    ref::global_avg_pool2d_forward(global, x.data(), means.data());
    ref::global_avg_pool2d_backward(global, means.data(), gx.data());
    global.channels_last = true;
    ref::global_avg_pool2d_forward(global, x_cl.data(), means_cl.data());
    CHECK(means_cl == means);  // [N, C] in either layout
    ref::global_avg_pool2d_backward(global, means.data(), gx_cl.data());
    CHECK(gx_cl == in_cl(gx));
  }
}

// ---- dispatch ----------------------------------------------------------------------------------------

TEST_CASE("pool dispatch: the CPU runs the reference kernels") {
  const Pool2dGeometry g{.batch = 2,
                         .channels = 3,
                         .in_height = 5,
                         .in_width = 4,
                         .kernel_h = 3,
                         .kernel_w = 3,
                         .stride_h = 2,
                         .stride_w = 2,
                         .pad_h = 1,
                         .pad_w = 1};
  const std::vector<double> x = distinct_values(input_size(g), 7);
  const std::vector<double> gy = random_values(output_size(g), 8);
  const std::size_t out = gy.size(), in = x.size();

  std::vector<double> y(out), y_ref(out), gx(in), gx_ref(in);
  std::vector<std::int32_t> argmax(out), argmax_ref(out);
  kiln::kernels::max_pool2d_forward(Device::cpu(), g, x.data(), y.data(), argmax.data());
  ref::max_pool2d_forward(g, x.data(), y_ref.data(), argmax_ref.data());
  CHECK(y == y_ref);
  CHECK(argmax == argmax_ref);
  kiln::kernels::max_pool2d_backward(Device::cpu(), g, gy.data(), argmax.data(), gx.data());
  ref::max_pool2d_backward(g, gy.data(), argmax_ref.data(), gx_ref.data());
  CHECK(gx == gx_ref);

  kiln::kernels::avg_pool2d_forward(Device::cpu(), g, x.data(), y.data());
  ref::avg_pool2d_forward(g, x.data(), y_ref.data());
  CHECK(y == y_ref);
  kiln::kernels::avg_pool2d_backward(Device::cpu(), g, gy.data(), gx.data());
  ref::avg_pool2d_backward(g, gy.data(), gx_ref.data());
  CHECK(gx == gx_ref);

  const kiln::kernels::GlobalPool2dGeometry global{
      .batch = g.batch, .channels = g.channels, .plane_size = g.in_height * g.in_width};
  kiln::kernels::global_avg_pool2d_forward(Device::cpu(), global, x.data(), y.data());
  ref::global_avg_pool2d_forward(global, x.data(), y_ref.data());
  CHECK(std::equal(y.begin(), y.begin() + global.planes(), y_ref.begin()));
  kiln::kernels::global_avg_pool2d_backward(Device::cpu(), global, gy.data(), gx.data());
  ref::global_avg_pool2d_backward(global, gy.data(), gx_ref.data());
  CHECK(gx == gx_ref);
}

}  // namespace kernels_pool_test
