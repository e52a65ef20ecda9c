// Optimizer: updates a fixed list of named parameters from their gradients, and saves and restores its
// own state so that a resumed run continues exactly.
//
// A training step is
//     optimizer.zero_grad();  loss.backward();  optimizer.step();
// step() runs under NoGradGuard, skips parameters without a gradient (unused in this forward pass), and
// updates every other parameter in place through the kernels/optim_update kernels, so the model's own
// tensors change. Parameters must be dense leaf tensors that require grad, float32 or float64, on the CPU
// or a CUDA device (each parameter's optimizer state lives on its device). The update is multi-tensor: the
// parameters that share dtype, device and per-parameter hyperparameters (SGD's first step, Adam's step
// count) go to one *_update_many call, which on CUDA updates them in a few kernel launches instead of one
// per parameter, and on the CPU gives bitwise the per-parameter results.
//
// Checkpointing is split in two, like the model's weights and its architecture:
//   state_json()     {"kind": "sgd", "hyperparameters": {"lr": 0.1, ...}, "steps_taken": 5, ...}
//   state_tensors()  per-parameter buffers, named "<buffer>.<parameter name>" ("exp_avg.fc.weight")
// load_state() takes both back, checks every name, type and shape before changing anything, and restores
// the hyperparameters too (as PyTorch's load_state_dict does).
//
// Subclasses (Sgd, Adam, AdamW) supply the update of the parameters that have a gradient and their own
// state; this class does everything they share.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace kiln::optim {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Updates every parameter that has a gradient, then counts the step.
  void step();
  // Drops every parameter's gradient (undefined, like PyTorch's set_to_none), so the next backward()
  // starts from nothing instead of adding to the last one.
  void zero_grad();

  double learning_rate() const { return learning_rate_; }
  void set_learning_rate(double learning_rate);  // schedules call this before each step
  std::int64_t steps_taken() const { return steps_taken_; }
  const std::string& kind() const { return kind_; }  // "sgd", "adam", "adamw"
  const std::vector<NamedTensor>& parameters() const { return parameters_; }

  // ---- checkpointing -----------------------------------------------------------------------------------
  virtual nlohmann::json state_json() const;
  // The live state buffers (not copies), only those that exist: a parameter that never had a gradient,
  // or momentum 0, has none.
  virtual std::vector<NamedTensor> state_tensors() const = 0;
  // Restores what state_json() and state_tensors() returned, on an optimizer of the same kind over
  // parameters with the same names and shapes. Throws kiln::Error naming the field or tensor at fault and
  // leaves the optimizer unchanged. The tensors are copied, so the caller's stay its own.
  void load_state(const nlohmann::json& state, const std::vector<NamedTensor>& tensors);

 protected:
  // Checks the parameters (non-empty, unique names, dense floating leaves that require grad).
  Optimizer(std::string kind, std::vector<NamedTensor> parameters, double learning_rate);

  // Stored state tensors by name, each already checked to be "<buffer>.<parameter name>" for one of
  // state_buffer_names() and to have its parameter's shape.
  using StoredTensors = std::map<std::string, Tensor>;

  // A parameter step() updates: its position in parameters(), the tensor, and its gradient (dense, same
  // dtype, shape and device).
  struct ParameterUpdate {
    std::size_t index;
    Tensor parameter;
    Tensor grad;
  };
  // One update of every parameter in `updates` (those with a gradient, in parameters() order, at least one).
  virtual void update(const std::vector<ParameterUpdate>& updates) = 0;
  // Splits `updates` into the groups one multi-tensor kernel call can take: the same dtype, device and
  // key(update) (a per-parameter hyperparameter, compared with ==). Calls visit(group), a
  // std::vector<ParameterUpdate> in parameters() order, once per group, groups in order of first appearance.
  template <class Key, class Visit>
  static void for_each_group(const std::vector<ParameterUpdate>& updates, Key key, Visit visit);
  // All hyperparameters, "lr" included, as stored by state_json().
  virtual nlohmann::json hyperparameters_json() const = 0;
  // The per-parameter buffers this optimizer keeps ("momentum_buffer"; "exp_avg", "exp_avg_sq").
  virtual std::vector<std::string> state_buffer_names() const = 0;
  // Restores the hyperparameters and per-parameter state from a stored state whose kind, steps_taken
  // and tensor names the base class has checked. Must check all it reads before changing anything.
  virtual void restore(const nlohmann::json& state, const StoredTensors& tensors) = 0;

  // A dense copy of the stored tensor "<buffer>.<name of parameter index>" in the parameter's dtype and
  // device, or an undefined tensor when the state has none.
  Tensor stored_buffer(const StoredTensors& tensors, const std::string& buffer, std::size_t index) const;
  // "adam load_state", the start of every load_state error.
  std::string load_context() const { return kind_ + " load_state"; }

 private:
  // Checks every stored tensor's name and shape; returns them by name.
  StoredTensors check_stored_tensors(const std::vector<NamedTensor>& tensors) const;

  std::string kind_;
  std::vector<NamedTensor> parameters_;
  double learning_rate_;
  std::int64_t steps_taken_ = 0;
};

template <class Key, class Visit>
void Optimizer::for_each_group(const std::vector<ParameterUpdate>& updates, Key key, Visit visit) {
  using KeyValue = decltype(key(updates.front()));
  struct Group {
    DType dtype;
    Device device;
    KeyValue key;
    std::vector<ParameterUpdate> members;
  };
  std::vector<Group> groups;
  for (const ParameterUpdate& update : updates) {
    const DType dtype = update.parameter.dtype();
    const Device device = update.parameter.device();
    const KeyValue value = key(update);
    auto group = std::find_if(groups.begin(), groups.end(), [&](const Group& candidate) {
      return candidate.dtype == dtype && candidate.device == device && candidate.key == value;
    });
    if (group == groups.end()) group = groups.insert(groups.end(), Group{dtype, device, value, {}});
    group->members.push_back(update);
  }
  for (const Group& group : groups) visit(group.members);
}

}  // namespace kiln::optim
