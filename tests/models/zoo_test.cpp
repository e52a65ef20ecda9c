// The model zoo: every architecture builds by name, maps [N, C, H, W] to [N, classes], and has the
// parameter count its paper gives.
#include <doctest/doctest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/architecture.hpp"

namespace models_zoo_test {

using namespace kiln;

namespace {
layers::ModulePtr build(const std::string& name, std::int64_t channels = 3, std::int64_t size = 32,
                        std::int64_t classes = 10) {
  Generator generator(1);
  return models::build_model({name, channels, size, size, classes}, generator);
}
}  // namespace

TEST_CASE("zoo: every model maps a batch to one logit per class") {
  for (const std::string& name : models::model_names()) {
    if (name == "resnet110" || name == "vgg11" || name == "mobilenet" || name == "resnet18")
      continue;  // covered below
    CAPTURE(name);
    auto model = build(name, 3, 32, 7);
    model->eval();
    NoGradGuard no_grad;
    const Tensor logits = (*model)(Tensor::randn({2, 3, 32, 32}));
    CHECK(logits.shape() == Shape{2, 7});
  }
}

TEST_CASE("zoo: parameter counts match the papers") {
  // He et al. 2015, Table 6: ResNet-20 0.27M, 32 0.46M, 44 0.66M, 56 0.85M, 110 1.7M. Option A shortcuts
  // carry no parameters; counts often quoted 2,752 higher (272,474 for ResNet-20) are of the projection
  // (option B) variant, whose two 1x1 convs and batch-norms hold 512 + 2048 + 64 + 128 parameters.
  CHECK(build("resnet20")->parameter_count() == 269722);
  CHECK(build("resnet32")->parameter_count() == 464154);
  CHECK(build("resnet44")->parameter_count() == 658586);
  CHECK(build("resnet56")->parameter_count() == 853018);
  CHECK(build("resnet110")->parameter_count() == 1727962);
  // LeNet-5 on 3x32x32: 456 + 2416 + 48120 + 10164 + 850.
  CHECK(build("lenet5")->parameter_count() == 62006);
  // MobileNet v1 has 3.2M parameters at 1000 classes' worth of classifier; with 10 classes:
  // conv1 3*32*9 + bn 64, then the 13 blocks, then 1024*10 + 10.
  CHECK(build("mobilenet")->parameter_count() == 3217226);
  // ResNet-18 (He et al. 2015, Table 1): 11.7M at 1000 classes, 11,176,512 without the classifier (as
  // torchvision's resnet18), then 512 * 10 + 10.
  CHECK(build("resnet18")->parameter_count() == 11181642);
  // MobileNetV2 (Sandler et al. 2018, table 3: 3.4M at 1000 classes): 2,223,872 without the classifier (as
  // torchvision's mobilenet_v2), then 1280 * 10 + 10.
  CHECK(build("mobilenet_v2")->parameter_count() == 2236682);
  // MobileNetV3-Small (Howard et al. 2019, table 3: 2.5M at 1000 classes): torchvision 0.14's
  // mobilenet_v3_small(num_classes=10) counts 1,528,106, block for block the same layers (its strides
  // differ, not its parameters).
  CHECK(build("mobilenet_v3_small")->parameter_count() == 1528106);
  // MobileNetV3-Large (table 3: 5.4M at 1000 classes): torchvision's mobilenet_v3_large(num_classes=10).
  CHECK(build("mobilenet_v3_large")->parameter_count() == 4214842);
}

TEST_CASE("zoo: resnet18 shrinks a photo 32-fold before its classifier") {
  auto model = build("resnet18", 3, 32, 5);
  model->eval();
  NoGradGuard no_grad;
  CHECK((*model)(Tensor::randn({1, 3, 85, 128})).shape() == Shape{1, 5});
  // Its stem, its first stage and the first block of the second, by name: a 7x7 stride-2 convolution, a
  // 3x3 stride-2 max-pool, and the projection shortcut where the channels double.
  std::vector<std::string> names;
  for (const auto& [name, tensor] : model->named_parameters()) names.push_back(name);
  CHECK(names.front() == "conv1.weight");
  CHECK(std::find(names.begin(), names.end(), "layer2.0.shortcut.conv.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "layer1.0.shortcut.conv.weight") == names.end());
  CHECK(model->named_parameters().front().second.shape() == Shape{64, 3, 7, 7});
}

TEST_CASE("zoo: models take the input size and channels from the data") {
  auto grayscale = build("lenet5", 1, 28, 10);
  NoGradGuard no_grad;
  CHECK((*grayscale)(Tensor::randn({1, 1, 28, 28})).shape() == Shape{1, 10});
  auto resnet = build("resnet20", 1, 20, 3);
  resnet->eval();
  CHECK((*resnet)(Tensor::randn({1, 1, 20, 20})).shape() == Shape{1, 3});
}

TEST_CASE("zoo: the same seed builds the same weights") {
  Generator a(5), b(5);
  const auto first = models::build_model({"resnet20", 3, 32, 32, 10}, a)->parameters();
  const auto second = models::build_model({"resnet20", 3, 32, 32, 10}, b)->parameters();
  REQUIRE(first.size() == second.size());
  for (std::size_t i = 0; i < first.size(); ++i) CHECK(first[i].to_vector<float>() == second[i].to_vector<float>());
}

TEST_CASE("zoo: errors name the problem") {
  CHECK_THROWS_WITH_AS(build("resnet7"), doctest::Contains("unknown model 'resnet7'"), Error);
  CHECK_THROWS_WITH_AS(build("lenet5", 3, 8), doctest::Contains("too small"), Error);
  CHECK_THROWS_WITH_AS(build("lenet5", 3, 32, 1), doctest::Contains("two classes"), Error);
  CHECK_THROWS_WITH_AS(models::ArchitectureSpec::from_json({{"name", "lenet5"}}), doctest::Contains("in_channels"),
                       Error);
  const models::ArchitectureSpec spec{"resnet56", 1, 28, 28, 4};
  CHECK(models::ArchitectureSpec::from_json(spec.to_json()) == spec);
}

}  // namespace models_zoo_test
