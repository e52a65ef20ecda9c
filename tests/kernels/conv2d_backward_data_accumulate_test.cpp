// Tests of backward data added into a gradient so far (kernels/conv2d/conv2d.hpp,
// conv2d_backward_data_accumulate): Winograd's output stores add gx's old values to the new gradient, and
// must give the bits of the gradient written fresh and then added, which training computed before; the
// dispatch says where that happens; raw::conv2d_backward_data adds into a given tensor on every path; and the
// autograd engine hands a ResNet-like input's sum so far to its convolution. (AMX's adding stores, bfloat16:
// tests/kernels/conv2d_amx_test.cpp.)
//
// The Winograd kernels are called directly on odd shapes (channels 3, 5, 17, 33; planes of odd sides;
// stride 2; padding 0 and 2; batch 1), at both tiles, every fast CPU level, 1 and 2 threads; bitwise.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "core/generator.hpp"
#include "core/ops.hpp"
#include "core/raw.hpp"
#include "kernels/amx/amx.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/parallel.hpp"
#include "tests/support/conv_shapes.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace kernels_conv2d_backward_data_accumulate_test {

namespace {

using namespace kiln;
using kernels::Conv2dGeometry;
using kernels::CpuLevel;
using kernels::WinogradTile;
using testing::bitwise_equal;
using testing::conv3x3;
using testing::random_floats;
using testing::shape_name;
using testing::w_count;
using testing::x_count;
using testing::y_count;

void winograd_backward_data(CpuLevel level, WinogradTile tile, const Conv2dGeometry& g, const float* gy,
                            const float* w, float* gx, bool accumulate) {
  if (level == CpuLevel::Avx512)
    return kernels::avx512::winograd_conv2d_backward_data(tile, g, gy, w, gx, accumulate);
  kernels::avx2::winograd_conv2d_backward_data(tile, g, gy, w, gx, accumulate);
}

// a + b element by element, as the elementwise add of two tensors computes it.
std::vector<float> added(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> sum(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) sum[i] = a[i] + b[i];
  return sum;
}

}  // namespace

TEST_CASE(
    "conv2d accumulate: Winograd's backward data adds into gx with the bits of a fresh gradient + add") {
  testing::DispatchGuard guard;
  for (const CpuLevel level : testing::fast_levels()) {
    for (const WinogradTile tile : {WinogradTile::F2x2, WinogradTile::F4x4}) {
      for (const Conv2dGeometry& g : testing::odd_3x3_shapes()) {
        INFO(kernels::cpu_level_name(level), tile == WinogradTile::F2x2 ? " F(2x2, 3x3) " : " F(4x4, 3x3) ",
             shape_name(g));
        const std::vector<float> gy = random_floats(y_count(g), 1), w = random_floats(w_count(g), 2);
        const std::vector<float> sum = random_floats(x_count(g), 3);  // the gradient so far
        std::vector<float> fresh(static_cast<std::size_t>(x_count(g)), -7.0f);
        winograd_backward_data(level, tile, g, gy.data(), w.data(), fresh.data(), false);
        const std::vector<float> expected = added(sum, fresh);
        for (const int threads : {1, 2}) {
          INFO(threads, " threads");
          kernels::set_compute_threads(threads);
          std::vector<float> summed = sum;
          winograd_backward_data(level, tile, g, gy.data(), w.data(), summed.data(), true);
          CHECK(bitwise_equal(summed, expected));
        }
      }
    }
  }
}

TEST_CASE(
    "conv2d accumulate: the dispatch adds in the stores where backward data runs Winograd over float NCHW") {
  testing::DispatchGuard guard;
  const Conv2dGeometry resnet = conv3x3(8, 16, 32, 32, 16, 1, 1);
  Conv2dGeometry channels_last = resnet, pointwise = resnet;
  channels_last.channels_last = true;
  pointwise.kernel_h = pointwise.kernel_w = 1;
  pointwise.pad_h = pointwise.pad_w = 0;
  for (const CpuLevel level : testing::fast_levels()) {
    kernels::set_cpu_level(level);
    INFO(kernels::cpu_level_name(level));
    CHECK(kernels::conv2d_accumulates_input_gradient<float>(Device::cpu(), resnet));
    CHECK(
        kernels::conv2d_accumulates_input_gradient<float>(Device::cpu(), conv3x3(128, 16, 32, 32, 32, 2, 1)));
    CHECK_FALSE(kernels::conv2d_accumulates_input_gradient<float>(Device::cpu(), channels_last));
    CHECK_FALSE(kernels::conv2d_accumulates_input_gradient<float>(Device::cpu(), pointwise));
    CHECK_FALSE(kernels::conv2d_accumulates_input_gradient<float>(Device::cuda(), resnet));
  }
  kernels::set_cpu_level(CpuLevel::Reference);
  CHECK_FALSE(kernels::conv2d_accumulates_input_gradient<float>(Device::cpu(), resnet));
  std::vector<float> gy(static_cast<std::size_t>(y_count(resnet))),
      w(static_cast<std::size_t>(w_count(resnet)));
  std::vector<float> gx(static_cast<std::size_t>(x_count(resnet)));
  CHECK_THROWS_WITH_AS(
      kernels::conv2d_backward_data_accumulate<float>(Device::cpu(), resnet, gy.data(), w.data(), gx.data()),
      doctest::Contains("conv2d_accumulates_input_gradient"), Error);
}

