// Stochastic gradient descent with optional momentum (heavy-ball or Nesterov), dampening and L2 weight
// decay, as torch.optim.SGD defines them (formulas in kernels/optim_update/optim_update.hpp).
//
// State: one momentum buffer per parameter ("momentum_buffer.<parameter name>"), created on the
// parameter's first update when momentum != 0, and never when momentum == 0.
#pragma once

#include <string>
#include <vector>

#include "optim/optimizer.hpp"

namespace kiln::optim {

struct SgdOptions {
  double lr = 0.1, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;  // needs momentum > 0 and dampening == 0
};

class Sgd : public Optimizer {
 public:
  explicit Sgd(std::vector<NamedTensor> parameters, SgdOptions options = {});

  SgdOptions options() const;  // with the current learning rate
  std::vector<NamedTensor> state_tensors() const override;

 private:
  void update(const std::vector<ParameterUpdate>& updates) override;
  nlohmann::json hyperparameters_json() const override;
  std::vector<std::string> state_buffer_names() const override { return {"momentum_buffer"}; }
  void restore(const nlohmann::json& state, const StoredTensors& tensors) override;

  SgdOptions options_;  // options_.lr is not read: the live rate is learning_rate(), which schedules change
  std::vector<Tensor> momentum_buffers_;  // one per parameter, undefined until its first update with momentum
};

}  // namespace kiln::optim
