// Tests of the conv2d kernels (kernels/conv2d/conv2d.hpp).
//
// The forward is checked against small cases worked out by hand (the arithmetic is in the comments). Each
// backward kernel is checked by hand on one case, then by central finite differences of the forward over
// a list of odd geometries, and all three are tied together by adjointness:
//   <conv(x, w), gy> == <x, backward_data(gy, w)> == <w, backward_weight(gy, x)>.
#include "kernels/conv2d/conv2d.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace kernels_conv2d_test {

namespace {

using kiln::kernels::Conv2dGeometry;
using Values = std::vector<double>;

// ---- buffer sizes and helpers --------------------------------------------------------------------------

std::size_t x_size(const Conv2dGeometry& g) {  // [N, C_in, H, W]
  return static_cast<std::size_t>(g.batch * g.in_channels * g.in_height * g.in_width);
}
std::size_t w_size(const Conv2dGeometry& g) {  // [C_out, C_in/groups, KH, KW]
  return static_cast<std::size_t>(g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w);
}
std::size_t y_size(const Conv2dGeometry& g) {  // [N, C_out, OH, OW]
  return static_cast<std::size_t>(g.batch * g.out_channels * g.out_height() * g.out_width());
}
std::size_t b_size(const Conv2dGeometry& g) { return static_cast<std::size_t>(g.out_channels); }

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// The reference kernels, returning fresh buffers. Outputs start as NaN, so a kernel that adds into its
// output instead of overwriting it, or misses an element, shows up as NaN.
Values forward(const Conv2dGeometry& g, const Values& x, const Values& w, const Values* bias = nullptr) {
  Values y(y_size(g), kNaN);
  kiln::kernels::reference::conv2d_forward(g, x.data(), w.data(), bias ? bias->data() : nullptr, y.data());
  return y;
}
Values backward_data(const Conv2dGeometry& g, const Values& gy, const Values& w) {
  Values gx(x_size(g), kNaN);
  kiln::kernels::reference::conv2d_backward_data(g, gy.data(), w.data(), gx.data());
  return gx;
}
Values backward_weight(const Conv2dGeometry& g, const Values& gy, const Values& x) {
  Values gw(w_size(g), kNaN);
  kiln::kernels::reference::conv2d_backward_weight(g, gy.data(), x.data(), gw.data());
  return gw;
}
Values backward_bias(const Conv2dGeometry& g, const Values& gy) {
  Values gb(b_size(g), kNaN);
  kiln::kernels::reference::conv2d_backward_bias(g, gy.data(), gb.data());
  return gb;
}

// Uniform values in [-1, 1), the same for the same seed.
Values random_values(std::size_t count, unsigned seed) {
  std::mt19937 engine(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  Values values(count);
  for (double& v : values) v = uniform(engine);
  return values;
}

double dot(const Values& a, const Values& b) {
  REQUIRE(a.size() == b.size());
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

// Exact comparison, for hand-worked cases whose answers are small integers (exact in double).
void check_equal(const Values& actual, const Values& expected) {
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    CAPTURE(i);
    CHECK(actual[i] == expected[i]);
  }
}

// Relative-plus-absolute comparison: |a - b| < tolerance * (1 + max(|a|, |b|)).
void check_close(const Values& actual, const Values& expected, double tolerance) {
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    CAPTURE(i);
    CHECK(actual[i] == doctest::Approx(expected[i]).epsilon(tolerance));
  }
}

// d loss / d at[i] by central differences, (loss(at + eps e_i) - loss(at - eps e_i)) / (2 eps), for every i.
// The losses below are linear in `at`, so the only error is rounding, about 1e-16 * |loss| / eps.
Values numerical_gradient(const std::function<double(const Values&)>& loss, Values at, double eps = 1e-6) {
  Values gradient(at.size());
  for (std::size_t i = 0; i < at.size(); ++i) {
    const double original = at[i];
    at[i] = original + eps;
    const double loss_plus = loss(at);
    at[i] = original - eps;
    const double loss_minus = loss(at);
    at[i] = original;
    gradient[i] = (loss_plus - loss_minus) / (2 * eps);
  }
  return gradient;
}

// ---- the odd geometries every backward check runs over ---------------------------------------------------

struct NamedGeometry {
  std::string name;
  Conv2dGeometry g;
};

std::vector<NamedGeometry> odd_geometries() {
  return {
      {"batch 1, 1x1 input, 1x1 kernel, 3 -> 5 channels",
       {.batch = 1, .in_channels = 3, .in_height = 1, .in_width = 1, .out_channels = 5}},
      {"3 -> 5 channels, 3x3 kernel, padding 1",
       {.batch = 2,
        .in_channels = 3,
        .in_height = 5,
        .in_width = 5,
        .out_channels = 5,
        .kernel_h = 3,
        .kernel_w = 3,
        .pad_h = 1,
        .pad_w = 1}},
      {"6 -> 4 channels, groups 2",
       {.batch = 2,
        .in_channels = 6,
        .in_height = 4,
        .in_width = 5,
        .out_channels = 4,
        .kernel_h = 3,
        .kernel_w = 3,
        .groups = 2}},
      {"depthwise, 5 channels, groups 5, padding 1",
       {.batch = 1,
        .in_channels = 5,
        .in_height = 5,
        .in_width = 4,
        .out_channels = 5,
        .kernel_h = 3,
        .kernel_w = 3,
        .pad_h = 1,
        .pad_w = 1,
        .groups = 5}},
      {"channel multiplier 2: 3 -> 6 channels, groups 3",
       {.batch = 2,
        .in_channels = 3,
        .in_height = 4,
        .in_width = 4,
        .out_channels = 6,
        .kernel_h = 2,
        .kernel_w = 2,
        .groups = 3}},
      {"stride 2, padding 1, 7x6 input",
       {.batch = 2,
        .in_channels = 3,
        .in_height = 7,
        .in_width = 6,
        .out_channels = 2,
        .kernel_h = 3,
        .kernel_w = 3,
        .stride_h = 2,
        .stride_w = 2,
        .pad_h = 1,
        .pad_w = 1}},
      {"dilation 2, padding 1",
       {.batch = 1,
        .in_channels = 2,
        .in_height = 7,
        .in_width = 6,
        .out_channels = 3,
        .kernel_h = 3,
        .kernel_w = 3,
        .pad_h = 1,
        .pad_w = 1,
        .dilation_h = 2,
        .dilation_w = 2}},
      {"3x1 kernel on a rectangular 5x3 input, 3 -> 7 channels",
       {.batch = 2,
        .in_channels = 3,
        .in_height = 5,
        .in_width = 3,
        .out_channels = 7,
        .kernel_h = 3,
        .kernel_w = 1,
        .pad_h = 1}},
      {"stride 3 over a 2x2 kernel: some input positions are never read",
       {.batch = 1,
        .in_channels = 2,
        .in_height = 7,
        .in_width = 8,
        .out_channels = 3,
        .kernel_h = 2,
        .kernel_w = 2,
        .stride_h = 3,
        .stride_w = 3}},
      {"padding 2 around a 1x1 kernel: border outputs read only padding",
       {.batch = 1,
        .in_channels = 3,
        .in_height = 2,
        .in_width = 3,
        .out_channels = 5,
        .pad_h = 2,
        .pad_w = 2}},
      {"2x3 kernel, groups 3, stride, padding and dilation all differ along h and w",
       {.batch = 2,
        .in_channels = 6,
        .in_height = 6,
        .in_width = 9,
        .out_channels = 3,
        .kernel_h = 2,
        .kernel_w = 3,
        .stride_h = 2,
        .stride_w = 1,
        .pad_h = 1,
        .pad_w = 2,
        .dilation_h = 1,
        .dilation_w = 2,
        .groups = 3}},
  };
}

// Random inputs for one geometry: the forward's x, w, b and an upstream gradient gy. The scalar
// loss(x, w, b) = <conv(x, w, b), gy> has gradients backward_data(gy, w), backward_weight(gy, x) and
// backward_bias(gy).
struct RandomProblem {
  Values x, w, b, gy;
  explicit RandomProblem(const Conv2dGeometry& g)
      : x(random_values(x_size(g), 1)),
        w(random_values(w_size(g), 2)),
        b(random_values(b_size(g), 3)),
        gy(random_values(y_size(g), 4)) {}
};

constexpr double kGradTolerance = 1e-6;

}  // namespace

