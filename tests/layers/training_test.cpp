// The layers working together: a small Sequential overfits one fixed batch with plain gradient steps.
#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "layers/layers.hpp"

namespace layers_training_test {

using namespace kiln;
using namespace kiln::layers;

// 8 random 3x4x4 images with 4 arbitrary labels: nothing to learn but the batch itself. (Larger images
// make the globally pooled features of pure noise nearly alike, and memorizing them slow.)
TEST_CASE("layers: a small Sequential overfits a fixed random batch in 30 gradient steps") {
  Generator generator(2024);
  Sequential net;
  net.add("conv", std::make_shared<Conv2d>(3, 16, 3, generator, Conv2dLayerOptions{.padding = 1}))
      .add("bn", std::make_shared<BatchNorm2d>(16))
      .add("relu", std::make_shared<ReLU>())
      .add("pool", std::make_shared<GlobalAvgPool2d>())
      .add("fc", std::make_shared<Linear>(16, 4, generator));
  const Tensor images = Tensor::randn({8, 3, 4, 4}, DType::Float32, &generator);
  const Tensor labels = Tensor::from_vector<std::int64_t>({3, 2, 1, 0, 3, 2, 1, 0}, {8});

  constexpr double kLearningRate = 1.0;
  std::vector<double> losses;
  for (int step = 0; step < 30; ++step) {
    const Tensor loss = cross_entropy(net(images), labels);
    losses.push_back(loss.item());
    net.zero_grad();
    loss.backward();
    NoGradGuard no_grad;
    for (Tensor parameter : net.parameters()) parameter.copy_(parameter - kLearningRate * parameter.grad());
  }
  // It starts near chance, ln 4 = 1.386, and ends with every label memorized.
  CHECK(losses.front() > 1.2);
  CHECK(losses.back() < 0.25 * losses.front());
  const std::vector<std::int64_t> predicted = argmax(net(images), 1).to_vector<std::int64_t>();
  CHECK(predicted == labels.to_vector<std::int64_t>());
}

}  // namespace layers_training_test
