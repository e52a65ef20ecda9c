// Dropout (train-mode masks, eval-mode identity, seeded reproducibility) and Flatten (shapes).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>

#include "core/error.hpp"
#include "layers/dropout.hpp"
#include "layers/flatten.hpp"
#include "tests/layers/layer_testing.hpp"

namespace layers_dropout_flatten_test {

using namespace kiln;
using namespace kiln::layers;
using kiln::layers::testing::values;

TEST_CASE("layers: Dropout zeroes about p of the elements in train mode and is the identity in eval mode") {
  Generator generator(1);
  Dropout dropout_layer(0.25, &generator);
  const Tensor x = Tensor::ones({100, 100});
  const std::vector<double> trained = values(dropout_layer(x));
  const auto dropped = std::count(trained.begin(), trained.end(), 0.0);
  const auto kept =
      std::count(trained.begin(), trained.end(), static_cast<double>(1.0f / 0.75f));  // computed in float
  CHECK(dropped + kept == 10000);         // every element is dropped or scaled by 1 / (1 - p)
  CHECK(std::abs(dropped - 2500) < 200);  // about p of 10,000 (the standard deviation is 43)
  CHECK(dropout_layer(x).shape() == x.shape());

  dropout_layer.eval();
  CHECK(values(dropout_layer(x)) == values(x));
  CHECK(dropout_layer.describe() == "Dropout(p=0.25)");
}

TEST_CASE("layers: Dropout masks come from its generator, or the default one") {
  const Tensor x = Tensor::ones({1000});
  Generator first(9), again(9);
  Dropout a(0.5, &first), b(0.5, &again);
  CHECK(values(a(x)) == values(b(x)));

  Dropout from_default(0.5);
  manual_seed(123);
  const std::vector<double> one = values(from_default(x));
  manual_seed(123);
  CHECK(values(from_default(x)) == one);
  CHECK(values(from_default(x)) != one);  // the default generator moved on

  CHECK_THROWS_WITH_AS(Dropout(1.5), doctest::Contains("Dropout: probability 1.5 must be in [0, 1]"),
                       kiln::Error);
}

TEST_CASE("layers: Flatten merges the axes from start_axis on") {
  const Tensor x = Tensor::arange(0, 120).reshape({2, 3, 4, 5});
  Flatten flatten;
  const Tensor y = flatten(x);
  CHECK(y.shape() == Shape{2, 60});
  CHECK(values(y) == values(x));  // row-major order is kept
  CHECK(Flatten(2)(x).shape() == Shape{2, 3, 20});
  CHECK(Flatten(0)(x).shape() == Shape{120});
  CHECK(flatten.describe() == "Flatten(start_axis=1)");
  CHECK(flatten.parameter_count() == 0);
}

}  // namespace layers_dropout_flatten_test
