// Every convolution of the model zoo's CIFAR networks (3x32x32 input), as conv2d_ladder times them: the
// layers of each model in network order, then merged into the distinct geometries (ResNet-20 and ResNet-56
// have the same six; VGG-small's first layer is MobileNet's). Written out from models/*.cpp (MobileNet's
// blocks read from models/mobilenet_blocks.hpp); if another model there changes, change it here.
//
//   resnet20, resnet56  models/resnet.cpp: conv1 3->16; stages of n = (depth - 2) / 6 basic blocks (two 3x3
//                       convolutions each) at 16, 32, 64 channels, the first of stages 2 and 3 with stride 2;
//                       "option A" shortcuts (subsample and pad channels): no 1x1 projection convolutions.
//   vgg_small, vgg11    models/vgg.cpp: 3x3 pad-1 convolutions, 2x2 max-pools between (not convolutions).
//   mobilenet           models/mobilenet.cpp: conv1 3->32, then 13 depthwise-separable blocks: a depthwise
//                       3x3 (groups = channels, stride 1 or 2) and a pointwise 1x1.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/conv2d/conv2d.hpp"
#include "models/mobilenet_blocks.hpp"

namespace kiln::bench::ladder {

struct ConvLayer {
  std::string name;  // "16->32 3x3 s2 @32", "dw 128 3x3 s2 @16", "pw 128->256 1x1 @8"
  std::int64_t in_channels = 1, out_channels = 1, kernel = 1, stride = 1, padding = 0, groups = 1;
  std::int64_t size = 1;  // input height = width
  // (model, how many of its convolutions have this geometry), in the order the models were asked for
  std::vector<std::pair<std::string, int>> uses;

  kernels::Conv2dGeometry geometry(std::int64_t batch) const {
    kernels::Conv2dGeometry g;
    g.batch = batch;
    g.in_channels = in_channels;
    g.in_height = g.in_width = size;
    g.out_channels = out_channels;
    g.kernel_h = g.kernel_w = kernel;
    g.stride_h = g.stride_w = stride;
    g.pad_h = g.pad_w = padding;
    g.groups = groups;
    return g;
  }
  bool same_geometry(const ConvLayer& other) const {
    return in_channels == other.in_channels && out_channels == other.out_channels && kernel == other.kernel &&
           stride == other.stride && padding == other.padding && groups == other.groups && size == other.size;
  }
  bool used_by(const std::string& model) const {
    return std::any_of(uses.begin(), uses.end(), [&](const auto& use) { return use.first == model; });
  }
  // "resnet20,resnet56"
  std::string models() const {
    std::string text;
    for (const auto& use : uses) text += (text.empty() ? "" : ",") + use.first;
    return text;
  }
};

inline ConvLayer dense_3x3(std::int64_t in, std::int64_t out, std::int64_t stride, std::int64_t size) {
  return {std::to_string(in) + "->" + std::to_string(out) + " 3x3 s" + std::to_string(stride) + " @" +
              std::to_string(size),
          in,
          out,
          3,
          stride,
          1,
          1,
          size,
          {}};
}
inline ConvLayer depthwise_3x3(std::int64_t channels, std::int64_t stride, std::int64_t size) {
  return {"dw " + std::to_string(channels) + " 3x3 s" + std::to_string(stride) + " @" + std::to_string(size),
          channels,
          channels,
          3,
          stride,
          1,
          channels,
          size,
          {}};
}
inline ConvLayer pointwise(std::int64_t in, std::int64_t out, std::int64_t size) {
  return {"pw " + std::to_string(in) + "->" + std::to_string(out) + " 1x1 @" + std::to_string(size),
          in,
          out,
          1,
          1,
          0,
          1,
          size,
          {}};
}

inline const std::vector<std::string>& zoo_models() {
  static const std::vector<std::string> names{"resnet20", "resnet56", "vgg_small", "vgg11", "mobilenet"};
  return names;
}

// The convolutions of `model` in network order (repeats included), for a 3x32x32 input.
inline std::vector<ConvLayer> model_layers(const std::string& model) {
  std::vector<ConvLayer> layers;
  if (model == "resnet20" || model == "resnet56") {
    const int blocks = model == "resnet20" ? 3 : 9;
    layers.push_back(dense_3x3(3, 16, 1, 32));
    std::int64_t channels = 16, size = 32;
    for (int stage = 0; stage < 3; ++stage) {
      const std::int64_t stage_channels = 16 << stage;
      for (int block = 0; block < blocks; ++block) {
        const std::int64_t stride = stage > 0 && block == 0 ? 2 : 1;
        layers.push_back(dense_3x3(channels, stage_channels, stride, size));
        size = (size - 1) / stride + 1;  // (size + 2 - 3) / stride + 1
        layers.push_back(dense_3x3(stage_channels, stage_channels, 1, size));
        channels = stage_channels;
      }
    }
  } else if (model == "vgg_small" || model == "vgg11") {
    constexpr std::int64_t kPool = 0;
    const std::vector<std::int64_t> configuration =
        model == "vgg11" ? std::vector<std::int64_t>{64,  kPool, 128,   kPool, 256, 256,  kPool,
                                                     512, 512,   kPool, 512,   512, kPool}
                         : std::vector<std::int64_t>{32, 32, kPool, 64, 64, kPool, 128, 128, kPool};
    std::int64_t channels = 3, size = 32;
    for (std::int64_t entry : configuration) {
      if (entry == kPool) {
        size /= 2;
        continue;
      }
      layers.push_back(dense_3x3(channels, entry, 1, size));
      channels = entry;
    }
  } else if (model == "mobilenet") {
    std::int64_t channels = kiln::models::kMobileNetStemChannels, size = 32;
    layers.push_back(dense_3x3(3, channels, 1, size));
    for (const auto& [out, stride] : kiln::models::kMobileNetBlocks) {
      layers.push_back(depthwise_3x3(channels, stride, size));
      size = (size - 1) / stride + 1;
      layers.push_back(pointwise(channels, out, size));
      channels = out;
    }
  }
  return layers;
}

// The distinct geometries of `models`' convolutions, in first-seen order, each with its uses.
inline std::vector<ConvLayer> distinct_layers(const std::vector<std::string>& models) {
  std::vector<ConvLayer> distinct;
  for (const std::string& model : models) {
    for (const ConvLayer& layer : model_layers(model)) {
      auto found = std::find_if(distinct.begin(), distinct.end(),
                                [&](const ConvLayer& known) { return known.same_geometry(layer); });
      if (found == distinct.end()) found = distinct.insert(distinct.end(), layer);
      auto use = std::find_if(found->uses.begin(), found->uses.end(),
                              [&](const auto& known_use) { return known_use.first == model; });
      if (use == found->uses.end())
        found->uses.emplace_back(model, 1);
      else
        ++use->second;
    }
  }
  return distinct;
}

}  // namespace kiln::bench::ladder