// ---- forward, worked by hand -----------------------------------------------------------------------------

TEST_CASE("conv2d_forward: hand-worked 3x3 input, 2x2 kernel") {
  // x = 1 2 3    w = 1 2    y[oh,ow] = x[oh,ow]*1 + x[oh,ow+1]*2 + x[oh+1,ow]*3 + x[oh+1,ow+1]*4
  //     4 5 6        3 4    y[0,0] = 1 + 4 + 12 + 20 = 37
  //     7 8 9               a step right adds sum(w) = 10, a step down adds 3 * 10 = 30
  const Conv2dGeometry g{.in_height = 3, .in_width = 3, .kernel_h = 2, .kernel_w = 2};
  REQUIRE(g.out_height() == 2);
  REQUIRE(g.out_width() == 2);
  check_equal(forward(g, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4}), {37, 47, 67, 77});
}

TEST_CASE("conv2d_forward: hand-worked padding 1") {
  // The same x and w with one ring of zeros around x: a 5x5 padded input, a 4x4 output.
  //   y[0,0] = x[0,0]*w[1,1] = 4                      (only the bottom-right tap lands on x)
  //   y[0,1] = x[0,0]*w[1,0] + x[0,1]*w[1,1] = 3 + 8 = 11
  //   y[0,3] = x[0,2]*w[1,0] = 9
  //   y[1,0] = x[0,0]*w[0,1] + x[1,0]*w[1,1] = 2 + 16 = 18
  //   y[1,1] = 37 (the unpadded y[0,0]), y[1,3] = x[0,2]*w[0,0] + x[1,2]*w[1,0] = 3 + 18 = 21
  //   y[3,0] = x[2,0]*w[0,1] = 14,  y[3,1] = 7*1 + 8*2 = 23,  y[3,3] = x[2,2]*w[0,0] = 9
  const Conv2dGeometry g{.in_height = 3, .in_width = 3, .kernel_h = 2, .kernel_w = 2, .pad_h = 1, .pad_w = 1};
  REQUIRE(g.out_height() == 4);
  REQUIRE(g.out_width() == 4);
  check_equal(forward(g, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4}), {4, 11, 18, 9,    //
                                                                      18, 37, 47, 21,  //
                                                                      36, 67, 77, 33,  //
                                                                      14, 23, 26, 9});
}

