#include "optim/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "optim/json_fields.hpp"

namespace kiln::optim {
namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

}  // namespace

Optimizer::Optimizer(std::string kind, std::vector<NamedTensor> parameters, double learning_rate)
    : kind_(std::move(kind)), parameters_(std::move(parameters)), learning_rate_(0.0) {
  KILN_CHECK(!parameters_.empty(), kind_, ": no parameters to optimize");
  std::set<std::string> names;
  std::set<const TensorImpl*> tensors;
  for (const auto& [name, parameter] : parameters_) {
    KILN_CHECK(!name.empty(), kind_, ": a parameter has an empty name");
    KILN_CHECK(names.insert(name).second, kind_, ": parameter name '", name, "' appears twice");
    KILN_CHECK(parameter.defined(), kind_, ": parameter '", name, "' is an undefined tensor");
    KILN_CHECK(tensors.insert(parameter.impl_ptr().get()).second, kind_, ": parameter '", name,
               "' is the same tensor as an earlier parameter");
    KILN_CHECK(parameter.dtype() == DType::Float32 || parameter.dtype() == DType::Float64, kind_,
               ": parameter '", name, "' is ", parameter.describe(), " (expected float32 or float64)");
    KILN_CHECK(parameter.is_leaf() && parameter.requires_grad(), kind_, ": parameter '", name,
               "' must be a leaf tensor that requires grad");
    // The update kernels walk the parameter's storage as one flat buffer.
    KILN_CHECK(parameter.is_contiguous(), kind_, ": parameter '", name, "' ", parameter.describe(),
               " is not dense");
  }
  set_learning_rate(learning_rate);
}

void Optimizer::step() {
  NoGradGuard no_grad;  // the updates are not part of any model's forward pass
  // Every gradient is checked before any parameter changes.
  std::vector<ParameterUpdate> updates;
  for (std::size_t index = 0; index < parameters_.size(); ++index) {
    const auto& [name, parameter] = parameters_[index];
    const Tensor grad = parameter.grad();
    if (!grad.defined()) continue;  // the parameter took no part in this loss
    KILN_CHECK(grad.shape() == parameter.shape() && grad.dtype() == parameter.dtype() &&
                   grad.device() == parameter.device(),
               kind_, " step: the gradient of parameter '", name, "' is ", grad.describe(), " on ",
               grad.device().str(), " but the parameter is ", parameter.describe(), " on ",
               parameter.device().str());
    updates.push_back({index, parameter, grad.contiguous()});
  }
  if (!updates.empty()) update(updates);
  ++steps_taken_;
}

void Optimizer::zero_grad() {
  for (auto& [name, parameter] : parameters_) parameter.zero_grad();
}

void Optimizer::set_learning_rate(double learning_rate) {
  KILN_CHECK(std::isfinite(learning_rate) && learning_rate >= 0.0, kind_, ": learning rate ", learning_rate,
             " should be a finite number >= 0");
  learning_rate_ = learning_rate;
}

nlohmann::json Optimizer::state_json() const {
  return {{"kind", kind_}, {"hyperparameters", hyperparameters_json()}, {"steps_taken", steps_taken_}};
}

void Optimizer::load_state(const nlohmann::json& state, const std::vector<NamedTensor>& tensors) {
  const std::string where = load_context();
  const std::string stored_kind = string_field(state, "kind", where);
  KILN_CHECK(stored_kind == kind_, where, ": field 'kind' is '", stored_kind, "' but this optimizer is '",
             kind_, "'");
  const std::int64_t steps_taken = integer_field(state, "steps_taken", where);
  KILN_CHECK(steps_taken >= 0, where, ": field 'steps_taken' is ", steps_taken, " (expected >= 0)");
  const StoredTensors stored = check_stored_tensors(tensors);
  restore(state, stored);  // checks the rest, then changes the subclass's state
  steps_taken_ = steps_taken;
}

Optimizer::StoredTensors Optimizer::check_stored_tensors(const std::vector<NamedTensor>& tensors) const {
  const std::string where = load_context();
  const std::vector<std::string> buffers = state_buffer_names();
  StoredTensors stored;
  for (const auto& [name, tensor] : tensors) {
    // "exp_avg.stage1.0.conv1.weight": the buffer name has no dot, the parameter name may have several.
    const std::size_t dot = name.find('.');
    KILN_CHECK(dot != std::string::npos, where, ": tensor '", name, "' is not named <buffer>.<parameter>");
    const std::string buffer = name.substr(0, dot), parameter_name = name.substr(dot + 1);
    KILN_CHECK(std::find(buffers.begin(), buffers.end(), buffer) != buffers.end(), where, ": tensor '", name,
               "': ", kind_, " keeps no buffer '", buffer, "' (it keeps: ", joined(buffers), ")");
    const auto parameter =
        std::find_if(parameters_.begin(), parameters_.end(),
                     [&](const NamedTensor& entry) { return entry.first == parameter_name; });
    KILN_CHECK(parameter != parameters_.end(), where, ": tensor '", name, "' is for parameter '",
               parameter_name, "', which this optimizer does not have");
    KILN_CHECK(tensor.defined() && is_floating(tensor.dtype()), where, ": tensor '", name, "' is ",
               tensor.describe(), " (expected a floating tensor)");
    KILN_CHECK(tensor.shape() == parameter->second.shape(), where, ": tensor '", name, "' has shape ",
               tensor.shape(), " but parameter '", parameter_name, "' has shape ", parameter->second.shape());
    KILN_CHECK(stored.emplace(name, tensor).second, where, ": tensor '", name, "' appears twice");
  }
  return stored;
}

Tensor Optimizer::stored_buffer(const StoredTensors& tensors, const std::string& buffer,
                                std::size_t index) const {
  const auto& [name, parameter] = parameters_[index];
  const auto found = tensors.find(buffer + "." + name);
  if (found == tensors.end()) return Tensor();
  NoGradGuard no_grad;
  Tensor copy = Tensor::empty(parameter.shape(), parameter.dtype(), parameter.device());
  copy.copy_(found->second);
  return copy;
}

}  // namespace kiln::optim
