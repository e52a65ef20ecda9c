// Fine-tuning with --init, --freeze / --freeze-until and --head-lr on tiny runs over copies of the bundled
// CIFAR-10 subset: the head is replaced when the classes differ and kept when they are equal, frozen
// parameters and frozen batch-norm statistics are bit-identical after training while the rest moves,
// --head-lr reaches the head alone, the checkpoint records it all so --resume keeps freezing, and the
// errors name what is wrong.
#include "train/fine_tune.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/generator.hpp"
#include "models/architecture.hpp"
#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"
#include "tests/support/training_observers.hpp"
#include "train/checkpoint.hpp"
#include "train/model_io.hpp"
#include "train/trainer.hpp"

namespace train_fine_tune_test {

using namespace kiln;
using testing::Recorder;
using testing::ScratchFolder;
namespace fs = std::filesystem;

namespace {

using WeightsByName = std::map<std::string, std::vector<float>>;

// DATA/train/<class>: 4 images each, DATA/test/<class>: 2 each.
fs::path make_data(const fs::path& root, const std::vector<std::string>& classes) {
  for (const std::string& name : classes) {
    testing::copy_cifar_images("train", name, 4, root / "train");
    testing::copy_cifar_images("test", name, 2, root / "test");
  }
  return root;
}

train::TrainConfig tiny_config(const std::string& model, const fs::path& data, const fs::path& run_dir) {
  train::TrainConfig config = kiln::testing::tiny_lenet5_config(data, run_dir, 7);
  config.model = model;
  config.max_steps_per_epoch = 2;
  config.augmentation = {};
  return config;
}

// Every parameter and buffer of a checkpoint's model, by name ("fc.weight", "bn1.running_mean").
WeightsByName weights_of(const fs::path& checkpoint) {
  WeightsByName weights;
  for (const auto& [name, tensor] : train::model_state(*train::load_model(checkpoint).model)) {
    weights[name.substr(std::string(train::kModelTensorPrefix).size())] = tensor.to_vector<float>();
  }
  return weights;
}

// The names in `weights` under top-level module `module` whose values are (not) the same in `other`.
std::vector<std::string> names_under(const WeightsByName& weights, const WeightsByName& other,
                                     const std::string& module, bool same) {
  std::vector<std::string> names;
  for (const auto& [name, values] : weights) {
    if (name.starts_with(module + ".") && (other.at(name) == values) == same) names.push_back(name);
  }
  return names;
}

// A source run: `model` trained for one short epoch on `classes`.
struct Source {
  fs::path checkpoint;    // its last.kiln
  WeightsByName weights;  // what last.kiln holds
};
Source train_source(const fs::path& root, const std::string& model, const std::vector<std::string>& classes) {
  const fs::path data = make_data(root / "source-data", classes);
  Recorder recorder;
  train::train(tiny_config(model, data, root / "source"), train::RunStart::Fresh, recorder);
  return {root / "source" / "last.kiln", weights_of(root / "source" / "last.kiln")};
}

// A run in root/NAME that fine-tunes `source` on `classes` (copied to root/NAME-data).
train::TrainConfig fine_tune_config(const fs::path& root, const std::string& name, const fs::path& source,
                                    const std::vector<std::string>& classes) {
  train::TrainConfig config = tiny_config("lenet5", make_data(root / (name + "-data"), classes), root / name);
  config.init_checkpoint = source;
  return config;
}

}  // namespace

TEST_CASE("fine-tune: the head is the last Linear; --freeze and --freeze-until resolve to top-level modules") {
  Generator generator(1);
  const layers::ModulePtr resnet = models::build_model({"resnet20", 3, 32, 32, 10}, generator);
  const layers::ModulePtr lenet = models::build_model({"lenet5", 3, 32, 32, 10}, generator);
  CHECK(train::head_module_name(*resnet) == "fc");
  CHECK(train::head_module_name(*lenet) == "fc3");
  CHECK(train::top_level_module_names(*resnet) ==
        std::vector<std::string>{"conv1", "bn1", "relu", "stage1", "stage2", "stage3", "pool", "fc"});

  CHECK(train::resolve_frozen_modules(*resnet, {"stage1", "conv1"}, "") ==
        std::vector<std::string>{"conv1", "stage1"});  // in model order
  CHECK(train::resolve_frozen_modules(*resnet, {}, "stage2") ==
        std::vector<std::string>{"conv1", "bn1", "relu", "stage1"});
  CHECK(train::resolve_frozen_modules(*resnet, {"stage2"}, "stage2") ==
        std::vector<std::string>{"conv1", "bn1", "relu", "stage1", "stage2"});
  CHECK(train::resolve_frozen_modules(*resnet, {}, "").empty());

  CHECK_THROWS_WITH_AS(train::resolve_frozen_modules(*resnet, {"stage4"}, ""),
                       "train: --freeze names unknown module 'stage4' (the model's top-level modules: conv1, "
                       "bn1, relu, stage1, stage2, stage3, pool, fc)",
                       Error);
  CHECK_THROWS_WITH_AS(train::resolve_frozen_modules(*lenet, {}, "fc9"),
                       doctest::Contains("--freeze-until names unknown module 'fc9'"), Error);
  CHECK_THROWS_WITH_AS(train::resolve_frozen_modules(*lenet, {"fc3"}, "fc3"),
                       doctest::Contains("freeze every module with parameters (conv1, relu1, pool1, conv2, relu2, "
                                         "pool2, flatten, fc1, relu3, fc2, relu4, fc3); nothing would train"), Error);
}

TEST_CASE("fine-tune: --init replaces the head when the classes differ and keeps everything when they match") {
  const ScratchFolder scratch("kiln-fine-tune-test", "head");
  const auto [source, before] = train_source(scratch.path(), "lenet5", {"airplane", "cat"});
  Recorder recorder;

  // At --lr 0 nothing trains, so the checkpoint shows exactly the weights the run started from.
  train::TrainConfig other = fine_tune_config(scratch.path(), "other-run", source, {"automobile", "dog", "frog"});
  other.model = "resnet20";  // ignored: the architecture is the checkpoint's
  other.learning_rate = 0;
  train::train(other, train::RunStart::Fresh, recorder);
  const WeightsByName replaced = weights_of(scratch.path() / "other-run" / "last.kiln");
  CHECK(recorder.plan.at("model").at("name") == "lenet5");  // the architecture comes from the checkpoint
  CHECK(recorder.plan.at("fine_tune").at("head") == "fc3");
  CHECK(recorder.plan.at("fine_tune").at("init").at("head_replaced") == true);
  CHECK(replaced.at("fc3.weight").size() == 84 * 3);
  CHECK(replaced.at("fc3.bias").size() == 3);
  for (const std::string module : {"conv1", "conv2", "fc1", "fc2"}) {
    CHECK(names_under(replaced, before, module, false).empty());
  }
  const nlohmann::json stored = train::load_model(scratch.path() / "other-run" / "last.kiln").header.at("config");
  CHECK(stored.at("init_checkpoint") == source.string());
  CHECK(stored.at("init_classes") == std::vector<std::string>{"airplane", "cat"});
  CHECK(stored.at("head_replaced") == true);

  // The same count but other names is a different task too; the new head is drawn from the seed.
  train::TrainConfig renamed = fine_tune_config(scratch.path(), "renamed-run", source, {"airplane", "dog"});
  renamed.learning_rate = 0;
  train::train(renamed, train::RunStart::Fresh, recorder);
  const WeightsByName renamed_weights = weights_of(scratch.path() / "renamed-run" / "last.kiln");
  CHECK(renamed_weights.at("fc3.weight") != before.at("fc3.weight"));
  CHECK(renamed_weights.at("fc1.weight") == before.at("fc1.weight"));

  train::TrainConfig same = fine_tune_config(scratch.path(), "same-run", source, {"airplane", "cat"});
  same.learning_rate = 0;
  train::train(same, train::RunStart::Fresh, recorder);
  CHECK(recorder.plan.at("fine_tune").at("init").at("head_replaced") == false);
  CHECK(weights_of(scratch.path() / "same-run" / "last.kiln") == before);
}

TEST_CASE("fine-tune: frozen parameters and batch-norm statistics stay bit-identical while the rest trains") {
  const ScratchFolder scratch("kiln-fine-tune-test", "freeze");
  const auto [source, before] = train_source(scratch.path(), "resnet20", {"airplane", "cat"});
  Recorder recorder;
  train::TrainConfig config = fine_tune_config(scratch.path(), "run", source, {"dog", "frog"});
  config.freeze = {"stage1"};
  config.freeze_until = "bn1";  // conv1
  train::train(config, train::RunStart::Fresh, recorder);
  CHECK(recorder.plan.at("fine_tune").at("frozen") == std::vector<std::string>{"conv1", "stage1"});
  const WeightsByName after = weights_of(scratch.path() / "run" / "last.kiln");

  CHECK(names_under(after, before, "conv1", false).empty());
  CHECK(names_under(after, before, "stage1", false).empty());  // its weights and its running statistics
  CHECK(before.contains("stage1.0.bn1.running_mean"));
  CHECK_FALSE(names_under(after, before, "bn1", false).empty());  // not frozen: trained, statistics updated
  CHECK(after.at("stage2.0.conv1.weight") != before.at("stage2.0.conv1.weight"));
  CHECK(after.at("stage3.0.bn1.running_var") != before.at("stage3.0.bn1.running_var"));
  CHECK(train::load_model(scratch.path() / "run" / "last.kiln").header.at("config").at("freeze") ==
        std::vector<std::string>{"conv1", "stage1"});
}

TEST_CASE("fine-tune: --head-lr trains the head at its own rate; with --lr 0 only the head moves") {
  const ScratchFolder scratch("kiln-fine-tune-test", "head-lr");
  const auto [source, before] = train_source(scratch.path(), "lenet5", {"airplane", "cat"});
  Recorder recorder;
  train::TrainConfig config = fine_tune_config(scratch.path(), "run", source, {"airplane", "cat"});
  config.learning_rate = 0;
  config.head_learning_rate = 0.05;
  config.schedule = "constant";
  train::train(config, train::RunStart::Fresh, recorder);
  CHECK(recorder.plan.at("fine_tune").at("head_learning_rate") == 0.05);
  const WeightsByName after = weights_of(scratch.path() / "run" / "last.kiln");
  CHECK(after.at("fc3.weight") != before.at("fc3.weight"));
  CHECK(after.at("fc3.bias") != before.at("fc3.bias"));
  for (const std::string module : {"conv1", "conv2", "fc1", "fc2"}) {
    CHECK(names_under(after, before, module, false).empty());
  }
  const train::Checkpoint checkpoint = train::load_checkpoint(scratch.path() / "run" / "last.kiln");
  CHECK(checkpoint.header.at("config").at("head_learning_rate") == 0.05);
  CHECK(checkpoint.header.at("head_optimizer").at("hyperparameters").at("lr") == 0.05);
  CHECK(checkpoint.header.at("optimizer").at("hyperparameters").at("lr") == 0.0);
}

TEST_CASE("fine-tune: --resume keeps the frozen modules and the head's rate, and ends where one run ends") {
  const ScratchFolder scratch("kiln-fine-tune-test", "resume");
  const auto [source, before] = train_source(scratch.path(), "lenet5", {"airplane", "cat"});
  const fs::path data = make_data(scratch.path() / "data", {"dog", "frog", "horse"});
  train::TrainConfig config = tiny_config("lenet5", data, scratch.path() / "whole");
  config.init_checkpoint = source;
  config.freeze = {"conv1", "conv2"};
  config.head_learning_rate = 0.1;
  config.epochs = 2;
  Recorder recorder;
  train::train(config, train::RunStart::Fresh, recorder);

  train::TrainConfig interrupted = config;
  interrupted.run_dir = scratch.path() / "interrupted";
  testing::InterruptAfterFirstEpoch crash;
  CHECK_THROWS_AS(train::train(interrupted, train::RunStart::Fresh, crash), std::runtime_error);
  train::TrainConfig resume = tiny_config("lenet5", data, interrupted.run_dir);  // no fine-tuning options
  resume.epochs = 2;
  train::train(resume, train::RunStart::Resume, recorder);
  CHECK(recorder.plan.at("fine_tune").at("frozen") == std::vector<std::string>{"conv1", "conv2"});
  CHECK(recorder.plan.at("fine_tune").at("head_learning_rate") == 0.1);

  const WeightsByName resumed = weights_of(interrupted.run_dir / "last.kiln");
  CHECK(resumed == weights_of(scratch.path() / "whole" / "last.kiln"));
  CHECK(names_under(resumed, before, "conv1", false).empty());
  CHECK(names_under(resumed, before, "conv2", false).empty());
  CHECK(resumed.at("fc1.weight") != before.at("fc1.weight"));
}

TEST_CASE("fine-tune: errors name the option, the module names or both input sizes") {
  const ScratchFolder scratch("kiln-fine-tune-test", "errors");
  const fs::path source = train_source(scratch.path(), "lenet5", {"airplane", "cat"}).checkpoint;
  const fs::path data = make_data(scratch.path() / "data", {"dog", "frog"});
  Recorder recorder;

  train::TrainConfig unknown = tiny_config("lenet5", data, scratch.path() / "unknown");
  unknown.init_checkpoint = source;
  unknown.freeze = {"conv1", "stage1"};
  CHECK_THROWS_WITH_AS(train::train(unknown, train::RunStart::Fresh, recorder),
                       "train: --freeze names unknown module 'stage1' (the model's top-level modules: conv1, "
                       "relu1, pool1, conv2, relu2, pool2, flatten, fc1, relu3, fc2, relu4, fc3)",
                       Error);

  train::TrainConfig scratch_freeze = tiny_config("lenet5", data, scratch.path() / "scratch-freeze");
  scratch_freeze.freeze_until = "fc1";
  CHECK_THROWS_WITH_AS(train::train(scratch_freeze, train::RunStart::Fresh, recorder),
                       "train: --freeze and --freeze-until keep pretrained weights; they need --init CKPT", Error);

  train::TrainConfig negative = tiny_config("lenet5", data, scratch.path() / "negative");
  negative.init_checkpoint = source;
  negative.head_learning_rate = -1.0;
  CHECK_THROWS_WITH_AS(train::train(negative, train::RunStart::Fresh, recorder),
                       doctest::Contains("--head-lr must be a finite number >= 0"), Error);

  train::TrainConfig with_resume = tiny_config("lenet5", data, scratch.path() / "source");
  with_resume.init_checkpoint = source;
  CHECK_THROWS_WITH_AS(train::train(with_resume, train::RunStart::Resume, recorder),
                       doctest::Contains("--init starts a new run from another checkpoint and --resume"), Error);

  train::TrainConfig missing = tiny_config("lenet5", data, scratch.path() / "missing");
  missing.init_checkpoint = scratch.path() / "nowhere.kiln";
  CHECK_THROWS_WITH_AS(train::train(missing, train::RunStart::Fresh, recorder),
                       doctest::Contains("nowhere.kiln does not exist"), Error);

  // A checkpoint that takes 28x28 inputs, given 32x32 images.
  train::Checkpoint small = train::load_checkpoint(source);
  small.header["preprocessing"]["height"] = small.header["preprocessing"]["width"] = 28;
  const fs::path small_path = scratch.path() / "small.kiln";
  train::save_checkpoint(small_path, small);
  train::TrainConfig mismatch = tiny_config("lenet5", data, scratch.path() / "mismatch");
  mismatch.init_checkpoint = small_path;
  CHECK_THROWS_WITH_AS(
      train::train(mismatch, train::RunStart::Fresh, recorder),
      ("train: --init " + small_path.string() + " takes 3x28x28 inputs, but the images in " + data.string() +
       " are 3x32x32; fine-tune at the checkpoint's input size (--image-size 28x28)")
          .c_str(),
      Error);
  mismatch.image_height = mismatch.image_width = 24;  // asked for, and still not the checkpoint's
  CHECK_THROWS_WITH_AS(
      train::train(mismatch, train::RunStart::Fresh, recorder),
      doctest::Contains("become 3x24x24 with --image-size; fine-tune at the checkpoint's input size"), Error);
  mismatch.image_height = mismatch.image_width = 28;
  mismatch.resize = "crop";  // the checkpoint stretches
  CHECK_THROWS_WITH_AS(train::train(mismatch, train::RunStart::Fresh, recorder),
                       doctest::Contains("resizes by --resize stretch, not crop"), Error);
  for (const char* run : {"unknown", "scratch-freeze", "negative", "missing", "mismatch"}) {
    CHECK_FALSE(fs::exists(scratch.path() / run / "last.kiln"));
  }
}

TEST_CASE("fine-tune: --image-size brings images of another size to the checkpoint's input") {
  ScratchFolder scratch("kiln-fine-tune-test", "image-size");
  const fs::path data = make_data(scratch.path() / "data", {"airplane", "cat"});
  Recorder recorder;
  train::TrainConfig source_config = tiny_config("lenet5", data, scratch.path() / "source");
  source_config.image_height = source_config.image_width = 28;
  train::train(source_config, train::RunStart::Fresh, recorder);

  // The same 32x32 images, fine-tuned at the checkpoint's 28x28: resized as the checkpoint resizes.
  train::TrainConfig tune = tiny_config("lenet5", data, scratch.path() / "tuned");
  tune.init_checkpoint = scratch.path() / "source" / "last.kiln";
  tune.image_height = tune.image_width = 28;
  train::train(tune, train::RunStart::Fresh, recorder);
  const train::LoadedModel tuned = train::load_model(scratch.path() / "tuned" / "last.kiln");
  CHECK(tuned.preprocessing == train::load_model(tune.init_checkpoint).preprocessing);
  CHECK(tuned.architecture.height == 28);
}

}  // namespace train_fine_tune_test
