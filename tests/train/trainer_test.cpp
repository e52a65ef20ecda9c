// The training workflow on the bundled CIFAR-10 subset, kept small with a cap on steps per epoch:
// an interrupted run resumed from its checkpoint ends with exactly the weights of an uninterrupted one,
// `eval` on a folder agrees with `predict` on each of its images, an epoch's train accuracy counts what
// the model got right, --image-size and --resize become the checkpoint's preprocessing, and --profile
// reports its window of steps, and --accumulate trains as a larger batch would.
#include "train/trainer.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/profiler.hpp"
#include "data/dataset.hpp"
#include "data/image.hpp"
#include "data/loader.hpp"
#include "data/preprocessing.hpp"
#include "models/architecture.hpp"
#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"
#include "train/checkpoint.hpp"
#include "train/evaluate.hpp"
#include "train/model_io.hpp"

namespace train_trainer_test {

using namespace kiln;
namespace fs = std::filesystem;

namespace {

const fs::path kSubset = fs::path(KILN_SOURCE_DIR) / "assets" / "cifar10-subset";

fs::path fresh_run_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("kiln-trainer-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

train::TrainConfig small_config(const fs::path& run_dir) {
  train::TrainConfig config;
  config.data = kSubset;
  config.run_dir = run_dir;
  config.model = "lenet5";
  config.epochs = 2;
  config.batch_size = 16;
  config.max_steps_per_epoch = 3;
  config.learning_rate = 0.05;
  config.seed = 11;
  config.augmentation = {.crop_padding = 4, .horizontal_flip = true, .cutout = 8};
  return config;
}

class Silent : public train::TrainingObserver {};

// Simulates a crash right after epoch `stop_after` is checkpointed.
class InterruptAfter : public train::TrainingObserver {
 public:
  explicit InterruptAfter(std::int64_t epochs) : epochs_(epochs) {}
  void on_epoch(const train::EpochSummary& summary) override {
    if (summary.epoch + 1 == epochs_) throw std::runtime_error("simulated interruption");
  }

 private:
  std::int64_t epochs_;
};

std::vector<std::vector<float>> weights_of(const fs::path& checkpoint) {
  std::vector<std::vector<float>> weights;
  for (const auto& [name, tensor] : train::model_state(*train::load_model(checkpoint).model)) {
    weights.push_back(tensor.to_vector<float>());
  }
  return weights;
}

}  // namespace

TEST_CASE("trainer: a run interrupted after epoch 1 and resumed ends with the same weights") {
  Silent silent;
  const fs::path straight = fresh_run_dir("straight"), interrupted = fresh_run_dir("interrupted");
  const train::TrainResult uninterrupted = train::train(small_config(straight), train::RunStart::Fresh, silent);
  REQUIRE(uninterrupted.history.size() == 2);

  InterruptAfter crash(1);
  CHECK_THROWS_AS(train::train(small_config(interrupted), train::RunStart::Fresh, crash), std::runtime_error);
  const train::TrainResult resumed = train::train(small_config(interrupted), train::RunStart::Resume, silent);
  CHECK(resumed.history.size() == 1);  // only epoch 2 ran

  const auto expected = weights_of(straight / "last.kiln"), actual = weights_of(interrupted / "last.kiln");
  REQUIRE(expected.size() == actual.size());
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK(expected[i] == actual[i]);
  // Training changed the weights, so equality is not the trivial kind.
  train::TrainConfig untrained = small_config(fresh_run_dir("unused"));
  Generator initialization(untrained.seed, 0);
  const auto initial = models::build_model({"lenet5", 3, 32, 32, 10}, initialization)->parameters();
  CHECK(initial.front().to_vector<float>() != expected.front());
  fs::remove_all(straight);
  fs::remove_all(interrupted);
}

TEST_CASE("trainer: mixup and CutMix train reproducibly, resume where they left off, and change the run") {
  Silent silent;
  const auto mixed_config = [](const fs::path& run_dir) {
    train::TrainConfig config = small_config(run_dir);
    config.mixup = 0.4;
    config.cutmix = 1.0;
    return config;
  };
  const fs::path straight = fresh_run_dir("mixed-straight"), interrupted = fresh_run_dir("mixed-interrupted");
  const fs::path plain = fresh_run_dir("mixed-plain");
  train::train(mixed_config(straight), train::RunStart::Fresh, silent);
  InterruptAfter crash(1);
  CHECK_THROWS_AS(train::train(mixed_config(interrupted), train::RunStart::Fresh, crash), std::runtime_error);
  train::train(mixed_config(interrupted), train::RunStart::Resume, silent);
  train::train(small_config(plain), train::RunStart::Fresh, silent);
  const auto expected = weights_of(straight / "last.kiln"), actual = weights_of(interrupted / "last.kiln");
  REQUIRE(expected.size() == actual.size());
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK(expected[i] == actual[i]);
  CHECK(weights_of(plain / "last.kiln").front() != expected.front());
  for (const fs::path& run : {straight, interrupted, plain}) fs::remove_all(run);
}

TEST_CASE("trainer: --ema evaluates and serves the weights' average, and resumes it bit for bit") {
  Silent silent;
  const auto averaged_config = [](const fs::path& run_dir) {
    train::TrainConfig config = small_config(run_dir);
    config.ema = 0.9;
    return config;
  };
  const fs::path straight = fresh_run_dir("ema-straight"), interrupted = fresh_run_dir("ema-interrupted");
  const train::TrainResult result = train::train(averaged_config(straight), train::RunStart::Fresh, silent);
  InterruptAfter crash(1);
  CHECK_THROWS_AS(train::train(averaged_config(interrupted), train::RunStart::Fresh, crash),
                  std::runtime_error);
  train::train(averaged_config(interrupted), train::RunStart::Resume, silent);
  const train::Checkpoint a = train::load_checkpoint(straight / "last.kiln"),
                          b = train::load_checkpoint(interrupted / "last.kiln");
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    CAPTURE(a.tensors[i].first);
    CHECK(a.tensors[i].second.to(DType::Float64).to_vector<double>() ==
          b.tensors[i].second.to(DType::Float64).to_vector<double>());
  }
  CHECK(a.header.at("ema").at("updates") == 6);  // 2 epochs of 3 steps
  // The average is not the trained weights, and the checkpoint serves it: loaded, the model scores what the
  // run's last evaluation scored.
  std::vector<float> trained, averaged;
  for (const auto& [name, tensor] : a.tensors) {
    if (name == "model.conv1.weight") trained = tensor.to_vector<float>();
    if (name == "ema.model.conv1.weight") averaged = tensor.to_vector<float>();
  }
  REQUIRE(!trained.empty());
  CHECK(trained != averaged);
  const train::LoadedModel loaded = train::load_model(straight / "last.kiln");
  CHECK(train::model_state(*loaded.model).front().second.to_vector<float>() ==
        a.tensors[std::find_if(a.tensors.begin(), a.tensors.end(),
                               [](const NamedTensor& t) { return t.first == "ema.model.conv1.weight"; }) -
                  a.tensors.begin()]
            .second.to_vector<float>());
  data::DataLoader loader(data::ImageFolder::scan(kSubset / "test"), loaded.preprocessing,
                          data::LoaderOptions::in_order(64, 0, false));
  const train::MetricsReport report = train::evaluate(*loaded.model, loader, 10);
  REQUIRE(result.history.back().validation);
  CHECK(report.accuracy == doctest::Approx(result.history.back().validation->accuracy));
  CHECK(report.loss == doctest::Approx(result.history.back().validation->loss).epsilon(1e-4));
  fs::remove_all(straight);
  fs::remove_all(interrupted);
}

TEST_CASE("trainer: --accumulate 2 of batches of 8 trains as batches of 16, the epoch's short step too") {
  // LeNet-5 has no batch norm, whose statistics would see each batch of 8 alone: the two runs differ only
  // by float rounding (a mean of 16 losses against two means of 8, halved). 20 images a epoch: batches of
  // 8, 8 and 4 against 16 and 4, so each epoch's second step is short (its gradient rescaled to a mean).
  Silent silent;
  const fs::path scratch = fresh_run_dir("accumulate");
  const fs::path data = testing::make_two_class_data(scratch / "data", 10, 3);
  const auto config_of = [&](const std::string& name, std::int64_t batch, std::int64_t accumulate) {
    train::TrainConfig config = small_config(scratch / name);
    config.data = data;
    config.max_steps_per_epoch = 0;
    config.batch_size = batch;
    config.accumulate = accumulate;
    config.clip_grad_norm = 5.0;  // applied to the accumulated gradient, as to a whole batch's
    return config;
  };
  train::train(config_of("accumulated", 8, 2), train::RunStart::Fresh, silent);
  train::train(config_of("whole", 16, 1), train::RunStart::Fresh, silent);
  train::train(config_of("small", 8, 1), train::RunStart::Fresh, silent);
  const auto accumulated = weights_of(scratch / "accumulated" / "last.kiln");
  const auto whole = weights_of(scratch / "whole" / "last.kiln");
  const auto small = weights_of(scratch / "small" / "last.kiln");
  REQUIRE(accumulated.size() == whole.size());
  double largest_difference = 0.0, largest_to_small = 0.0;
  for (std::size_t t = 0; t < whole.size(); ++t) {
    for (std::size_t i = 0; i < whole[t].size(); ++i) {
      largest_difference = std::max(largest_difference, std::abs(double(accumulated[t][i]) - whole[t][i]));
      largest_to_small = std::max(largest_to_small, std::abs(double(small[t][i]) - whole[t][i]));
    }
  }
  CHECK(largest_difference < 1e-5);
  CHECK(largest_to_small > 1e-3);  // batches of 8 stepping alone train another network
  const nlohmann::json header = train::load_checkpoint_header(scratch / "accumulated" / "last.kiln");
  CHECK(header.at("config").at("accumulate") == 2);
  fs::remove_all(scratch);
}

TEST_CASE("trainer: a fresh run refuses to overwrite a checkpoint, and resume needs one") {
  Silent silent;
  const fs::path run = fresh_run_dir("refuse");
  train::TrainConfig config = small_config(run);
  config.epochs = 1;
  config.max_steps_per_epoch = 1;
  train::train(config, train::RunStart::Fresh, silent);
  CHECK_THROWS_WITH_AS(train::train(config, train::RunStart::Fresh, silent), doctest::Contains("already exists"), Error);
  CHECK_THROWS_WITH_AS(train::train(small_config(fresh_run_dir("none")), train::RunStart::Resume, silent),
                       doctest::Contains("does not exist"), Error);
  fs::remove_all(run);
}

TEST_CASE("trainer: eval over a folder agrees with predict on each image") {
  Silent silent;
  const fs::path run = fresh_run_dir("agree");
  train::TrainConfig config = small_config(run);
  config.epochs = 1;
  train::train(config, train::RunStart::Fresh, silent);
  const train::LoadedModel loaded = train::load_model(run / "last.kiln");

  const data::ImageFolder test = data::ImageFolder::scan(kSubset / "test");
  std::vector<std::size_t> every_25th;
  for (std::size_t i = 0; i < test.size(); i += 25) every_25th.push_back(i);
  const data::ImageFolder folder = test.subset(every_25th);
  data::LoaderOptions options;
  options.batch_size = 7;  // odd, so batches mix classes and the last one is short
  options.shuffle = false;
  data::DataLoader loader(folder, loaded.preprocessing, options);

  NoGradGuard no_grad;
  std::int64_t compared = 0;
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    const std::vector<std::int64_t> batch_predictions = argmax((*loaded.model)(batch->images), 1).to_vector<std::int64_t>();
    for (std::size_t i = 0; i < batch->indices.size(); ++i) {
      const fs::path& image = folder.samples()[batch->indices[i]].path;
      CAPTURE(image);
      CHECK(train::predict_file(loaded, image, 1).front().index == batch_predictions[i]);
      ++compared;
    }
  }
  CHECK(compared == static_cast<std::int64_t>(folder.size()));
  // And evaluate() over the same loader counts the same correct predictions.
  const train::MetricsReport report = train::evaluate(*loaded.model, loader, 10);
  CHECK(report.samples == compared);
  fs::remove_all(run);
}

