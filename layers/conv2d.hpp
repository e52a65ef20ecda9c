// Conv2d: a 2-D convolution layer over NCHW images with square kernels.
//
//   input [N, in_channels, H, W] -> output [N, out_channels, H_out, W_out],
//   H_out = (H + 2 * padding - dilation * (kernel_size - 1) - 1) / stride + 1   (likewise W_out)
//
// weight [out_channels, in_channels / groups, kernel_size, kernel_size], bias [out_channels]. With groups
// g the channels split into g independent groups (g = in_channels is a depthwise convolution).
#pragma once

#include <cstdint>
#include <string>

#include "core/generator.hpp"
#include "core/op_options.hpp"
#include "layers/module.hpp"

namespace kiln::layers {

struct Conv2dLayerOptions {
  std::int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = true;
};

class Conv2d : public Module {
 public:
  // The weight is Kaiming-normal with fan_in = in_channels / groups * kernel_size^2 (the inputs of one
  // output unit); the bias, if any, starts at zero.
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size, Generator& generator,
         Conv2dLayerOptions options = {});

  Tensor forward(const Tensor& input) override;  // kiln::conv2d with this layer's weight, bias and options
  std::string describe() const override;         // "Conv2d(3, 16, kernel=3x3, stride=1, padding=1)"

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined when the layer has no bias
  const Conv2dLayerOptions& options() const { return options_; }
  Conv2dOptions conv_options() const;  // the op's options (kiln::conv2d) for this layer's
  std::int64_t in_channels() const { return in_channels_; }
  std::int64_t out_channels() const { return out_channels_; }
  std::int64_t kernel_size() const { return kernel_size_; }

 private:
  std::int64_t in_channels_, out_channels_, kernel_size_;
  Conv2dLayerOptions options_;
  Tensor weight_, bias_;
};

}  // namespace kiln::layers