TEST_CASE("conv2d_forward: hand-worked stride 2") {
  // x[i,j] = 5i + j + 1 on a 5x5 input (1..25), a 3x3 kernel that is zero except w[0,2] = 1 and
  // w[2,0] = 10, so y[oh,ow] = x[2oh, 2ow+2] + 10 * x[2oh+2, 2ow]. A kernel flipped left-right or
  // up-down would pick other corners.
  //   y[0,0] = x[0,2] + 10 x[2,0] = 3 + 110 = 113     y[0,1] = x[0,4] + 10 x[2,2] = 5 + 130 = 135
  //   y[1,0] = x[2,2] + 10 x[4,0] = 13 + 210 = 223    y[1,1] = x[2,4] + 10 x[4,2] = 15 + 230 = 245
  const Conv2dGeometry g{
      .in_height = 5, .in_width = 5, .kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2};
  REQUIRE(g.out_height() == 2);
  REQUIRE(g.out_width() == 2);
  Values x(25);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i + 1);
  check_equal(forward(g, x, {0, 0, 1, 0, 0, 0, 10, 0, 0}), {113, 135, 223, 245});
}

TEST_CASE("conv2d_forward: hand-worked dilation 2") {
  // x[i,j] = 5i + j + 1 on a 5x5 input, w = [1 2; 3 4] with dilation 2 (taps two apart, a 3x3 reach):
  //   y[oh,ow] = 1 x[oh,ow] + 2 x[oh,ow+2] + 3 x[oh+2,ow] + 4 x[oh+2,ow+2]
  //            = 10 x[oh,ow] + 2*2 + 3*10 + 4*12 = 10 x[oh,ow] + 82      (x[i,j+2] = x[i,j] + 2, ...)
  //   y[0,0] = 10*1 + 82 = 92 (directly: 1 + 2*3 + 3*11 + 4*13 = 92), and x[oh,ow] runs 1 2 3 / 6 7 8 / 11
  //   12 13.
  const Conv2dGeometry g{
      .in_height = 5, .in_width = 5, .kernel_h = 2, .kernel_w = 2, .dilation_h = 2, .dilation_w = 2};
  REQUIRE(g.out_height() == 3);
  REQUIRE(g.out_width() == 3);
  Values x(25);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i + 1);
  check_equal(forward(g, x, {1, 2, 3, 4}), {92, 102, 112, 142, 152, 162, 192, 202, 212});
}