TEST_CASE("trainer: --image-size and --resize become the model's input and the checkpoint's preprocessing") {
  Silent silent;
  const fs::path run = fresh_run_dir("image-size");
  train::TrainConfig config = small_config(run);
  config.epochs = 1;
  config.max_steps_per_epoch = 1;
  config.image_height = 24;
  config.image_width = 20;
  config.resize = "crop";
  train::train(config, train::RunStart::Fresh, silent);
  const train::LoadedModel loaded = train::load_model(run / "last.kiln");
  CHECK(loaded.preprocessing.height == 24);
  CHECK(loaded.preprocessing.width == 20);
  CHECK(loaded.preprocessing.resize == data::ResizePolicy::ShorterSideThenCenterCrop);
  CHECK(loaded.architecture.height == 24);
  CHECK(loaded.architecture.width == 20);
  // A 32x32 image is seen as training saw it: cropped to 20 columns of 32, then scaled to 24x20.
  const fs::path image = kSubset / "test" / "cat" / "0000.jpg";
  CHECK(loaded.preprocessing.apply(data::decode_image_file(image)).shape() == Shape{3, 24, 20});
  CHECK(train::predict_file(loaded, image, 3).size() == 3);

  config.image_height = 0;  // a size of one side only is refused, naming the option
  config.run_dir = fresh_run_dir("image-size-bad");
  CHECK_THROWS_WITH_AS(train::train(config, train::RunStart::Fresh, silent),
                       doctest::Contains("--image-size takes a size N or HxW"), Error);
  CHECK_FALSE(fs::exists(config.run_dir / "last.kiln"));
  fs::remove_all(run);
}

