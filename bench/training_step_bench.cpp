// Whole training steps of the model zoo: forward, cross-entropy, backward and an SGD update, exactly
// the work train/trainer.cpp does per batch (minus data loading), on random images. Reports images/s.
//
//   ./build/training_step_bench --benchmark_filter='resnet20/batch:128'
//   perf record -g ./build/training_step_bench --benchmark_filter='resnet20/batch:128/threads:2'
//
// One benchmark per model, with arguments batch size, threads and layout (channels_last:1 feeds the model
// channels-last images, Tensor::channels_last, which its convolutions, batch norms and elementwise ops keep
// to the end). The CIFAR-10 input size (3 x 32 x 32, 10 classes) throughout.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "core/generator.hpp"
#include "core/ops.hpp"
#include "kernels/parallel.hpp"
#include "layers/module.hpp"
#include "models/architecture.hpp"
#include "optim/sgd.hpp"

namespace {

using namespace kiln;

const std::vector<std::string> kModels = {"lenet5",    "resnet20",     "resnet56",          "vgg_small",
                                          "mobilenet", "mobilenet_v2", "mobilenet_v3_small"};

void training_step(benchmark::State& state, const std::string& name) {
  const std::int64_t batch = state.range(0);
  kernels::set_compute_threads(static_cast<int>(state.range(1)));

  Generator initialization(1);
  const layers::ModulePtr model = models::build_model({name, 3, 32, 32, 10}, initialization);
  model->train();
  optim::Sgd optimizer(model->named_parameters(), {.lr = 0.01, .momentum = 0.9, .weight_decay = 1e-4});
  Generator data(2);
  const Tensor drawn = Tensor::randn({batch, 3, 32, 32}, DType::Float32, &data);
  const Tensor images = state.range(2) ? drawn.channels_last() : drawn;
  std::vector<std::int64_t> label_values(static_cast<std::size_t>(batch));
  for (std::size_t i = 0; i < label_values.size(); ++i) label_values[i] = static_cast<std::int64_t>(i % 10);
  const Tensor labels = Tensor::from_vector(label_values, {batch});

  const auto step = [&] {
    const Tensor loss = cross_entropy((*model)(images), labels);
    benchmark::DoNotOptimize(loss.item());
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  };
  // One step untimed: the first fills the caching allocator (fresh pages the OS must zero) and creates the
  // optimizer's momentum buffers, up to twice the time of the steps after it. A model whose step takes
  // longer than the minimum time is timed once, so without this its figure would be that first step's.
  step();
  for (auto _ : state) step();
  state.counters["images"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  kernels::set_compute_threads(0);
}

}  // namespace

int main(int argc, char** argv) {
  for (const std::string& name : kModels) {
    benchmark::RegisterBenchmark(("training_step/" + name).c_str(), training_step, name)
        ->ArgNames({"batch", "threads", "channels_last"})
        ->ArgsProduct({{32, 128}, {1, 2}, {0, 1}})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(2.0);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