TEST_CASE("conv2d_forward: hand-worked dilation along one axis only") {
  // x = 1 2 3 / 4 5 6 / 7 8 9. The finite-difference checks cannot see an h/w mix-up of the dilation
  // (forward and backward would share it), so pin each axis down by hand.
  // A 1x2 kernel w = [1 10] with dilation (1, 2): y[oh,0] = x[oh,0] + 10 x[oh,2] = 31, 64, 97  (3x1 output)
  const Conv2dGeometry along_w{
      .in_height = 3, .in_width = 3, .kernel_h = 1, .kernel_w = 2, .dilation_h = 1, .dilation_w = 2};
  REQUIRE(along_w.out_height() == 3);
  REQUIRE(along_w.out_width() == 1);
  check_equal(forward(along_w, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 10}), {31, 64, 97});
  // A 2x1 kernel w = [1; 10] with dilation (2, 1): y[0,ow] = x[0,ow] + 10 x[2,ow] = 71, 82, 93  (1x3 output)
  const Conv2dGeometry along_h{
      .in_height = 3, .in_width = 3, .kernel_h = 2, .kernel_w = 1, .dilation_h = 2, .dilation_w = 1};
  REQUIRE(along_h.out_height() == 1);
  REQUIRE(along_h.out_width() == 3);
  check_equal(forward(along_h, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 10}), {71, 82, 93});
}

TEST_CASE("conv2d_forward: hand-worked rectangular, stride and padding differ along h and w") {
  // x is 2x4 = 1 2 3 4 / 5 6 7 8, a 1x2 kernel w = [1 10], stride (1, 2), padding (1, 0).
  //   OH = (2 + 2 - 1) / 1 + 1 = 4,  OW = (4 - 2) / 2 + 1 = 2
  //   y[oh,ow] = x[oh-1, 2ow] + 10 x[oh-1, 2ow+1]; rows oh = 0 and oh = 3 read only padding.
  //   y[1,:] = 1 + 20, 3 + 40 = 21, 43     y[2,:] = 5 + 60, 7 + 80 = 65, 87
  // Swapping h and w anywhere (strides, pads, kernel sizes) changes the shape or the values.
  const Conv2dGeometry g{
      .in_height = 2, .in_width = 4, .kernel_h = 1, .kernel_w = 2, .stride_h = 1, .stride_w = 2, .pad_h = 1};
  REQUIRE(g.out_height() == 4);
  REQUIRE(g.out_width() == 2);
  check_equal(forward(g, {1, 2, 3, 4, 5, 6, 7, 8}, {1, 10}), {0, 0, 21, 43, 65, 87, 0, 0});
}

TEST_CASE("conv2d_forward: hand-worked groups=2 do not mix") {
  // 4 input channels on a 1x2 input, 4 output channels, 1x1 kernels, groups 2: outputs 0-1 read input
  // channels 0-1, outputs 2-3 read input channels 2-3 (group = co / (C_out / groups), not co % groups).
  //   x channels: [1 2], [3 4], [5 6], [7 8]
  //   w[0] = (1, 10)  -> y0 = 1*[1 2] + 10*[3 4]        = [31 42]
  //   w[1] = (-1, 0)  -> y1 = -[1 2]                     = [-1 -2]    (from channels 2-3: [-5 -6])
  //   w[2] = (100, 1000) -> y2 = 100*[5 6] + 1000*[7 8] = [7500 8600] (from channels 0-1: [3100 4200])
  //   w[3] = (0, 1)   -> y3 = [7 8]
  const Conv2dGeometry g{.in_channels = 4, .in_height = 1, .in_width = 2, .out_channels = 4, .groups = 2};
  const Values x = {1, 2, 3, 4, 5, 6, 7, 8};
  const Values w = {1, 10, -1, 0, 100, 1000, 0, 1};
  const Values y = forward(g, x, w);
  check_equal(y, {31, 42, -1, -2, 7500, 8600, 7, 8});

  // Changing group 1's inputs leaves group 0's outputs alone, and the other way round.
  Values x_group1_changed = x;
  for (std::size_t i = 4; i < 8; ++i) x_group1_changed[i] = -50;
  const Values y_after_group1_change = forward(g, x_group1_changed, w);
  for (std::size_t i = 0; i < 4; ++i) CHECK(y_after_group1_change[i] == y[i]);
  Values x_group0_changed = x;
  for (std::size_t i = 0; i < 4; ++i) x_group0_changed[i] = -50;
  const Values y_after_group0_change = forward(g, x_group0_changed, w);
  for (std::size_t i = 4; i < 8; ++i) CHECK(y_after_group0_change[i] == y[i]);
}

