// Sequential: a chain of modules, each fed the previous one's output.
//
//   auto net = std::make_shared<Sequential>();
//   net->add(std::make_shared<Conv2d>(3, 16, 3, generator)).add(std::make_shared<ReLU>());
//
// Children are named by position ("0", "1", ...) unless given a name, so their tensors are
// "0.weight", "conv1.weight", ...
#pragma once

#include <cstddef>
#include <string>

#include "layers/module.hpp"

namespace kiln::layers {

class Sequential : public Module {
 public:
  Sequential() = default;

  // Appends `module` named by its position (the number of children before it). Returns *this to chain.
  Sequential& add(ModulePtr module);
  // Appends `module` under `name`, which must be new to this Sequential and contain no dot.
  Sequential& add(std::string name, ModulePtr module);

  std::size_t size() const { return children().size(); }
  ModulePtr operator[](std::size_t index) const;  // the index-th child; throws when out of range
  const std::string& name(std::size_t index) const;  // the index-th child's name; throws when out of range

  Tensor forward(const Tensor& input) override;  // the children in order; an empty Sequential is the identity
  std::string describe() const override { return "Sequential"; }

 private:
  // The index-th child as a Layer, or null when it is another module or there is none.
  template <typename Layer>
  Layer* layer_at(std::size_t index) const {
    return index < size() ? dynamic_cast<Layer*>(children()[index].second.get()) : nullptr;
  }
};

}  // namespace kiln::layers
