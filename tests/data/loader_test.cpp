// Tests for data/loader.hpp: each sample once per epoch, a seeded order, thread-count independence,
// unreadable files, and clean shutdown.
#include "data/loader.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "core/error.hpp"
#include "data/augment.hpp"
#include "data/shuffle.hpp"
#include "kernels/parallel.hpp"
#include "tests/data/image_writer.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace data_loader_test {

using kiln::Error;
using kiln::Tensor;
using kiln::data::Batch;
using kiln::data::DataLoader;
using kiln::data::ImageFolder;
using kiln::data::LoaderOptions;
using kiln::data::Preprocessing;
using kiln::data::ResizePolicy;
using kiln::test::TemporaryFolder;

namespace {

constexpr int kPerClass = 7;  // 3 classes: 21 samples

// root/<a|b|c>/<nn>.png, 2x2 grey, every pixel of sample i (in folder order) equal to 10 * i.
ImageFolder make_folder(const TemporaryFolder& root) {
  int sample = 0;
  for (const char* name : {"a", "b", "c"}) {
    for (int i = 0; i < kPerClass; ++i, ++sample) {
      kiln::test::write_image(root / name / (std::to_string(10 + i) + ".png"),
                              kiln::test::solid_image(2, 2, 1, static_cast<std::uint8_t>(10 * sample)));
    }
  }
  return ImageFolder::scan(root.path());
}

// Values come out as pixel / 255.
const Preprocessing kGrey{1, 2, 2, ResizePolicy::Stretch, {0.0f}, {1.0f}};

// Every batch of one epoch.
std::vector<Batch> epoch_batches(DataLoader& loader, std::int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch> batches;
  while (std::optional<Batch> batch = loader.next()) batches.push_back(std::move(*batch));
  return batches;
}

std::vector<std::size_t> epoch_order(DataLoader& loader, std::int64_t epoch) {
  std::vector<std::size_t> order;
  for (const Batch& batch : epoch_batches(loader, epoch))
    order.insert(order.end(), batch.indices.begin(), batch.indices.end());
  return order;
}

}  // namespace

TEST_CASE("data/loader: every sample exactly once per epoch, with its label and its image") {
  const TemporaryFolder root;
  const ImageFolder folder = make_folder(root);
  DataLoader loader(folder, kGrey, {.batch_size = 4, .seed = 3, .threads = 2});
  CHECK(loader.batches_per_epoch() == 6);
  const std::vector<Batch> batches = epoch_batches(loader, 0);
  REQUIRE(batches.size() == 6);
  std::vector<std::size_t> seen;
  for (std::size_t b = 0; b < batches.size(); ++b) {
    const Batch& batch = batches[b];
    const std::int64_t size = b < 5 ? 4 : 1;
    CHECK(batch.images.shape() == kiln::Shape{size, 1, 2, 2});
    CHECK(batch.images.dtype() == kiln::DType::Float32);
    CHECK(batch.labels.shape() == kiln::Shape{size});
    CHECK(batch.labels.dtype() == kiln::DType::Int64);
    REQUIRE(batch.indices.size() == static_cast<std::size_t>(size));
    const std::vector<float> pixels = batch.images.to_vector<float>();
    const std::vector<std::int64_t> labels = batch.labels.to_vector<std::int64_t>();
    for (std::size_t i = 0; i < batch.indices.size(); ++i) {
      const std::size_t index = batch.indices[i];
      CHECK(labels[i] == folder.samples()[index].label);
      CHECK(std::lround(pixels[i * 4] * 255.0f) == 10 * static_cast<long>(index));
      seen.push_back(index);
    }
  }
  std::sort(seen.begin(), seen.end());
  std::vector<std::size_t> all(folder.size());
  std::iota(all.begin(), all.end(), std::size_t{0});
  CHECK(seen == all);
  CHECK(loader.skipped_files() == 0);
  CHECK(loader.warnings().empty());
  // Past the end, next() keeps saying the epoch is done.
  CHECK_FALSE(loader.next());
}

