// Tests of test-time augmentation (train/tta.hpp): which views a training augmentation gives, what each view
// does to an image, and that the averaged logits are the logits of the averaged probabilities.
#include "train/tta.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "core/ops.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace train_tta_test {

using kiln::DType;
using kiln::Tensor;
using kiln::data::Augmentation;
using kiln::train::apply_view;
using kiln::train::averaged_logits;
using kiln::train::tta_views;
using kiln::train::TtaView;

namespace {

// [1, 1, 3, 3] holding 1 .. 9 row by row.
Tensor three_by_three() {
  return Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
}

// Per image, one logit per class from its pixels weighted by position, so that every view of an image
// gives other logits: logits[n][k] = sum over (c, y, x) of images[n, c, y, x] * (k + 1) * (3 * y + x + 1) / 40.
Tensor position_logits(const Tensor& images, std::int64_t classes) {
  const std::int64_t n = images.shape()[0], c = images.shape()[1], h = images.shape()[2], w = images.shape()[3];
  const std::vector<float> values = images.contiguous().to_vector<float>();
  std::vector<float> logits;
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t k = 0; k < classes; ++k) {
      double total = 0;
      for (std::int64_t ch = 0; ch < c; ++ch)
        for (std::int64_t y = 0; y < h; ++y)
          for (std::int64_t x = 0; x < w; ++x)
            total += values[static_cast<std::size_t>(((i * c + ch) * h + y) * w + x)] *
                     static_cast<double>((k + 1) * (3 * y + x + 1)) / 40.0;
      logits.push_back(static_cast<float>(total));
    }
  }
  return Tensor::from_vector(logits, {n, classes});
}

}  // namespace

TEST_CASE("tta: the views are the distinct symmetries the training augmentation drew from") {
  CHECK(tta_views(Augmentation{}).size() == 1);
  CHECK(tta_views({.crop_padding = 4, .brightness = 0.2f, .cutout = 8, .min_crop_scale = 0.5f}).size() == 1);
  CHECK(tta_views({.horizontal_flip = true}).size() == 2);
  CHECK(tta_views({.vertical_flip = true}).size() == 2);
  CHECK(tta_views({.horizontal_flip = true, .vertical_flip = true}).size() == 4);
  CHECK(tta_views({.rotate90 = true}).size() == 4);
  CHECK(tta_views({.horizontal_flip = true, .rotate90 = true}).size() == 8);
  CHECK(tta_views({.horizontal_flip = true, .vertical_flip = true, .rotate90 = true}).size() == 8);
  // The image as it is comes first, and no two views show the same image.
  const std::vector<TtaView> all = tta_views({.horizontal_flip = true, .vertical_flip = true, .rotate90 = true});
  CHECK(apply_view(three_by_three(), all[0]).to_vector<float>() == three_by_three().to_vector<float>());
  std::set<std::vector<float>> shown;
  for (const TtaView& view : all) shown.insert(apply_view(three_by_three(), view).to_vector<float>());
  CHECK(shown.size() == 8);
}

TEST_CASE("tta: a view mirrors, turns upside down and turns counterclockwise, in either layout") {
  const Tensor image = three_by_three();
  CHECK(apply_view(image, {.mirror = true}).to_vector<float>() == std::vector<float>{3, 2, 1, 6, 5, 4, 9, 8, 7});
  CHECK(apply_view(image, {.upside_down = true}).to_vector<float>() ==
        std::vector<float>{7, 8, 9, 4, 5, 6, 1, 2, 3});
  CHECK(apply_view(image, {.quarter_turns = 1}).to_vector<float>() ==
        std::vector<float>{3, 6, 9, 2, 5, 8, 1, 4, 7});
  CHECK(apply_view(image, {.quarter_turns = 2}).to_vector<float>() ==
        std::vector<float>{9, 8, 7, 6, 5, 4, 3, 2, 1});
  CHECK(apply_view(image, {.quarter_turns = 3}).to_vector<float>() ==
        std::vector<float>{7, 4, 1, 8, 5, 2, 9, 6, 3});
  // Mirrored first, then turned.
  CHECK(apply_view(image, {.mirror = true, .quarter_turns = 1}).to_vector<float>() ==
        std::vector<float>{1, 4, 7, 2, 5, 8, 3, 6, 9});
  // A channels-last batch shows the same.
  const Tensor batch =
      Tensor::from_vector(kiln::testing::random_values<float>(2 * 3 * 4 * 4, 6), {2, 3, 4, 4});
  for (const TtaView& view : tta_views({.horizontal_flip = true, .vertical_flip = true, .rotate90 = true})) {
    const Tensor shown = apply_view(batch.channels_last(), view);
    CHECK(shown.is_channels_last());
    CHECK(shown.contiguous().to_vector<float>() == apply_view(batch, view).to_vector<float>());
  }
  CHECK_THROWS_WITH_AS(apply_view(Tensor::zeros({1, 1, 2, 3}), {.quarter_turns = 1}),
                       doctest::Contains("a quarter turn needs square images"), kiln::Error);
}

