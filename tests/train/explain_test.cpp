// Grad-CAM on a network small enough to know the answer, the worst-misclassified ranking, and the
// preprocessing's picture of what the model sees.
#include <doctest/doctest.h>

#include <memory>

#include "core/error.hpp"
#include "core/generator.hpp"
#include "layers/layers.hpp"
#include "train/evaluate.hpp"
#include "train/grad_cam.hpp"

namespace train_explain_test {

using namespace kiln;

namespace {

// An 8x8 RGB image, black but for a bright red square in its top-left quarter.
data::Image red_square() {
  data::Image image{8, 8, 3, std::vector<std::uint8_t>(8 * 8 * 3, 0)};
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 4; ++x) image.pixels[static_cast<std::size_t>((y * 8 + x) * 3)] = 255;
  }
  return image;
}

// conv 1x1 that passes the red channel through, relu, global average pool, and a linear layer that scores
// class "red" by the pooled red and class "dark" by its negative. For class "red", d score / d A is a
// positive constant, so Grad-CAM is the red channel itself: bright exactly on the square.
train::LoadedModel red_detector() {
  Generator generator(1);
  auto conv = std::make_shared<layers::Conv2d>(3, 1, 1, generator, layers::Conv2dLayerOptions{.bias = false});
  Tensor(conv->weight()).copy_(Tensor::from_vector<float>({1, 0, 0}, {1, 3, 1, 1}));
  auto fc = std::make_shared<layers::Linear>(1, 2, generator, false);
  Tensor(fc->weight()).copy_(Tensor::from_vector<float>({1, -1}, {2, 1}));
  auto net = std::make_shared<layers::Sequential>();
  net->add("conv", conv).add("relu", std::make_shared<layers::ReLU>());
  net->add("pool", std::make_shared<layers::GlobalAvgPool2d>()).add("fc", fc);
  train::LoadedModel loaded;
  loaded.model = net;
  loaded.classes = {"red", "dark"};
  loaded.preprocessing = {.channels = 3, .height = 8, .width = 8, .mean = {0, 0, 0}, .std = {1, 1, 1}};
  return loaded;
}

}  // namespace

TEST_CASE("explain: Grad-CAM of a red detector lights up the red square and nothing else") {
  const train::Explanation explanation = train::grad_cam(red_detector(), red_square(), 2);
  CHECK(explanation.feature_layer == "relu");
  REQUIRE(explanation.maps.size() == 2);
  const train::ClassActivationMap& red = explanation.maps[0];
  CHECK(red.name == "red");
  CHECK(red.probability > 0.5);
  REQUIRE(red.height == 8);
  REQUIRE(red.width == 8);
  for (int y = 0; y < 8; ++y) {
    for (int x = 0; x < 8; ++x) {
      const float v = red.values[static_cast<std::size_t>(y * 8 + x)];
      CHECK(v == doctest::Approx(y < 4 && x < 4 ? 1.0 : 0.0));
    }
  }
  // The other class's score falls as the red rises: every weight alpha is negative, nothing is lit.
  const train::ClassActivationMap& dark = explanation.maps[1];
  CHECK(dark.name == "dark");
  for (float v : dark.values) CHECK(v == 0.0f);
  // The picture of what the model saw is the image itself here (same size, no normalization).
  CHECK(explanation.seen.pixels == red_square().pixels);
}

TEST_CASE("explain: a model without a spatial layer is refused with a clear error") {
  Generator generator(2);
  auto net = std::make_shared<layers::Sequential>();
  net->add("flatten", std::make_shared<layers::Flatten>())
      .add("fc", std::make_shared<layers::Linear>(192, 2, generator));
  train::LoadedModel loaded;
  loaded.model = net;
  loaded.classes = {"a", "b"};
  loaded.preprocessing = {.channels = 3, .height = 8, .width = 8, .mean = {0, 0, 0}, .std = {1, 1, 1}};
  CHECK_THROWS_WITH_AS(train::grad_cam(loaded, red_square(), 1),
                       doctest::Contains("no layer with a spatial output"), Error);
}

TEST_CASE("eval: the worst misclassified are the wrong answers with the least probability on the truth") {
  const std::vector<train::SampleOutcome> outcomes{
      {0, 1, 1, 0.9, 0.9},  // right
      {1, 0, 2, 0.3, 0.6},  // wrong, truth at 0.3
      {2, 2, 0, 0.1, 0.8},  // wrong, truth at 0.1: the worst
      {3, 1, 0, 0.2, 0.7},  // wrong, truth at 0.2
  };
  const std::vector<train::SampleOutcome> worst = train::worst_misclassified(outcomes, 2);
  REQUIRE(worst.size() == 2);
  CHECK(worst[0].sample == 2);
  CHECK(worst[1].sample == 3);
  CHECK(train::worst_misclassified(outcomes, 10).size() == 3);
}

TEST_CASE("preprocessing: as_seen undoes the normalization of what apply gives the model") {
  data::Image image = red_square();
  image.pixels[5] = 77;
  const data::Preprocessing preprocessing{
      .channels = 3, .height = 8, .width = 8, .mean = {0.2f, 0.4f, 0.5f}, .std = {0.3f, 0.25f, 0.5f}};
  CHECK(preprocessing.as_seen(image).pixels == image.pixels);
  const data::Preprocessing gray{.channels = 1, .height = 8, .width = 8, .mean = {0.5f}, .std = {0.25f}};
  const data::Image seen = gray.as_seen(image);
  CHECK(seen.channels == 1);
  CHECK(seen.pixels.size() == 64);
}

}  // namespace train_explain_test
