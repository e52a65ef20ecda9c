// Evaluation and prediction with a trained model, under no_grad and in eval mode.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data/loader.hpp"
#include "layers/module.hpp"
#include "train/metrics.hpp"
#include "train/model_io.hpp"

namespace kiln::train {

// Runs the model over every batch of the loader's epoch 0 and accumulates metrics (loss included).
MetricsReport evaluate(layers::Module& model, data::DataLoader& loader, std::int64_t classes);

struct ClassScore {
  std::string name;
  std::int64_t index;
  double probability;
};

// The top `k` classes for one image file, preprocessed exactly as in training.
std::vector<ClassScore> predict_file(const LoadedModel& model, const std::filesystem::path& image, std::int64_t k);

}  // namespace kiln::train
