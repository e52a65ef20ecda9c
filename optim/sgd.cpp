#include "optim/sgd.hpp"

#include <cmath>
#include <utility>

#include "core/error.hpp"
#include "core/raw.hpp"
#include "kernels/optim_update/optim_update.hpp"
#include "optim/json_fields.hpp"

namespace kiln::optim {
namespace {

void check_options(const SgdOptions& options, const std::string& where) {
  KILN_CHECK(std::isfinite(options.lr) && options.lr >= 0.0, where, ": lr ", options.lr,
             " should be a finite number >= 0");
  KILN_CHECK(std::isfinite(options.momentum) && options.momentum >= 0.0, where, ": momentum ",
             options.momentum, " should be a finite number >= 0");
  KILN_CHECK(std::isfinite(options.dampening), where, ": dampening ", options.dampening, " should be finite");
  KILN_CHECK(std::isfinite(options.weight_decay) && options.weight_decay >= 0.0, where, ": weight_decay ",
             options.weight_decay, " should be a finite number >= 0");
  KILN_CHECK(!options.nesterov || (options.momentum > 0.0 && options.dampening == 0.0), where,
             ": nesterov needs momentum > 0 and dampening 0 (got momentum ", options.momentum, ", dampening ",
             options.dampening, ")");
}

SgdOptions sgd_options_from_json(const nlohmann::json& hyperparameters, const std::string& where) {
  reject_unknown_fields(hyperparameters, {"lr", "momentum", "dampening", "weight_decay", "nesterov"}, where);
  return {.lr = number_field(hyperparameters, "lr", where),
          .momentum = number_field(hyperparameters, "momentum", where),
          .dampening = number_field(hyperparameters, "dampening", where),
          .weight_decay = number_field(hyperparameters, "weight_decay", where),
          .nesterov = bool_field(hyperparameters, "nesterov", where)};
}

}  // namespace

Sgd::Sgd(std::vector<NamedTensor> parameters, SgdOptions options)
    : Optimizer("sgd", std::move(parameters), options.lr), options_(options) {
  check_options(options_, "sgd");
  momentum_buffers_.resize(this->parameters().size());
}

SgdOptions Sgd::options() const {
  SgdOptions current = options_;
  current.lr = learning_rate();
  return current;
}

void Sgd::update(const std::vector<ParameterUpdate>& updates) {
  // A parameter's first update with momentum writes its buffer without reading it, so the buffer need not
  // be initialized; which parameters take that first step is per parameter, so it splits the groups.
  std::vector<bool> first_step(parameters().size(), false);
  for (const ParameterUpdate& update : updates) {
    Tensor& buffer = momentum_buffers_[update.index];
    if (options_.momentum == 0.0 || buffer.defined()) continue;
    first_step[update.index] = true;
    buffer = Tensor::empty(update.parameter.shape(), update.parameter.dtype(), update.parameter.device());
  }
  for_each_group(
      updates, [&](const ParameterUpdate& update) { return static_cast<bool>(first_step[update.index]); },
      [&](const std::vector<ParameterUpdate>& group) {
        const Tensor& leader = group.front().parameter;
        const kernels::SgdHyper hyper{.lr = learning_rate(),
                                      .momentum = options_.momentum,
                                      .dampening = options_.dampening,
                                      .weight_decay = options_.weight_decay,
                                      .nesterov = options_.nesterov,
                                      .first_step = first_step[group.front().index]};
        raw::visit_float_or_double(leader.dtype(), "sgd", [&]<typename T>() {
          std::vector<kernels::SgdSlice<T>> slices;
          slices.reserve(group.size());
          for (const ParameterUpdate& update : group) {
            const Tensor& buffer = momentum_buffers_[update.index];
            slices.push_back({.param = update.parameter.data<T>(),
                              .grad = update.grad.data<T>(),
                              .momentum_buffer = data_or_null<T>(buffer),
                              .n = update.parameter.numel()});
          }
          kernels::sgd_update_many<T>(leader.device(), hyper, slices);
        });
      });
}

std::vector<NamedTensor> Sgd::state_tensors() const {
  std::vector<NamedTensor> tensors;
  for (std::size_t index = 0; index < momentum_buffers_.size(); ++index) {
    if (!momentum_buffers_[index].defined()) continue;
    tensors.emplace_back("momentum_buffer." + parameters()[index].first, momentum_buffers_[index]);
  }
  return tensors;
}

nlohmann::json Sgd::hyperparameters_json() const {
  return {{"lr", learning_rate()},
          {"momentum", options_.momentum},
          {"dampening", options_.dampening},
          {"weight_decay", options_.weight_decay},
          {"nesterov", options_.nesterov}};
}

void Sgd::restore(const nlohmann::json& state, const StoredTensors& tensors) {
  const std::string where = load_context();
  const SgdOptions stored =
      sgd_options_from_json(json_field(state, "hyperparameters", where), where + " hyperparameters");
  check_options(stored, where);
  KILN_CHECK(stored.momentum != 0.0 || tensors.empty(), where, ": momentum is 0 but the state has ",
             tensors.size(), " momentum buffers (the first is '",
             tensors.empty() ? "" : tensors.begin()->first, "')");
  std::vector<Tensor> buffers(parameters().size());
  for (std::size_t index = 0; index < buffers.size(); ++index) {
    buffers[index] = stored_buffer(tensors, "momentum_buffer", index);
  }
  // Everything is checked: from here on nothing throws.
  options_ = stored;
  set_learning_rate(stored.lr);
  momentum_buffers_ = std::move(buffers);
}

}  // namespace kiln::optim
