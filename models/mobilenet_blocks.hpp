// The block tables of the MobileNet-style net and MobileNetV2, written once: their builders
// (models/mobilenet.cpp, mobilenet_v2.cpp) and the benchmarks that time their layers' shapes
// (bench/conv2d_bench.cpp, bench/ladder/conv_shapes.hpp) read them here.
#pragma once

#include <cstdint>

namespace kiln::models {

// Both nets open with a 3x3 convolution to this many channels (stride 1 at CIFAR's 32x32).
inline constexpr std::int64_t kMobileNetStemChannels = 32;

// MobileNet v1 (Howard et al. 2017): each depthwise-separable block's output channels, and the stride of
// its depthwise 3x3.
struct SeparableBlockShape {
  std::int64_t channels, stride;
};
inline constexpr SeparableBlockShape kMobileNetBlocks[] = {{64, 1},  {128, 2},  {128, 1}, {256, 2}, {256, 1},
                                                           {512, 2}, {512, 1},  {512, 1}, {512, 1}, {512, 1},
                                                           {512, 1}, {1024, 2}, {1024, 1}};

// MobileNetV2 (Sandler et al. 2018, table 2): each stage's expansion t, output channels c, repeats n and
// first stride s; the second stage at stride 1 rather than ImageNet's 2, as CIFAR variants have it.
struct InvertedStage {
  std::int64_t expansion, channels, repeats, stride;
};
inline constexpr InvertedStage kMobileNetV2Stages[] = {{1, 16, 1, 1}, {6, 24, 2, 1}, {6, 32, 3, 2},
                                                       {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2},
                                                       {6, 320, 1, 1}};

}  // namespace kiln::models
