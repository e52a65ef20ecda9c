// Evaluation and prediction with a trained multi-label model (data/label_table.hpp), under no_grad and
// in eval mode: the sigmoid probability of every label, scored against the per-label thresholds.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/loader.hpp"
#include "layers/module.hpp"
#include "train/graphed_step.hpp"
#include "train/model_io.hpp"
#include "train/multi_label_metrics.hpp"
#include "train/precision.hpp"
#include "train/tta.hpp"

namespace kiln::train {

// Runs the model over every batch of the loader's epoch 0 (a multi-label folder), in `precision`, and gathers
// each sample's probabilities, targets and binary cross-entropy: ask the result for a report at some
// thresholds, or choose the thresholds from it (train/multi_label_thresholds.hpp).
// With `graphed`, made by multi_label_evaluation_graph() for this model and precision, each batch's forward
// pass runs through it, as evaluate()'s does (train/evaluate.hpp).
// With `views` (and no graph), each image's label probabilities are averaged over them (train/tta.hpp).
MultiLabelMetrics evaluate_multi_label(layers::Module& model, data::DataLoader& loader, std::int64_t labels,
                                       Precision precision = Precision::Float32,
                                       GraphedStep* graphed = nullptr,
                                       const std::vector<TtaView>* views = nullptr);

// evaluate_multi_label()'s forward pass for a model on a CUDA device, as a GraphedStep, as evaluation_graph()
// is evaluate()'s.
std::unique_ptr<GraphedStep> multi_label_evaluation_graph(layers::Module& model, Precision precision);

struct LabelScore {
  std::string name;
  std::int64_t index;
  double probability, threshold;
  bool applies() const { return probability >= threshold; }  // the prediction: p >= threshold
};

// Every label's score for one image file (in label order), preprocessed exactly as in training, with the
// checkpoint's thresholds. Throws unless `model` is multi-label.
std::vector<LabelScore> predict_labels_file(const LoadedModel& model, const std::filesystem::path& image,
                                            const std::vector<TtaView>* views = nullptr);

}  // namespace kiln::train
