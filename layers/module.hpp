// Module: the unit networks are composed of. A module owns named parameters (leaf tensors that require
// grad), named buffers (state that is saved but not trained, like batch-norm running statistics) and
// named child modules; names compose with dots ("stage1.0.conv1.weight"), which is how checkpoints
// address every tensor.
//
// Modules are held by shared_ptr so a model can be built, returned and stored without copies; a
// Parameter is a Tensor handle, so an optimizer or a checkpoint loader that writes into it in place
// (copy_) updates the module's own tensor.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/ops.hpp"

namespace kiln::layers {

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& input) = 0;
  Tensor operator()(const Tensor& input) { return forward(input); }

  // A short description of this module alone, e.g. "Conv2d(3, 16, kernel=3x3, stride=1, padding=1)".
  virtual std::string describe() const = 0;
  // The whole tree, one module a line, indented (like PyTorch's print(model)).
  std::string summary() const;

  // Recursive, in registration order, with dotted names.
  std::vector<NamedTensor> named_parameters() const;
  std::vector<Tensor> parameters() const;
  std::vector<NamedTensor> named_buffers() const;
  std::int64_t parameter_count() const;

  // Train mode (the default) uses batch statistics in batch-norm and drops units in dropout; eval mode
  // does neither. Applies to every descendant.
  void train(bool training = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  void zero_grad();

  // Moves every parameter and buffer to `device` in place (Tensor::move_to_), like PyTorch's module.to():
  // the layers keep their handles. Build optimizers after moving, so their state is created there too.
  void to(Device device);
  // Where the parameters live: the first parameter's (or buffer's) device, the CPU for a module with
  // neither. Callers move inputs there.
  Device device() const;

  // The direct children, (name, module) in registration order: what tools that walk a model (the ONNX
  // exporter) read. Subclasses register them with register_module.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  // The direct child called `name`; throws kiln::Error naming this module when it has none.
  const Module& named_child(const std::string& name) const;

 protected:
  // Registers and returns the tensor; parameters are marked requires_grad.
  Tensor register_parameter(std::string name, Tensor value);
  Tensor register_buffer(std::string name, Tensor value);
  template <typename M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    check_new_name(name, "module");
    KILN_CHECK(module != nullptr, describe(), ": child module '", name, "' is null");
    children_.emplace_back(std::move(name), module);
    return module;
  }
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }

 private:
  // Throws unless `name` is non-empty, has no dot (dots separate levels) and is not taken by another
  // parameter, buffer or child of this module.
  void check_new_name(const std::string& name, const char* kind) const;
  void collect(const std::string& prefix, bool parameters, std::vector<NamedTensor>& out) const;
  void describe_tree(const std::string& name, int depth, std::string& out) const;

  std::vector<NamedTensor> parameters_;
  std::vector<NamedTensor> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

using ModulePtr = std::shared_ptr<Module>;

// The direct child `name` of `parent` as a `Layer`, for the tools that walk a model's known structure (the
// ONNX exporter, int8 lowering). Throws kiln::Error naming both when the child is another kind of module.
[[noreturn]] void fail_child_kind(const Module& parent, const std::string& name);
template <typename Layer>
const Layer& child_as(const Module& parent, const std::string& name) {
  const auto* layer = dynamic_cast<const Layer*>(&parent.named_child(name));
  if (layer == nullptr) fail_child_kind(parent, name);
  return *layer;
}

}  // namespace kiln::layers
