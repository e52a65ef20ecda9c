// Linear layer: PyTorch's weight layout and default initialization, forward x W^T + b checked by hand
// loops, gradients, description and errors.
#include "layers/linear.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "tests/layers/layer_testing.hpp"

namespace layers_linear_test {

using namespace kiln;
using namespace kiln::layers;
using kiln::layers::testing::names;
using kiln::layers::testing::values;

TEST_CASE("layers: Linear weight is [out, in] and bias [out], uniform within 1/sqrt(in_features)") {
  Generator generator(1);
  const Linear linear(400, 300, generator);
  CHECK(linear.weight().shape() == Shape{300, 400});
  CHECK(linear.bias().shape() == Shape{300});
  CHECK(names(linear.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(linear.parameter_count() == 300 * 400 + 300);
  const double bound = 1.0 / std::sqrt(400.0);  // 0.05
  for (const Tensor& tensor : {linear.weight(), linear.bias()}) {
    const std::vector<double> xs = values(tensor);
    CHECK(*std::min_element(xs.begin(), xs.end()) >= -bound);
    CHECK(*std::max_element(xs.begin(), xs.end()) <= bound);
  }
  // 120,000 weight draws come within 0.1% of the bound.
  const std::vector<double> weights = values(linear.weight());
  CHECK(*std::max_element(weights.begin(), weights.end()) > 0.999 * bound);
  // The bias is not all zeros (PyTorch's default draws it too).
  CHECK(values(linear.bias()) != std::vector<double>(300, 0.0));
}

TEST_CASE("layers: Linear forward is x W^T + b, element by element") {
  Generator generator(2);
  Linear linear(7, 3, generator);
  const Tensor x = Tensor::randn({5, 7}, DType::Float32, &generator);
  const Tensor y = linear(x);
  REQUIRE(y.shape() == Shape{5, 3});
  const std::vector<double> xs = values(x), ws = values(linear.weight()), bs = values(linear.bias()),
                            ys = values(y);
  for (std::size_t n = 0; n < 5; ++n) {
    for (std::size_t o = 0; o < 3; ++o) {
      double expected = bs[o];
      for (std::size_t i = 0; i < 7; ++i) expected += xs[n * 7 + i] * ws[o * 7 + i];
      CHECK(ys[n * 3 + o] == doctest::Approx(expected).epsilon(1e-5));
    }
  }
  // The same as the ops it wraps, bit for bit.
  CHECK(values(y) == values(matmul(x, linear.weight().transpose(0, 1)) + linear.bias()));
}

TEST_CASE("layers: Linear gradients are sum_n x[n] for the weight and N for the bias under sum(y)") {
  Generator generator(3);
  Linear linear(4, 2, generator);
  const Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, -1, 0, 1, 5, 2, 2, 2, 2}, {3, 4});
  sum(linear(x)).backward();
  // d sum / d W[o][i] = sum_n x[n][i] = (2, 4, 6, 11) for both rows; d sum / d b[o] = 3.
  CHECK(values(linear.weight().grad()) == std::vector<double>{2, 4, 6, 11, 2, 4, 6, 11});
  CHECK(values(linear.bias().grad()) == std::vector<double>{3, 3});
}

TEST_CASE("layers: Linear without bias, its description and input errors") {
  Generator generator(4);
  Linear linear(7, 3, generator, false);
  CHECK_FALSE(linear.bias().defined());
  CHECK(names(linear.named_parameters()) == std::vector<std::string>{"weight"});
  CHECK(linear(Tensor::ones({2, 7})).shape() == Shape{2, 3});
  CHECK(linear.describe() == "Linear(in_features=7, out_features=3, bias=false)");
  CHECK(Linear(64, 10, generator).describe() == "Linear(in_features=64, out_features=10, bias=true)");
  CHECK_THROWS_WITH_AS(linear(Tensor::ones({2, 6})),
                       doctest::Contains("Linear(in_features=7, out_features=3, bias=false): input "
                                         "float32[2, 6] must be [N, 7]"),
                       kiln::Error);
  CHECK_THROWS_WITH_AS(Linear(0, 3, generator), doctest::Contains("Linear: in_features 0"), kiln::Error);
}

}  // namespace layers_linear_test
