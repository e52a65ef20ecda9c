// Model summaries (models/summary.hpp): rows through nested Sequentials with dotted names, one row a block,
// output shapes, parameters that add up to the model's, FLOPs worked by hand for single layers and blocks
// (and ResNet-20's 41 M multiply-adds), the model's mode restored, and the JSON form.
#include "models/summary.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "models/architecture.hpp"

namespace models_summary_test {

using namespace kiln;
using models::ArchitectureSpec;

namespace {

ArchitectureSpec described(std::vector<std::string> layers, std::int64_t channels, std::int64_t size,
                           std::int64_t classes) {
  ArchitectureSpec spec{"net", channels, size, size, classes};
  spec.layers = std::move(layers);
  return spec;
}

models::ModelSummary summary_of(const ArchitectureSpec& spec) {
  Generator generator(1);
  layers::ModulePtr model = models::build_model(spec, generator);
  return models::summarize(*model, spec.in_channels, spec.height, spec.width);
}

}  // namespace

TEST_CASE("summary: single layers' shapes, parameters and FLOPs by hand") {
  // conv 3 -> 8 3x3 same, no bias, 16x16: 216 weights, 2 * 216 * 256 FLOPs; maxpool -> 8x8; conv 8 -> 4
  // 1x1 stride 2 with bias: 36 parameters, 2 * 32 * 16 FLOPs at 4x4; flatten 64; linear 64 -> 5: 325
  // parameters, 2 * 320 FLOPs.
  const models::ModelSummary summary = summary_of(described(
      {"conv 8 3 padding=same bias=false", "relu", "maxpool 2", "conv 4 1 stride=2", "flatten", "linear"}, 3,
      16, 5));
  REQUIRE(summary.layers.size() == 6);
  const std::vector<Shape> outputs{{8, 16, 16}, {8, 16, 16}, {8, 8, 8}, {4, 4, 4}, {64}, {5}};
  const std::vector<std::int64_t> parameters{216, 0, 0, 36, 0, 325};
  const std::vector<std::int64_t> flops{2 * 216 * 256, 0, 0, 2 * 32 * 16, 0, 2 * 320};
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    CAPTURE(i);
    CHECK(summary.layers[i].output == outputs[i]);
    CHECK(summary.layers[i].parameters == parameters[i]);
    CHECK(summary.layers[i].flops == flops[i]);
  }
  CHECK(summary.layers[0].name == "conv1");
  CHECK(summary.layers[0].module.starts_with("Conv2d(3, 8, kernel=3x3"));
  CHECK(summary.input == Shape{3, 16, 16});
  CHECK(summary.parameters == 216 + 36 + 325);
  CHECK(summary.flops == 2 * 216 * 256 + 2 * 32 * 16 + 2 * 320);
  CHECK(summary.output_values == 2 * 8 * 256 + 8 * 64 + 64 + 64 + 5);
}

TEST_CASE("summary: a block is one row, its convolutions counted at its output size") {
  // residual 8 -> 16 stride 2 with a projection at 4x4 out: conv1 16 * 8 * 9, conv2 16 * 16 * 9, shortcut
  // 16 * 8 multiply-adds per position; separable 16 -> 8 at 4x4: depthwise 16 * 9, pointwise 8 * 16.
  const models::ModelSummary summary = summary_of(described(
      {"conv 8 1", "residual 16 stride=2 shortcut=projection", "separable 8", "global_avg_pool", "linear"}, 3,
      8, 4));
  REQUIRE(summary.layers.size() == 5);
  CHECK(summary.layers[1].name == "residual1");
  CHECK(summary.layers[1].output == Shape{16, 4, 4});
  CHECK(summary.layers[1].flops == 2 * 16 * (16 * 8 * 9 + 16 * 16 * 9 + 16 * 8));
  CHECK(summary.layers[2].flops == 2 * 16 * (16 * 9 + 8 * 16));
}

