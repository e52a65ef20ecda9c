// kiln train on a tiny imbalanced folder (12 airplanes and 3 cats from the bundled CIFAR-10 subset):
// the imbalance is reported at the start, --class-weights (auto or a file) reaches the loss and the
// checkpoint, --balanced-sampler resumes to the same weights as an uninterrupted run, the two exclude
// each other, and the epoch line carries the per-class recall.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"
#include "tests/support/training_observers.hpp"
#include "train/model_io.hpp"
#include "train/trainer.hpp"

namespace train_imbalance_training_test {

using namespace kiln;
using kiln::testing::copy_cifar_images;
using kiln::testing::InterruptAfterFirstEpoch;
using kiln::testing::Recorder;
using kiln::testing::ScratchFolder;
namespace fs = std::filesystem;

namespace {

// DATA/train/{airplane: 12, cat: 3}, DATA/test/{airplane: 2, cat: 2}: a ratio of 4 in training.
fs::path make_imbalanced_data(const fs::path& root) {
  copy_cifar_images("train", "airplane", 12, root / "train");
  copy_cifar_images("train", "cat", 3, root / "train");
  copy_cifar_images("test", "airplane", 2, root / "test");
  copy_cifar_images("test", "cat", 2, root / "test");
  return root;
}

train::TrainConfig tiny_config(const fs::path& data, const fs::path& run_dir) {
  train::TrainConfig config = kiln::testing::tiny_lenet5_config(data, run_dir, 3);
  config.batch_size = 5;
  return config;
}

nlohmann::json stored_config(const fs::path& run_dir) {
  return train::load_model(run_dir / "last.kiln").header.at("config");
}

std::vector<std::vector<float>> weights_of(const fs::path& run_dir) {
  std::vector<std::vector<float>> weights;
  for (const auto& [name, tensor] : train::model_state(*train::load_model(run_dir / "last.kiln").model)) {
    weights.push_back(tensor.to_vector<float>());
  }
  return weights;
}

}  // namespace

TEST_CASE("imbalance: --class-weights auto is reported, stored, changes the loss, and survives --resume") {
  const ScratchFolder scratch("kiln-imbalance-test", "auto");
  const fs::path data = make_imbalanced_data(scratch.path() / "data");
  train::TrainConfig config = tiny_config(data, scratch.path() / "weighted");
  config.class_weights = "auto";
  Recorder recorder;
  const train::TrainResult weighted = train::train(config, train::RunStart::Fresh, recorder);

  const nlohmann::json& balance = recorder.plan.at("class_balance");
  CHECK(balance.at("imbalanced") == true);
  CHECK(balance.at("ratio").get<double>() == doctest::Approx(4.0));
  CHECK(balance.at("counts") == nlohmann::json{{"airplane", 12}, {"cat", 3}});
  CHECK(balance.at("summary").get<std::string>().find("largest 'airplane' 12 images, smallest 'cat' 3") == 0);
  // w = (1/n) / mean(1/n): mean(1/12, 1/3) = 5/24, so airplane 0.4 and cat 1.6.
  CHECK(recorder.plan.at("class_weights").at("source") == "auto");
  CHECK(recorder.plan.at("class_weights").at("weights").at("airplane").get<double>() == doctest::Approx(0.4));
  CHECK(recorder.plan.at("class_weights").at("weights").at("cat").get<double>() == doctest::Approx(1.6));
  CHECK(recorder.plan.at("sampler") == "shuffle");

  const nlohmann::json stored = stored_config(config.run_dir);
  CHECK(stored.at("class_weights") == "auto");
  REQUIRE(stored.at("class_weight_values").size() == 2);
  CHECK(stored.at("class_weight_values")[0].get<double>() == doctest::Approx(0.4));
  CHECK(stored.at("class_weight_values")[1].get<double>() == doctest::Approx(1.6));
  CHECK(stored.at("balanced_sampler") == false);

  // The same run unweighted starts from the same weights and batches, so only the loss weights differ.
  Recorder plain_recorder;
  const train::TrainResult plain =
      train::train(tiny_config(data, scratch.path() / "plain"), train::RunStart::Fresh, plain_recorder);
  CHECK(plain_recorder.plan.at("class_weights").is_null());
  CHECK(plain.history.at(0).train_loss != weighted.history.at(0).train_loss);

  // --resume takes the weights from the checkpoint, whatever the command line says now.
  train::TrainConfig resume = tiny_config(data, config.run_dir);
  resume.epochs = 2;
  Recorder resumed;
  train::train(resume, train::RunStart::Resume, resumed);
  CHECK(resumed.plan.at("class_weights").at("weights").at("cat").get<double>() == doctest::Approx(1.6));
  CHECK(stored_config(config.run_dir).at("class_weight_values") == stored.at("class_weight_values"));
}

TEST_CASE("imbalance: --class-weights FILE is stored, so the run resumes after the file is gone") {
  const ScratchFolder scratch("kiln-imbalance-test", "file");
  const fs::path data = make_imbalanced_data(scratch.path() / "data");
  const fs::path weights_file = scratch.path() / "weights.csv";
  std::ofstream(weights_file) << "class,weight\ncat,3\nairplane,1\n";
  train::TrainConfig config = tiny_config(data, scratch.path() / "run");
  config.class_weights = weights_file.string();
  Recorder recorder;
  train::train(config, train::RunStart::Fresh, recorder);
  CHECK(recorder.plan.at("class_weights").at("source") == weights_file.string());
  CHECK(stored_config(config.run_dir).at("class_weight_values") == nlohmann::json{1.0, 3.0});

  fs::remove(weights_file);
  config.epochs = 2;
  train::train(config, train::RunStart::Resume, recorder);
  CHECK(recorder.plan.at("class_weights").at("weights").at("cat") == 3.0);
}

TEST_CASE("imbalance: --balanced-sampler is stored, and a resumed run ends with the same weights") {
  const ScratchFolder scratch("kiln-imbalance-test", "sampler");
  const fs::path data = make_imbalanced_data(scratch.path() / "data");
  train::TrainConfig config = tiny_config(data, scratch.path() / "straight");
  config.epochs = 2;
  config.balanced_sampler = true;
  Recorder recorder;
  train::train(config, train::RunStart::Fresh, recorder);
  CHECK(recorder.plan.at("sampler") == "balanced");
  CHECK(recorder.plan.at("class_weights").is_null());
  CHECK(stored_config(config.run_dir).at("balanced_sampler") == true);

  train::TrainConfig interrupted = config;
  interrupted.run_dir = scratch.path() / "interrupted";
  InterruptAfterFirstEpoch crash;
  CHECK_THROWS_AS(train::train(interrupted, train::RunStart::Fresh, crash), std::runtime_error);
  train::TrainConfig resume = tiny_config(data, interrupted.run_dir);  // no --balanced-sampler: it is stored
  resume.epochs = 2;
  train::train(resume, train::RunStart::Resume, recorder);
  CHECK(recorder.plan.at("sampler") == "balanced");
  CHECK(weights_of(interrupted.run_dir) == weights_of(config.run_dir));
}

TEST_CASE("imbalance: --class-weights and --balanced-sampler exclude each other; bad files are named") {
  const ScratchFolder scratch("kiln-imbalance-test", "errors");
  const fs::path data = make_imbalanced_data(scratch.path() / "data");
  Recorder recorder;
  train::TrainConfig both = tiny_config(data, scratch.path() / "both");
  both.class_weights = "auto";
  both.balanced_sampler = true;
  CHECK_THROWS_WITH_AS(
      train::train(both, train::RunStart::Fresh, recorder),
      "train: --class-weights and --balanced-sampler both correct class imbalance; use one of them", Error);

  const fs::path weights_file = scratch.path() / "weights.csv";
  std::ofstream(weights_file) << "airplane,1\ncat,2\ndog,1\n";
  train::TrainConfig unknown = tiny_config(data, scratch.path() / "unknown");
  unknown.class_weights = weights_file.string();
  CHECK_THROWS_WITH_AS(
      train::train(unknown, train::RunStart::Fresh, recorder),
      (weights_file.string() + ":3: unknown class 'dog' (the classes are: airplane, cat)").c_str(), Error);
  std::ofstream(weights_file) << "airplane,1\n";
  CHECK_THROWS_WITH_AS(train::train(unknown, train::RunStart::Fresh, recorder),
                       doctest::Contains((weights_file.string() + ": no weight for class 'cat'").c_str()),
                       Error);
  CHECK_FALSE(fs::exists(scratch.path() / "unknown" / "last.kiln"));
}

TEST_CASE("imbalance: a balanced run is not flagged, and each epoch line has the per-class recall") {
  const ScratchFolder scratch("kiln-imbalance-test", "recall");
  const fs::path data = scratch.path() / "data";
  kiln::testing::make_two_class_data(data, 3, 3);
  Recorder recorder;
  const train::TrainResult result =
      train::train(tiny_config(data, scratch.path() / "run"), train::RunStart::Fresh, recorder);
  CHECK(recorder.plan.at("class_balance").at("imbalanced") == false);
  const nlohmann::json line = result.history.at(0).to_json();
  REQUIRE(line.contains("eval_recall_per_class"));
  const nlohmann::json& recall = line.at("eval_recall_per_class");
  CHECK(recall.size() == 2);
  // Macro recall is the mean of the two.
  CHECK((recall.at("airplane").get<double>() + recall.at("cat").get<double>()) / 2 ==
        doctest::Approx(line.at("eval_macro_recall").get<double>()));
}

}  // namespace train_imbalance_training_test
