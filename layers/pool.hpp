// Pooling layers over NCHW images.
//
//   MaxPool2d, AvgPool2d:  [N, C, H, W] -> [N, C, H_out, W_out],
//                          H_out = (H + 2 * padding - kernel) / stride + 1 (rounded up with ceil_mode)
//   GlobalAvgPool2d:       [N, C, H, W] -> [N, C], the mean of each channel's H x W plane
//
// None has parameters; a stride of {0, 0} in Pool2dOptions means "equal to the kernel", as in PyTorch.
#pragma once

#include <string>

#include "core/op_options.hpp"
#include "layers/module.hpp"

namespace kiln::layers {

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Pool2dOptions options);
  Tensor forward(const Tensor& input) override;  // kiln::max_pool2d
  std::string describe() const override;         // "MaxPool2d(kernel=2x2, stride=2x2, padding=0x0)"
  const Pool2dOptions& options() const { return options_; }

 private:
  Pool2dOptions options_;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Pool2dOptions options);
  Tensor forward(const Tensor& input) override;  // kiln::avg_pool2d
  std::string describe() const override;         // "AvgPool2d(kernel=2x2, stride=2x2, padding=0x0)"
  const Pool2dOptions& options() const { return options_; }

 private:
  Pool2dOptions options_;
};

class GlobalAvgPool2d : public Module {
 public:
  GlobalAvgPool2d() = default;
  Tensor forward(const Tensor& input) override;  // kiln::global_avg_pool2d
  std::string describe() const override { return "GlobalAvgPool2d()"; }
};

}  // namespace kiln::layers
