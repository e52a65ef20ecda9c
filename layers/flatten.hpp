// Flatten: merges the axes from start_axis to the last into one, the bridge from convolutional feature
// maps to a Linear layer.
//
//   start_axis 1 (the default): [N, C, H, W] -> [N, C * H * W]
#pragma once

#include <string>

#include "layers/module.hpp"

namespace kiln::layers {

class Flatten : public Module {
 public:
  explicit Flatten(int start_axis = 1) : start_axis_(start_axis) {}

  Tensor forward(const Tensor& input) override { return input.flatten(start_axis_, -1); }
  std::string describe() const override { return "Flatten(start_axis=" + std::to_string(start_axis_) + ")"; }
  int start_axis() const { return start_axis_; }

 private:
  int start_axis_;
};

}  // namespace kiln::layers
