#include "layers/layers.hpp"
#include "models/zoo.hpp"

namespace kiln::models {

// input [N, C, H, W] -> conv 3x3 (C -> 32) -> BN -> ReLU -> 13 depthwise-separable blocks
//   -> global average pool [N, 1024] -> linear -> [N, classes]
layers::ModulePtr build_mobilenet(const ArchitectureSpec& spec, Generator& generator) {
  using namespace layers;
  struct BlockShape {
    std::int64_t channels, stride;
  };
  const std::vector<BlockShape> blocks{{64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1}, {512, 2}, {512, 1},
                                       {512, 1}, {512, 1}, {512, 1}, {512, 1}, {1024, 2}, {1024, 1}};
  auto net = std::make_shared<Sequential>();
  net->add("conv1", std::make_shared<Conv2d>(spec.in_channels, 32, 3, generator,
                                             Conv2dLayerOptions{.padding = 1, .bias = false}))
      .add("bn1", std::make_shared<BatchNorm2d>(32))
      .add("relu", std::make_shared<ReLU>());
  auto body = std::make_shared<Sequential>();
  std::int64_t channels = 32;
  for (const BlockShape& block : blocks) {
    body->add(std::make_shared<DepthwiseSeparable>(channels, block.channels, block.stride, generator));
    channels = block.channels;
  }
  net->add("blocks", body)
      .add("pool", std::make_shared<GlobalAvgPool2d>())
      .add("fc", std::make_shared<Linear>(channels, spec.classes, generator));
  return net;
}

}  // namespace kiln::models
