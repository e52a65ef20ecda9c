#include <algorithm>
#include <cstddef>

#include "layers/layers.hpp"
#include "models/mobilenet_blocks.hpp"
#include "models/zoo.hpp"

namespace kiln::models {
namespace {

// MobileNetV3's channel rounding (its reference implementation's _make_divisible): the nearest multiple of
// 8, at least 8, and never more than 10% below the value.
std::int64_t rounded_to_eight(double value) {
  const std::int64_t rounded = std::max<std::int64_t>(8, static_cast<std::int64_t>(value + 4) / 8 * 8);
  return rounded < 0.9 * value ? rounded + 8 : rounded;
}

// input [N, C, H, W] -> conv 3x3 (C -> 16) -> BN -> hard swish -> the inverted residual blocks -> conv 1x1
// (to `last` channels) -> BN -> hard swish -> global average pool [N, last] -> linear (last -> head) -> hard
// swish -> dropout 0.2 -> linear -> [N, classes]
template <std::size_t kBlocks>
layers::ModulePtr build_mobilenet_v3(const ArchitectureSpec& spec, const MobileNetV3Block (&table)[kBlocks],
                                     std::int64_t last, std::int64_t head, Generator& generator) {
  using namespace layers;
  std::int64_t channels = kMobileNetV3StemChannels;
  auto net = std::make_shared<Sequential>();
  net->add("conv1", std::make_shared<Conv2d>(spec.in_channels, channels, 3, generator,
                                             Conv2dLayerOptions{.padding = 1, .bias = false}))
      .add("bn1", std::make_shared<BatchNorm2d>(channels))
      .add("hardswish1", std::make_shared<Hardswish>());
  auto blocks = std::make_shared<Sequential>();
  for (const MobileNetV3Block& block : table) {
    const InvertedResidualOptions options{
        .stride = block.stride,
        .hidden_channels = block.hidden,
        .kernel = block.kernel,
        .activation = block.hardswish ? BlockActivation::Hardswish : BlockActivation::Relu,
        .squeeze_channels = block.squeeze ? rounded_to_eight(block.hidden / 4.0) : 0};
    blocks->add(std::make_shared<InvertedResidual>(channels, block.channels, options, generator));
    channels = block.channels;
  }
  net->add("blocks", blocks)
      .add("conv2", std::make_shared<Conv2d>(channels, last, 1, generator, Conv2dLayerOptions{.bias = false}))
      .add("bn2", std::make_shared<BatchNorm2d>(last))
      .add("hardswish2", std::make_shared<Hardswish>())
      .add("pool", std::make_shared<GlobalAvgPool2d>())
      .add("fc1", std::make_shared<Linear>(last, head, generator))
      .add("hardswish3", std::make_shared<Hardswish>())
      .add("dropout", std::make_shared<Dropout>(0.2))
      .add("fc2", std::make_shared<Linear>(head, spec.classes, generator));
  return net;
}

}  // namespace

layers::ModulePtr build_mobilenet_v3_small(const ArchitectureSpec& spec, Generator& generator) {
  return build_mobilenet_v3(spec, kMobileNetV3SmallBlocks, kMobileNetV3SmallLastChannels,
                            kMobileNetV3SmallHeadFeatures, generator);
}

layers::ModulePtr build_mobilenet_v3_large(const ArchitectureSpec& spec, Generator& generator) {
  return build_mobilenet_v3(spec, kMobileNetV3LargeBlocks, kMobileNetV3LargeLastChannels,
                            kMobileNetV3LargeHeadFeatures, generator);
}

}  // namespace kiln::models
