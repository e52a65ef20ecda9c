// DeviceBatches (train/device_batches.hpp): the loader's batches, moved to the model's device with one batch
// always in flight on the copy stream. Whatever the overlap, each batch handed out must hold exactly what the
// loader made, in the loader's order, and be on the device. On the CPU emulator the copy stream's work runs
// only once something waits for it, so a batch handed out before its copy was ordered would hold NaN bytes
// here, and a staging buffer refilled too early would hold the next batch's.
#include "train/device_batches.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <vector>

#include "data/dataset.hpp"
#include "data/loader.hpp"
#include "data/preprocessing.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"

namespace train_device_batches_test {

using namespace kiln;
namespace fs = std::filesystem;

namespace {

const data::Preprocessing kPreprocessing{
    .channels = 3, .height = 32, .width = 32, .mean = {0.5f, 0.4f, 0.3f}, .std = {0.2f, 0.25f, 0.3f}};

// Shuffled, augmented, batches of 5 over 13 images a class: the last batch of each epoch is short.
data::LoaderOptions options() {
  return {.batch_size = 5,
          .seed = 17,
          .threads = 0,
          .augmentation = data::Augmentation{.crop_padding = 4, .horizontal_flip = true}};
}

// Runs `epochs` epochs of a DeviceBatches on `device` beside a twin loader on the CPU, checking each batch.
void check_batches_match(Device device, std::int64_t epochs) {
  testing::ScratchFolder scratch("kiln-device-batches-test", "data");
  const fs::path data = testing::make_two_class_data(scratch.path(), 13, 1);
  const data::ImageFolder folder = data::ImageFolder::scan(data / "train");
  data::DataLoader reference(folder, kPreprocessing, options());
  data::DataLoader source(folder, kPreprocessing, options());
  train::DeviceBatches batches(source, device);
  for (std::int64_t epoch = 0; epoch < epochs; ++epoch) {
    reference.start_epoch(epoch);
    batches.start_epoch(epoch);
    int count = 0;
    while (std::optional<data::Batch> expected = reference.next()) {
      INFO("epoch ", epoch, ", batch ", count);
      std::optional<data::Batch> got = batches.next();
      REQUIRE(got.has_value());
      CHECK(got->images.device() == device);
      CHECK(got->labels.device() == device);
      CHECK(got->indices == expected->indices);
      CHECK(got->images.shape() == expected->images.shape());
      CHECK(testing::bitwise_equal(got->images.to(Device::cpu()).to_vector<float>(),
                                   expected->images.to_vector<float>()));
      CHECK(got->labels.to(Device::cpu()).to_vector<std::int64_t>() ==
            expected->labels.to_vector<std::int64_t>());
      ++count;
    }
    CHECK(count == 6);  // 26 images in batches of 5
    CHECK_FALSE(batches.next().has_value());
  }
}

TEST_CASE("device batches: on the CPU the loader's batches pass through") {
  check_batches_match(Device::cpu(), 2);
}

TEST_CASE("cuda: device batches hold the loader's batches, in its order, on the device, epoch after epoch") {
  if (!testing::have_gpu()) return;
  check_batches_match(Device::cuda(), 3);
}

}  // namespace

}  // namespace train_device_batches_test
