// EvalMode: a module in eval mode (batch norm uses its running statistics, dropout is off) and no
// gradient recorded, for one scope; the module's own mode comes back when the scope ends, also when an
// exception leaves it, so evaluating in the middle of training never leaves the model in eval mode.
//   { EvalMode evaluating(model); ... model(images) ... }
#pragma once

#include "core/autograd.hpp"
#include "layers/module.hpp"

namespace kiln::train {

class EvalMode {
 public:
  explicit EvalMode(layers::Module& model) : model_(model), was_training_(model.is_training()) {
    model_.eval();
  }
  ~EvalMode() { model_.train(was_training_); }
  EvalMode(const EvalMode&) = delete;
  EvalMode& operator=(const EvalMode&) = delete;

 private:
  layers::Module& model_;
  bool was_training_;
  NoGradGuard no_grad_;
};

}  // namespace kiln::train
