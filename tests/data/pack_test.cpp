// Packs (data/pack.hpp): a folder packed and opened again holds the same images, splits and classes;
// discover_splits reads a pack exactly as it reads the folder; unreadable images are left out (or, strict,
// refused); a damaged pack is refused with an error naming the file and the problem; training on a pack
// ends with the very weights training on the folder does; and --shorter-side stores large images shrunk.
#include "data/pack.hpp"

#include <doctest/doctest.h>

#include <fstream>

#include "core/error.hpp"
#include "data/dataset.hpp"
#include "data/image.hpp"
#include "data/resample.hpp"
#include "kernels/parallel.hpp"
#include "tests/data/image_writer.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/tiny_training.hpp"
#include "train/atomic_file.hpp"
#include "train/trainer.hpp"

namespace data_pack_test {

using namespace kiln;
using kiln::test::pattern_image;
using kiln::test::TemporaryFolder;
using kiln::test::write_bytes;
using kiln::test::write_image;

namespace {

// DATA/{train,test}/{cat,dog}/..., a few small images of each, PNG and JPEG.
void make_split_folder(const TemporaryFolder& root) {
  int seed = 0;
  for (const char* split : {"train", "test"}) {
    for (const char* name : {"cat", "dog"}) {
      for (int i = 0; i < 3; ++i) {
        write_image(root / split / name / ("img" + std::to_string(i) + (i % 2 ? ".png" : ".jpg")),
                    pattern_image(6, 5, 3, ++seed));
      }
    }
  }
}

std::filesystem::path write_pack(const std::filesystem::path& folder, const std::filesystem::path& file,
                                 data::PackSummary& summary, bool strict = false) {
  const std::vector<std::uint8_t> bytes = data::build_pack(folder, {.strict = strict}, summary);
  train::write_file_atomically(file, bytes, "pack");
  return file;
}

std::vector<std::uint8_t> file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("pack: a packed folder holds every image's bytes under its split, class and name") {
  TemporaryFolder root, out;
  make_split_folder(root);
  data::PackSummary summary;
  const auto file = write_pack(root.path(), out / "data.kpack", summary);
  CHECK(summary.images == 12);
  CHECK(summary.skipped == 0);
  CHECK(summary.splits == std::vector<std::string>{"train", "test"});
  CHECK(data::Pack::is_pack(file));
  CHECK_FALSE(data::Pack::is_pack(root.path()));
  CHECK_FALSE(data::Pack::is_pack(root / "train" / "cat" / "img0.jpg"));
  const auto pack = data::Pack::open(file);
  CHECK(pack->classes() == std::vector<std::string>{"cat", "dog"});
  REQUIRE(pack->entries().size() == 12);
  const data::Pack::Entry& first = pack->entries()[0];
  CHECK(first.split == "train");
  CHECK(first.label == 0);
  CHECK(first.name == "img0.jpg");
  const auto stored = pack->bytes(0);
  CHECK(std::vector<std::uint8_t>(stored.begin(), stored.end()) ==
        file_bytes(root / "train" / "cat" / "img0.jpg"));
  CHECK(pack->entries()[11].split == "test");
  CHECK(pack->entries()[11].label == 1);
}

TEST_CASE("pack: discover_splits reads a pack as it reads the folder, pixel for pixel") {
  TemporaryFolder root, out;
  make_split_folder(root);
  data::PackSummary summary;
  const auto file = write_pack(root.path(), out / "data.kpack", summary);
  const data::DataSplits from_folder = data::discover_splits(root.path(), 0.0, 0);
  const data::DataSplits from_pack = data::discover_splits(file, 0.0, 0);
  REQUIRE(from_pack.test.has_value());
  CHECK_FALSE(from_pack.validation.has_value());
  for (const auto& [a, b] :
       {std::pair{&from_folder.train, &from_pack.train}, std::pair{&*from_folder.test, &*from_pack.test}}) {
    CHECK(a->classes() == b->classes());
    REQUIRE(a->size() == b->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
      CHECK(a->samples()[i].label == b->samples()[i].label);
      CHECK(a->samples()[i].path.filename() == b->samples()[i].path.filename());
      CHECK(a->decode(i).pixels == b->decode(i).pixels);
    }
  }
  // A held-out share of a one-tree pack is drawn as from the folder.
  const data::DataSplits split_folder = data::discover_splits(root / "train", 0.34, 9);
  data::PackSummary train_only;
  const data::DataSplits split_pack =
      data::discover_splits(write_pack(root / "train", out / "train.kpack", train_only), 0.34, 9);
  REQUIRE(split_pack.validation.has_value());
  CHECK(split_pack.validation->size() == split_folder.validation->size());
  CHECK(split_pack.validation->samples()[0].path.filename() ==
        split_folder.validation->samples()[0].path.filename());
}

TEST_CASE("pack: an unreadable image is left out with a warning, or refused with --strict") {
  TemporaryFolder root, out;
  make_split_folder(root);
  write_bytes(root / "train" / "dog" / "broken.jpg", "not an image");
  data::PackSummary summary;
  write_pack(root.path(), out / "data.kpack", summary);
  CHECK(summary.images == 12);
  CHECK(summary.skipped == 1);
  REQUIRE(summary.warnings.size() == 1);
  CHECK(summary.warnings[0].find("broken.jpg") != std::string::npos);
  data::PackSummary strict;
  CHECK_THROWS_WITH_AS(data::build_pack(root.path(), {.strict = true}, strict),
                       doctest::Contains("broken.jpg"), Error);
}

TEST_CASE(
    "pack: --shorter-side stores a larger image shrunk to it as a PNG, aspect kept, and the rest as they "
    "are") {
  TemporaryFolder root, out;
  const data::Image wide = pattern_image(30, 45, 3, 1), gray = pattern_image(40, 24, 1, 2),
                    small = pattern_image(10, 12, 3, 3);
  write_image(root / "cat" / "wide.jpg", wide);
  write_image(root / "cat" / "small.png", small);
  write_image(root / "dog" / "gray.png", gray);
  const std::vector<std::uint8_t> small_bytes = data::read_file_bytes(root / "cat" / "small.png");

  data::PackSummary summary, one_thread_summary;
  const std::vector<std::uint8_t> bytes = data::build_pack(root.path(), {.shorter_side = 12}, summary);
  {
    kiln::testing::DispatchGuard guard;  // the images are prepared in parallel, then packed in folder order
    kernels::set_compute_threads(1);
    CHECK(data::build_pack(root.path(), {.shorter_side = 12}, one_thread_summary) == bytes);
  }
  train::write_file_atomically(out / "small.kpack", bytes, "pack");
  CHECK(summary.images == 3);
  CHECK(summary.shrunk == 2);
  const auto pack = data::Pack::open(out / "small.kpack");
  REQUIRE(pack->entries().size() == 3);
  const auto image_named = [&](const std::string& name) {
    for (std::size_t i = 0; i < pack->entries().size(); ++i) {
      if (pack->entries()[i].name == name) return i;
    }
    FAIL("no entry ", name);
    return std::size_t{0};
  };
  // 30x45 -> 12x18 and 40x24 -> 20x12: the shorter side becomes 12, the longer one keeps the ratio.
  const data::Image wide_packed = data::decode_image_bytes(pack->bytes(image_named("wide.jpg")), "wide");
  CHECK(wide_packed.height == 12);
  CHECK(wide_packed.width == 18);
  CHECK(wide_packed.channels == 3);
  const data::Image gray_packed = data::decode_image_bytes(pack->bytes(image_named("gray.png")), "gray");
  CHECK(gray_packed.height == 20);
  CHECK(gray_packed.width == 12);
  CHECK(gray_packed.channels == 1);
  // The PNG holds exactly the shrunk pixels (lossless).
  CHECK(gray_packed.pixels ==
        data::shrink_to_shorter_side(data::decode_image_file(root / "dog" / "gray.png"), 12).pixels);
  // Already small enough: the file's own bytes.
  const auto small_span = pack->bytes(image_named("small.png"));
  CHECK(std::vector<std::uint8_t>(small_span.begin(), small_span.end()) == small_bytes);
}

TEST_CASE("pack: a truncated, damaged or foreign file is refused, naming the file and the problem") {
  TemporaryFolder root, out;
  make_split_folder(root);
  data::PackSummary summary;
  const auto file = write_pack(root.path(), out / "data.kpack", summary);
  std::vector<std::uint8_t> bytes = file_bytes(file);
  const auto rewrite = [&](const std::vector<std::uint8_t>& changed) {
    train::write_file_atomically(out / "bad.kpack", changed, "pack");
    return out / "bad.kpack";
  };
  std::vector<std::uint8_t> truncated(bytes.begin(), bytes.end() - 1);
  CHECK_THROWS_WITH_AS(data::Pack::open(rewrite(truncated)), doctest::Contains("bad.kpack: truncated"),
                       Error);
  REQUIRE(bytes.size() > 100);
  std::vector<std::uint8_t> flipped = bytes;
  const std::size_t last_data_byte = flipped.size() - 1;  // the data comes last
  flipped[last_data_byte] = static_cast<std::uint8_t>(flipped[last_data_byte] ^ 0x40);
  CHECK_THROWS_WITH_AS(data::Pack::open(rewrite(flipped)), doctest::Contains("does not match its checksum"),
                       Error);
  std::vector<std::uint8_t> newer = bytes;
  newer[8] = 9;
  CHECK_THROWS_WITH_AS(data::Pack::open(rewrite(newer)), doctest::Contains("pack version 9"), Error);
  CHECK_THROWS_WITH_AS(data::Pack::open(root / "train" / "cat" / "img0.jpg"),
                       doctest::Contains("not a kiln pack"), Error);
}

TEST_CASE("pack: training on the pack of the bundled subset ends with the folder's weights, bit for bit") {
  TemporaryFolder out;
  const std::filesystem::path subset = std::filesystem::path(KILN_SOURCE_DIR) / "assets" / "cifar10-subset";
  data::PackSummary summary;
  const auto file = write_pack(subset, out / "subset.kpack", summary);
  CHECK(summary.images == 5000);
  train::TrainingObserver silent;  // reports nothing
  train::TrainConfig config = testing::tiny_lenet5_config(subset, out / "from-folder", /*seed=*/4);
  config.max_steps_per_epoch = 3;
  const train::TrainResult from_folder = train::train(config, train::RunStart::Fresh, silent);
  config.data = file;
  config.run_dir = out / "from-pack";
  const train::TrainResult from_pack = train::train(config, train::RunStart::Fresh, silent);
  REQUIRE(from_folder.history.size() == 1);
  CHECK(from_pack.history[0].train_loss == from_folder.history[0].train_loss);
  REQUIRE(from_pack.history[0].validation.has_value());
  CHECK(from_pack.history[0].validation->loss == from_folder.history[0].validation->loss);
}

}  // namespace data_pack_test