TEST_CASE("conv2d_forward: hand-worked depthwise") {
  // 3 channels, groups 3, each a 2x2 input under its own 2x2 kernel (a 1x1 output): y[c] = <x[c], w[c]>.
  //   x[0] = 1 2 3 4,  w[0] = 1 0 0 0  -> 1          (picks the top-left)
  //   x[1] = 5 6 7 8,  w[1] = 0 0 0 1  -> 8          (picks the bottom-right)
  //   x[2] = 1 1 1 2,  w[2] = 1 1 1 1  -> 5
  const Conv2dGeometry g{.in_channels = 3,
                         .in_height = 2,
                         .in_width = 2,
                         .out_channels = 3,
                         .kernel_h = 2,
                         .kernel_w = 2,
                         .groups = 3};
  REQUIRE(g.out_height() == 1);
  REQUIRE(g.out_width() == 1);
  check_equal(forward(g, {1, 2, 3, 4, 5, 6, 7, 8, 1, 1, 1, 2}, {1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1}),
              {1, 8, 5});
}

TEST_CASE("conv2d_forward: bias is added to every output position, padding included") {
  // 1 input channel, 2x2 x = 1 2 3 4, 1x1 kernels w = (2, -1), bias = (0.5, 10), padding (1, 0):
  // output rows 0 and 3 read only padding and hold just the bias.
  //   y0 = 0.5 + 2x:   0.5 0.5 / 2.5 4.5 / 6.5 8.5 / 0.5 0.5
  //   y1 = 10 - x:     10 10 / 9 8 / 7 6 / 10 10
  const Conv2dGeometry g{.in_height = 2, .in_width = 2, .out_channels = 2, .pad_h = 1};
  const Values bias = {0.5, 10};
  check_equal(forward(g, {1, 2, 3, 4}, {2, -1}, &bias),
              {0.5, 0.5, 2.5, 4.5, 6.5, 8.5, 0.5, 0.5, 10, 10, 9, 8, 7, 6, 10, 10});
}

// ---- backward, worked by hand ----------------------------------------------------------------------------

TEST_CASE("conv2d_backward_data: hand-worked 3x3 input, 2x2 kernel") {
  // gy = all ones on the 2x2 output, w = [1 2; 3 4]. Each input position collects w[kh,kw] from every
  // window that covers it at tap (kh, kw):
  //   gx[0,0] = w[0,0] = 1    gx[0,1] = w[0,1] + w[0,0] = 3    gx[0,2] = w[0,1] = 2
  //   gx[1,0] = w[1,0] + w[0,0] = 4    gx[1,1] = 1 + 2 + 3 + 4 = 10    gx[1,2] = w[1,1] + w[0,1] = 6
  //   gx[2,0] = w[1,0] = 3    gx[2,1] = w[1,1] + w[1,0] = 7    gx[2,2] = w[1,1] = 4
  const Conv2dGeometry g{.in_height = 3, .in_width = 3, .kernel_h = 2, .kernel_w = 2};
  check_equal(backward_data(g, {1, 1, 1, 1}, {1, 2, 3, 4}), {1, 3, 2, 4, 10, 6, 3, 7, 4});
}

TEST_CASE("conv2d_backward_data: input positions no window reads get zero") {
  // 1x4 input, 1x1 kernel w = 3, stride 2: positions 1 and 3 are never read. gy = (1, 2).
  //   gx = 3*1, 0, 3*2, 0
  const Conv2dGeometry g{.in_height = 1, .in_width = 4, .stride_w = 2};
  REQUIRE(g.out_width() == 2);
  check_equal(backward_data(g, {1, 2}, {3}), {3, 0, 6, 0});
}

