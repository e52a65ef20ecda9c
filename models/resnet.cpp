#include "layers/layers.hpp"
#include "models/zoo.hpp"

namespace kiln::models {

// input [N, C, 32, 32]
//   conv 3x3 (C -> 16) -> BN -> ReLU                 [N, 16, 32, 32]
//   stage1: n blocks, 16 channels                     [N, 16, 32, 32]
//   stage2: n blocks, 32 channels, first stride 2     [N, 32, 16, 16]
//   stage3: n blocks, 64 channels, first stride 2     [N, 64, 8, 8]
//   global average pool -> linear 64 -> classes
// 6n + 2 weighted layers: depth 20, 32, 44, 56, 110 for n = 3, 5, 7, 9, 18.
layers::ModulePtr build_resnet(const ArchitectureSpec& spec, std::int64_t depth, Generator& generator) {
  using namespace layers;
  KILN_CHECK((depth - 2) % 6 == 0 && depth >= 8, "model resnet", depth, ": depth must be 6n + 2");
  const std::int64_t blocks_per_stage = (depth - 2) / 6;
  auto net = std::make_shared<Sequential>();
  net->add("conv1", std::make_shared<Conv2d>(spec.in_channels, 16, 3, generator,
                                             Conv2dLayerOptions{.padding = 1, .bias = false}))
      .add("bn1", std::make_shared<BatchNorm2d>(16))
      .add("relu", std::make_shared<ReLU>());
  std::int64_t channels = 16;
  for (int stage = 0; stage < 3; ++stage) {
    const std::int64_t stage_channels = 16 << stage;
    auto blocks = std::make_shared<Sequential>();
    for (std::int64_t block = 0; block < blocks_per_stage; ++block) {
      const std::int64_t stride = stage > 0 && block == 0 ? 2 : 1;
      blocks->add(std::make_shared<BasicBlock>(channels, stage_channels, stride, generator, Shortcut::PadIdentity));
      channels = stage_channels;
    }
    net->add("stage" + std::to_string(stage + 1), blocks);
  }
  net->add("pool", std::make_shared<GlobalAvgPool2d>()).add("fc", std::make_shared<Linear>(channels, spec.classes, generator));
  return net;
}

}  // namespace kiln::models
