#include "optim/adam.hpp"

#include <cmath>
#include <utility>

#include "core/error.hpp"
#include "core/raw.hpp"
#include "kernels/optim_update/optim_update.hpp"
#include "optim/json_fields.hpp"

namespace kiln::optim {
namespace {

void check_options(const AdamOptions& options, const std::string& where) {
  KILN_CHECK(std::isfinite(options.lr) && options.lr >= 0.0, where, ": lr ", options.lr,
             " should be a finite number >= 0");
  KILN_CHECK(options.beta1 >= 0.0 && options.beta1 < 1.0, where, ": beta1 ", options.beta1,
             " should be in [0, 1)");
  KILN_CHECK(options.beta2 >= 0.0 && options.beta2 < 1.0, where, ": beta2 ", options.beta2,
             " should be in [0, 1)");
  KILN_CHECK(std::isfinite(options.eps) && options.eps >= 0.0, where, ": eps ", options.eps,
             " should be a finite number >= 0");
  KILN_CHECK(std::isfinite(options.weight_decay) && options.weight_decay >= 0.0, where, ": weight_decay ",
             options.weight_decay, " should be a finite number >= 0");
}

AdamOptions adam_options_from_json(const nlohmann::json& hyperparameters, const std::string& where) {
  reject_unknown_fields(hyperparameters, {"lr", "beta1", "beta2", "eps", "weight_decay"}, where);
  return {.lr = number_field(hyperparameters, "lr", where),
          .beta1 = number_field(hyperparameters, "beta1", where),
          .beta2 = number_field(hyperparameters, "beta2", where),
          .eps = number_field(hyperparameters, "eps", where),
          .weight_decay = number_field(hyperparameters, "weight_decay", where)};
}

}  // namespace

Adam::Adam(std::vector<NamedTensor> parameters, AdamOptions options)
    : Adam("adam", std::move(parameters), options, false) {}

Adam::Adam(std::string kind, std::vector<NamedTensor> parameters, AdamOptions options,
           bool decoupled_weight_decay)
    : Optimizer(std::move(kind), std::move(parameters), options.lr),
      options_(options),
      decoupled_weight_decay_(decoupled_weight_decay) {
  check_options(options_, this->kind());
  exp_avgs_.resize(this->parameters().size());
  exp_avg_sqs_.resize(this->parameters().size());
  parameter_steps_.assign(this->parameters().size(), 0);
}

AdamW::AdamW(std::vector<NamedTensor> parameters, AdamOptions options)
    : Adam("adamw", std::move(parameters), options, true) {}

AdamOptions Adam::options() const {
  AdamOptions current = options_;
  current.lr = learning_rate();
  return current;
}

void Adam::update(const std::vector<ParameterUpdate>& updates) {
  for (const ParameterUpdate& update : updates) {
    if (exp_avgs_[update.index].defined()) continue;
    const Tensor& parameter = update.parameter;
    exp_avgs_[update.index] = Tensor::zeros(parameter.shape(), parameter.dtype(), parameter.device());
    exp_avg_sqs_[update.index] = Tensor::zeros(parameter.shape(), parameter.dtype(), parameter.device());
  }
  // The bias corrections depend on each parameter's own step count, so it splits the groups.
  for_each_group(
      updates, [&](const ParameterUpdate& update) { return parameter_steps_[update.index] + 1; },
      [&](const std::vector<ParameterUpdate>& group) {
        const Tensor& leader = group.front().parameter;
        const kernels::AdamHyper hyper{.lr = learning_rate(),
                                       .beta1 = options_.beta1,
                                       .beta2 = options_.beta2,
                                       .eps = options_.eps,
                                       .weight_decay = options_.weight_decay,
                                       .decoupled_weight_decay = decoupled_weight_decay_,
                                       .step = parameter_steps_[group.front().index] + 1};
        raw::visit_float_or_double(leader.dtype(), kind(), [&]<typename T>() {
          std::vector<kernels::AdamSlice<T>> slices;
          slices.reserve(group.size());
          for (const ParameterUpdate& update : group) {
            slices.push_back({.param = update.parameter.data<T>(),
                              .grad = update.grad.data<T>(),
                              .exp_avg = exp_avgs_[update.index].data<T>(),
                              .exp_avg_sq = exp_avg_sqs_[update.index].data<T>(),
                              .n = update.parameter.numel()});
          }
          kernels::adam_update_many<T>(leader.device(), hyper, slices);
        });
      });
  for (const ParameterUpdate& update : updates) ++parameter_steps_[update.index];
}

nlohmann::json Adam::state_json() const {
  nlohmann::json state = Optimizer::state_json();
  nlohmann::json steps = nlohmann::json::object();
  for (std::size_t index = 0; index < parameter_steps_.size(); ++index) {
    if (parameter_steps_[index] > 0) steps[parameters()[index].first] = parameter_steps_[index];
  }
  state["parameter_steps"] = steps;
  return state;
}

std::vector<NamedTensor> Adam::state_tensors() const {
  std::vector<NamedTensor> tensors;
  for (std::size_t index = 0; index < exp_avgs_.size(); ++index) {
    if (!exp_avgs_[index].defined()) continue;
    const std::string& name = parameters()[index].first;
    tensors.emplace_back("exp_avg." + name, exp_avgs_[index]);
    tensors.emplace_back("exp_avg_sq." + name, exp_avg_sqs_[index]);
  }
  return tensors;
}

nlohmann::json Adam::hyperparameters_json() const {
  return {{"lr", learning_rate()},
          {"beta1", options_.beta1},
          {"beta2", options_.beta2},
          {"eps", options_.eps},
          {"weight_decay", options_.weight_decay}};
}

void Adam::restore(const nlohmann::json& state, const StoredTensors& tensors) {
  const std::string where = load_context();
  const AdamOptions stored =
      adam_options_from_json(json_field(state, "hyperparameters", where), where + " hyperparameters");
  check_options(stored, where);

  const nlohmann::json& stored_steps = json_field(state, "parameter_steps", where);
  std::vector<std::string_view> parameter_names;
  for (const auto& [name, parameter] : parameters()) parameter_names.push_back(name);
  reject_unknown_fields(stored_steps, parameter_names, where + " parameter_steps");

  const std::size_t count = parameters().size();
  std::vector<Tensor> exp_avgs(count), exp_avg_sqs(count);
  std::vector<std::int64_t> steps(count, 0);
  for (std::size_t index = 0; index < count; ++index) {
    const std::string& name = parameters()[index].first;
    exp_avgs[index] = stored_buffer(tensors, "exp_avg", index);
    exp_avg_sqs[index] = stored_buffer(tensors, "exp_avg_sq", index);
    if (stored_steps.contains(name)) {
      steps[index] = integer_field(stored_steps, name, where + " parameter_steps");
      KILN_CHECK(steps[index] >= 1, where, ": parameter_steps of '", name, "' is ", steps[index],
                 " (expected >= 1)");
    }
    // A parameter's state is all three or nothing.
    const bool has_state = steps[index] > 0;
    KILN_CHECK(exp_avgs[index].defined() == has_state && exp_avg_sqs[index].defined() == has_state, where,
               ": parameter '", name,
               "' needs exp_avg, exp_avg_sq and a parameter_steps entry together (has ",
               exp_avgs[index].defined() ? "exp_avg" : "no exp_avg", ", ",
               exp_avg_sqs[index].defined() ? "exp_avg_sq" : "no exp_avg_sq", ", ",
               has_state ? "a parameter_steps entry" : "no parameter_steps entry", ")");
  }
  // Everything is checked: from here on nothing throws.
  options_ = stored;
  set_learning_rate(stored.lr);
  exp_avgs_ = std::move(exp_avgs);
  exp_avg_sqs_ = std::move(exp_avg_sqs);
  parameter_steps_ = std::move(steps);
}

}  // namespace kiln::optim
