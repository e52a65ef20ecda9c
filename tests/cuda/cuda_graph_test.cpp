// Tests of CUDA graphs (core/cuda_graph.hpp) and of GraphedStep (train/graphed_step.hpp): a graph replays
// its kernels and cuBLAS calls on what its static tensors hold at each launch; its memory is its own; work a
// graph cannot hold (a wait for the device, a random draw) fails the capture with an error and leaves kiln
// usable; and a training step run as a graph reaches the very weights the same steps reach without one.
#include "core/cuda_graph.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/generator.hpp"
#include "core/ops.hpp"
#include "layers/layers.hpp"
#include "optim/sgd.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/matches_reference.hpp"
#include "train/graphed_step.hpp"

namespace cuda_cuda_graph_test {

namespace {

using namespace kiln;

Tensor random_gpu(const Shape& shape, std::uint64_t seed) {
  Generator generator(seed);
  return Tensor::randn(shape, DType::Float32, &generator).to(Device::cuda());
}

// relu(x w + 1) and its sum over rows: a GEMM (cuBLAS), a broadcast add, a relu and a reduction.
Tensor small_network(const Tensor& x, const Tensor& w) { return sum(relu(matmul(x, w) + 1.0), {0}); }

TEST_CASE("cuda: a CUDA graph replays its kernels and GEMMs on what its input holds at each launch") {
  if (!testing::have_gpu()) return;
  const NoGradGuard no_grad;
  const Tensor w = random_gpu({5, 3}, 1);
  Tensor x = Tensor::empty({4, 5}, DType::Float32, Device::cuda());  // the graph's static input
  Tensor y;                                                          // and its static output
  const CudaGraph graph(0, [&] { y = small_network(x, w); });
  for (const std::uint64_t seed : {2, 3, 4}) {
    INFO("input seed ", seed);
    const Tensor input = random_gpu({4, 5}, seed);
    x.copy_(input);
    graph.launch();
    const std::vector<float> expected = small_network(input, w).to(Device::cpu()).to_vector<float>();
    CHECK(testing::first_difference(y.to(Device::cpu()).to_vector<float>(), expected) == "");  // same bits
  }
}

TEST_CASE("cuda: a graph's memory is its own: tensors made after the capture keep their values") {
  if (!testing::have_gpu()) return;
  const NoGradGuard no_grad;
  const Tensor w = random_gpu({64, 64}, 1);
  const Tensor x = random_gpu({64, 64}, 2);
  Tensor y;
  // Temporaries of the sizes below are made and freed inside the capture.
  const CudaGraph graph(0, [&] { y = small_network(relu(x) * 2.0, w); });
  std::vector<Tensor> outside;
  for (int i = 0; i < 8; ++i) outside.push_back(Tensor::full({64, 64}, 7.0, DType::Float32, Device::cuda()));
  outside.push_back(Tensor::full({64}, 7.0, DType::Float32, Device::cuda()));
  graph.launch();
  graph.launch();
  for (const Tensor& tensor : outside) {
    const std::vector<float> values = tensor.to(Device::cpu()).to_vector<float>();
    CHECK(testing::first_difference(values, std::vector<float>(values.size(), 7.0F)) == "");
  }
}

TEST_CASE("cuda: a capture that waits for the device or draws random numbers fails, and kiln goes on") {
  if (!testing::have_gpu()) return;
  const NoGradGuard no_grad;
  const Tensor x = random_gpu({16}, 1);
  CHECK_THROWS_AS(CudaGraph(0, [&] { (void)sum(x).item(); }), Error);  // item() waits for the sum
  Generator generator(3);
  CHECK_THROWS_WITH_AS(CudaGraph(0, [&] { (void)dropout(x, 0.5, true, &generator); }),
                       doctest::Contains("inside a CUDA graph"), Error);
  const std::vector<float> host = x.to(Device::cpu()).to_vector<float>();
  std::vector<float> doubled(host.size());
  for (std::size_t i = 0; i < host.size(); ++i) doubled[i] = host[i] * 2.0F;
  CHECK(testing::first_difference((x * 2.0).to(Device::cpu()).to_vector<float>(), doubled) == "");
}

// conv, batch norm (running statistics updated in place), relu, pooling, a linear head and cross-entropy.
layers::ModulePtr small_cnn(std::uint64_t seed) {
  Generator generator(seed);
  auto model = std::make_shared<layers::Sequential>();
  model->add("conv",
             std::make_shared<layers::Conv2d>(3, 4, 3, generator, layers::Conv2dLayerOptions{.padding = 1}));
  model->add("bn", std::make_shared<layers::BatchNorm2d>(4));
  model->add("relu", std::make_shared<layers::ReLU>());
  model->add("pool", std::make_shared<layers::GlobalAvgPool2d>());
  model->add("fc", std::make_shared<layers::Linear>(4, 3, generator));
  model->to(Device::cuda());
  model->train();
  return model;
}

// Steps of small_cnn on batches in `channels_last` or NCHW, eagerly and through a GraphedStep, from the same
// weights: the same losses, weights and running statistics, bit for bit.
void check_graphed_steps(bool channels_last) {
  INFO((channels_last ? "channels-last" : "nchw"));
  const layers::ModulePtr eager_model = small_cnn(5), graphed_model = small_cnn(5);
  optim::Sgd eager_sgd(eager_model->named_parameters(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
  optim::Sgd graphed_sgd(graphed_model->named_parameters(),
                         {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
  // Every pass, the captured one included, sees the images in the batch's layout.
  int passes_in_another_layout = 0;
  const auto pass = [&](layers::Module& model, optim::Optimizer& optimizer) {
    return [&model, &optimizer, &passes_in_another_layout, channels_last](const std::vector<Tensor>& inputs) {
      passes_in_another_layout += inputs[0].is_channels_last() != channels_last;
      const Tensor loss = cross_entropy(model.forward(inputs[0]), inputs[1]);
      optimizer.zero_grad();
      loss.backward();
      return std::vector<Tensor>{loss};
    };
  };
  const auto eager_pass = pass(*eager_model, eager_sgd);
  train::GraphedStep graphed(0, graphed_model->parameters(), pass(*graphed_model, graphed_sgd));
  // A batch of 2 first (an epoch's last, where a resumed run may start), then of 5, one of 2 in the middle:
  // the graph is made for the batch of 5 after its one eager step, and batches of 2 run eagerly.
  const std::vector<std::int64_t> batches{2, 5, 5, 5, 2, 5, 5};
  for (int step = 0; step < static_cast<int>(batches.size()); ++step) {
    INFO("step ", step);
    const std::int64_t batch = batches[static_cast<std::size_t>(step)];
    const Tensor nchw = random_gpu({batch, 3, 6, 6}, 100 + static_cast<std::uint64_t>(step));
    const Tensor images = channels_last ? nchw.channels_last() : nchw;
    std::vector<std::int64_t> label_values;
    for (std::int64_t i = 0; i < batch; ++i) label_values.push_back((i + step) % 3);
    const Tensor labels = Tensor::from_vector(label_values, {batch}).to(Device::cuda());
    const double learning_rate = 0.1 / (1 + step);  // outside the graph, so it may change at every step
    eager_sgd.set_learning_rate(learning_rate);
    graphed_sgd.set_learning_rate(learning_rate);
    const Tensor eager_loss = eager_pass({images, labels})[0];
    eager_sgd.step();
    const Tensor graphed_loss = graphed.run({images, labels})[0];
    graphed_sgd.step();
    CHECK(graphed_loss.item() == eager_loss.item());
    CHECK(graphed.captured() == (step >= 1 + train::GraphedStep::kWarmupSteps));
  }
  CHECK_FALSE(graphed.fallback_reason().has_value());
  CHECK(passes_in_another_layout == 0);
  // The weights, and the batch norm's running statistics (updated in place by every launch).
  std::vector<NamedTensor> eager_state = eager_model->named_parameters(),
                           graphed_state = graphed_model->named_parameters();
  for (NamedTensor& buffer : eager_model->named_buffers()) eager_state.push_back(buffer);
  for (NamedTensor& buffer : graphed_model->named_buffers()) graphed_state.push_back(buffer);
  REQUIRE(eager_state.size() == graphed_state.size());
  for (std::size_t i = 0; i < eager_state.size(); ++i) {
    INFO(eager_state[i].first);
    const Tensor eager = eager_state[i].second.to(Device::cpu()).to(DType::Float64);
    const Tensor graphed_value = graphed_state[i].second.to(Device::cpu()).to(DType::Float64);
    CHECK(testing::first_difference(graphed_value.to_vector<double>(), eager.to_vector<double>()) == "");
  }
}

TEST_CASE("cuda: training steps run as a graph reach the weights the same steps reach without one") {
  if (!testing::have_gpu()) return;
  check_graphed_steps(false);
  // The layout kept from the batch on: its kernels and transposes are captured too. (Captured in NCHW, the
  // graph's steps matched the eager ones only where both layouts' convolutions chose kernels that sum alike.)
  check_graphed_steps(true);
}

TEST_CASE("cuda: a training step that draws random numbers runs without a graph, saying why") {
  if (!testing::have_gpu()) return;
  const layers::ModulePtr model = small_cnn(5);
  Generator generator(9);
  optim::Sgd sgd(model->named_parameters(), {.lr = 0.1});
  train::GraphedStep graphed(0, model->parameters(), [&](const std::vector<Tensor>& inputs) {
    const Tensor loss = sum(dropout(model->forward(inputs[0]), 0.5, true, &generator));
    sgd.zero_grad();
    loss.backward();
    return std::vector<Tensor>{loss};
  });
  const Tensor images = random_gpu({2, 3, 6, 6}, 1);
  for (int step = 0; step < 3; ++step) {
    const Tensor loss = graphed.run({images})[0];
    sgd.step();
    CHECK(std::isfinite(loss.item()));
  }
  CHECK_FALSE(graphed.captured());
  REQUIRE(graphed.fallback_reason().has_value());
  CHECK(graphed.fallback_reason()->find("inside a CUDA graph") != std::string::npos);
}

}  // namespace

}  // namespace cuda_cuda_graph_test
