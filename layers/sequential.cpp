#include "layers/sequential.hpp"

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

Tensor Sequential::forward(const Tensor& input) {
  Tensor output = input;
  for (const auto& [name, module] : children()) output = module->forward(output);
  return output;
}

}  // namespace kiln::layers
