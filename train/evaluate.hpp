// Evaluation and prediction with a trained model, under no_grad and in eval mode.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/loader.hpp"
#include "layers/module.hpp"
#include "train/graphed_step.hpp"
#include "train/metrics.hpp"
#include "train/model_io.hpp"
#include "train/precision.hpp"
#include "train/tta.hpp"

namespace kiln::train {

// One evaluated image: its index in the loader's folder, its true class, the predicted class (argmax) and
// the probabilities the model gave both.
struct SampleOutcome {
  std::size_t sample = 0;
  std::int64_t label = 0, predicted = 0;
  double label_probability = 0, predicted_probability = 0;
};

// Runs the model over every batch of the loader's epoch 0, in `precision`, and accumulates metrics (loss
// included). With `outcomes`, also lists every image's outcome, in the loader's order. With `graphed`, made
// by evaluation_graph() for this model and precision, each batch's forward pass runs through it: as a CUDA
// graph from its second full batch on (train/graphed_step.hpp), across evaluations. With `views` (and no
// graph), each image's prediction is averaged over them (test-time augmentation, train/tta.hpp).
MetricsReport evaluate(layers::Module& model, data::DataLoader& loader, std::int64_t classes,
                       std::vector<SampleOutcome>* outcomes = nullptr,
                       Precision precision = Precision::Float32, GraphedStep* graphed = nullptr,
                       const std::vector<TtaView>* views = nullptr);

// The forward pass evaluate() runs per batch, for a model on a CUDA device, as a GraphedStep (`kiln train
// --cuda-graphs` evaluates every epoch through one). The model's tensors must stay where they are while it
// lives, as training keeps them (its updates are in place).
std::unique_ptr<GraphedStep> evaluation_graph(layers::Module& model, Precision precision);

// The misclassified outcomes, worst first: those where the model gave the true class the least
// probability (it was most sure of something else). At most `count`.
std::vector<SampleOutcome> worst_misclassified(const std::vector<SampleOutcome>& outcomes, std::size_t count);

struct ClassScore {
  std::string name;
  std::int64_t index;
  double probability;
};

// The top `k` classes for one image file, preprocessed exactly as in training; with `views`, its prediction
// averaged over them (train/tta.hpp).
std::vector<ClassScore> predict_file(const LoadedModel& model, const std::filesystem::path& image,
                                     std::int64_t k, const std::vector<TtaView>* views = nullptr);

}  // namespace kiln::train
