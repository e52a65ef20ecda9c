#include "layers/layers.hpp"
#include "models/zoo.hpp"

namespace kiln::models {
namespace {

constexpr std::int64_t kMaxPool = 0;  // a 2x2 max-pool in a configuration list

std::vector<std::int64_t> configuration(const std::string& name) {
  if (name == "vgg11") return {64, kMaxPool, 128, kMaxPool, 256, 256, kMaxPool, 512, 512, kMaxPool, 512, 512, kMaxPool};
  return {32, 32, kMaxPool, 64, 64, kMaxPool, 128, 128, kMaxPool};  // vgg_small
}

}  // namespace

// input [N, C, H, W] -> features (each entry: conv 3x3 pad 1 -> BN -> ReLU, or a 2x2 max-pool)
//   -> global average pool [N, last channels] -> linear -> [N, classes]
layers::ModulePtr build_vgg(const ArchitectureSpec& spec, Generator& generator) {
  using namespace layers;
  auto features = std::make_shared<Sequential>();
  std::int64_t channels = spec.in_channels, height = spec.height, width = spec.width;
  for (std::int64_t entry : configuration(spec.name)) {
    if (entry == kMaxPool) {
      KILN_CHECK(height >= 2 && width >= 2, "model ", spec.name, ": input ", spec.height, "x", spec.width,
                 " is too small for its max-pools");
      features->add(std::make_shared<MaxPool2d>(Pool2dOptions{.kernel = {2, 2}}));
      height /= 2;
      width /= 2;
      continue;
    }
    features->add(std::make_shared<Conv2d>(channels, entry, 3, generator, Conv2dLayerOptions{.padding = 1, .bias = false}))
        .add(std::make_shared<BatchNorm2d>(entry))
        .add(std::make_shared<ReLU>());
    channels = entry;
  }
  auto net = std::make_shared<Sequential>();
  net->add("features", features)
      .add("pool", std::make_shared<GlobalAvgPool2d>())
      .add("classifier", std::make_shared<Linear>(channels, spec.classes, generator));
  return net;
}

}  // namespace kiln::models
