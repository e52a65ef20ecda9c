// The block tables of the MobileNet-style net, MobileNetV2 and MobileNetV3 (small and large), written once:
// their builders (models/mobilenet.cpp, mobilenet_v2.cpp, mobilenet_v3.cpp) and the benchmarks that time
// their layers' shapes (bench/conv2d_bench.cpp, bench/ladder/conv_shapes.hpp) read them here.
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

// MobileNetV3 (Howard et al. 2019, tables 1 and 2): each block's depthwise kernel, hidden width ("exp
// size"), output channels, whether it has a squeeze-and-excitation, whether it takes the hard swish (else
// ReLU), and its stride; the first stride-2 block at stride 1 instead, as for MobileNetV2 (with the stem at
// stride 1 too, a 32x32 input reaches the last blocks at 4x4).
struct MobileNetV3Block {
  std::int64_t kernel, hidden, channels;
  bool squeeze, hardswish;
  std::int64_t stride;
};
inline constexpr std::int64_t kMobileNetV3StemChannels = 16;  // both sizes
inline constexpr MobileNetV3Block kMobileNetV3SmallBlocks[] = {
    {3, 16, 16, true, false, 1}, {3, 72, 24, false, false, 2}, {3, 88, 24, false, false, 1},
    {5, 96, 40, true, true, 2},  {5, 240, 40, true, true, 1},  {5, 240, 40, true, true, 1},
    {5, 120, 48, true, true, 1}, {5, 144, 48, true, true, 1},  {5, 288, 96, true, true, 2},
    {5, 576, 96, true, true, 1}, {5, 576, 96, true, true, 1}};
// The 1x1 convolution after the blocks, and the hidden layer of the classifier.
inline constexpr std::int64_t kMobileNetV3SmallLastChannels = 576;
inline constexpr std::int64_t kMobileNetV3SmallHeadFeatures = 1024;

inline constexpr MobileNetV3Block kMobileNetV3LargeBlocks[] = {
    {3, 16, 16, false, false, 1}, {3, 64, 24, false, false, 1}, {3, 72, 24, false, false, 1},
    {5, 72, 40, true, false, 2},  {5, 120, 40, true, false, 1}, {5, 120, 40, true, false, 1},
    {3, 240, 80, false, true, 2}, {3, 200, 80, false, true, 1}, {3, 184, 80, false, true, 1},
    {3, 184, 80, false, true, 1}, {3, 480, 112, true, true, 1}, {3, 672, 112, true, true, 1},
    {5, 672, 160, true, true, 2}, {5, 960, 160, true, true, 1}, {5, 960, 160, true, true, 1}};
inline constexpr std::int64_t kMobileNetV3LargeLastChannels = 960;
inline constexpr std::int64_t kMobileNetV3LargeHeadFeatures = 1280;

}  // namespace kiln::models
