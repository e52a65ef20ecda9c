// Multi-label training end to end on tiny runs over copies of the bundled CIFAR-10 subset, labelled by a
// labels file: the checkpoint carries the task, the labels and thresholds chosen on validation; the
// metrics lines and plots are the multi-label ones; predict scores every label against its threshold;
// --pos-weight auto is stored; a resumed run ends exactly where an uninterrupted one does; and the
// settings that need one class per image are refused with a message naming them.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"
#include "tests/support/training_observers.hpp"
#include "train/checkpoint.hpp"
#include "train/metrics_log.hpp"
#include "train/model_io.hpp"
#include "train/multi_label_evaluate.hpp"
#include "train/trainer.hpp"

namespace train_multi_label_training_test {

using namespace kiln;
using testing::ScratchFolder;
namespace fs = std::filesystem;

namespace {

// ROOT/images/{airplane,cat}/ with `airplanes` and `cats` training images and 2 of each for validation
// and test, and ROOT/{train,val,test}.csv labelling an airplane "vehicle,flies" and a cat "animal,pet".
fs::path make_labelled_data(const fs::path& root, int airplanes, int cats) {
  testing::copy_cifar_images("train", "airplane", airplanes + 4, root / "images");
  testing::copy_cifar_images("train", "cat", cats + 4, root / "images");
  std::ofstream train(root / "train.csv"), val(root / "val.csv"), test(root / "test.csv");
  for (const auto& [name, labels, count] :
       {std::tuple{"airplane", "vehicle,flies", airplanes}, std::tuple{"cat", "animal,pet", cats}}) {
    std::vector<fs::path> images;
    for (const auto& entry : fs::directory_iterator(root / "images" / name)) images.push_back(entry.path());
    std::sort(images.begin(), images.end());
    for (int i = 0; i < count + 4; ++i) {
      std::ofstream& out = i < count ? train : i < count + 2 ? val : test;
      out << "images/" << name << "/" << images[static_cast<std::size_t>(i)].filename().string() << ","
          << labels << "\n";
    }
  }
  return root / "train.csv";
}

train::TrainConfig tiny_config(const fs::path& csv, const fs::path& run_dir) {
  train::TrainConfig config = testing::tiny_lenet5_config(csv, run_dir, 3);
  config.epochs = 2;
  config.max_steps_per_epoch = 2;
  config.augmentation = {};
  return config;
}

// The model's tensors in a checkpoint, by name ("model.conv1.weight").
std::map<std::string, std::vector<float>> model_tensors(const fs::path& checkpoint) {
  std::map<std::string, std::vector<float>> tensors;
  for (const NamedTensor& entry : train::load_checkpoint(checkpoint).tensors) {
    if (entry.first.starts_with(train::kModelTensorPrefix))
      tensors[entry.first] = entry.second.to_vector<float>();
  }
  return tensors;
}

}  // namespace

TEST_CASE("multi_label_training: the checkpoint carries the task, labels and validation thresholds") {
  ScratchFolder scratch("kiln-multi-label-test", "train");
  const fs::path csv = make_labelled_data(scratch.path() / "data", 4, 4);
  testing::Recorder recorder;
  const train::TrainResult result =
      train::train(tiny_config(csv, scratch.path() / "run"), train::RunStart::Fresh, recorder);
  CHECK(recorder.plan.at("task") == "multi_label");
  CHECK(recorder.plan.at("eval_split") == "validation");
  CHECK(recorder.plan.at("label_counts").at("flies") == 4);
  REQUIRE(result.history.size() == 2);
  REQUIRE(result.history.back().multi_label_validation);
  CHECK(result.history.back().multi_label_validation->samples == 4);
  CHECK_FALSE(result.history.back().validation);

  const train::LoadedModel loaded = train::load_model(result.checkpoint);
  CHECK(loaded.multi_label());
  CHECK(loaded.header.at("task") == "multi_label");
  CHECK(loaded.classes == std::vector<std::string>{"animal", "flies", "pet", "vehicle"});
  CHECK(loaded.architecture.classes == 4);
  CHECK(loaded.thresholds.chosen_on == "validation");
  REQUIRE(loaded.thresholds.thresholds.size() == 4);
  CHECK(loaded.thresholds.thresholds == result.history.back().thresholds->thresholds);
  CHECK(loaded.thresholds.tuned == std::vector<bool>{true, true, true, true});  // each label has positives
  REQUIRE(result.best_checkpoint);
  CHECK(train::load_model(*result.best_checkpoint).thresholds.thresholds.size() == 4);

  // The metrics lines are multi-label ones, with no confusion matrix; the plots follow.
  const std::vector<nlohmann::json> lines = train::read_epoch_lines(scratch.path() / "run");
  CHECK(lines.back().at("task") == "multi_label");
  CHECK(lines.back().contains("eval_map"));
  CHECK(lines.back().at("thresholds").size() == 4);
  CHECK_FALSE(lines.back().contains("eval_confusion_matrix"));
  CHECK_FALSE(lines.back().contains("train_accuracy"));
  CHECK(fs::exists(scratch.path() / "run" / "loss.png"));
  CHECK(fs::exists(scratch.path() / "run" / "label_metrics.png"));
  CHECK_FALSE(fs::exists(scratch.path() / "run" / "confusion_matrix.png"));

  // predict: every label's probability with its stored threshold; a label applies at p >= threshold.
  const fs::path image = scratch.path() / "data" / "images" / "cat";
  const std::vector<train::LabelScore> scores =
      train::predict_labels_file(loaded, fs::directory_iterator(image)->path());
  REQUIRE(scores.size() == 4);
  for (std::size_t l = 0; l < scores.size(); ++l) {
    CHECK(scores[l].name == loaded.classes[l]);
    CHECK(scores[l].threshold == loaded.thresholds.thresholds[l]);
    CHECK(scores[l].probability > 0.0);
    CHECK(scores[l].probability < 1.0);
    CHECK(scores[l].applies() == (scores[l].probability >= scores[l].threshold));
  }
  CHECK(train::LabelScore{"x", 0, 0.5, 0.5}.applies());
  CHECK_FALSE(train::LabelScore{"x", 0, 0.49, 0.5}.applies());
}

TEST_CASE(
    "multi_label_training: a resumed run ends with the weights and thresholds of an uninterrupted one") {
  ScratchFolder scratch("kiln-multi-label-test", "resume");
  const fs::path csv = make_labelled_data(scratch.path() / "data", 2, 6);
  testing::Recorder silent;
  train::TrainConfig straight = tiny_config(csv, scratch.path() / "straight");
  straight.pos_weight = "auto";
  train::train(straight, train::RunStart::Fresh, silent);
  // --pos-weight auto: negatives / positives of the 8 training images, per label.
  const nlohmann::json stored =
      train::load_model(scratch.path() / "straight" / "last.kiln").header.at("config");
  const auto weights = stored.at("pos_weight_values").get<std::vector<double>>();
  REQUIRE(weights.size() == 4);  // animal, flies, pet, vehicle
  CHECK(weights[0] == doctest::Approx(2.0 / 6.0));
  CHECK(weights[1] == doctest::Approx(6.0 / 2.0));

  train::TrainConfig interrupted = straight;
  interrupted.run_dir = scratch.path() / "interrupted";
  testing::InterruptAfterFirstEpoch crash;
  CHECK_THROWS_AS(train::train(interrupted, train::RunStart::Fresh, crash), std::runtime_error);
  const train::TrainResult resumed = train::train(interrupted, train::RunStart::Resume, silent);
  CHECK(resumed.history.size() == 1);

  const auto expected = model_tensors(straight.run_dir / "last.kiln");
  CHECK(expected.size() == 10);  // lenet5: conv1, conv2, fc1, fc2, fc3, each a weight and a bias
  CHECK(expected == model_tensors(interrupted.run_dir / "last.kiln"));
  CHECK(train::load_model(straight.run_dir / "last.kiln").thresholds.thresholds ==
        train::load_model(interrupted.run_dir / "last.kiln").thresholds.thresholds);
}

// On a GPU with --cuda-graphs (train/graphed_step.hpp) the training steps and the validation batches run as
// CUDA graphs; the run must end where the same run without graphs does, to the bit.
TEST_CASE(
    "cuda: multi-label training with --cuda-graphs ends with the weights and thresholds of a run without") {
  if (!testing::have_gpu()) return;
  ScratchFolder scratch("kiln-multi-label-test", "graphs");
  const fs::path csv = make_labelled_data(scratch.path() / "data", 2, 6);
  testing::Recorder silent;
  train::TrainConfig config = tiny_config(csv, scratch.path() / "graphed");
  config.device = "cuda";
  config.cuda_conv = "library";  // the same kernels in both runs
  config.cuda_graphs = true;
  const train::TrainResult graphed = train::train(config, train::RunStart::Fresh, silent);
  config.cuda_graphs = false;
  config.run_dir = scratch.path() / "eager";
  const train::TrainResult eager = train::train(config, train::RunStart::Fresh, silent);

  CHECK(model_tensors(graphed.checkpoint) == model_tensors(eager.checkpoint));
  CHECK(train::load_model(graphed.checkpoint).thresholds.thresholds ==
        train::load_model(eager.checkpoint).thresholds.thresholds);
  REQUIRE(graphed.history.size() == eager.history.size());
  for (std::size_t epoch = 0; epoch < eager.history.size(); ++epoch) {
    CHECK(graphed.history[epoch].train_loss == eager.history[epoch].train_loss);
    REQUIRE(graphed.history[epoch].multi_label_validation.has_value());
    CHECK(graphed.history[epoch].multi_label_validation->loss ==
          eager.history[epoch].multi_label_validation->loss);
  }
}

TEST_CASE(
    "multi_label_training: without a validation file the thresholds stay 0.5; bad settings are refused") {
  ScratchFolder scratch("kiln-multi-label-test", "settings");
  const fs::path csv = make_labelled_data(scratch.path() / "data", 2, 2);
  fs::remove(scratch.path() / "data" / "val.csv");
  testing::Recorder recorder;
  train::TrainConfig config = tiny_config(csv, scratch.path() / "run");
  config.epochs = 1;
  const train::TrainResult result = train::train(config, train::RunStart::Fresh, recorder);
  CHECK(recorder.plan.at("eval_split") == "test");  // evaluated on test, but never tuned on it
  const train::LoadedModel loaded = train::load_model(result.checkpoint);
  CHECK(loaded.thresholds.chosen_on == "default");
  CHECK(loaded.thresholds.thresholds == std::vector<double>(4, 0.5));

  const auto refused = [&](train::TrainConfig bad, const std::string& message) {
    bad.run_dir = scratch.path() / "refused";
    CHECK_THROWS_WITH_AS(train::train(bad, train::RunStart::Replace, recorder),
                         doctest::Contains(message.c_str()), Error);
  };
  train::TrainConfig folds = config;
  folds.folds = 2;
  refused(folds, "--folds is not supported for multi-label data");
  train::TrainConfig sampler = config;
  sampler.balanced_sampler = true;
  refused(sampler, "need one class per image");
  train::TrainConfig monitor = config;
  monitor.monitor = "eval_accuracy";
  refused(monitor, "a multi-label run monitors eval_loss");
  train::TrainConfig smoothing = config;
  smoothing.label_smoothing = 0.1;
  refused(smoothing, "--label-smoothing is for single-label data");
  train::TrainConfig pos_weight = config;
  pos_weight.pos_weight = "often";
  refused(pos_weight, "--pos-weight must be auto");
  pos_weight.pos_weight = "auto";
  pos_weight.data = testing::make_two_class_data(scratch.path() / "folders", 2, 1);
  refused(pos_weight, "--pos-weight is for multi-label data");
}

}  // namespace train_multi_label_training_test