// raw::conv2d_backward_data with `into`: the Winograd stores (float NCHW), AMX's (bfloat16 channels-last,
// where this CPU has it), and elsewhere a fresh gradient added (float channels-last, float64, a 1x1 filter,
// bfloat16 NCHW), each the values of the fresh gradient plus the sum so far.
TEST_CASE("conv2d accumulate: raw backward data adds into the given gradient on every path") {
  struct Case {
    const char* name;
    Shape x, w;
    Conv2dOptions options;
    DType dtype;
    bool channels_last;
    bool in_the_stores;  // where the kernel adds (at the fast levels)
  };
  const Case cases[] = {
      {"3x3 float NCHW", {2, 16, 32, 32}, {16, 16, 3, 3}, {.padding = {1, 1}}, DType::Float32, false, true},
      {"3x3 stride 2 float NCHW",
       {2, 16, 12, 12},
       {32, 16, 3, 3},
       {.stride = {2, 2}, .padding = {1, 1}},
       DType::Float32,
       false,
       false},
      {"3x3 float channels-last",
       {2, 16, 9, 9},
       {16, 16, 3, 3},
       {.padding = {1, 1}},
       DType::Float32,
       true,
       false},
      {"3x3 float64", {2, 5, 7, 7}, {6, 5, 3, 3}, {.padding = {1, 1}}, DType::Float64, false, false},
      {"1x1 float", {2, 8, 5, 5}, {4, 8, 1, 1}, {}, DType::Float32, false, false},
      {"3x3 bfloat16 channels-last",
       {2, 16, 12, 12},
       {32, 16, 3, 3},
       {.stride = {2, 2}, .padding = {1, 1}},
       DType::BFloat16,
       true,
       kernels::amx_bf16_usable()},
      {"3x3 bfloat16 NCHW",
       {2, 16, 12, 12},
       {16, 16, 3, 3},
       {.padding = {1, 1}},
       DType::BFloat16,
       false,
       false},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    if (c.in_the_stores && kernels::cpu_level() != CpuLevel::Reference) {
      Conv2dGeometry g = conv3x3(c.x[0], c.x[1], c.x[2], c.x[3], c.w[0], c.options.stride[0], 1);
      g.channels_last = c.channels_last;
      CHECK((c.dtype == DType::BFloat16
                 ? kernels::conv2d_accumulates_input_gradient<bfloat16>(Device::cpu(), g)
                 : kernels::conv2d_accumulates_input_gradient<float>(Device::cpu(), g)));
    }
    Generator generator(7);
    const auto draw = [&](const Shape& shape) {
      return Tensor::randn(shape, DType::Float32, &generator).to(c.dtype);
    };
    Tensor x = draw(c.x), w = draw(c.w);
    if (c.channels_last) x = x.channels_last();
    const Tensor y = raw::conv2d_forward(x, w, Tensor(), c.options);
    const Tensor gy = draw(y.shape());
    Tensor sum = draw(c.x);
    if (c.channels_last) sum = sum.channels_last();
    const Tensor expected =
        raw::binary(kernels::BinaryOp::Add, sum, raw::conv2d_backward_data(gy, w, c.x, c.options), "add");
    const Tensor into = sum.clone();
    const Tensor returned = raw::conv2d_backward_data(gy, w, c.x, c.options, &into);
    CHECK(returned.impl_ptr() == into.impl_ptr());
    CHECK(into.to(DType::Float64).to_vector<double>() == expected.to(DType::Float64).to_vector<double>());
  }
}

// Through the engine: t feeds a convolution and, scaled, a sum with the convolution's output (a residual
// block's input, its shortcut's gradient a tensor of its own, as the batch norm's backward hands it), so t's
// gradient is 2 g + backward data of g; the shortcut's runs first, and the convolution's rule adds into it
// (in Winograd's stores at the fast levels: a 3x3 layer of ResNet-20's first stage).
TEST_CASE("conv2d accumulate: an input used by a convolution and a residual sum gets the summed gradient") {
  Generator generator(11);
  Tensor x = Tensor::randn({2, 16, 32, 32}, DType::Float32, &generator);
  const Tensor w = Tensor::randn({16, 16, 3, 3}, DType::Float32, &generator);
  x.set_requires_grad();
  const Conv2dOptions options{.padding = {1, 1}};
  const Tensor t = x * 1.0f;
  const Tensor y = conv2d(t, w, Tensor(), options) + t * 2.0f;
  const Tensor g = Tensor::randn(y.shape(), DType::Float32, &generator);
  sum(y * g).backward();
  const Tensor shortcut = raw::binary(kernels::BinaryOp::Mul, g, Tensor::scalar(2.0), "mul");
  const Tensor expected = raw::binary(kernels::BinaryOp::Add, shortcut,
                                      raw::conv2d_backward_data(g, w, x.shape(), options), "add");
  CHECK(x.grad().to_vector<float>() == expected.to_vector<float>());
}

}  // namespace kernels_conv2d_backward_data_accumulate_test