TEST_CASE("trainer: an epoch's train accuracy is the share of its images the model classified right") {
  // At learning rate 0 with no weight decay the weights never move, and LeNet-5 has no batch statistics or
  // dropout: every step's logits are the saved model's, so the accuracy the epoch reports (counted on the
  // model's device, read once at the end) is what evaluating the saved model on the same images gives.
  testing::ScratchFolder scratch("kiln-trainer-test", "train-accuracy");
  const fs::path data = testing::make_two_class_data(scratch.path() / "data", 12, 2);
  train::TrainConfig config = testing::tiny_lenet5_config(data, scratch.path() / "run", 5);
  config.learning_rate = 0.0;
  config.weight_decay = 0.0;
  config.augmentation = {};  // the images as evaluation sees them
  Silent silent;
  const train::TrainResult result = train::train(config, train::RunStart::Fresh, silent);
  REQUIRE(result.history.size() == 1);

  const train::LoadedModel loaded = train::load_model(result.checkpoint);
  data::DataLoader loader(data::ImageFolder::scan(data / "train"), loaded.preprocessing,
                          data::LoaderOptions::in_order(4, 0, false));
  const train::MetricsReport report = train::evaluate(*loaded.model, loader, 2);
  REQUIRE(report.samples == 24);
  CHECK(result.history[0].train_accuracy == doctest::Approx(report.accuracy));
}

