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

// A Conv2d directly followed by a BatchNorm2d runs as conv_then_batch_norm (one op at inference), and a
// BatchNorm2d directly followed by a ReLU as one fused op (BatchNorm2d::forward_then_relu, or inside the
// former): the same values, in fewer passes over memory. The ReLU module is then skipped; hooks on it, if
// kiln ever has them, would not see the fused call.
Tensor Sequential::forward(const Tensor& input) {
  Tensor output = input;
  for (std::size_t i = 0; i < size(); ++i) {
    auto* conv = layer_at<Conv2d>(i);
    if (auto* norm = layer_at<BatchNorm2d>(i + 1); conv && norm) {
      const bool relu = layer_at<ReLU>(i + 2) != nullptr;
      output = conv_then_batch_norm(*conv, *norm, output, relu);
      i += relu ? 2 : 1;
    } else if (auto* alone = layer_at<BatchNorm2d>(i); alone && layer_at<ReLU>(i + 1)) {
      output = alone->forward_then_relu(output);
      ++i;
    } else {
      output = children()[i].second->forward(output);
    }
  }
  return output;
}

}  // namespace kiln::layers
