// Pooling layers: output shapes, forward equal to the ops they wrap, hand-worked global average,
// descriptions and the resolved default stride.
#include "layers/pool.hpp"

#include <doctest/doctest.h>

#include "core/error.hpp"
#include "core/generator.hpp"
#include "tests/layers/layer_testing.hpp"

namespace layers_pool_test {

using namespace kiln;
using namespace kiln::layers;
using kiln::layers::testing::values;

TEST_CASE("layers: MaxPool2d and AvgPool2d shapes and forward equal to the ops") {
  Generator generator(1);
  const Tensor x = Tensor::randn({2, 3, 8, 7}, DType::Float32, &generator);
  MaxPool2d max_pool({.kernel = {2, 2}});
  // (8 - 2) / 2 + 1 = 4, (7 - 2) / 2 + 1 = 3
  CHECK(max_pool(x).shape() == Shape{2, 3, 4, 3});
  CHECK(values(max_pool(x)) == values(max_pool2d(x, {.kernel = {2, 2}})));
  CHECK(max_pool.parameter_count() == 0);

  const Pool2dOptions same_size{.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}};
  AvgPool2d avg_pool(same_size);
  CHECK(avg_pool(x).shape() == x.shape());
  CHECK(values(avg_pool(x)) == values(avg_pool2d(x, same_size)));
  CHECK(MaxPool2d({.kernel = {2, 2}, .ceil_mode = true})(x).shape() == Shape{2, 3, 4, 4});
}

TEST_CASE("layers: GlobalAvgPool2d averages each channel's plane, [N, C, H, W] -> [N, C]") {
  GlobalAvgPool2d pool;
  // Channel c of image n holds 6 * (2n + c) + (0..5): its mean is 6 * (2n + c) + 2.5.
  const Tensor x = Tensor::arange(0, 24).reshape({2, 2, 2, 3});
  const Tensor y = pool(x);
  CHECK(y.shape() == Shape{2, 2});
  CHECK(values(y) == std::vector<double>{2.5, 8.5, 14.5, 20.5});
  CHECK(pool.describe() == "GlobalAvgPool2d()");
}

TEST_CASE("layers: pool descriptions show the resolved stride and non-default flags") {
  CHECK(MaxPool2d({.kernel = {2, 2}}).describe() == "MaxPool2d(kernel=2x2, stride=2x2, padding=0x0)");
  CHECK(MaxPool2d({.kernel = {2, 2}}).options().stride == Pair{2, 2});
  CHECK(AvgPool2d({.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}, .count_include_pad = false})
            .describe() == "AvgPool2d(kernel=3x3, stride=1x1, padding=1x1, count_include_pad=false)");
  CHECK(MaxPool2d({.kernel = {3, 3}, .stride = {2, 2}, .ceil_mode = true}).describe() ==
        "MaxPool2d(kernel=3x3, stride=2x2, padding=0x0, ceil_mode=true)");
  CHECK_THROWS_WITH_AS(MaxPool2d({.kernel = {0, 2}}), doctest::Contains("MaxPool2d: kernel 0x2"),
                       kiln::Error);
}

}  // namespace layers_pool_test
