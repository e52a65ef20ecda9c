#include "layers/module.hpp"

#include <algorithm>

namespace kiln::layers {
namespace {

// 270410 -> "270,410": a parameter count a reader can take in at a glance.
std::string with_thousands_separators(std::int64_t count) {
  const std::string digits = std::to_string(count);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

Tensor Module::register_parameter(std::string name, Tensor value) {
  check_new_name(name, "parameter");
  KILN_CHECK(value.defined(), describe(), ": parameter '", name, "' is an undefined tensor");
  value.set_requires_grad(true);
  parameters_.emplace_back(std::move(name), value);
  return value;
}

Tensor Module::register_buffer(std::string name, Tensor value) {
  check_new_name(name, "buffer");
  KILN_CHECK(value.defined(), describe(), ": buffer '", name, "' is an undefined tensor");
  buffers_.emplace_back(std::move(name), value);
  return value;
}

void Module::check_new_name(const std::string& name, const char* kind) const {
  KILN_CHECK(!name.empty(), describe(), ": a ", kind, " needs a name");
  KILN_CHECK(name.find('.') == std::string::npos, describe(), ": ", kind, " name '", name,
             "' contains a dot, which separates the levels of a dotted name");
  const auto named = [&name](const auto& entry) { return entry.first == name; };
  const bool taken = std::any_of(parameters_.begin(), parameters_.end(), named) ||
                     std::any_of(buffers_.begin(), buffers_.end(), named) ||
                     std::any_of(children_.begin(), children_.end(), named);
  KILN_CHECK(!taken, describe(), ": the name '", name, "' is already taken");
}

// This module's own tensors first, then each child's under "<child name>.", depth first, so the order
// is the order in which the tensors were registered along the tree (PyTorch's order too).
void Module::collect(const std::string& prefix, bool parameters, std::vector<NamedTensor>& out) const {
  for (const auto& [name, tensor] : parameters ? parameters_ : buffers_)
    out.emplace_back(prefix + name, tensor);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", parameters, out);
}

const Module& Module::named_child(const std::string& name) const {
  for (const auto& [child_name, module] : children_) {
    if (child_name == name) return *module;
  }
  fail(describe(), " has no child '", name, "'");
}

void fail_child_kind(const Module& parent, const std::string& name) {
  fail(parent.describe(), ": child '", name, "' is ", parent.named_child(name).describe(),
       ", not the layer expected there");
}

std::vector<NamedTensor> Module::named_parameters() const {
  std::vector<NamedTensor> out;
  collect("", true, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, tensor] : named_parameters()) out.push_back(std::move(tensor));
  return out;
}

std::vector<NamedTensor> Module::named_buffers() const {
  std::vector<NamedTensor> out;
  collect("", false, out);
  return out;
}

std::int64_t Module::parameter_count() const {
  std::int64_t count = 0;
  for (const Tensor& parameter : parameters()) count += parameter.numel();
  return count;
}

void Module::train(bool training) {
  training_ = training;
  for (const auto& [name, child] : children_) child->train(training);
}

void Module::zero_grad() {
  for (Tensor& parameter : parameters()) parameter.zero_grad();
}

void Module::to(Device device) {
  for (auto& [name, tensor] : named_parameters()) tensor.move_to_(device);
  for (auto& [name, tensor] : named_buffers()) tensor.move_to_(device);
}

Device Module::device() const {
  for (const auto& tensors : {named_parameters(), named_buffers()}) {
    if (!tensors.empty()) return tensors.front().second.device();
  }
  return Device::cpu();
}

// One line per module, children indented two spaces under their parent and labelled with their name:
//
//   Sequential  (1,234 parameters)
//     (conv): Conv2d(3, 8, kernel=3x3, stride=1, padding=1, bias=false)
//     (bn): BatchNorm2d(8, eps=1e-05, momentum=0.1)
std::string Module::summary() const {
  std::string out;
  describe_tree("", 0, out);
  return out;
}

void Module::describe_tree(const std::string& name, int depth, std::string& out) const {
  out += std::string(static_cast<std::size_t>(2 * depth), ' ');
  if (!name.empty()) out += "(" + name + "): ";
  out += describe();
  if (depth == 0) {
    const std::int64_t count = parameter_count();
    out += "  (" + with_thousands_separators(count) + (count == 1 ? " parameter)" : " parameters)");
  }
  out += "\n";
  for (const auto& [child_name, child] : children_) child->describe_tree(child_name, depth + 1, out);
}

}  // namespace kiln::layers
