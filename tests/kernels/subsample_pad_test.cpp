// The pad-identity shortcut's kernels (kernels/shortcut/subsample_pad.hpp): the vectorized forward and both
// backwards (a fresh gradient, and one added into a sum) against the reference, float and bfloat16, NCHW
// and channels-last, over ResNet's shapes and odd ones: planes of 1x1 and of odd sizes, rows longer than two
// vectors, stride 1, 2 and 3, zero channels on either side or none, channel counts off the vector width.
#include "kernels/shortcut/subsample_pad.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/parallel.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace kernels_subsample_pad_test {

namespace {

using namespace kiln;
using kernels::SubsamplePadGeometry;

std::vector<SubsamplePadGeometry> shapes() {
  std::vector<SubsamplePadGeometry> all;
  for (const bool channels_last : {false, true}) {
    const auto shape = [&](std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t s,
                           std::int64_t before, std::int64_t after) {
      all.push_back({.batch = n,
                     .channels = c,
                     .height = h,
                     .width = w,
                     .stride = s,
                     .pad_before = before,
                     .pad_after = after,
                     .channels_last = channels_last});
    };
    shape(4, 16, 32, 32, 2, 8, 8);    // ResNet-20's first widening, past the threading threshold
    shape(2, 32, 16, 16, 2, 16, 16);  // its second: rows of 8 outputs, under one vector
    shape(1, 3, 7, 5, 2, 1, 2);       // odd plane, odd channels
    shape(2, 17, 9, 70, 2, 0, 3);     // rows of 35 outputs: two whole vectors and a tail
    shape(1, 5, 1, 1, 2, 2, 0);       // a 1x1 plane
    shape(2, 4, 6, 6, 1, 0, 0);       // stride 1, no padding: a copy
    shape(1, 3, 10, 11, 3, 1, 1);     // stride 3
    shape(3, 1, 2, 40, 2, 0, 1);      // one channel
  }
  return all;
}

std::string describe(const SubsamplePadGeometry& g) {
  return std::to_string(g.batch) + "x" + std::to_string(g.channels) + "x" + std::to_string(g.height) + "x" +
         std::to_string(g.width) + " stride " + std::to_string(g.stride) + " pad " +
         std::to_string(g.pad_before) + "," + std::to_string(g.pad_after) +
         (g.channels_last ? " channels-last" : " nchw");
}

std::int64_t x_count(const SubsamplePadGeometry& g) { return g.batch * g.channels * g.height * g.width; }
std::int64_t y_count(const SubsamplePadGeometry& g) {
  return g.batch * g.out_channels() * g.out_height() * g.out_width();
}

// The values of a: an accumulating fast kernel adds +0.0 to the columns it skips on a kept row (a vector's
// odd lanes), where the reference leaves them alone, so a -0.0 there may turn +0.0; equal as values.
template <typename T>
bool equal_values(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (static_cast<float>(a[i]) != static_cast<float>(b[i])) return false;
  }
  return true;
}

// Runs pass(out) on 1 and 2 threads, each from `start` (so what the pass leaves unwritten stays `start`'s),
// checks the two agree bitwise, and returns the 1-thread result.
template <typename T, class Pass>
std::vector<T> on_one_and_two_threads(const std::vector<T>& start, Pass&& pass) {
  std::vector<T> one = start, two = start;
  kernels::set_compute_threads(1);
  pass(one);
  kernels::set_compute_threads(2);
  pass(two);
  CHECK_MESSAGE(testing::bitwise_equal(one, two), "1 and 2 threads differ");
  return one;
}

template <typename T>
void check_against_reference(const SubsamplePadGeometry& g) {
  INFO(describe(g), sizeof(T) == 2 ? ", bfloat16" : ", float");
  const std::vector<T> x = testing::random_values<T>(x_count(g), 1);
  const std::vector<T> gy = testing::random_values<T>(y_count(g), 2);
  const std::vector<T> sum = testing::random_values<T>(x_count(g), 3);  // the gradient summed so far
  const std::vector<T> poison_y(static_cast<std::size_t>(y_count(g)), T(-7.0f));
  const std::vector<T> poison_x(static_cast<std::size_t>(x_count(g)), T(-7.0f));

  std::vector<T> y_expected = poison_y, gx_expected = poison_x, summed_expected = sum;
  kernels::reference::subsample_pad_forward(g, x.data(), y_expected.data());
  kernels::reference::subsample_pad_backward(g, gy.data(), gx_expected.data(), false);
  kernels::reference::subsample_pad_backward(g, gy.data(), summed_expected.data(), true);

  const std::vector<T> y = on_one_and_two_threads(poison_y, [&](std::vector<T>& out) {
    kernels::subsample_pad_forward(Device::cpu(), g, x.data(), out.data());
  });
  CHECK(testing::bitwise_equal(y, y_expected));
  const std::vector<T> gx = on_one_and_two_threads(poison_x, [&](std::vector<T>& out) {
    kernels::subsample_pad_backward(Device::cpu(), g, gy.data(), out.data(), false);
  });
  CHECK(testing::bitwise_equal(gx, gx_expected));
  const std::vector<T> summed = on_one_and_two_threads(sum, [&](std::vector<T>& out) {
    kernels::subsample_pad_backward(Device::cpu(), g, gy.data(), out.data(), true);
  });
  CHECK(equal_values(summed, summed_expected));
}

}  // namespace

TEST_CASE("subsample_pad: the fast kernels match the reference, float and bfloat16, both layouts") {
  testing::at_each_fast_level([] {
    for (const SubsamplePadGeometry& g : shapes()) {
      check_against_reference<float>(g);
      check_against_reference<bfloat16>(g);
    }
  });
}

// The reference against the formulas on one small case, written out: what the oracle itself must say.
TEST_CASE("subsample_pad: the reference keeps every second pixel between zero channels, and sends it back") {
  const SubsamplePadGeometry g{
      .batch = 1, .channels = 1, .height = 3, .width = 3, .stride = 2, .pad_before = 1, .pad_after = 1};
  const std::vector<float> x{1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::vector<float> y(12, -1.0f);
  kernels::reference::subsample_pad_forward(g, x.data(), y.data());
  CHECK(y == std::vector<float>{0, 0, 0, 0, 1, 3, 7, 9, 0, 0, 0, 0});

  const std::vector<float> gy{-1, -1, -1, -1, 10, 30, 70, 90, -1, -1, -1, -1};
  std::vector<float> gx(9, -1.0f);
  kernels::reference::subsample_pad_backward(g, gy.data(), gx.data(), false);
  CHECK(gx == std::vector<float>{10, 0, 30, 0, 0, 0, 70, 0, 90});
  std::vector<float> summed(9, 1.0f);
  kernels::reference::subsample_pad_backward(g, gy.data(), summed.data(), true);
  CHECK(summed == std::vector<float>{11, 1, 31, 1, 1, 1, 71, 1, 91});
}

}  // namespace kernels_subsample_pad_test
