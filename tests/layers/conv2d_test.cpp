// Conv2d layer: weight and bias shapes and initialization, forward equal to kiln::conv2d with the layer's
// own tensors, output shapes under stride, padding, dilation and groups, its description and errors.
#include "layers/conv2d.hpp"

#include <doctest/doctest.h>

#include <cmath>

#include "core/error.hpp"
#include "tests/layers/layer_testing.hpp"

namespace layers_conv2d_test {

using namespace kiln;
using namespace kiln::layers;
using kiln::layers::testing::moments;
using kiln::layers::testing::names;
using kiln::layers::testing::values;

TEST_CASE("layers: Conv2d weight is [out, in/groups, k, k], bias [out] zeros, both parameters") {
  Generator generator(1);
  Conv2d conv(6, 4, 3, generator, {.groups = 2});
  CHECK(conv.weight().shape() == Shape{4, 3, 3, 3});
  CHECK(conv.bias().shape() == Shape{4});
  CHECK(values(conv.bias()) == std::vector<double>(4, 0.0));
  CHECK(conv.weight().requires_grad());
  CHECK(conv.bias().requires_grad());
  CHECK(names(conv.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(conv.parameter_count() == 4 * 3 * 9 + 4);
  CHECK(conv.options().groups == 2);

  Conv2d no_bias(3, 8, 1, generator, {.bias = false});
  CHECK_FALSE(no_bias.bias().defined());
  CHECK(names(no_bias.named_parameters()) == std::vector<std::string>{"weight"});
}

TEST_CASE("layers: Conv2d weight is Kaiming-normal with fan_in = in/groups * k * k") {
  Generator generator(2);
  // 128 x 64 x 3 x 3 = 73,728 draws: fan_in 576, std sqrt(2/576) = 0.0589.
  const Conv2d dense(64, 128, 3, generator);
  CHECK(std::abs(moments(dense.weight()).std - std::sqrt(2.0 / 576.0)) < 0.05 * std::sqrt(2.0 / 576.0));
  // With 4 groups each output sees 16 channels: fan_in 144, std sqrt(2/144) = 0.118.
  const Conv2d grouped(64, 512, 3, generator, {.groups = 4});
  CHECK(std::abs(moments(grouped.weight()).std - std::sqrt(2.0 / 144.0)) < 0.05 * std::sqrt(2.0 / 144.0));
}

TEST_CASE("layers: Conv2d output shapes under stride, padding, dilation and groups") {
  Generator generator(3);
  const Tensor x = Tensor::randn({2, 4, 9, 9}, DType::Float32, &generator);
  // (9 + 2 - 3) / 1 + 1 = 9
  CHECK(Conv2d(4, 8, 3, generator, {.padding = 1})(x).shape() == Shape{2, 8, 9, 9});
  // (9 + 2 - 3) / 2 + 1 = 5
  CHECK(Conv2d(4, 8, 3, generator, {.stride = 2, .padding = 1})(x).shape() == Shape{2, 8, 5, 5});
  // (9 - 2 * 2 - 1) / 1 + 1 = 5
  CHECK(Conv2d(4, 2, 3, generator, {.dilation = 2})(x).shape() == Shape{2, 2, 5, 5});
  // 1x1, groups 4 (depthwise): 9 x 9 kept
  CHECK(Conv2d(4, 4, 1, generator, {.groups = 4})(x).shape() == Shape{2, 4, 9, 9});
  CHECK(Conv2d(4, 6, 5, generator)(x).shape() == Shape{2, 6, 5, 5});
}

TEST_CASE("layers: Conv2d forward equals kiln::conv2d with the layer's weight and bias") {
  Generator generator(4);
  Conv2d conv(4, 6, 3, generator, {.stride = 2, .padding = 1, .dilation = 1, .groups = 2});
  {
    NoGradGuard no_grad;        // a nonzero bias, so that the comparison covers it
    Tensor bias = conv.bias();  // a handle on the layer's own tensor
    bias.copy_(Tensor::randn({6}, DType::Float32, &generator));
  }
  const Tensor x = Tensor::randn({3, 4, 7, 6}, DType::Float32, &generator);
  const Tensor expected =
      conv2d(x, conv.weight(), conv.bias(), {.stride = {2, 2}, .padding = {1, 1}, .groups = 2});
  const Tensor actual = conv(x);
  CHECK(actual.shape() == Shape{3, 6, 4, 3});
  CHECK(values(actual) == values(expected));

  // The backward reaches the layer's own tensors.
  sum(actual).backward();
  CHECK(conv.weight().grad().shape() == conv.weight().shape());
  // d sum(y) / d bias[o] = the number of output pixels of channel o = 3 * 4 * 3.
  CHECK(values(conv.bias().grad()) == std::vector<double>(6, 36.0));
}

TEST_CASE("layers: Conv2d describes itself like PyTorch, leaving out defaults") {
  Generator generator(5);
  CHECK(Conv2d(3, 16, 3, generator, {.padding = 1}).describe() ==
        "Conv2d(3, 16, kernel=3x3, stride=1, padding=1)");
  CHECK(Conv2d(3, 16, 5, generator).describe() == "Conv2d(3, 16, kernel=5x5, stride=1)");
  CHECK(Conv2d(8, 8, 3, generator, {.stride = 2, .padding = 2, .dilation = 2, .groups = 8, .bias = false})
            .describe() == "Conv2d(8, 8, kernel=3x3, stride=2, padding=2, dilation=2, groups=8, bias=false)");
}

TEST_CASE("layers: Conv2d rejects bad geometry and a wrong input") {
  Generator generator(6);
  CHECK_THROWS_WITH_AS(Conv2d(6, 4, 3, generator, {.groups = 4}),
                       doctest::Contains("Conv2d: groups 4 must divide in_channels 6 and out_channels 4"),
                       kiln::Error);
  CHECK_THROWS_WITH_AS(Conv2d(0, 4, 3, generator), doctest::Contains("Conv2d: in_channels 0"), kiln::Error);
  CHECK_THROWS_WITH_AS(Conv2d(3, 4, 3, generator, {.stride = 0}), doctest::Contains("Conv2d: stride 0"),
                       kiln::Error);
  Conv2d conv(3, 4, 3, generator);
  CHECK_THROWS_AS(conv(Tensor::zeros({1, 5, 8, 8})), kiln::Error);  // 5 channels into a 3-channel conv
}

}  // namespace layers_conv2d_test
