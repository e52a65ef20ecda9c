#include "layers/sequential.hpp"

#include "layers/activation.hpp"
#include "layers/batchnorm.hpp"

#include <utility>

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

// A BatchNorm2d directly followed by a ReLU runs as one fused op (BatchNorm2d::forward_then_relu): the
// same values, in fewer passes over memory. The ReLU module is then skipped; hooks on it, if kiln ever
// has them, would not see the fused call.
Tensor Sequential::forward(const Tensor& input) {
  Tensor output = input;
  const auto& modules = children();
  for (std::size_t i = 0; i < modules.size(); ++i) {
    auto* batch_norm = dynamic_cast<BatchNorm2d*>(modules[i].second.get());
    const bool relu_next = i + 1 < modules.size() && dynamic_cast<ReLU*>(modules[i + 1].second.get());
    if (batch_norm && relu_next) {
      output = batch_norm->forward_then_relu(output);
      ++i;
    } else {
      output = modules[i].second->forward(output);
    }
  }
  return output;
}

}  // namespace kiln::layers
