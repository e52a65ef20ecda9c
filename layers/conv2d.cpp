#include "layers/conv2d.hpp"

#include <sstream>

#include "layers/compute_dtype.hpp"
#include "layers/init.hpp"

namespace kiln::layers {

Conv2d::Conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
               Generator& generator, Conv2dLayerOptions options)
    : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size), options_(options) {
  KILN_CHECK(in_channels > 0 && out_channels > 0 && kernel_size > 0, "Conv2d: in_channels ", in_channels,
             ", out_channels ", out_channels, " and kernel_size ", kernel_size, " must be positive");
  KILN_CHECK(options.stride > 0 && options.dilation > 0 && options.padding >= 0, "Conv2d: stride ",
             options.stride, " and dilation ", options.dilation, " must be positive and padding ",
             options.padding, " non-negative");
  KILN_CHECK(options.groups > 0 && in_channels % options.groups == 0 && out_channels % options.groups == 0,
             "Conv2d: groups ", options.groups, " must divide in_channels ", in_channels,
             " and out_channels ", out_channels);
  const std::int64_t group_channels = in_channels / options.groups;
  weight_ =
      register_parameter("weight", kaiming_normal({out_channels, group_channels, kernel_size, kernel_size},
                                                  group_channels * kernel_size * kernel_size, generator));
  if (options.bias) bias_ = register_parameter("bias", Tensor::zeros({out_channels}));
}

Conv2dOptions Conv2d::conv_options() const {
  return {.stride = {options_.stride, options_.stride},
          .padding = {options_.padding, options_.padding},
          .dilation = {options_.dilation, options_.dilation},
          .groups = options_.groups};
}

Tensor Conv2d::forward(const Tensor& input) {
  return conv2d(input, as_compute_dtype(weight_, input), as_compute_dtype(bias_, input), conv_options());
}

std::string Conv2d::describe() const {
  std::ostringstream out;
  out << "Conv2d(" << in_channels_ << ", " << out_channels_ << ", kernel=" << kernel_size_ << "x"
      << kernel_size_ << ", stride=" << options_.stride;
  // Like PyTorch's repr, settings at their defaults are left out, except the stride.
  if (options_.padding != 0) out << ", padding=" << options_.padding;
  if (options_.dilation != 1) out << ", dilation=" << options_.dilation;
  if (options_.groups != 1) out << ", groups=" << options_.groups;
  if (!options_.bias) out << ", bias=false";
  out << ")";
  return out.str();
}

}  // namespace kiln::layers