TEST_CASE("data/loader: the decoded-image cache keeps to its budget and the batches do not change") {
  const TemporaryFolder root;
  const ImageFolder folder = make_folder(root);  // 21 images of 4 bytes
  const LoaderOptions unbounded{.batch_size = 4, .seed = 3, .threads = 2};
  LoaderOptions bounded = unbounded;
  bounded.cache_budget_bytes = 4 * 5;  // room for five images
  DataLoader all(folder, kGrey, unbounded), some(folder, kGrey, bounded);
  for (std::int64_t epoch = 0; epoch < 3; ++epoch) {
    CAPTURE(epoch);
    const std::vector<Batch> expected = epoch_batches(all, epoch), got = epoch_batches(some, epoch);
    REQUIRE(got.size() == expected.size());
    for (std::size_t b = 0; b < got.size(); ++b) {
      CHECK(got[b].indices == expected[b].indices);
      CHECK(got[b].images.to_vector<float>() == expected[b].images.to_vector<float>());
    }
  }
  CHECK(all.cached_bytes() == 21 * 4);
  CHECK(some.cached_bytes() == 5 * 4);
  LoaderOptions uncached = unbounded;
  uncached.cache_decoded = false;
  DataLoader none(folder, kGrey, uncached);
  epoch_batches(none, 0);
  CHECK(none.cached_bytes() == 0);
  CHECK(kiln::data::default_cache_budget_bytes() > 0);
}

TEST_CASE("data/loader: the order is fixed by the seed and the epoch") {
  const TemporaryFolder root;
  const ImageFolder folder = make_folder(root);
  DataLoader first(folder, kGrey, {.batch_size = 5, .seed = 3});
  DataLoader second(folder, kGrey, {.batch_size = 5, .seed = 3});
  const std::vector<std::size_t> epoch0 = epoch_order(first, 0);
  CHECK(epoch0 == epoch_order(second, 0));
  CHECK(epoch0 == epoch_order(first, 0));  // restarting an epoch repeats it
  const std::vector<std::size_t> epoch1 = epoch_order(first, 1);
  CHECK(epoch1 != epoch0);
  CHECK(epoch1 == epoch_order(second, 1));
  DataLoader other_seed(folder, kGrey, {.batch_size = 5, .seed = 4});
  CHECK(epoch_order(other_seed, 0) != epoch0);

  DataLoader in_order(folder, kGrey, {.batch_size = 5, .shuffle = false});
  std::vector<std::size_t> all(folder.size());
  std::iota(all.begin(), all.end(), std::size_t{0});
  CHECK(epoch_order(in_order, 0) == all);
  CHECK(epoch_order(in_order, 1) == all);
}

TEST_CASE("data/loader: drop_last leaves out the short last batch") {
  const TemporaryFolder root;
  const ImageFolder folder = make_folder(root);
  DataLoader loader(folder, kGrey, {.batch_size = 4, .drop_last = true});
  CHECK(loader.batches_per_epoch() == 5);
  const std::vector<Batch> batches = epoch_batches(loader, 0);
  CHECK(batches.size() == 5);
  for (const Batch& batch : batches) CHECK(batch.images.size(0) == 4);
}

TEST_CASE(
    "data/loader: threads 0 (on 1 or 2 compute threads), 1 and 4, cached or not, give identical batches, "
    "augmentation included") {
  const kiln::testing::DispatchGuard guard;  // restores the compute threads
  const TemporaryFolder root;
  for (int i = 0; i < 12; ++i) {
    kiln::test::write_image(root / (i % 2 == 0 ? "even" : "odd") / (std::to_string(i) + ".png"),
                            kiln::test::pattern_image(8, 8, 3, i));
  }
  const ImageFolder folder = ImageFolder::scan(root.path());
  const Preprocessing preprocessing{
      3, 6, 6, ResizePolicy::ShorterSideThenCenterCrop, {0.5f, 0.4f, 0.3f}, {0.2f, 0.3f, 0.25f}};
  const kiln::data::Augmentation augmentation{.crop_padding = 1,
                                              .horizontal_flip = true,
                                              .brightness = 0.3f,
                                              .contrast = 0.3f,
                                              .saturation = 0.3f,
                                              .cutout = 2};
  auto run = [&](int threads, bool cache) {
    DataLoader loader(folder, preprocessing,
                      {.batch_size = 5,
                       .seed = 9,
                       .threads = threads,
                       .cache_decoded = cache,
                       .augmentation = augmentation});
    std::vector<std::vector<float>> images;
    for (const std::int64_t epoch : {0, 1}) {
      for (const Batch& batch : epoch_batches(loader, epoch))
        images.push_back(batch.images.to_vector<float>());
    }
    return images;
  };
  kiln::kernels::set_compute_threads(1);
  const auto reference = run(0, true);
  CHECK(reference.size() == 6);  // 3 batches of 5, 5, 2 in each of two epochs
  kiln::kernels::set_compute_threads(2);  // threads 0: the samples spread over two compute threads
  CHECK(run(0, true) == reference);
  CHECK(run(0, false) == reference);
  CHECK(run(1, true) == reference);
  CHECK(run(4, true) == reference);
  CHECK(run(4, false) == reference);
  // Augmentation differs between epochs: the same sample is changed differently.
  DataLoader plain(folder, preprocessing, {.batch_size = 12, .shuffle = false, .augmentation = augmentation});
  CHECK(epoch_batches(plain, 0)[0].images.to_vector<float>() !=
        epoch_batches(plain, 1)[0].images.to_vector<float>());
}

