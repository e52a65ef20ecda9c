// A training run on the emulated GPU, counted: how often the host waits for the default stream's work
// (kiln::emulation::default_stream_drains), and what it launches (kernel_launches). Speed is a GPU's to
// show, but both are visible here: on a GPU each drain idles the device until the host launches again, and
// each launch costs microseconds whatever its size, so a step that reads a value back, or launches work it
// need not, loses time at every step, in every run. A steady step drains nothing: even its loss reaches the
// host a step late, behind the work (train/loss_readback.hpp).
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "tests/emulation/cuda_emulator.hpp"
#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"
#include "train/evaluate.hpp"
#include "train/model_io.hpp"
#include "train/trainer.hpp"

namespace emulation_emulated_training_test {

namespace {

using namespace kiln;

// The drains, copy kernels, kernels and graphs counted when each step of each epoch was reported. Each step
// is reported once the next is queued, so between two reports of an epoch lies one whole step.
class CountsPerStep : public train::TrainingObserver {
 public:
  struct Counts {
    std::uint64_t drains, copies, launches, graphs;
  };
  void on_step(const train::StepProgress& progress) override {
    if (static_cast<std::size_t>(progress.epoch) >= at_step.size()) at_step.emplace_back();
    at_step.back().push_back({emulation::default_stream_drains(), emulation::kernel_launches("copy_strided"),
                              emulation::kernel_launches(), emulation::graph_launches()});
  }
  std::vector<std::vector<Counts>> at_step;
};

// ResNet-20 on 6 images in batches of 2 for 2 epochs (the first warms the caching allocator), on the emulated
// GPU, with gradient clipping and class weights.
train::TrainConfig resnet20_on_the_gpu(const std::filesystem::path& folder) {
  const auto data = testing::make_two_class_data(folder / "data", 3, 1);
  train::TrainConfig config = testing::tiny_lenet5_config(data, folder / "run", 3);
  config.model = "resnet20";  // batch norm, residual additions, global pooling: every kind of layer
  config.batch_size = 2;
  config.epochs = 2;
  config.image_height = config.image_width = 16;  // a quarter of 32x32's arithmetic, the same launches
  config.device = "cuda";
  config.cuda_conv = "library";   // no per-shape measuring, which synchronizes on purpose
  config.clip_grad_norm = 0.5;    // summed and applied on the device: no wait either
  config.class_weights = "auto";  // the weighted mean's denominator too
  return config;
}

TEST_CASE("emulated training: a steady training step never waits for the GPU, nor copies each gradient") {
  testing::ScratchFolder scratch("kiln-emulated-training-test", "drains");
  const train::TrainConfig config = resnet20_on_the_gpu(scratch.path());
  CountsPerStep observer;
  const train::TrainResult result = train::train(config, train::RunStart::Fresh, observer);
  REQUIRE(result.history.size() == 2);
  REQUIRE(observer.at_step.size() == 2);
  const std::vector<CountsPerStep::Counts>& second_epoch = observer.at_step[1];
  REQUIRE(second_epoch.size() == 3);  // 6 images in batches of 2
  for (std::size_t step = 1; step < second_epoch.size(); ++step) {
    INFO("epoch 2, step ", step + 1);
    CHECK(second_epoch[step].drains == second_epoch[step - 1].drains);
  }
  // Backward hands each parameter its gradient as the rule made it, with no copy (core/autograd.cpp): a
  // step's copies are a few for its shortcuts and casts, never one per parameter tensor (they were 72 a step
  // for ResNet-20's 59; now 14). Each step is reported once the next is queued, so between the epoch's first
  // two reports lies one whole step.
  const std::size_t parameters = train::load_model(result.checkpoint).model->parameters().size();
  const std::uint64_t copies_in_a_step = second_epoch[1].copies - second_epoch[0].copies;
  CHECK(copies_in_a_step > 0);  // the shortcuts' copies: the count counts
  CHECK(copies_in_a_step < parameters / 2);
}

// With --cuda-graphs (train/graphed_step.hpp) a steady step launches its forward and backward pass as one
// graph: the host launches a handful of kernels (the batch's copies into the graph's inputs, the optimizer's
// update, the accuracy count) where it launched a few hundred, and still never waits. Evaluation launches
// each batch's forward pass as a graph too. The run reaches the very weights, losses and held-out metrics the
// same run reaches without graphs.
TEST_CASE(
    "emulated training: with --cuda-graphs a step is one graph launch, and the run's weights are the same") {
  testing::ScratchFolder scratch("kiln-emulated-training-test", "graphs");
  train::TrainConfig config = resnet20_on_the_gpu(scratch.path());
  config.cuda_graphs = true;
  CountsPerStep graphed;
  const std::uint64_t graphs_before = emulation::graph_launches();
  const train::TrainResult with_graphs = train::train(config, train::RunStart::Fresh, graphed);
  // Training: epoch 1 runs its first step eagerly and captures the second; epoch 2 launches all three.
  // Evaluation (one batch an epoch): epoch 1's eagerly, epoch 2's captured.
  CHECK(emulation::graph_launches() - graphs_before == 2 + 3 + 1);
  config.cuda_graphs = false;
  config.run_dir = scratch.path() / "eager-run";
  CountsPerStep eager;
  const train::TrainResult without = train::train(config, train::RunStart::Fresh, eager);

  REQUIRE(graphed.at_step.size() == 2);
  REQUIRE(graphed.at_step[1].size() == 3);
  const CountsPerStep::Counts& before = graphed.at_step[1][0];
  const CountsPerStep::Counts& after = graphed.at_step[1][1];  // one steady step later
  CHECK(after.graphs - before.graphs == 1);
  CHECK(after.drains == before.drains);
  const std::uint64_t eager_launches = eager.at_step[1][1].launches - eager.at_step[1][0].launches;
  INFO("kernels a steady step launches: ", after.launches - before.launches, " with a graph, ",
       eager_launches, " without");
  CHECK(after.launches - before.launches <= 8);
  CHECK(eager_launches > 100);

  REQUIRE(with_graphs.history.size() == without.history.size());
  for (std::size_t epoch = 0; epoch < without.history.size(); ++epoch) {
    CHECK(with_graphs.history[epoch].train_loss == without.history[epoch].train_loss);  // the same bits
    CHECK(with_graphs.history[epoch].train_accuracy == without.history[epoch].train_accuracy);
    REQUIRE(with_graphs.history[epoch].validation.has_value());
    CHECK(with_graphs.history[epoch].validation->loss == without.history[epoch].validation->loss);
    CHECK(with_graphs.history[epoch].validation->accuracy == without.history[epoch].validation->accuracy);
  }
  const auto graphed_model = train::load_model(with_graphs.checkpoint).model;
  const auto eager_model = train::load_model(without.checkpoint).model;
  const std::vector<NamedTensor> graphed_parameters = graphed_model->named_parameters();
  const std::vector<NamedTensor> eager_parameters = eager_model->named_parameters();
  REQUIRE(graphed_parameters.size() == eager_parameters.size());
  for (std::size_t i = 0; i < eager_parameters.size(); ++i) {
    INFO(eager_parameters[i].first);
    CHECK(graphed_parameters[i].second.to_vector<float>() == eager_parameters[i].second.to_vector<float>());
  }
}

// Evaluation reads every batch's logits, labels and loss back a batch late (train/tensor_readback.hpp), so
// a pass waits for the GPU a fixed number of times however many batches it has: 6 batches of 1 image wait
// as often as 2 batches of 3. Reading each batch at once waited 3 times a batch.
TEST_CASE("emulated evaluation: a pass waits for the GPU as often in 6 batches as in 2") {
  testing::ScratchFolder scratch("kiln-emulated-training-test", "evaluate");
  const auto data = testing::make_two_class_data(scratch.path() / "data", 3, 1);
  train::TrainConfig config = testing::tiny_lenet5_config(data, scratch.path() / "run", 3);
  train::TrainingObserver quiet;
  const train::TrainResult result = train::train(config, train::RunStart::Fresh, quiet);  // on the CPU: quick
  const train::LoadedModel loaded = train::load_model(result.checkpoint);
  loaded.model->to(Device::cuda());
  const data::ImageFolder images = data::ImageFolder::scan(data / "train");  // 6 images

  // The drains of one evaluation pass over the 6 images in batches of `batch_size`, and its report.
  const auto evaluate_in_batches = [&](std::int64_t batch_size, train::MetricsReport& report) {
    data::DataLoader loader(images, loaded.preprocessing,
                            data::LoaderOptions::in_order(batch_size, 0, false));
    const std::uint64_t before = emulation::default_stream_drains();
    report = train::evaluate(*loaded.model, loader, 2);
    return emulation::default_stream_drains() - before;
  };
  train::MetricsReport warm_up, two_batches, six_batches;
  for (const std::int64_t batch_size : {1, 3}) evaluate_in_batches(batch_size, warm_up);  // fills the cache
  const std::uint64_t drains_for_two_batches = evaluate_in_batches(3, two_batches);
  const std::uint64_t drains_for_six_batches = evaluate_in_batches(1, six_batches);
  CHECK(drains_for_six_batches == drains_for_two_batches);
  CHECK(six_batches.samples == 6);
  CHECK(six_batches.accuracy == two_batches.accuracy);
  CHECK(six_batches.loss == doctest::Approx(two_batches.loss));
}

}  // namespace

}  // namespace emulation_emulated_training_test
