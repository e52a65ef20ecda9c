// Tiny training runs for tests: image folders made of copies of the bundled CIFAR-10 subset's images and
// a lenet5 configuration, so that a run of a few epochs takes a fraction of a second:
//   const fs::path data = make_two_class_data(scratch.path() / "data", 6, 3);
//   train::TrainConfig config = tiny_lenet5_config(data, scratch.path() / "run", /*seed=*/5);
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "train/trainer.hpp"

namespace kiln::testing {

inline const std::filesystem::path kCifarSubset =
    std::filesystem::path(KILN_SOURCE_DIR) / "assets" / "cifar10-subset";

// Copies the first `count` images (by file name) of kCifarSubset/<split>/<class_name> into
// destination/<class_name>/, which it creates.
inline void copy_cifar_images(const std::string& split, const std::string& class_name, int count,
                              const std::filesystem::path& destination) {
  const std::filesystem::path source = kCifarSubset / split / class_name;
  std::vector<std::filesystem::path> images;
  for (const auto& entry : std::filesystem::directory_iterator(source)) images.push_back(entry.path());
  std::sort(images.begin(), images.end());
  images.resize(std::min(images.size(), static_cast<std::size_t>(count)));
  std::filesystem::create_directories(destination / class_name);
  for (const auto& image : images)
    std::filesystem::copy_file(image, destination / class_name / image.filename());
}

// root/train/{airplane, cat} with `train_images` each and root/test/{airplane, cat} with `test_images` each.
inline std::filesystem::path make_two_class_data(const std::filesystem::path& root, int train_images,
                                                 int test_images) {
  for (const char* name : {"airplane", "cat"}) {
    copy_cifar_images("train", name, train_images, root / "train");
    copy_cifar_images("test", name, test_images, root / "test");
  }
  return root;
}

// lenet5, one epoch in batches of 4 at learning rate 0.05, images decoded on the calling thread.
inline train::TrainConfig tiny_lenet5_config(const std::filesystem::path& data,
                                             const std::filesystem::path& run_dir, std::uint64_t seed) {
  return {.data = data,
          .run_dir = run_dir,
          .model = "lenet5",
          .epochs = 1,
          .batch_size = 4,
          .learning_rate = 0.05,
          .seed = seed,
          .loader_threads = 0};
}

}  // namespace kiln::testing