TEST_CASE(
    "data/loader: a sample is the preprocessing of its resized crop's window, then augment, from its "
    "own state") {
  const TemporaryFolder root;
  for (int i = 0; i < 6; ++i) {
    kiln::test::write_image(root / (i % 2 == 0 ? "even" : "odd") / (std::to_string(i) + ".png"),
                            kiln::test::pattern_image(12, 16, 3, i));
  }
  const ImageFolder folder = ImageFolder::scan(root.path());
  const Preprocessing preprocessing{3, 8, 8, ResizePolicy::Stretch, {0.5f, 0.4f, 0.3f}, {0.2f, 0.3f, 0.25f}};
  const std::int64_t epoch = 3;
  // What the loader must make of sample `index`: its state holds `draws` draws, at index * blocks.
  const auto expected = [&](const kiln::data::Augmentation& augmentation, std::size_t index) {
    const kiln::data::Image image = kiln::data::decode_image_file(folder.samples()[index].path);
    const kiln::kernels::PhiloxState state{
        11, kiln::data::kAugmentationStream + epoch,
        index * kiln::kernels::philox_blocks_for(kiln::data::draws_per_sample(augmentation))};
    Tensor chw = preprocessing.apply(
        image, kiln::data::resized_crop_window(preprocessing.window(image), augmentation, state));
    kiln::data::augment(chw, augmentation, preprocessing, state);
    return chw.to_vector<float>();
  };
  const auto made = [&](const kiln::data::Augmentation& augmentation) {
    DataLoader loader(folder, preprocessing,
                      {.batch_size = 6, .shuffle = false, .seed = 11, .augmentation = augmentation});
    return epoch_batches(loader, epoch)[0].images.to_vector<float>();
  };
  const std::size_t image_floats = 3 * 8 * 8;
  for (const kiln::data::Augmentation& augmentation :
       {kiln::data::Augmentation{.crop_padding = 2, .horizontal_flip = true, .cutout = 3},
        kiln::data::Augmentation{
            .horizontal_flip = true, .vertical_flip = true, .rotate90 = true, .min_crop_scale = 0.3f},
        kiln::data::Augmentation{.min_crop_scale = 0.5f}}) {
    CAPTURE(augmentation.to_json().dump());
    const std::vector<float> images = made(augmentation);
    REQUIRE(images.size() == 6 * image_floats);
    for (std::size_t index = 0; index < 6; ++index) {
      CAPTURE(index);
      CHECK(std::vector<float>(images.begin() + static_cast<std::ptrdiff_t>(index * image_floats),
                               images.begin() + static_cast<std::ptrdiff_t>((index + 1) * image_floats)) ==
            expected(augmentation, index));
    }
  }
  // The first operations alone take two blocks a sample, so their draws are what they were before the
  // later operations came; a resized crop moves what the images hold.
  CHECK(kiln::data::draws_per_sample({.crop_padding = 2, .horizontal_flip = true, .cutout = 3}) == 8);
  CHECK(made({.min_crop_scale = 0.5f}) != made({}));
}

