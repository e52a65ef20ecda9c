#include "layers/sequential.hpp"

#include <utility>

#include "layers/activation.hpp"
#include "layers/batchnorm.hpp"
#include "layers/conv_batch_norm.hpp"

namespace kiln::layers {

Sequential& Sequential::add(ModulePtr module) { return add(std::to_string(size()), std::move(module)); }

Sequential& Sequential::add(std::string name, ModulePtr module) {
  register_module(std::move(name), std::move(module));
  return *this;
}

ModulePtr Sequential::operator[](std::size_t index) const {
  KILN_CHECK(index < size(), "Sequential: index ", index, " is out of range for ", size(), " modules");
  return children()[index].second;
}

const std::string& Sequential::name(std::size_t index) const {
  KILN_CHECK(index < size(), "Sequential: index ", index, " is out of range for ", size(), " modules");
  return children()[index].first;
}

// Runs of conv -> batch norm -> ReLU -> conv, as VGG-style stacks have them, take the fused ops of
// conv_batch_norm.hpp: at inference a Conv2d and the BatchNorm2d after it (and its ReLU or ReLU6) as
// conv_then_batch_norm, the batch norm in the convolution's stores; in training a BatchNorm2d, its
// activation and the Conv2d after them as batch_norm_then_conv, the batch norm in the next convolution's
// copies in.
// Otherwise a BatchNorm2d directly followed by a ReLU, ReLU6 or Hardswish runs as one fused op
// (forward_then). The same values, in fewer passes over memory. An activation module taken into a fused op is
// skipped; hooks on it, if kiln ever has them, would not see the fused call.
Tensor Sequential::forward(const Tensor& input) {
  // The activation at layer i that a batch norm before it can take in.
  const auto fusable_activation = [this](std::size_t i) {
    if (layer_at<ReLU>(i)) return FusedActivation::Relu;
    if (layer_at<ReLU6>(i)) return FusedActivation::Relu6;
    if (layer_at<Hardswish>(i)) return FusedActivation::Hardswish;
    return FusedActivation::None;
  };
  Tensor output = input;
  for (std::size_t i = 0; i < size(); ++i) {
    auto* conv = layer_at<Conv2d>(i);
    auto* norm = layer_at<BatchNorm2d>(i);
    auto* norm_after_conv = layer_at<BatchNorm2d>(i + 1);
    if (conv && norm_after_conv && !norm_after_conv->is_training()) {
      const FusedActivation after = fusable_activation(i + 2);
      output = conv_then_batch_norm(*conv, *norm_after_conv, output, after);
      i += after == FusedActivation::None ? 1 : 2;
    } else if (const FusedActivation after = fusable_activation(i + 1);
               norm && after != FusedActivation::None) {
      auto* next_conv = layer_at<Conv2d>(i + 2);
      if (next_conv && norm->is_training()) {
        output = batch_norm_then_conv(*norm, *next_conv, output, after);
        i += 2;
      } else {
        output = norm->forward_then(output, after);
        ++i;
      }
    } else {
      output = children()[i].second->forward(output);
    }
  }
  return output;
}

}  // namespace kiln::layers
