// Adam (Kingma & Ba) and AdamW (Loshchilov & Hutter), as torch.optim.Adam and AdamW define them
// (formulas in kernels/optim_update/optim_update.hpp). The two differ only in weight decay: Adam adds
// weight_decay * p to the gradient, where Adam's scaling then shrinks it for parameters with large
// gradients; AdamW shrinks the parameter itself by lr * weight_decay, the same for every parameter.
//
// State, per parameter, created on its first update: the moving averages "exp_avg.<parameter name>" (m)
// and "exp_avg_sq.<parameter name>" (v), and the count of its updates (the t of the bias corrections),
// which state_json() stores as {"parameter_steps": {"<parameter name>": t, ...}}.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "optim/optimizer.hpp"

namespace kiln::optim {

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

class Adam : public Optimizer {
 public:
  explicit Adam(std::vector<NamedTensor> parameters, AdamOptions options = {});

  AdamOptions options() const;  // with the current learning rate
  nlohmann::json state_json() const override;
  std::vector<NamedTensor> state_tensors() const override;

 protected:
  Adam(std::string kind, std::vector<NamedTensor> parameters, AdamOptions options,
       bool decoupled_weight_decay);

 private:
  void update(const std::vector<ParameterUpdate>& updates) override;
  nlohmann::json hyperparameters_json() const override;
  std::vector<std::string> state_buffer_names() const override { return {"exp_avg", "exp_avg_sq"}; }
  void restore(const nlohmann::json& state, const StoredTensors& tensors) override;

  AdamOptions options_;  // options_.lr is not read: the live rate is learning_rate(), which schedules change
  bool decoupled_weight_decay_;
  // One entry per parameter; undefined tensors and 0 steps until the parameter's first update.
  std::vector<Tensor> exp_avgs_, exp_avg_sqs_;
  std::vector<std::int64_t> parameter_steps_;
};

// AdamW's default weight decay is PyTorch's, 0.01, instead of Adam's 0. Options given explicitly are
// taken as they are: AdamW(parameters, {.lr = 1e-2}) has weight_decay 0.
class AdamW : public Adam {
 public:
  static AdamOptions default_options() { return {.weight_decay = 0.01}; }
  explicit AdamW(std::vector<NamedTensor> parameters, AdamOptions options = default_options());
};

}  // namespace kiln::optim