TEST_CASE("data/loader: a corrupt file is skipped with one warning, or with strict is an error naming it") {
  const TemporaryFolder root;
  make_folder(root);
  const std::filesystem::path corrupt = root / "b" / "10x.png";
  kiln::test::write_bytes(corrupt, "this is not a PNG");
  const ImageFolder folder = ImageFolder::scan(root.path());
  REQUIRE(folder.size() == 22);

  SUBCASE("skipped") {
    const kiln::testing::DispatchGuard guard;
    kiln::kernels::set_compute_threads(2);
    for (const auto& [batch_size, threads] : {std::pair{4, 2}, {1, 2}, {4, 0}, {3, 0}}) {
      CAPTURE(batch_size);
      CAPTURE(threads);
      DataLoader loader(folder, kGrey, {.batch_size = batch_size, .seed = 1, .threads = threads});
      for (const std::int64_t epoch : {0, 1}) {
        const std::vector<std::size_t> order = epoch_order(loader, epoch);
        CHECK(order.size() == 21);
        for (const std::size_t index : order) CHECK(folder.samples()[index].path != corrupt);
      }
      CHECK(loader.skipped_files() == 1);  // once, however many epochs
      REQUIRE(loader.warnings().size() == 1);
      CHECK(loader.warnings()[0].find(corrupt.string() + ": not an image") != std::string::npos);
    }
    // The batch that held the corrupt file closes its gap the same way made inside next() or by workers.
    const auto images = [&](int threads) {
      DataLoader loader(folder, kGrey, {.batch_size = 4, .seed = 1, .threads = threads});
      std::vector<std::vector<float>> all;
      for (const Batch& batch : epoch_batches(loader, 0)) all.push_back(batch.images.to_vector<float>());
      return all;
    };
    CHECK(images(0) == images(2));
  }
  SUBCASE("strict") {
    for (const int threads : {0, 3}) {
      CAPTURE(threads);
      DataLoader loader(folder, kGrey, {.batch_size = 4, .threads = threads, .strict = true});
      CHECK_THROWS_WITH_AS(epoch_batches(loader, 0),
                           doctest::Contains((corrupt.string() + ": not an image").c_str()), Error);
      CHECK(loader.warnings().empty());
    }
  }
}

TEST_CASE("data/loader: destroying or restarting it mid-epoch is clean") {
  const TemporaryFolder root;
  const ImageFolder folder = make_folder(root);
  { DataLoader never_started(folder, kGrey, {.threads = 4}); }
  {
    DataLoader just_started(folder, kGrey, {.batch_size = 1, .threads = 4, .prefetch_batches = 2});
    just_started.start_epoch(0);
  }
  {
    DataLoader one_batch(folder, kGrey, {.batch_size = 2, .threads = 4});
    one_batch.start_epoch(0);
    CHECK(one_batch.next());
  }
  // Restarting in the middle of an epoch drops the old work; the new epoch is whole.
  DataLoader loader(folder, kGrey, {.batch_size = 2, .seed = 5, .threads = 3});
  loader.start_epoch(0);
  CHECK(loader.next());
  std::vector<std::size_t> order = epoch_order(loader, 1);
  std::sort(order.begin(), order.end());
  CHECK(order.size() == folder.size());
  CHECK(std::adjacent_find(order.begin(), order.end()) == order.end());
}

TEST_CASE("data/loader: errors for misuse name the problem") {
  const TemporaryFolder root;
  const ImageFolder folder = make_folder(root);
  DataLoader loader(folder, kGrey, {});
  CHECK_THROWS_WITH_AS(loader.next(), doctest::Contains("call start_epoch(epoch) before next()"), Error);
  CHECK_THROWS_WITH_AS(loader.start_epoch(-1), doctest::Contains("epoch must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(DataLoader(folder, kGrey, {.batch_size = 0}),
                       doctest::Contains("batch_size must be positive"), Error);
  CHECK_THROWS_WITH_AS(DataLoader(folder.subset({}), kGrey, {}), doctest::Contains("holds no samples"),
                       Error);
  Preprocessing no_mean = kGrey;
  no_mean.mean.clear();
  CHECK_THROWS_WITH_AS(DataLoader(folder, no_mean, {}),
                       doctest::Contains("'mean' needs one value per channel"), Error);
}

}  // namespace data_loader_test
