// The channel scale's kernels (kernels/channel_scale/channel_scale.hpp): the reference against values worked
// by hand and against finite differences; the vectorized kernels against the reference, float and bfloat16,
// NCHW and channels-last, at every fast level on 1 and 2 threads, over odd shapes: batch 1, 1x1 planes,
// channels off the vector width, planes and images past one summation chunk (1024 values or pixels).
#include "kernels/channel_scale/channel_scale.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "core/bfloat16.hpp"
#include "kernels/parallel.hpp"
#include "tests/support/buffer_gradcheck.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_channel_scale_test {

namespace {

using namespace kiln;
using kernels::ChannelScaleGeometry;
namespace ref = kernels::reference;

std::vector<ChannelScaleGeometry> shapes() {
  std::vector<ChannelScaleGeometry> all;
  for (const bool channels_last : {false, true}) {
    const auto shape = [&](std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
      all.push_back({.batch = n, .channels = c, .height = h, .width = w, .channels_last = channels_last});
    };
    shape(1, 3, 2, 3);     // batch 1, planes under a vector
    shape(2, 5, 1, 1);     // 1x1 planes: one pixel an image
    shape(3, 17, 5, 7);    // 35-value planes: a vector tail; 17 channels: a channel tail
    shape(4, 16, 8, 8);    // whole vectors both ways
    shape(2, 33, 33, 35);  // 1155 values a plane: past one chunk of either sum
    shape(16, 72, 8, 8);   // past the threading threshold
  }
  return all;
}

std::string describe(const ChannelScaleGeometry& g) {
  return std::to_string(g.batch) + "x" + std::to_string(g.channels) + "x" + std::to_string(g.height) + "x" +
         std::to_string(g.width) + (g.channels_last ? " channels-last" : " nchw");
}

std::int64_t count(const ChannelScaleGeometry& g) { return g.batch * g.channels * g.plane(); }

template <typename T>
std::vector<T> converted(const std::vector<float>& values) {
  return std::vector<T>(values.begin(), values.end());
}

}  // namespace

// x = 1..4 in one image's two channels of 1x2 planes, s = {2, -0.5}: y = {2, 4, -1.5, -2}; gy = {1, 1, 2, 0}
// gives gx = {2, 2, -1, 0} and gs = {1 + 2, 6 + 0} = {3, 6}. Channels-last holds the same values
// interleaved, [pixel][channel].
TEST_CASE("channel scale reference: hand-worked values, NCHW and channels-last") {
  for (const bool channels_last : {false, true}) {
    CAPTURE(channels_last);
    const ChannelScaleGeometry g{
        .batch = 1, .channels = 2, .height = 1, .width = 2, .channels_last = channels_last};
    const auto laid = [&](std::vector<double> nchw) {
      return channels_last ? std::vector<double>{nchw[0], nchw[2], nchw[1], nchw[3]} : nchw;
    };
    const std::vector<double> x = laid({1, 2, 3, 4}), s{2, -0.5}, gy = laid({1, 1, 2, 0});
    std::vector<double> y(4), gx(4), gs(2);
    ref::channel_scale_forward(g, x.data(), s.data(), y.data());
    ref::channel_scale_backward(g, x.data(), s.data(), gy.data(), gx.data(), gs.data());
    CHECK(y == laid({2, 4, -1.5, -2}));
    CHECK(gx == laid({2, 2, -1, 0}));
    CHECK(gs == std::vector<double>{3, 6});
  }
}

TEST_CASE("channel scale reference: the backward matches finite differences for x and the gates") {
  std::uint64_t seed = 1;
  for (const ChannelScaleGeometry& g : shapes()) {
    if (count(g) > 5000) continue;  // finite differences are one forward a value
    INFO(describe(g));
    std::vector<double> x = testing::random_values<double>(count(g), seed++);
    std::vector<double> s = testing::random_values<double>(g.batch * g.channels, seed++);
    const std::vector<double> weights = testing::random_values<double>(count(g), seed++);
    std::vector<double> y(x.size());
    const auto loss = [&] {
      ref::channel_scale_forward(g, x.data(), s.data(), y.data());
      return testing::weighted_sum(weights, y);
    };
    std::vector<double> gx(x.size()), gs(s.size());
    ref::channel_scale_backward(g, x.data(), s.data(), weights.data(), gx.data(), gs.data());
    {
      INFO("gradient of x");
      testing::check_gradients_match(gx, testing::numeric_gradient(x, loss));
    }
    {
      INFO("gradient of the gates");
      testing::check_gradients_match(gs, testing::numeric_gradient(s, loss));
    }
  }
}

// y and gx are the reference's bits (one product, rounded once, in every kernel); gs within float's
// tolerance of it (float lanes, emptied into double every 1024 values, where the reference sums in double),
// and bfloat16's gs within bfloat16's. 1 and 2 threads agree bit for bit.
TEST_CASE_TEMPLATE("channel scale fast: the reference's values at every level, 1 and 2 threads", T, float,
                   bfloat16) {
  testing::at_each_fast_level([] {
    std::uint64_t seed = 100;
    for (const ChannelScaleGeometry& g : shapes()) {
      INFO(describe(g));
      const auto n = static_cast<std::size_t>(count(g)),
                 gates = static_cast<std::size_t>(g.batch * g.channels);
      const std::vector<T> x = converted<T>(testing::random_floats(count(g), seed++));
      const std::vector<T> s =
          converted<T>(testing::random_floats(g.batch * g.channels, seed++, -2.0f, 2.0f));
      const std::vector<T> gy = converted<T>(testing::random_floats(count(g), seed++));
      std::vector<T> y(n), gx(n), gs(gates), y2(n), gx2(n), gs2(gates), y_ref(n), gx_ref(n), gs_ref(gates);
      kernels::set_compute_threads(1);
      kernels::channel_scale_forward(Device::cpu(), g, x.data(), s.data(), y.data());
      kernels::channel_scale_backward(Device::cpu(), g, x.data(), s.data(), gy.data(), gx.data(), gs.data());
      kernels::set_compute_threads(2);
      kernels::channel_scale_forward(Device::cpu(), g, x.data(), s.data(), y2.data());
      kernels::channel_scale_backward(Device::cpu(), g, x.data(), s.data(), gy.data(), gx2.data(),
                                      gs2.data());
      ref::channel_scale_forward(g, x.data(), s.data(), y_ref.data());
      ref::channel_scale_backward(g, x.data(), s.data(), gy.data(), gx_ref.data(), gs_ref.data());
      CHECK(testing::bitwise_equal(y, y_ref));
      CHECK(testing::bitwise_equal(gx, gx_ref));
      const testing::Tolerance tolerance =
          std::is_same_v<T, bfloat16> ? testing::Tolerance::bfloat16() : testing::Tolerance::float32();
      const auto report =
          testing::matches_reference(gs.data(), gs_ref.data(), static_cast<std::int64_t>(gates), tolerance);
      CHECK_MESSAGE(report.ok, report.message);
      CHECK(testing::bitwise_equal(y, y2));
      CHECK(testing::bitwise_equal(gx, gx2));
      CHECK(testing::bitwise_equal(gs, gs2));
    }
  });
}

}  // namespace kernels_channel_scale_test
