// Post-training quantization of a trained checkpoint, end to end (what `kiln quantize` runs):
//
//   1. lower the model to an inference program (batch-norm folded, ReLU fused) and check that the
//      program computes the model's logits (float32, on the first calibration batch);
//   2. calibrate: run the program in float on a seeded sample of the training images, recording each
//      value's range;
//   3. quantize: int8 per-channel weights, u8 per-tensor activations (quantized_model.hpp);
//   4. compare, when the data has a test split: the float model and the int8 model on every test image,
//      accuracy, agreement of their predictions, and the time of each forward pass (the data loading is
//      outside the timed region, and both see the same batches).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>  // the full type: QuantizeResult holds a json by value
#include <optional>
#include <string>

#include "data/dataset.hpp"
#include "quant/quantized_model.hpp"
#include "train/model_io.hpp"

namespace kiln::quant {

struct QuantizeOptions {
  std::int64_t calibration_images = 512;  // drawn from the training split (all of it when smaller)
  std::int64_t batch_size = 128;
  std::uint64_t seed = 0;  // picks the calibration sample
  int loader_threads = 2;
  bool strict = false;  // an unreadable image is an error, not skipped
  bool compare = true;  // evaluate both models on the test split when there is one
};

struct ModelScore {
  double accuracy = 0;  // top-1
  double seconds = 0;   // forward passes only
};

struct QuantizeComparison {
  std::int64_t images = 0;
  std::int64_t batch_size = 0;
  ModelScore float32, int8;
  double agreement = 0;  // the fraction of images both models give the same class
  double accuracy_drop() const {
    return float32.accuracy - int8.accuracy;
  }  // in [0, 1]; < 0: int8 did better
  double speedup() const { return float32.seconds / int8.seconds; }
  double images_per_second(const ModelScore& score) const {
    return static_cast<double>(images) / score.seconds;
  }
};

struct QuantizeResult {
  QuantizedModel model;
  nlohmann::json header;  // what save() should record besides the model: architecture, classes, ...
  std::int64_t calibration_images = 0;
  double lowering_error = 0;  // max |program logits - model logits| on the first calibration batch
  std::optional<QuantizeComparison> comparison;  // absent without a test split or with compare off
};

// What the stages report as they go (for a progress line): a stage name and the images done of total.
using QuantizeProgress = std::function<void(const std::string& stage, std::int64_t done, std::int64_t total)>;

// Throws kiln::Error when the model cannot be lowered (a module int8 inference lacks), when the data's
// classes differ from the model's, or when the lowered program does not reproduce the model's logits
// (which would be a kiln bug, reported rather than shipped).
QuantizeResult quantize_checkpoint(const train::LoadedModel& loaded, const std::filesystem::path& source,
                                   const data::DataSplits& splits, const QuantizeOptions& options,
                                   const QuantizeProgress& progress = {});

}  // namespace kiln::quant
