// kiln train --memory-format: the loader stores a batch's images channels-last (data/loader.hpp,
// LoaderOptions::channels_last), the kernels keep that layout through the model, on the CPU and on a GPU
// (there the batch travels to the device in its layout), and the run trains as the NCHW run does, up to the
// order of batch norm's sums.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "data/dataset.hpp"
#include "data/loader.hpp"
#include "data/preprocessing.hpp"
#include "kernels/conv2d/cuda_tuning.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"
#include "tests/support/training_observers.hpp"
#include "train/conv_choices.hpp"
#include "train/model_io.hpp"
#include "train/profile_report.hpp"
#include "train/trainer.hpp"

namespace train_memory_format_test {

using namespace kiln;
namespace fs = std::filesystem;

TEST_CASE("memory format: a channels-last loader's batches hold the NCHW batches' values, channels-last") {
  testing::ScratchFolder scratch("kiln-memory-format-test", "loader");
  const fs::path data = testing::make_two_class_data(scratch.path() / "data", 6, 2);
  const data::ImageFolder folder = data::ImageFolder::scan(data / "train");
  const data::Preprocessing preprocessing = data::preprocessing_for(folder);
  data::LoaderOptions options = data::LoaderOptions::in_order(4, 0, false);
  data::DataLoader nchw_loader(folder, preprocessing, options);
  options.channels_last = true;
  data::DataLoader channels_last_loader(folder, preprocessing, options);
  nchw_loader.start_epoch(0);
  channels_last_loader.start_epoch(0);
  int batches = 0;
  while (std::optional<data::Batch> nchw = nchw_loader.next()) {
    const std::optional<data::Batch> last = channels_last_loader.next();
    REQUIRE(last);
    CHECK(nchw->images.is_contiguous());
    CHECK(last->images.is_channels_last());
    CHECK_FALSE(last->images.is_contiguous());
    CHECK(last->images.shape() == nchw->images.shape());
    CHECK(last->images.contiguous().to_vector<float>() == nchw->images.to_vector<float>());
    CHECK(last->labels.to_vector<std::int64_t>() == nchw->labels.to_vector<std::int64_t>());
    ++batches;
  }
  CHECK(batches == 3);
  CHECK_FALSE(channels_last_loader.next());
}

namespace {
// One training step taken in both layouts: batch norm's channels-last kernels sum in another order, so the
// step's loss agrees to about 1e-6, and the held-out loss after it closely, not bitwise.
void check_same_step(const train::TrainResult& channels_last, const train::TrainResult& nchw) {
  REQUIRE(channels_last.history.size() == 1);
  REQUIRE(nchw.history.size() == 1);
  CHECK(channels_last.history[0].train_loss == doctest::Approx(nchw.history[0].train_loss).epsilon(1e-5));
  REQUIRE(channels_last.history[0].validation);
  REQUIRE(nchw.history[0].validation);
  CHECK(channels_last.history[0].validation->loss ==
        doctest::Approx(nchw.history[0].validation->loss).epsilon(1e-3));
}
}  // namespace

// --memory-format auto (the default): channels-last for bf16 on the CPU (the AMX tile convolutions' layout,
// and without AMX the faster one for bfloat16: train/trainer.cpp), nchw for fp32 and on a GPU; the plan
// says which it became.
TEST_CASE("memory format: auto is channels-last for bf16 on the CPU, and nchw otherwise") {
  testing::ScratchFolder scratch("kiln-memory-format-test", "auto");
  const fs::path data = testing::make_two_class_data(scratch.path() / "data", 4, 2);
  train::TrainConfig config = testing::tiny_lenet5_config(data, scratch.path() / "fp32", 3);
  config.max_steps_per_epoch = 1;
  REQUIRE(config.memory_format == "auto");
  testing::Recorder fp32;
  train::train(config, train::RunStart::Fresh, fp32);
  CHECK(fp32.plan.at("memory_format") == "nchw");

  config.run_dir = scratch.path() / "bf16";
  config.precision = "bf16";
  testing::Recorder bf16;
  train::train(config, train::RunStart::Fresh, bf16);
  CHECK(bf16.plan.at("memory_format") == "channels-last");

  config.run_dir = scratch.path() / "bf16-nchw";
  config.memory_format = "nchw";  // asked for: kept
  testing::Recorder asked;
  train::train(config, train::RunStart::Fresh, asked);
  CHECK(asked.plan.at("memory_format") == "nchw");
}

namespace {
// Keeps the plan and the profile's op rows.
class ProfileRecorder : public testing::Recorder {
 public:
  void on_profile(const train::ProfileReport& report) override { ops = report.to_json().at("ops"); }
  nlohmann::json ops;
};
}  // namespace

// A resumed run settles auto the way a fresh one does, before its loaders are made: the batches come in the
// layout the plan names (the convolutions' profile rows say which they ran in), and the loader's threads.
// (It made its loaders before settling auto once: a resumed bf16 run on AMX got NCHW batches.)
TEST_CASE("memory format: a resumed bf16 run settles auto as a fresh one does, its batches included") {
  testing::ScratchFolder scratch("kiln-memory-format-test", "resume");
  const fs::path data = testing::make_two_class_data(scratch.path() / "data", 4, 2);
  train::TrainConfig config = testing::tiny_lenet5_config(data, scratch.path() / "run", 5);
  config.precision = "bf16";
  config.loader_threads = train::kAutoLoaderThreads;
  config.max_steps_per_epoch = 1;
  testing::Recorder fresh;
  train::train(config, train::RunStart::Fresh, fresh);
  CHECK(fresh.plan.at("loader_threads") == 0);  // auto, on the CPU

  config.epochs = 2;
  config.profile_steps = 1;
  ProfileRecorder resumed;
  train::train(config, train::RunStart::Resume, resumed);
  CHECK(resumed.plan.at("memory_format") == fresh.plan.at("memory_format"));
  CHECK(resumed.plan.at("loader_threads") == 0);
  const bool channels_last = fresh.plan.at("memory_format") == "channels-last";
  // The first convolution (3 -> 6) reads the batch as the loader made it, and the layout holds through the
  // max-pools: the second (6 -> 16) runs in it too.
  std::set<std::string> convolutions;
  for (const nlohmann::json& op : resumed.ops) {
    if (op.at("op").get<std::string>().rfind("conv2d_", 0) != 0) continue;
    const std::string detail = op.at("detail").get<std::string>();
    INFO(op.dump());
    CHECK(detail.ends_with("channels-last") == channels_last);
    convolutions.insert(op.at("op").get<std::string>() + " " + detail.substr(0, detail.find(' ')));
  }
  // Forward, weight and bias gradient of both, and the second's data gradient.
  CHECK(convolutions.size() == 7);

  config.run_dir = scratch.path() / "two-workers";
  config.epochs = 1;
  config.profile_steps = 0;
  config.loader_threads = 2;  // asked for: kept
  testing::Recorder asked;
  train::train(config, train::RunStart::Fresh, asked);
  CHECK(asked.plan.at("loader_threads") == 2);
}

TEST_CASE("memory format: kiln train --memory-format channels-last trains MobileNet as NCHW does") {
  testing::ScratchFolder scratch("kiln-memory-format-test", "train");
  const fs::path data = testing::make_two_class_data(scratch.path() / "data", 8, 4);
  train::TrainConfig config = testing::tiny_lenet5_config(data, scratch.path() / "nchw", 3);
  config.model = "mobilenet";
  // One step at a gentle rate. MobileNet's batch norms over batches of 4 amplify any difference in the last
  // bits: a few steps of SGD turn two runs that round apart (NCHW at AVX2 and at AVX-512 do too) into
  // visibly different weights, whatever the layout.
  config.learning_rate = 0.002;
  config.max_steps_per_epoch = 1;
  testing::Recorder nchw_observer;
  const train::TrainResult nchw = train::train(config, train::RunStart::Fresh, nchw_observer);
  CHECK(nchw_observer.plan.at("memory_format") == "nchw");

  config.run_dir = scratch.path() / "channels-last";
  config.memory_format = "channels-last";
  testing::Recorder observer;
  const train::TrainResult channels_last = train::train(config, train::RunStart::Fresh, observer);
  CHECK(observer.plan.at("memory_format") == "channels-last");
  // The convolutions give the NCHW bits in either layout.
  check_same_step(channels_last, nchw);
}

namespace {

// One step of `model` on the GPU in each layout: every convolution and batch norm runs channels-last in the
// second, and the step ends where the NCHW one does.
void check_gpu_layouts_agree(const std::string& model) {
  testing::ScratchFolder scratch("kiln-memory-format-test", "gpu-" + model);
  const fs::path data = testing::make_two_class_data(scratch.path() / "data", 8, 4);
  train::TrainConfig config = testing::tiny_lenet5_config(data, scratch.path() / "nchw", 3);
  config.model = model;
  config.device = "cuda";
  config.cuda_conv = "library";  // the same kernels for both layouts (measuring is checked elsewhere)
  config.learning_rate = 0.002;
  config.max_steps_per_epoch = 1;
  testing::Recorder nchw_observer;
  const train::TrainResult nchw = train::train(config, train::RunStart::Fresh, nchw_observer);

  config.run_dir = scratch.path() / "channels-last";
  config.memory_format = "channels-last";
  config.profile_steps = 1;  // its rows say in which layout each op ran
  testing::Recorder observer;
  const train::TrainResult channels_last = train::train(config, train::RunStart::Fresh, observer);
  CHECK(observer.plan.at("memory_format") == "channels-last");
  const nlohmann::json profile =
      nlohmann::json::parse(std::ifstream(config.run_dir / std::string(train::kProfileFile)));
  int convolutions = 0;
  for (const nlohmann::json& op : profile.at("ops")) {
    const std::string name = op.at("op"), detail = op.at("detail");
    if (!name.starts_with("conv2d_") && !name.starts_with("batchnorm2d_")) continue;
    INFO(name, " ", detail);
    CHECK(op.at("device") == "cuda:0");
    CHECK(detail.ends_with("channels-last"));  // the device kept the images' layout
    convolutions += name.starts_with("conv2d_") ? 1 : 0;
  }
  CHECK(convolutions > 0);
  check_same_step(channels_last, nchw);
  // And the weights the step moved: a gradient summed in another order moves them by ~1e-9 at this rate, a
  // wrong one by ~1e-3.
  const auto nchw_state = train::model_state(*train::load_model(scratch.path() / "nchw" / "last.kiln").model);
  const auto last_state = train::model_state(*train::load_model(config.run_dir / "last.kiln").model);
  REQUIRE(nchw_state.size() == last_state.size());
  for (std::size_t i = 0; i < nchw_state.size(); ++i) {
    INFO(nchw_state[i].first);
    const std::vector<double> a = nchw_state[i].second.to_vector<double>(),
                              b = last_state[i].second.to_vector<double>();
    REQUIRE(a.size() == b.size());
    double largest = 0;
    for (std::size_t k = 0; k < a.size(); ++k) largest = std::max(largest, std::fabs(a[k] - b[k]));
    CHECK(largest <= 1e-6);
  }
}

}  // namespace

TEST_CASE("cuda: kiln train --memory-format channels-last on a GPU trains ResNet-20 as NCHW does") {
  if (!testing::have_gpu()) return;
  check_gpu_layouts_agree("resnet20");
}

// LeNet's convolutions have biases and its max-pools keep the layout (before either ran channels-last on
// the GPU, the first convolution's bias gradient summed the wrong elements).
TEST_CASE("cuda: kiln train --memory-format channels-last on a GPU trains LeNet-5 as NCHW does") {
  if (!testing::have_gpu()) return;
  check_gpu_layouts_agree("lenet5");
}

TEST_CASE(
    "cuda: bf16 with channels-last activations: the measured convolutions take the NHWC steps as they lie") {
  if (!testing::have_gpu()) return;
  kernels::cuda::forget_conv_choices();  // the run's choices file then holds its own shapes alone
  testing::ScratchFolder scratch("kiln-memory-format-test", "gpu-bf16");
  const fs::path data = testing::make_two_class_data(scratch.path() / "data", 8, 4);
  train::TrainConfig config = testing::tiny_lenet5_config(data, scratch.path() / "run", 3);
  config.model = "resnet20";
  config.device = "cuda";
  config.precision = "bf16";
  config.memory_format = "channels-last";
  config.learning_rate = 0.002;
  config.max_steps_per_epoch = 1;
  testing::Recorder observer;
  const train::TrainResult result = train::train(config, train::RunStart::Fresh, observer);
  REQUIRE(result.history.size() == 1);
  CHECK(std::isfinite(result.history[0].train_loss));
  // Every channels-last shape was measured, and the 16-, 32- and 64-channel ones are served by a bf16 step
  // (the 3-channel stem, which no NHWC step takes, by the library path behind transposes).
  const nlohmann::json choices =
      nlohmann::json::parse(std::ifstream(config.run_dir / std::string(train::kConvChoicesFile)));
  int ladder_served = 0;
  for (const nlohmann::json& choice : choices) {
    INFO(choice.dump());
    CHECK(choice.at("geometry").value("channels_last", false));
    CHECK(choice.at("element_type") == "bfloat16");
    for (const nlohmann::json& trial : choice.at("trials"))
      CHECK(trial.value("rejected", std::string()) == "");
    ladder_served += choice.at("chosen") != "library";
  }
  CHECK(ladder_served > 0);
}

}  // namespace train_memory_format_test