TEST_CASE("tta: the averaged logits are those of the mean probability, single-label and multi-label") {
  const Tensor images = Tensor::from_vector(kiln::testing::random_values<float>(3 * 2 * 3 * 3, 9), {3, 2, 3, 3});
  const std::vector<TtaView> views = tta_views({.horizontal_flip = true, .rotate90 = true});
  const auto logits_of = [](const Tensor& x) { return position_logits(x, 4); };
  // The mean of each view's probabilities, in double, from the views' own logits.
  const auto mean_probability = [&](bool multi_label) {
    std::vector<double> total(3 * 4, 0.0);
    for (const TtaView& view : views) {
      const std::vector<float> logits = logits_of(apply_view(images, view)).to_vector<float>();
      for (std::size_t i = 0; i < 3; ++i) {
        double normalizer = 0;
        for (std::size_t k = 0; k < 4; ++k) normalizer += std::exp(static_cast<double>(logits[i * 4 + k]));
        for (std::size_t k = 0; k < 4; ++k) {
          const double z = logits[i * 4 + k];
          total[i * 4 + k] += multi_label ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / normalizer;
        }
      }
    }
    for (double& value : total) value /= static_cast<double>(views.size());
    return total;
  };
  const std::vector<double> single = mean_probability(false), multi = mean_probability(true);
  const std::vector<float> softmax_of_average =
      softmax(averaged_logits(logits_of, images, &views, false), 1).to_vector<float>();
  const std::vector<float> sigmoid_of_average =
      sigmoid(averaged_logits(logits_of, images, &views, true)).to_vector<float>();
  for (std::size_t i = 0; i < single.size(); ++i) {
    CHECK(softmax_of_average[i] == doctest::Approx(single[i]).epsilon(1e-5));
    CHECK(sigmoid_of_average[i] == doctest::Approx(multi[i]).epsilon(1e-5));
  }
  // One view, the image as it is: the model's own logits.
  const std::vector<TtaView> one = tta_views(Augmentation{});
  CHECK(averaged_logits(logits_of, images, &one, false).to_vector<float>() ==
        logits_of(images).to_vector<float>());
  CHECK(averaged_logits(logits_of, images, nullptr, false).to_vector<float>() ==
        logits_of(images).to_vector<float>());
}

TEST_CASE("tta: logits far past where a probability rounds to 0 or 1 stay finite") {
  const Tensor images = Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {1, 1, 2, 2});
  // Logits of +-300 and 0 that swap with the mirror: each view is sure of another class.
  const auto logits_of = [](const Tensor& x) {
    const std::vector<float> v = x.contiguous().to_vector<float>();
    return Tensor::from_vector(std::vector<float>{v[0] < v[1] ? 300.0f : -300.0f, 0.0f}, {1, 2});
  };
  const std::vector<TtaView> views = tta_views({.horizontal_flip = true});
  for (const bool multi_label : {false, true}) {
    for (const float value : averaged_logits(logits_of, images, &views, multi_label).to_vector<float>())
      CHECK(std::isfinite(value));
  }
}

TEST_CASE("tta: a checkpoint header gives the augmentation it trained with, or none") {
  const Augmentation trained{.horizontal_flip = true, .rotate90 = true};
  CHECK(kiln::train::trained_augmentation({{"config", {{"augmentation", trained.to_json()}}}}) == trained);
  CHECK(kiln::train::trained_augmentation(nlohmann::json::object()) == Augmentation{});
}

}  // namespace train_tta_test
