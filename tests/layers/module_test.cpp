// Module, through Sequential and small test modules: dotted names in registration order, parameters
// versus buffers, parameter counts, train/eval reaching every descendant (and changing what BatchNorm2d
// and Dropout do), zero_grad, summary(), and the naming errors.
#include "layers/module.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <memory>

#include "core/error.hpp"
#include "layers/layers.hpp"
#include "tests/layers/layer_testing.hpp"

namespace layers_module_test {

using namespace kiln;
using namespace kiln::layers;
using kiln::layers::testing::names;
using kiln::layers::testing::values;

namespace {

// conv 3x3 (3 -> 4) -> BN(4) -> ReLU -> global pool -> head: [Linear 4 -> 2].
// Parameters: 4*3*3*3 + 4 = 112 (conv), 4 + 4 = 8 (BN), 4*2 + 2 = 10 (linear): 130.
std::shared_ptr<Sequential> small_network(Generator& generator) {
  auto head = std::make_shared<Sequential>();
  head->add(std::make_shared<Linear>(4, 2, generator));
  auto net = std::make_shared<Sequential>();
  net->add(std::make_shared<Conv2d>(3, 4, 3, generator))
      .add(std::make_shared<BatchNorm2d>(4))
      .add(std::make_shared<ReLU>())
      .add(std::make_shared<GlobalAvgPool2d>())
      .add("head", head);
  return net;
}

// Registers a parameter "w" and then a buffer under a name of the test's choosing.
class ParameterThenBuffer : public Module {
 public:
  explicit ParameterThenBuffer(const std::string& buffer_name) {
    register_parameter("w", Tensor::ones({2}));
    register_buffer(buffer_name, Tensor::zeros({2}));
  }
  Tensor forward(const Tensor& input) override { return input; }
  std::string describe() const override { return "ParameterThenBuffer()"; }
};

}  // namespace

TEST_CASE("layers: Module names parameters and buffers with dots, in registration order") {
  Generator generator(1);
  const auto net = small_network(generator);
  CHECK(names(net->named_parameters()) ==
        std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "head.0.weight", "head.0.bias"});
  CHECK(names(net->named_buffers()) == std::vector<std::string>{"1.running_mean", "1.running_var"});

  Sequential outer;
  outer.add("block", std::make_shared<BasicBlock>(4, 4, 1, generator));
  CHECK(names(outer.named_parameters()) == std::vector<std::string>{"block.conv1.weight", "block.bn1.weight",
                                                                    "block.bn1.bias", "block.conv2.weight",
                                                                    "block.bn2.weight", "block.bn2.bias"});
  CHECK(names(outer.named_buffers()) ==
        std::vector<std::string>{"block.bn1.running_mean", "block.bn1.running_var", "block.bn2.running_mean",
                                 "block.bn2.running_var"});
}

TEST_CASE("layers: Module parameters require grad, buffers do not, and both are the layers' own tensors") {
  Generator generator(2);
  const auto net = small_network(generator);
  for (const auto& [name, parameter] : net->named_parameters()) {
    CAPTURE(name);
    CHECK(parameter.requires_grad());
    CHECK(parameter.is_leaf());
  }
  for (const auto& [name, buffer] : net->named_buffers()) {
    CAPTURE(name);
    CHECK_FALSE(buffer.requires_grad());
  }
  const auto conv = std::dynamic_pointer_cast<Conv2d>((*net)[0]);
  REQUIRE(conv != nullptr);
  CHECK(net->parameters().front().same(conv->weight()));
  const auto bn = std::dynamic_pointer_cast<BatchNorm2d>((*net)[1]);
  REQUIRE(bn != nullptr);
  CHECK(net->named_buffers().front().second.same(bn->running_mean()));
}

TEST_CASE("layers: parameter_count of a small network, counted by hand") {
  Generator generator(3);
  CHECK(small_network(generator)->parameter_count() == 130);
  CHECK(ReLU().parameter_count() == 0);
  CHECK(Sequential().parameter_count() == 0);
}