TEST_CASE("summary: an inverted residual block's expansion counts its input's size, the rest the output's") {
  // inverted 8 -> 12, expand 2, stride 2, from 8x8 to 4x4: expand 8 -> 16 at 64 positions, the depthwise
  // 16 * 9 and the projection 16 -> 12 at 16.
  const models::ModelSummary summary = summary_of(
      described({"conv 8 1", "inverted 12 stride=2 expand=2", "global_avg_pool", "linear"}, 3, 8, 4));
  REQUIRE(summary.layers.size() == 4);
  CHECK(summary.layers[1].output == Shape{12, 4, 4});
  CHECK(summary.layers[1].flops == 2 * (64 * 8 * 16 + 16 * (16 * 9 + 16 * 12)));
}

TEST_CASE("summary: a squeeze-and-excitation block's 1x1 convolutions count one pixel") {
  // se 4 on 16 channels at 8x8: reduce 16 -> 4 and expand 4 -> 16 on the channel means, 2 * 64 FLOPs each.
  const models::ModelSummary summary =
      summary_of(described({"conv 16 3 padding=same", "se 4", "global_avg_pool", "linear"}, 3, 8, 4));
  REQUIRE(summary.layers.size() == 4);
  CHECK(summary.layers[1].output == Shape{16, 8, 8});
  CHECK(summary.layers[1].parameters == 16 * 4 + 4 + 4 * 16 + 16);
  CHECK(summary.layers[1].flops == 2 * (16 * 4 + 4 * 16));
}

TEST_CASE("summary: nested Sequentials give dotted names; the rows' parameters add up to the model's") {
  Generator generator(1);
  layers::ModulePtr model = models::build_model({"vgg_small", 3, 32, 32, 10}, generator);
  const models::ModelSummary summary = models::summarize(*model, 3, 32, 32);
  CHECK(summary.layers.front().name == "features.0");
  CHECK(summary.layers.back().name == "classifier");
  CHECK(summary.layers.back().output == Shape{10});
  std::int64_t parameters = 0;
  for (const models::LayerSummary& layer : summary.layers) parameters += layer.parameters;
  CHECK(parameters == model->parameter_count());
  CHECK(summary.parameters == model->parameter_count());
  CHECK(model->is_training());  // summarize ran it in eval mode, and put it back
  model->eval();
  models::summarize(*model, 3, 32, 32);
  CHECK_FALSE(model->is_training());
}

TEST_CASE("summary: ResNet-20 is 41 M multiply-adds an image") {
  Generator generator(1);
  layers::ModulePtr model = models::build_model({"resnet20", 3, 32, 32, 10}, generator);
  const models::ModelSummary summary = models::summarize(*model, 3, 32, 32);
  // 3x3 convolutions: the stem 16 * 27 at 1024 positions; per stage s (channels c, positions p) the first
  // block's conv1 reads c/2 (16 in the first stage), everything else c, 9 taps each, 6 convolutions a stage.
  const std::int64_t stem = 16 * 27 * 1024;
  const std::int64_t stage1 = 6 * 16 * 16 * 9 * 1024;
  const std::int64_t stage2 = (5 * 32 * 32 + 32 * 16) * 9 * 256;
  const std::int64_t stage3 = (5 * 64 * 64 + 64 * 32) * 9 * 64;
  CHECK(summary.flops == 2 * (stem + stage1 + stage2 + stage3 + 640));
  CHECK(summary.flops / 2 / 1000000 == 40);  // 40.55 M: the "41 M" usually quoted
}

TEST_CASE("summary: the JSON form carries every row") {
  const models::ModelSummary summary = summary_of(described({"conv 4 3", "flatten", "linear"}, 1, 5, 2));
  const nlohmann::json json = summary.to_json();
  CHECK(json.at("input") == nlohmann::json({1, 5, 5}));
  CHECK(json.at("parameters") == summary.parameters);
  CHECK(json.at("flops") == summary.flops);
  REQUIRE(json.at("layers").size() == 3);
  CHECK(json.at("layers")[0].at("name") == "conv1");
  CHECK(json.at("layers")[0].at("output") == nlohmann::json({4, 3, 3}));
  CHECK(json.at("layers")[2].at("flops") == 2 * 36 * 2);
}

TEST_CASE("summary: an input the model cannot take fails as the model does") {
  Generator generator(1);
  layers::ModulePtr model = models::build_model({"resnet20", 3, 32, 32, 10}, generator);
  CHECK_THROWS_AS(models::summarize(*model, 4, 32, 32), Error);
}

}  // namespace models_summary_test
