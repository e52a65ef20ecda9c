// The CUDA channel-scale kernels (kernels/channel_scale/cuda_channel_scale.cu), through the dispatch with
// Device::cuda(), against the reference on the same host data: float, double and bfloat16, NCHW and
// channels-last, over odd shapes (batch 1, 1x1 planes, channels off any width, planes longer than a block's
// 256 threads). y and gx are the reference's bits (one product rounded once); gs within the precision's
// tolerance (double sums in another order). Outputs start poisoned (NaN). Skips without a GPU.
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/channel_scale/channel_scale.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace cuda_channel_scale_cuda_test {

namespace {

using namespace kiln;
using kernels::ChannelScaleGeometry;
using testing::empty_gpu;
using testing::have_gpu;
using testing::to_gpu;
using testing::to_host;

template <typename T>
void check_against_reference(const ChannelScaleGeometry& g, std::uint64_t seed) {
  const std::int64_t n = g.batch * g.channels * g.plane(), gates = g.batch * g.channels;
  const auto to_t = [](const std::vector<float>& values) {
    return std::vector<T>(values.begin(), values.end());
  };
  const std::vector<T> x = to_t(testing::random_floats(n, seed)),
                       gy = to_t(testing::random_floats(n, seed + 1));
  const std::vector<T> s = to_t(testing::random_floats(gates, seed + 2, -2.0f, 2.0f));
  std::vector<T> y(static_cast<std::size_t>(n)), gx(static_cast<std::size_t>(n)),
      gs(static_cast<std::size_t>(gates));
  kernels::reference::channel_scale_forward(g, x.data(), s.data(), y.data());
  kernels::reference::channel_scale_backward(g, x.data(), s.data(), gy.data(), gx.data(), gs.data());

  const Tensor x_gpu = to_gpu(x), gy_gpu = to_gpu(gy), s_gpu = to_gpu(s);
  const Tensor y_gpu = empty_gpu<T>(n), gx_gpu = empty_gpu<T>(n), gs_gpu = empty_gpu<T>(gates);
  kernels::channel_scale_forward(Device::cuda(), g, x_gpu.data<T>(), s_gpu.data<T>(), y_gpu.data<T>());
  kernels::channel_scale_backward(Device::cuda(), g, x_gpu.data<T>(), s_gpu.data<T>(), gy_gpu.data<T>(),
                                  gx_gpu.data<T>(), gs_gpu.data<T>());
  CHECK(testing::bitwise_equal(to_host<T>(y_gpu), y));
  CHECK(testing::bitwise_equal(to_host<T>(gx_gpu), gx));
  const testing::Tolerance tolerance = std::is_same_v<T, bfloat16> ? testing::Tolerance::bfloat16()
                                       : std::is_same_v<T, double> ? testing::Tolerance::float64()
                                                                   : testing::Tolerance::float32();
  const std::vector<T> gs_host = to_host<T>(gs_gpu);
  const auto report = testing::matches_reference(gs_host.data(), gs.data(), gates, tolerance);
  CHECK_MESSAGE(report.ok, report.message);
}

}  // namespace

TEST_CASE("cuda: channel_scale forward and backward match the reference, every precision, both layouts") {
  if (!have_gpu()) return;
  std::uint64_t seed = 1;
  for (const bool channels_last : {false, true}) {
    for (const auto& [n, c, h, w] : std::vector<std::array<std::int64_t, 4>>{
             {1, 3, 2, 3}, {2, 5, 1, 1}, {3, 17, 5, 7}, {2, 33, 19, 21}}) {
      const ChannelScaleGeometry g{
          .batch = n, .channels = c, .height = h, .width = w, .channels_last = channels_last};
      INFO(n, "x", c, "x", h, "x", w, (channels_last ? " channels-last" : " nchw"));
      check_against_reference<float>(g, seed);
      check_against_reference<double>(g, seed);
      check_against_reference<bfloat16>(g, seed);
      seed += 3;
    }
  }
}

}  // namespace cuda_channel_scale_cuda_test
