#include "layers/layers.hpp"
#include "models/mobilenet_blocks.hpp"
#include "models/zoo.hpp"

namespace kiln::models {

// input [N, C, H, W] -> conv 3x3 (C -> 32) -> BN -> ReLU -> 13 depthwise-separable blocks (kMobileNetBlocks,
// mobilenet_blocks.hpp) -> global average pool [N, 1024] -> linear -> [N, classes]
layers::ModulePtr build_mobilenet(const ArchitectureSpec& spec, Generator& generator) {
  using namespace layers;
  std::int64_t channels = kMobileNetStemChannels;
  auto net = std::make_shared<Sequential>();
  net->add("conv1", std::make_shared<Conv2d>(spec.in_channels, channels, 3, generator,
                                             Conv2dLayerOptions{.padding = 1, .bias = false}))
      .add("bn1", std::make_shared<BatchNorm2d>(channels))
      .add("relu", std::make_shared<ReLU>());
  auto body = std::make_shared<Sequential>();
  for (const SeparableBlockShape& block : kMobileNetBlocks) {
    body->add(std::make_shared<DepthwiseSeparable>(channels, block.channels, block.stride, generator));
    channels = block.channels;
  }
  net->add("blocks", body)
      .add("pool", std::make_shared<GlobalAvgPool2d>())
      .add("fc", std::make_shared<Linear>(channels, spec.classes, generator));
  return net;
}

}  // namespace kiln::models
