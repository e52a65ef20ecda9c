#include "layers/layers.hpp"
#include "models/mobilenet_blocks.hpp"
#include "models/zoo.hpp"

namespace kiln::models {

// input [N, C, H, W] -> conv 3x3 (C -> 32) -> BN -> ReLU6 -> 17 inverted residual blocks (Sandler et al.
// 2018, table 2: kMobileNetV2Stages, mobilenet_blocks.hpp) -> conv 1x1 (320 -> 1280) -> BN -> ReLU6
//   -> global average pool [N, 1280] -> dropout 0.2 -> linear -> [N, classes]
// The stem and the second stage keep stride 1 (ImageNet's 2 and 2), as CIFAR variants do: an input of 32
// reaches the last blocks at 4x4, not 1x1.
layers::ModulePtr build_mobilenet_v2(const ArchitectureSpec& spec, Generator& generator) {
  using namespace layers;
  std::int64_t channels = kMobileNetStemChannels;
  auto net = std::make_shared<Sequential>();
  net->add("conv1", std::make_shared<Conv2d>(spec.in_channels, channels, 3, generator,
                                             Conv2dLayerOptions{.padding = 1, .bias = false}))
      .add("bn1", std::make_shared<BatchNorm2d>(channels))
      .add("relu1", std::make_shared<ReLU6>());
  auto blocks = std::make_shared<Sequential>();
  for (const InvertedStage& stage : kMobileNetV2Stages) {
    for (std::int64_t i = 0; i < stage.repeats; ++i) {
      blocks->add(std::make_shared<InvertedResidual>(channels, stage.channels, i == 0 ? stage.stride : 1,
                                                     stage.expansion, generator));
      channels = stage.channels;
    }
  }
  net->add("blocks", blocks)
      .add("conv2", std::make_shared<Conv2d>(channels, 1280, 1, generator, Conv2dLayerOptions{.bias = false}))
      .add("bn2", std::make_shared<BatchNorm2d>(1280))
      .add("relu2", std::make_shared<ReLU6>())
      .add("pool", std::make_shared<GlobalAvgPool2d>())
      .add("dropout", std::make_shared<Dropout>(0.2))
      .add("fc", std::make_shared<Linear>(1280, spec.classes, generator));
  return net;
}

}  // namespace kiln::models
