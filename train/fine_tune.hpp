// Fine-tuning (transfer learning): a new run whose model starts from another run's checkpoint
// (`kiln train NEWDATA --init CKPT`), with some of its top-level modules frozen and the classifier head
// optionally trained at its own learning rate.
//
//   - The architecture and the preprocessing come from CKPT: the features were learned under that
//     preprocessing, so the new data is seen the same way. The new data's input size must match it.
//   - The head is the last Linear module in the model's module tree ("fc" in the ResNets, "fc3" in
//     lenet5). When the new data's classes differ from CKPT's (names, order or count), the head is
//     re-initialized for the new class count from the run's seed; when they are equal, every weight is kept.
//   - A frozen module's parameters get no gradient (requires_grad is turned off, so backward does not
//     even compute it) and are left out of the optimizer, so weight decay cannot move them either. Its
//     batch-norm layers stay in eval mode while the rest trains: they normalize with the running
//     statistics learned on CKPT's data and never update them, so a frozen module computes exactly the
//     function it computed before (PyTorch's usual recipe of freezing and calling .eval() on the frozen part).
//
// The checkpoint's configuration records all of it (TrainConfig's init_*, freeze, head_learning_rate),
// so --resume trains on with the same modules frozen.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "layers/module.hpp"
#include "train/checkpoint.hpp"

namespace kiln::train {

// The dotted name of the last Linear module in the tree, depth first in registration order ("fc").
// Throws when the model has none.
std::string head_module_name(const layers::Module& model);

// The model's top-level module names, in order.
std::vector<std::string> top_level_module_names(const layers::Module& model);

// The top-level modules to freeze, in model order: those named in `freeze` (--freeze) and every one
// before `freeze_until` (--freeze-until, "" for none). An unknown name is an error listing the valid
// ones; freezing every module that has parameters is an error (nothing would train).
std::vector<std::string> resolve_frozen_modules(const layers::Module& model, const std::vector<std::string>& freeze,
                                                const std::string& freeze_until);

// Turns off requires_grad on every parameter of the named top-level modules.
void freeze_modules(layers::Module& model, const std::vector<std::string>& frozen);

// Puts the named top-level modules in eval mode: call after model.train() at the start of each epoch,
// so their batch-norm layers keep their running statistics.
void keep_frozen_modules_in_eval(layers::Module& model, const std::vector<std::string>& frozen);

// The parameters an optimizer updates, split into the head's (those under `head` + ".") and the rest;
// frozen ones (requires_grad off) are in neither.
struct TrainableParameters {
  std::vector<NamedTensor> body, head;
};
TrainableParameters trainable_parameters(const layers::Module& model, const std::string& head);

// Copies `source`'s model tensors ("model.*", read from `path`) into `model`, all of them or, with
// `replace_head`, all but the head's (which keep the model's fresh, seeded initialization). Everything
// else must match in name and shape, which it does when `model` was built from the source's architecture.
void load_initial_weights(layers::Module& model, const Checkpoint& source, const std::filesystem::path& path,
                          const std::string& head, bool replace_head);

}  // namespace kiln::train
