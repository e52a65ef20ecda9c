// The input size a run trains at when none is given: the training images' most common size, or, for
// images larger than data::kDefaultMaxInputSide a side (camera photos), that size shrunk to it with its
// aspect ratio kept. The plan says which, and the checkpoint carries the size, so eval and predict resize
// every image the same way.
#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/preprocessing.hpp"
#include "tests/data/image_writer.hpp"
#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"
#include "tests/support/training_observers.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer.hpp"

namespace train_input_size_test {

using namespace kiln;
using kiln::testing::Recorder;
using kiln::testing::ScratchFolder;
namespace fs = std::filesystem;

namespace {

// root/{dark, light}/ with three 150x300 photos each (height x width) and one 40x40 in "dark".
fs::path make_large_images(const fs::path& root) {
  for (int i = 0; i < 3; ++i) {
    kiln::test::write_image(root / "dark" / (std::to_string(i) + ".png"),
                            kiln::test::solid_image(150, 300, 3, 40));
    kiln::test::write_image(root / "light" / (std::to_string(i) + ".png"),
                            kiln::test::solid_image(150, 300, 3, 220));
  }
  kiln::test::write_image(root / "dark" / "small.png", kiln::test::solid_image(40, 40, 3, 40));
  return root;
}

}  // namespace

TEST_CASE("input size: large images train at their most common size shrunk to the default limit") {
  static_assert(data::kDefaultMaxInputSide == 128, "the sizes below assume the limit of 128");
  const ScratchFolder scratch("kiln-input-size-test", "shrunk");
  const fs::path data = make_large_images(scratch.path() / "data");
  train::TrainConfig config = kiln::testing::tiny_lenet5_config(data, scratch.path() / "run", 3);
  Recorder recorder;
  const train::TrainResult result = train::train(config, train::RunStart::Fresh, recorder);
  // 150x300 shrunk to at most 128 a side: 64x128.
  CHECK(recorder.plan.at("model").at("height") == 64);
  CHECK(recorder.plan.at("model").at("width") == 128);
  CHECK(recorder.plan.at("input_size").at("chosen") == "default");
  CHECK(recorder.plan.at("input_size").at("most_common") == nlohmann::json{{"height", 150}, {"width", 300}});
  const nlohmann::json preprocessing = train::load_checkpoint(result.checkpoint).header.at("preprocessing");
  CHECK(preprocessing.at("height") == 64);
  CHECK(preprocessing.at("width") == 128);

  SUBCASE("--image-size is taken as it is, however large") {
    config.run_dir = scratch.path() / "sized";
    config.image_height = 150;
    config.image_width = 160;
    Recorder sized;
    train::train(config, train::RunStart::Fresh, sized);
    CHECK(sized.plan.at("model").at("height") == 150);
    CHECK(sized.plan.at("model").at("width") == 160);
    CHECK(sized.plan.at("input_size").at("chosen") == "--image-size");
  }
}

TEST_CASE("input size: images within the limit train at their most common size, and the plan names none") {
  const ScratchFolder scratch("kiln-input-size-test", "small");
  const fs::path data = kiln::testing::make_two_class_data(scratch.path() / "data", 4, 2);
  Recorder recorder;
  train::train(kiln::testing::tiny_lenet5_config(data, scratch.path() / "run", 3), train::RunStart::Fresh,
               recorder);
  CHECK(recorder.plan.at("model").at("height") == 32);
  CHECK(recorder.plan.at("model").at("width") == 32);
  CHECK(recorder.plan.at("input_size").at("most_common").is_null());
}

}  // namespace train_input_size_test