TEST_CASE("conv2d_backward_weight: hand-worked 3x3 input, 2x2 kernel") {
  // gy = all ones, x = 1..9 on 3x3: gw[kh,kw] = the sum of the 2x2 block of x starting at (kh, kw).
  //   gw[0,0] = 1+2+4+5 = 12   gw[0,1] = 2+3+5+6 = 16   gw[1,0] = 4+5+7+8 = 24   gw[1,1] = 5+6+8+9 = 28
  const Conv2dGeometry g{.in_height = 3, .in_width = 3, .kernel_h = 2, .kernel_w = 2};
  check_equal(backward_weight(g, {1, 1, 1, 1}, {1, 2, 3, 4, 5, 6, 7, 8, 9}), {12, 16, 24, 28});
}

TEST_CASE("conv2d_backward_weight: hand-worked batch 2, groups 2") {
  // 2 input channels, 2 output channels, groups 2, 1x1 kernels on a 1x2 input, batch 2.
  // gw[co] = sum over n and positions of gy[n,co] * x[n,co] (each output reads only its own channel).
  //   x[n=0] = [1 2], [3 4]     x[n=1] = [5 6], [7 8]
  //   gy[n=0] = [1 1], [1 0]    gy[n=1] = [0 2], [1 1]
  //   gw[0] = (1 + 2) + (0*5 + 2*6) = 15      gw[1] = (3 + 0) + (7 + 8) = 18
  const Conv2dGeometry g{
      .batch = 2, .in_channels = 2, .in_height = 1, .in_width = 2, .out_channels = 2, .groups = 2};
  check_equal(backward_weight(g, {1, 1, 1, 0, 0, 2, 1, 1}, {1, 2, 3, 4, 5, 6, 7, 8}), {15, 18});
}

TEST_CASE("conv2d_backward_bias: hand-worked sums over batch and positions") {
  // gy [N=2, C=2, 1, 2]: gb[c] = sum over n and positions.
  //   gy[n=0] = [1 2], [3 4]    gy[n=1] = [5 6], [7 8]     gb = (1+2+5+6, 3+4+7+8) = (14, 22)
  const Conv2dGeometry g{.batch = 2, .in_height = 1, .in_width = 2, .out_channels = 2};
  check_equal(backward_bias(g, {1, 2, 3, 4, 5, 6, 7, 8}), {14, 22});
}

// ---- backward against finite differences -----------------------------------------------------------------

TEST_CASE("conv2d_backward_data: matches finite differences of the forward") {
  for (const NamedGeometry& c : odd_geometries()) {
    CAPTURE(c.name);
    const RandomProblem p(c.g);
    const auto loss = [&](const Values& x) { return dot(forward(c.g, x, p.w, &p.b), p.gy); };
    check_close(backward_data(c.g, p.gy, p.w), numerical_gradient(loss, p.x), kGradTolerance);
  }
}

TEST_CASE("conv2d_backward_weight: matches finite differences of the forward") {
  for (const NamedGeometry& c : odd_geometries()) {
    CAPTURE(c.name);
    const RandomProblem p(c.g);
    const auto loss = [&](const Values& w) { return dot(forward(c.g, p.x, w, &p.b), p.gy); };
    check_close(backward_weight(c.g, p.gy, p.x), numerical_gradient(loss, p.w), kGradTolerance);
  }
}

TEST_CASE("conv2d_backward_bias: matches finite differences of the forward") {
  for (const NamedGeometry& c : odd_geometries()) {
    CAPTURE(c.name);
    const RandomProblem p(c.g);
    const auto loss = [&](const Values& b) { return dot(forward(c.g, p.x, p.w, &b), p.gy); };
    check_close(backward_bias(c.g, p.gy), numerical_gradient(loss, p.b), kGradTolerance);
  }
}

// ---- properties ------------------------------------------------------------------------------------------