TEST_CASE("layers: train and eval reach every descendant and switch BatchNorm2d and Dropout") {
  Generator generator(4);
  auto inner = std::make_shared<Sequential>();
  inner->add(std::make_shared<BatchNorm2d>(2)).add(std::make_shared<Dropout>(0.5, &generator));
  Sequential net;
  net.add("inner", inner);
  const auto bn = std::dynamic_pointer_cast<BatchNorm2d>((*inner)[0]);
  REQUIRE(bn != nullptr);
  const Tensor x = Tensor::randn({4, 2, 3, 3}, DType::Float32, &generator, 5.0, 2.0);

  CHECK(net.is_training());
  CHECK((*inner)[1]->is_training());
  // Train mode: BN moves its running mean towards the batch's (about 5), and dropout zeroes elements.
  const std::vector<double> trained = values(net(x));
  CHECK(values(bn->running_mean())[0] > 0.1);
  CHECK(std::count(trained.begin(), trained.end(), 0.0) > 0);

  net.eval();
  CHECK_FALSE(net.is_training());
  CHECK_FALSE(inner->is_training());
  CHECK_FALSE((*inner)[0]->is_training());
  CHECK_FALSE((*inner)[1]->is_training());
  // Eval mode: the running statistics are used and kept, and nothing is dropped.
  const std::vector<double> running_mean = values(bn->running_mean());
  const std::vector<double> evaluated = values(net(x));
  CHECK(values(bn->running_mean()) == running_mean);
  CHECK(std::count(evaluated.begin(), evaluated.end(), 0.0) == 0);
  CHECK(values(net(x)) == evaluated);  // deterministic

  net.train();
  CHECK((*inner)[1]->is_training());
}

TEST_CASE("layers: zero_grad clears the gradient of every parameter") {
  Generator generator(5);
  const auto net = small_network(generator);
  sum((*net)(Tensor::randn({2, 3, 5, 5}, DType::Float32, &generator))).backward();
  for (const Tensor& parameter : net->parameters()) CHECK(parameter.grad().defined());
  net->zero_grad();
  for (const Tensor& parameter : net->parameters()) CHECK_FALSE(parameter.grad().defined());
}

TEST_CASE("layers: summary is the indented tree with the parameter count on the top line") {
  Generator generator(6);
  CHECK(small_network(generator)->summary() ==
        "Sequential  (130 parameters)\n"
        "  (0): Conv2d(3, 4, kernel=3x3, stride=1)\n"
        "  (1): BatchNorm2d(4, eps=1e-05, momentum=0.1)\n"
        "  (2): ReLU()\n"
        "  (3): GlobalAvgPool2d()\n"
        "  (head): Sequential\n"
        "    (0): Linear(in_features=4, out_features=2, bias=true)\n");
  // Large counts get thousands separators; a block's children sit under it.
  Sequential net;
  net.add("block", std::make_shared<BasicBlock>(64, 64, 1, generator));
  const std::string summary = net.summary();
  CHECK(summary.starts_with("Sequential  (73,984 parameters)\n"));  // 2 * 64*64*9 + 4 * 64
  CHECK(summary.find("\n  (block): BasicBlock(64, 64, stride=1, shortcut=identity)\n") != std::string::npos);
  CHECK(summary.find("\n    (conv2): Conv2d(64, 64, kernel=3x3, stride=1, padding=1, bias=false)\n") !=
        std::string::npos);
  CHECK(ReLU().summary() == "ReLU()  (0 parameters)\n");
}

TEST_CASE("layers: Module refuses an empty, dotted or repeated name and a null child") {
  CHECK_THROWS_WITH_AS(ParameterThenBuffer("w"),
                       doctest::Contains("ParameterThenBuffer(): the name 'w' is already taken"),
                       kiln::Error);
  CHECK_THROWS_WITH_AS(ParameterThenBuffer("a.b"), doctest::Contains("buffer name 'a.b' contains a dot"),
                       kiln::Error);
  CHECK_THROWS_WITH_AS(ParameterThenBuffer(""), doctest::Contains("a buffer needs a name"), kiln::Error);
  Sequential net;
  net.add("relu", std::make_shared<ReLU>());
  CHECK_THROWS_WITH_AS(net.add("relu", std::make_shared<ReLU>()),
                       doctest::Contains("Sequential: the name 'relu' is already taken"), kiln::Error);
  CHECK_THROWS_WITH_AS(net.add("x", nullptr), doctest::Contains("child module 'x' is null"), kiln::Error);
}

}  // namespace layers_module_test
