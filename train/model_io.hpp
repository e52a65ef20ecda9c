// A trained model as a checkpoint carries it: the architecture to rebuild, the weights, the class names
// and the one Preprocessing that train, eval and predict all apply. Loading checks what it reads and
// names the field that is wrong, so a checkpoint from another architecture or kiln version fails loudly
// instead of predicting nonsense.
//
// A multi-label checkpoint (data/label_table.hpp) carries the same fields, with "classes" holding the
// label names, plus "task": "multi_label" and "thresholds" (train/multi_label_thresholds.hpp). A header
// without "task" is a single-label classifier.
//
// An int8 model written by `kiln quantize` (kind "kiln-int8-classifier", quant/quantized_model.hpp) loads
// too: the same fields, and a model that runs the int8 kernels (quant::QuantizedModule) with no
// parameters and no backward. LoadedModel::int8() tells them apart.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>  // the full type: LoadedModel holds a json by value
#include <string>
#include <vector>

#include "data/dataset.hpp"
#include "data/preprocessing.hpp"
#include "layers/module.hpp"
#include "models/architecture.hpp"
#include "train/checkpoint.hpp"
#include "train/multi_label_thresholds.hpp"

namespace kiln::train {

inline constexpr const char* kCheckpointKind = "kiln-classifier";
inline constexpr int kCheckpointSchema = 1;  // the header layout below; bump on incompatible change
inline constexpr const char* kModelTensorPrefix = "model.";
inline constexpr const char* kOptimizerTensorPrefix = "optimizer.";
inline constexpr const char* kSingleLabelTask = "single_label";
inline constexpr const char* kMultiLabelTask = "multi_label";

struct LoadedModel {
  models::ArchitectureSpec architecture;
  layers::ModulePtr model;  // in eval mode
  std::vector<std::string> classes;  // the label names for a multi-label model
  data::Preprocessing preprocessing;
  nlohmann::json header;
  std::string task = kSingleLabelTask;  // kSingleLabelTask or kMultiLabelTask
  ThresholdChoice thresholds;           // multi-label only: one decision threshold per label

  bool multi_label() const { return task == kMultiLabelTask; }
  bool int8() const;  // the model is an int8 model (kiln quantize), which cannot be trained or differentiated
};

// Reads a checkpoint written by `kiln train` and rebuilds its model with the stored weights.
LoadedModel load_model(const std::filesystem::path& checkpoint);

// Throws unless `folder` lists the model's classes in the model's order (output i means class i), naming
// the first class that differs.
void check_same_classes(const LoadedModel& model, const data::ImageFolder& folder);

// The model's parameters and buffers under the names a checkpoint stores them by ("model.fc.weight").
std::vector<NamedTensor> model_state(const layers::Module& model);

// The weights a checkpoint hands to whoever uses its model (load_model, --init): a run with --ema's
// averaged ones (train/weight_average.hpp), under model_state's names, else its "model." tensors.
std::vector<NamedTensor> served_weights(const Checkpoint& checkpoint);

}  // namespace kiln::train
