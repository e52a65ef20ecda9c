// Initialization: each draw has the distribution it promises (std or bounds from the fan), float32, and
// is a pure function of the generator's seed.
#include "layers/init.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "tests/layers/layer_testing.hpp"

namespace layers_init_test {

using namespace kiln;
using namespace kiln::layers;
using kiln::layers::testing::moments;
using kiln::layers::testing::values;

namespace {

// A conv weight's shape with fan_in 64 * 3 * 3 = 576: 147,456 draws, enough that the sample std lands
// within 1% of the true one (its relative standard error is 1 / sqrt(2n) ~ 0.2%).
const Shape kConvShape{256, 64, 3, 3};
constexpr std::int64_t kConvFanIn = 64 * 3 * 3;

}  // namespace

TEST_CASE("layers: kaiming_normal has mean 0 and std sqrt(2 / fan_in) within 5%") {
  Generator generator(11);
  const Tensor weight = kaiming_normal(kConvShape, kConvFanIn, generator);
  CHECK(weight.shape() == kConvShape);
  CHECK(weight.dtype() == DType::Float32);
  CHECK_FALSE(weight.requires_grad());
  const double expected_std = std::sqrt(2.0 / 576.0);  // 0.0589
  const auto [mean, std] = moments(weight);
  CHECK(std::abs(std - expected_std) < 0.05 * expected_std);
  CHECK(std::abs(mean) < 0.05 * expected_std);
}

TEST_CASE("layers: kaiming_uniform stays within sqrt(6 / fan_in) and has variance 2 / fan_in") {
  Generator generator(12);
  const Tensor weight = kaiming_uniform(kConvShape, kConvFanIn, generator);
  const std::vector<double> xs = values(weight);
  const double bound = std::sqrt(6.0 / 576.0);
  const auto [low, high] = std::minmax_element(xs.begin(), xs.end());
  CHECK(*low >= -bound);
  CHECK(*high <= bound);
  // 147k draws reach within 0.1% of both ends.
  CHECK(*low < -0.999 * bound);
  CHECK(*high > 0.999 * bound);
  CHECK(std::abs(moments(weight).std - std::sqrt(2.0 / 576.0)) < 0.05 * std::sqrt(2.0 / 576.0));
}

TEST_CASE("layers: xavier_uniform stays within sqrt(6 / (fan_in + fan_out))") {
  Generator generator(13);
  const Tensor weight = xavier_uniform({300, 200}, 200, 300, generator);
  const std::vector<double> xs = values(weight);
  const double bound = std::sqrt(6.0 / 500.0);  // 0.1095
  const auto [low, high] = std::minmax_element(xs.begin(), xs.end());
  CHECK(*low >= -bound);
  CHECK(*high <= bound);
  CHECK(*low < -0.99 * bound);
  CHECK(*high > 0.99 * bound);
}

TEST_CASE("layers: uniform respects its bound and centres on zero") {
  Generator generator(14);
  const Tensor draw = uniform({10000}, 0.25, generator);
  CHECK(draw.dtype() == DType::Float32);
  const std::vector<double> xs = values(draw);
  CHECK(*std::min_element(xs.begin(), xs.end()) >= -0.25);
  CHECK(*std::max_element(xs.begin(), xs.end()) <= 0.25);
  // Uniform(-b, b) has std b / sqrt(3) = 0.1443, and a mean within a few standard errors (0.0014) of 0.
  const auto [mean, std] = moments(draw);
  CHECK(std::abs(std - 0.25 / std::sqrt(3.0)) < 0.05 * 0.25 / std::sqrt(3.0));
  CHECK(std::abs(mean) < 0.01);
}

TEST_CASE("layers: the same seed gives the same weights, a different seed different ones") {
  Generator first(42), again(42), other(43);
  const std::vector<double> a = values(kaiming_normal({64, 27}, 27, first));
  CHECK(a == values(kaiming_normal({64, 27}, 27, again)));
  CHECK(a != values(kaiming_normal({64, 27}, 27, other)));
  // The generator moves on: the next draw from it is new numbers.
  CHECK(a != values(kaiming_normal({64, 27}, 27, first)));
  Generator uniform_first(5), uniform_again(5);
  CHECK(values(uniform({100}, 1.0, uniform_first)) == values(uniform({100}, 1.0, uniform_again)));
}

TEST_CASE("layers: init functions reject a non-positive fan and a negative bound") {
  Generator generator(0);
  CHECK_THROWS_WITH_AS(kaiming_normal({4, 0}, 0, generator), doctest::Contains("kaiming_normal: fan_in 0"),
                       kiln::Error);
  CHECK_THROWS_WITH_AS(kaiming_uniform({4}, -1, generator), doctest::Contains("kaiming_uniform: fan_in -1"),
                       kiln::Error);
  CHECK_THROWS_WITH_AS(xavier_uniform({4}, 4, 0, generator), doctest::Contains("fan_out 0"), kiln::Error);
  CHECK_THROWS_WITH_AS(uniform({4}, -0.5, generator), doctest::Contains("uniform: bound -0.5"), kiln::Error);
}

}  // namespace layers_init_test
