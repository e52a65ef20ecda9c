// Activation layers: hand-worked values on (-2, -0.5, 0, 1.5), shapes kept, no parameters, descriptions.
#include "layers/activation.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <memory>

#include "tests/layers/layer_testing.hpp"

namespace layers_activation_test {

using namespace kiln;
using namespace kiln::layers;
using kiln::layers::testing::values;

namespace {

const std::vector<double> kInputs{-2.0, -0.5, 0.0, 1.5};

void check_elementwise(Module& layer, double (*expected)(double)) {
  const Tensor x = Tensor::from_vector<float>({-2.0f, -0.5f, 0.0f, 1.5f}, {2, 1, 2});
  const Tensor y = layer(x);
  CHECK(y.shape() == x.shape());
  const std::vector<double> actual = values(y);
  for (std::size_t i = 0; i < kInputs.size(); ++i) {
    CHECK(actual[i] == doctest::Approx(expected(kInputs[i])).epsilon(1e-6));
  }
  CHECK(layer.parameter_count() == 0);
}

}  // namespace

TEST_CASE(
    "layers: ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU, Hardsigmoid and Hardswish compute their formulas") {
  ReLU relu_layer;
  check_elementwise(relu_layer, [](double x) { return x > 0 ? x : 0.0; });
  LeakyReLU leaky(0.1);
  check_elementwise(leaky, [](double x) { return x > 0 ? x : 0.1 * x; });
  LeakyReLU default_leaky;
  check_elementwise(default_leaky, [](double x) { return x > 0 ? x : 0.01 * x; });
  Sigmoid sigmoid_layer;
  check_elementwise(sigmoid_layer, [](double x) { return 1.0 / (1.0 + std::exp(-x)); });
  Tanh tanh_layer;
  check_elementwise(tanh_layer, [](double x) { return std::tanh(x); });
  GELU gelu_layer;
  check_elementwise(gelu_layer, [](double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); });
  SiLU silu_layer;
  check_elementwise(silu_layer, [](double x) { return x / (1.0 + std::exp(-x)); });
  Hardsigmoid hardsigmoid_layer;
  check_elementwise(hardsigmoid_layer, [](double x) { return x <= -3 ? 0.0 : x >= 3 ? 1.0 : x / 6 + 0.5; });
  Hardswish hardswish_layer;
  check_elementwise(hardswish_layer, [](double x) { return x <= -3 ? 0.0 : x >= 3 ? x : x * (x + 3) / 6; });
}

TEST_CASE("layers: activation descriptions") {
  CHECK(ReLU().describe() == "ReLU()");
  CHECK(LeakyReLU().describe() == "LeakyReLU(negative_slope=0.01)");
  CHECK(LeakyReLU(0.2).describe() == "LeakyReLU(negative_slope=0.2)");
  CHECK(Sigmoid().describe() == "Sigmoid()");
  CHECK(Tanh().describe() == "Tanh()");
  CHECK(GELU().describe() == "GELU()");
  CHECK(SiLU().describe() == "SiLU()");
  CHECK(Hardsigmoid().describe() == "Hardsigmoid()");
  CHECK(Hardswish().describe() == "Hardswish()");
}

}  // namespace layers_activation_test
