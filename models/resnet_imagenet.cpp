#include "layers/layers.hpp"
#include "models/zoo.hpp"

namespace kiln::models {

// input [N, C, H, W] (H, W of a photo: 64 to 224 pixels a side)
//   conv 7x7 stride 2 (C -> 64) -> BN -> ReLU        [N, 64, H/2, W/2]
//   max-pool 3x3 stride 2                            [N, 64, H/4, W/4]
//   layer1: 2 blocks, 64 channels                    [N, 64, H/4, W/4]
//   layer2: 2 blocks, 128 channels, first stride 2   [N, 128, H/8, W/8]
//   layer3: 2 blocks, 256 channels, first stride 2   [N, 256, H/16, W/16]
//   layer4: 2 blocks, 512 channels, first stride 2   [N, 512, H/32, W/32]
//   global average pool -> linear 512 -> classes
// (sizes rounded up at each stride). Where a block changes the size or the channels its shortcut is a
// 1x1 convolution at its stride and a batch norm ("option B").
layers::ModulePtr build_resnet18(const ArchitectureSpec& spec, Generator& generator) {
  using namespace layers;
  auto net = std::make_shared<Sequential>();
  net->add("conv1", std::make_shared<Conv2d>(spec.in_channels, 64, 7, generator,
                                             Conv2dLayerOptions{.stride = 2, .padding = 3, .bias = false}))
      .add("bn1", std::make_shared<BatchNorm2d>(64))
      .add("relu", std::make_shared<ReLU>())
      .add("maxpool",
           std::make_shared<MaxPool2d>(Pool2dOptions{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}));
  std::int64_t channels = 64;
  for (int stage = 0; stage < 4; ++stage) {
    const std::int64_t stage_channels = 64 << stage;
    auto blocks = std::make_shared<Sequential>();
    for (int block = 0; block < 2; ++block) {
      const std::int64_t stride = stage > 0 && block == 0 ? 2 : 1;
      blocks->add(
          std::make_shared<BasicBlock>(channels, stage_channels, stride, generator, Shortcut::Projection));
      channels = stage_channels;
    }
    net->add("layer" + std::to_string(stage + 1), blocks);
  }
  net->add("pool", std::make_shared<GlobalAvgPool2d>())
      .add("fc", std::make_shared<Linear>(channels, spec.classes, generator));
  return net;
}

}  // namespace kiln::models
