// Sequential: positional and given names, indexing, chaining, the empty chain.
#include "layers/sequential.hpp"

#include <doctest/doctest.h>

#include <memory>

#include "core/error.hpp"
#include "layers/activation.hpp"
#include "layers/batchnorm.hpp"
#include "layers/flatten.hpp"
#include "layers/linear.hpp"
#include "tests/layers/layer_testing.hpp"

namespace layers_sequential_test {

using namespace kiln;
using namespace kiln::layers;
using kiln::layers::testing::names;
using kiln::layers::testing::values;

TEST_CASE("layers: Sequential names children by position unless named, and indexes them") {
  Generator generator(1);
  const auto first = std::make_shared<Linear>(6, 5, generator);
  const auto activation = std::make_shared<Tanh>();
  const auto last = std::make_shared<Linear>(5, 2, generator);
  Sequential net;
  net.add(first).add("act", activation).add(last);
  CHECK(net.size() == 3);
  CHECK(net[0] == first);
  CHECK(net[1] == activation);
  CHECK(net[2] == last);
  // The third child is named by its position, 2, whatever the names before it.
  CHECK(names(net.named_parameters()) ==
        std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  CHECK_THROWS_WITH_AS(net[3], doctest::Contains("Sequential: index 3 is out of range for 3 modules"),
                       kiln::Error);
}

TEST_CASE("layers: Sequential forward chains its children, and an empty one is the identity") {
  Generator generator(2);
  auto linear = std::make_shared<Linear>(12, 3, generator);
  Sequential net;
  net.add(std::make_shared<Flatten>()).add(linear).add(std::make_shared<ReLU>());
  const Tensor x = Tensor::randn({4, 3, 2, 2}, DType::Float32, &generator);
  const Tensor y = net(x);
  CHECK(y.shape() == Shape{4, 3});
  CHECK(values(y) == values(relu((*linear)(x.flatten(1)))));
  CHECK(values(Sequential()(x)) == values(x));
  CHECK(net.describe() == "Sequential");
}

TEST_CASE("layers: Sequential runs a BatchNorm2d followed by a ReLU as one fused op, and nothing else fused") {
  Sequential fused_pair;
  fused_pair.add("bn", std::make_shared<BatchNorm2d>(2)).add("relu", std::make_shared<ReLU>());
  Sequential reversed;
  reversed.add("relu", std::make_shared<ReLU>()).add("bn", std::make_shared<BatchNorm2d>(2));
  Tensor x = Tensor::randn({2, 2, 3, 3});
  x.set_requires_grad();
  const Tensor fused_output = fused_pair(x);
  CHECK(fused_output.grad_fn()->op == "batch_norm2d_relu");
  CHECK(reversed(x).grad_fn()->op == "batch_norm2d");
  // The same values as the two modules one after the other.
  Sequential bn_alone;
  bn_alone.add("bn", fused_pair[0]);
  CHECK(fused_output.to_vector<float>() == relu(bn_alone(x)).to_vector<float>());
}

}  // namespace layers_sequential_test