TEST_CASE(
    "conv2d: adjointness, <conv(x, w), gy> == <x, backward_data(gy, w)> == <w, backward_weight(gy, x)>") {
  // Without bias, conv is bilinear in (x, w), so all three inner products are the same sum of
  // x * w * gy terms. An index slip in any one kernel breaks the equality.
  for (const NamedGeometry& c : odd_geometries()) {
    CAPTURE(c.name);
    const RandomProblem p(c.g);
    const double through_forward = dot(forward(c.g, p.x, p.w), p.gy);
    CHECK(dot(p.x, backward_data(c.g, p.gy, p.w)) == doctest::Approx(through_forward).epsilon(1e-12));
    CHECK(dot(p.w, backward_weight(c.g, p.gy, p.x)) == doctest::Approx(through_forward).epsilon(1e-12));
  }
}

TEST_CASE("conv2d: float kernels equal the double kernels rounded once") {
  // Every product of two floats is exact in double, and the float kernels accumulate in double in the
  // same order as the double kernels, so on float-valued inputs each float result must be exactly the
  // double result rounded to float. A float accumulator would miss this on sums this long.
  const Conv2dGeometry g{.batch = 2,
                         .in_channels = 7,
                         .in_height = 6,
                         .in_width = 5,
                         .out_channels = 5,
                         .kernel_h = 3,
                         .kernel_w = 3,
                         .pad_h = 1,
                         .pad_w = 1};
  RandomProblem p(g);
  const auto to_float = [](const Values& v) { return std::vector<float>(v.begin(), v.end()); };
  const std::vector<float> xf = to_float(p.x), wf = to_float(p.w), bf = to_float(p.b), gyf = to_float(p.gy);
  // The double inputs, made float-valued.
  p.x.assign(xf.begin(), xf.end());
  p.w.assign(wf.begin(), wf.end());
  p.b.assign(bf.begin(), bf.end());
  p.gy.assign(gyf.begin(), gyf.end());

  const auto check_rounded = [](const std::vector<float>& actual, const Values& exact) {
    REQUIRE(actual.size() == exact.size());
    for (std::size_t i = 0; i < actual.size(); ++i) {
      CAPTURE(i);
      CHECK(actual[i] == static_cast<float>(exact[i]));
    }
  };
  namespace ref = kiln::kernels::reference;
  std::vector<float> yf(y_size(g)), gxf(x_size(g)), gwf(w_size(g)), gbf(b_size(g));
  ref::conv2d_forward(g, xf.data(), wf.data(), bf.data(), yf.data());
  ref::conv2d_backward_data(g, gyf.data(), wf.data(), gxf.data());
  ref::conv2d_backward_weight(g, gyf.data(), xf.data(), gwf.data());
  ref::conv2d_backward_bias(g, gyf.data(), gbf.data());
  check_rounded(yf, forward(g, p.x, p.w, &p.b));
  check_rounded(gxf, backward_data(g, p.gy, p.w));
  check_rounded(gwf, backward_weight(g, p.gy, p.x));
  check_rounded(gbf, backward_bias(g, p.gy));
}

TEST_CASE("conv2d dispatch: the CPU runs the reference kernels") {
  const Conv2dGeometry g{.batch = 2,
                         .in_channels = 6,
                         .in_height = 5,
                         .in_width = 4,
                         .out_channels = 4,
                         .kernel_h = 3,
                         .kernel_w = 2,
                         .stride_h = 2,
                         .pad_h = 1,
                         .pad_w = 1,
                         .groups = 2};
  const RandomProblem p(g);
  const kiln::Device cpu = kiln::Device::cpu();
  Values y(y_size(g)), gx(x_size(g)), gw(w_size(g)), gb(b_size(g));

  kiln::kernels::conv2d_forward(cpu, g, p.x.data(), p.w.data(), p.b.data(), y.data());
  kiln::kernels::conv2d_backward_data(cpu, g, p.gy.data(), p.w.data(), gx.data());
  kiln::kernels::conv2d_backward_weight(cpu, g, p.gy.data(), p.x.data(), gw.data());
  kiln::kernels::conv2d_backward_bias(cpu, g, p.gy.data(), gb.data());
  check_equal(y, forward(g, p.x, p.w, &p.b));
  check_equal(gx, backward_data(g, p.gy, p.w));
  check_equal(gw, backward_weight(g, p.gy, p.x));
  check_equal(gb, backward_bias(g, p.gy));
}

}  // namespace kernels_conv2d_test