namespace {

// Records what --profile reports.
class ProfileCatcher : public train::TrainingObserver {
 public:
  void on_profile(const train::ProfileReport& report) override { reports.push_back(report); }
  std::vector<train::ProfileReport> reports;
};

}  // namespace

TEST_CASE("trainer: --profile times a window of steps op by op, once, and writes profile.json") {
  const fs::path run_dir = fresh_run_dir("profile");
  train::TrainConfig config = small_config(run_dir);  // lenet5, batch 16, 3 steps an epoch, 2 epochs
  config.max_steps_per_epoch = 6;
  config.profile_steps = 3;
  ProfileCatcher catcher;
  train::train(config, train::RunStart::Fresh, catcher);

  REQUIRE(catcher.reports.size() == 1);  // the first epoch's window only
  const train::ProfileReport& report = catcher.reports.front();
  CHECK(report.epoch == 0);
  CHECK(report.first_step == train::kProfileSkippedSteps);
  CHECK(report.steps == 3);
  CHECK(report.images == 3 * 16);
  // Every step runs lenet5's first convolution forward once, on the CPU, in float32.
  bool found_convolution = false;
  for (const profiler::OpTime& op : report.profile.ops) {
    CHECK(op.calls > 0);
    if (op.op == "conv2d_forward" && op.detail == "3->6 5x5 @32x32 n16") {
      found_convolution = true;
      CHECK(op.calls == 3);
      CHECK(op.dtype == DType::Float32);
      CHECK(op.device == Device::cpu());
    }
  }
  CHECK(found_convolution);
  CHECK(report.profile.op_milliseconds() <= report.profile.wall_milliseconds);

  const nlohmann::json written = nlohmann::json::parse(std::ifstream(run_dir / train::kProfileFile));
  CHECK(written.at("steps") == 3);
  CHECK(written.at("first_step") == train::kProfileSkippedSteps + 1);
  CHECK(written.at("ops").size() == report.profile.ops.size());
  fs::remove_all(run_dir);
}

TEST_CASE("trainer: a --profile window longer than the epoch ends with it") {
  const fs::path run_dir = fresh_run_dir("profile-short");
  train::TrainConfig config = small_config(run_dir);
  config.epochs = 1;
  config.profile_steps = 50;  // the epoch has 3 steps: the window holds the third alone
  ProfileCatcher catcher;
  train::train(config, train::RunStart::Fresh, catcher);
  REQUIRE(catcher.reports.size() == 1);
  CHECK(catcher.reports.front().first_step == 2);
  CHECK(catcher.reports.front().steps == 1);
  fs::remove_all(run_dir);
}

}  // namespace train_trainer_test
