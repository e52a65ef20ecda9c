// Sequential: positional and given names, indexing, chaining, the empty chain, and the runs it fuses.
#include "layers/sequential.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "kernels/cpu_level.hpp"
#include "layers/activation.hpp"
#include "layers/batchnorm.hpp"
#include "layers/conv2d.hpp"
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

TEST_CASE(
    "layers: Sequential runs a BatchNorm2d followed by a ReLU6 as one fused op, capped, and conv -> "
    "batch norm -> ReLU6 as one at inference") {
  Generator generator(5);
  Sequential stack;
  stack.add("conv", std::make_shared<Conv2d>(3, 8, 1, generator))
      .add("bn", std::make_shared<BatchNorm2d>(8))
      .add("relu6", std::make_shared<ReLU6>());
  // gamma 4, beta 3: a fifth of the outputs above 6, a fifth below 0.
  const auto& bn = static_cast<const BatchNorm2d&>(*stack[1]);
  std::fill_n(bn.weight().data<float>(), 8, 4.0f);
  std::fill_n(bn.bias().data<float>(), 8, 3.0f);
  const Tensor x = Tensor::randn({2, 3, 6, 6}, DType::Float32, &generator);
  const auto one_by_one = [&] { return clamp(stack[1]->forward(stack[0]->forward(x)), 0.0, 6.0); };
  const Tensor trained = stack(x);
  CHECK(trained.grad_fn()->op == "batch_norm2d_relu");
  const std::vector<float> y = trained.to_vector<float>();
  CHECK(y == one_by_one().to_vector<float>());
  CHECK(std::count(y.begin(), y.end(), 6.0f) > 10);
  stack.eval();
  const NoGradGuard no_grad;
  CHECK(stack(x).to_vector<float>() == one_by_one().to_vector<float>());
}

TEST_CASE(
    "layers: Sequential runs batch norm -> ReLU -> conv as one op in training, conv -> batch norm -> "
    "ReLU at inference, with the modules' values") {
  // 16 channels at 32x32, batch 8: the second convolution's passes are Winograd's at the fast CPU levels, so
  // the training op fuses there (and is the two ops at the Reference level).
  Generator generator(3);
  Sequential stack;
  stack.add("conv1", std::make_shared<Conv2d>(3, 16, 3, generator, Conv2dLayerOptions{.padding = 1}))
      .add("bn", std::make_shared<BatchNorm2d>(16))
      .add("relu", std::make_shared<ReLU>())
      .add("conv2", std::make_shared<Conv2d>(16, 16, 3, generator, Conv2dLayerOptions{.padding = 1}));
  const Tensor x = Tensor::randn({8, 3, 32, 32}, DType::Float32, &generator);
  const auto one_by_one = [&] { return stack[3]->forward(relu(stack[1]->forward(stack[0]->forward(x)))); };

  const Tensor trained = stack(x);
  if (kernels::cpu_level() != kernels::CpuLevel::Reference)
    CHECK(trained.grad_fn()->op == "conv2d_of_batch_norm");
  // The running statistics moved once per forward: the modules' run sees the same batch statistics.
  CHECK(trained.to_vector<float>() == one_by_one().to_vector<float>());

  stack.eval();
  const NoGradGuard no_grad;
  CHECK(stack(x).to_vector<float>() == one_by_one().to_vector<float>());
}

}  // namespace layers_sequential_test
