#include "layers/layers.hpp"
#include "models/zoo.hpp"

namespace kiln::models {

// input [N, C, H, W]
//   conv 5x5 (C -> 6) -> ReLU -> max-pool 2x2      [N, 6, (H-4)/2, (W-4)/2]
//   conv 5x5 (6 -> 16) -> ReLU -> max-pool 2x2     [N, 16, h, w],  h = ((H-4)/2 - 4)/2
//   flatten -> linear 16*h*w -> 120 -> ReLU -> 84 -> ReLU -> classes
layers::ModulePtr build_lenet5(const ArchitectureSpec& spec, Generator& generator) {
  using namespace layers;
  const std::int64_t h = ((spec.height - 4) / 2 - 4) / 2, w = ((spec.width - 4) / 2 - 4) / 2;
  KILN_CHECK(h >= 1 && w >= 1, "model lenet5: input ", spec.height, "x", spec.width,
             " is too small (it needs at least 16x16)");
  const Pool2dOptions pool{.kernel = {2, 2}};
  auto net = std::make_shared<Sequential>();
  net->add("conv1", std::make_shared<Conv2d>(spec.in_channels, 6, 5, generator))
      .add("relu1", std::make_shared<ReLU>())
      .add("pool1", std::make_shared<MaxPool2d>(pool))
      .add("conv2", std::make_shared<Conv2d>(6, 16, 5, generator))
      .add("relu2", std::make_shared<ReLU>())
      .add("pool2", std::make_shared<MaxPool2d>(pool))
      .add("flatten", std::make_shared<Flatten>())
      .add("fc1", std::make_shared<Linear>(16 * h * w, 120, generator))
      .add("relu3", std::make_shared<ReLU>())
      .add("fc2", std::make_shared<Linear>(120, 84, generator))
      .add("relu4", std::make_shared<ReLU>())
      .add("fc3", std::make_shared<Linear>(84, spec.classes, generator));
  return net;
}

}  // namespace kiln::models
