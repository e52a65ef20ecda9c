// Tests of the CUDA pad-identity shortcut (kernels/shortcut/cuda_subsample_pad.cu) against the reference:
// forward, backward into a fresh gradient and added into a sum, float, double and bfloat16, NCHW and
// channels-last, odd planes, strides 1 to 3, zero channels on either side; and the op's gradient on a device.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/ops.hpp"
#include "kernels/shortcut/subsample_pad.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace cuda_subsample_pad_cuda_test {

namespace {

using namespace kiln;
using kernels::SubsamplePadGeometry;

template <typename T>
void check_shortcut(const SubsamplePadGeometry& g) {
  INFO(g.batch, "x", g.channels, "x", g.height, "x", g.width, " stride ", g.stride, " pad ", g.pad_before,
       ",", g.pad_after, g.channels_last ? " channels-last " : " nchw ", dtype_name(dtype_of_v<T>));
  const std::int64_t xs = g.batch * g.channels * g.height * g.width;
  const std::int64_t ys = g.batch * g.out_channels() * g.out_height() * g.out_width();
  const std::vector<T> x = testing::random_values<T>(xs, 1), gy = testing::random_values<T>(ys, 2);
  const std::vector<T> sum = testing::random_values<T>(xs, 3);
  std::vector<T> y(static_cast<std::size_t>(ys)), gx(static_cast<std::size_t>(xs)), summed = sum;
  kernels::reference::subsample_pad_forward(g, x.data(), y.data());
  kernels::reference::subsample_pad_backward(g, gy.data(), gx.data(), false);
  kernels::reference::subsample_pad_backward(g, gy.data(), summed.data(), true);

  const Tensor x_gpu = testing::to_gpu(x), gy_gpu = testing::to_gpu(gy), summed_gpu = testing::to_gpu(sum);
  const Tensor y_gpu = testing::empty_gpu<T>(ys), gx_gpu = testing::empty_gpu<T>(xs);
  kernels::subsample_pad_forward<T>(Device::cuda(), g, x_gpu.data<T>(), y_gpu.data<T>());
  kernels::subsample_pad_backward<T>(Device::cuda(), g, gy_gpu.data<T>(), gx_gpu.data<T>(), false);
  kernels::subsample_pad_backward<T>(Device::cuda(), g, gy_gpu.data<T>(), summed_gpu.data<T>(), true);
  CHECK(testing::bitwise_equal(testing::to_host<T>(y_gpu), y));
  CHECK(testing::bitwise_equal(testing::to_host<T>(gx_gpu), gx));
  CHECK(testing::bitwise_equal(testing::to_host<T>(summed_gpu), summed));
}

}  // namespace

TEST_CASE("cuda: the pad-identity shortcut matches the reference, every dtype and layout") {
  if (!testing::have_gpu()) return;
  for (const bool channels_last : {false, true}) {
    for (const SubsamplePadGeometry& shape : {SubsamplePadGeometry{.batch = 2,
                                             .channels = 16,
                                             .height = 32,
                                             .width = 32,
                                             .stride = 2,
                                             .pad_before = 8,
                                             .pad_after = 8},
                                              SubsamplePadGeometry{.batch = 1,
                                              .channels = 3,
                                              .height = 7,
                                              .width = 5,
                                              .stride = 2,
                                              .pad_before = 1,
                                              .pad_after = 2},
                                              SubsamplePadGeometry{.batch = 2,
                                              .channels = 5,
                                              .height = 1,
                                              .width = 1,
                                              .stride = 2,
                                              .pad_before = 0,
                                              .pad_after = 3},
                                              SubsamplePadGeometry{.batch = 1,
                                              .channels = 4,
                                              .height = 10,
                                              .width = 11,
                                              .stride = 3,
                                              .pad_before = 2,
                                              .pad_after = 0},
                                              SubsamplePadGeometry{.batch = 2,
                                              .channels = 3,
                                              .height = 6,
                                              .width = 6,
                                              .stride = 1,
                                              .pad_before = 0,
                                              .pad_after = 0}}) {
      SubsamplePadGeometry g = shape;
      g.channels_last = channels_last;
      check_shortcut<float>(g);
      check_shortcut<double>(g);
      check_shortcut<bfloat16>(g);
    }
  }
}

// The op on device tensors: the same values and gradient as on the CPU, the gradient added into a sum so far
// (the input used twice).
TEST_CASE("cuda: subsample_pad_channels' forward and backward on a device agree with the CPU") {
  if (!testing::have_gpu()) return;
  Generator generator(5);
  const Tensor x_cpu = Tensor::randn({2, 6, 9, 8}, DType::Float32, &generator);
  const Tensor g_cpu = Tensor::randn({2, 10, 5, 4}, DType::Float32, &generator);
  std::vector<std::vector<float>> results[2];
  for (const Device device : {Device::cpu(), Device::cuda()}) {
    Tensor x = x_cpu.to(device);
    x.set_requires_grad();
    const Tensor t = x * 1.0f;
    const Tensor y = subsample_pad_channels(t, 2, 1, 3) + subsample_pad_channels(t, 2, 1, 3) * 2.0f;
    sum(y * g_cpu.to(device)).backward();
    results[device.is_cuda()].push_back(y.to(Device::cpu()).to_vector<float>());
    results[device.is_cuda()].push_back(x.grad().to(Device::cpu()).to_vector<float>());
  }
  CHECK(results[1][0] == results[0][0]);
  CHECK(results[1][1] == results[0][1]);
}

}  // namespace cuda_subsample_pad_cuda_test
