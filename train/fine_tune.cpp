#include "train/fine_tune.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "layers/linear.hpp"
#include "train/model_io.hpp"

namespace kiln::train {
namespace {

// Depth first, in registration order, so the last Linear found is the one closest to the output.
void find_last_linear(const layers::Module& module, const std::string& prefix, std::string& found) {
  for (const auto& [name, child] : module.named_children()) {
    const std::string path = prefix.empty() ? name : prefix + "." + name;
    if (dynamic_cast<const layers::Linear*>(child.get()) != nullptr) found = path;
    find_last_linear(*child, path, found);
  }
}

std::string joined(const std::vector<std::string>& names) {
  std::string list;
  for (const std::string& name : names) list += (list.empty() ? "" : ", ") + name;
  return list;
}

const layers::ModulePtr& top_level_module(const layers::Module& model, const std::string& name) {
  for (const auto& [child_name, child] : model.named_children()) {
    if (child_name == name) return child;
  }
  fail("unknown module '", name, "' (the model's top-level modules: ", joined(top_level_module_names(model)), ")");
}

bool is_under(const std::string& tensor_name, const std::string& module) {
  return tensor_name.starts_with(module + ".");
}

}  // namespace

std::string head_module_name(const layers::Module& model) {
  std::string found;
  find_last_linear(model, "", found);
  KILN_CHECK(!found.empty(), "fine-tuning: the model has no Linear layer to use as its classifier head");
  return found;
}

std::vector<std::string> top_level_module_names(const layers::Module& model) {
  std::vector<std::string> names;
  for (const auto& [name, child] : model.named_children()) names.push_back(name);
  return names;
}

std::vector<std::string> resolve_frozen_modules(const layers::Module& model, const std::vector<std::string>& freeze,
                                                const std::string& freeze_until) {
  const std::vector<std::string> names = top_level_module_names(model);
  const auto check_known = [&](const std::string& name, const char* option) {
    KILN_CHECK(std::find(names.begin(), names.end(), name) != names.end(), "train: ", option, " names unknown module '",
               name, "' (the model's top-level modules: ", joined(names), ")");
  };
  for (const std::string& name : freeze) check_known(name, "--freeze");
  if (!freeze_until.empty()) check_known(freeze_until, "--freeze-until");

  std::vector<std::string> frozen;
  bool before_until = !freeze_until.empty();
  for (const std::string& name : names) {
    if (name == freeze_until) before_until = false;
    if (before_until || std::find(freeze.begin(), freeze.end(), name) != freeze.end()) frozen.push_back(name);
  }
  bool something_trains = false;
  for (const auto& [name, child] : model.named_children()) {
    const bool frozen_child = std::find(frozen.begin(), frozen.end(), name) != frozen.end();
    if (!frozen_child && child->parameter_count() > 0) something_trains = true;
  }
  KILN_CHECK(something_trains, "train: --freeze and --freeze-until freeze every module with parameters (",
             joined(frozen), "); nothing would train");
  return frozen;
}

void freeze_modules(layers::Module& model, const std::vector<std::string>& frozen) {
  for (const std::string& name : frozen) {
    for (Tensor parameter : top_level_module(model, name)->parameters()) parameter.set_requires_grad(false);
  }
}

void keep_frozen_modules_in_eval(layers::Module& model, const std::vector<std::string>& frozen) {
  for (const std::string& name : frozen) top_level_module(model, name)->eval();
}

TrainableParameters trainable_parameters(const layers::Module& model, const std::string& head) {
  TrainableParameters split;
  for (NamedTensor& entry : model.named_parameters()) {
    if (!entry.second.requires_grad()) continue;
    (is_under(entry.first, head) ? split.head : split.body).push_back(std::move(entry));
  }
  return split;
}

void load_initial_weights(layers::Module& model, const Checkpoint& source, const std::filesystem::path& path,
                          const std::string& head, bool replace_head) {
  const std::string head_prefix = kModelTensorPrefix + head;
  const auto kept = [&](const std::string& name) { return !(replace_head && is_under(name, head_prefix)); };
  std::vector<NamedTensor> destination, stored;
  for (NamedTensor& entry : model_state(model)) {
    if (kept(entry.first)) destination.push_back(std::move(entry));
  }
  for (NamedTensor& entry : served_weights(source)) {
    if (kept(entry.first)) stored.push_back(std::move(entry));
  }
  load_into(destination, Checkpoint{source.header, std::move(stored)}, path);
}

}  // namespace kiln::train
