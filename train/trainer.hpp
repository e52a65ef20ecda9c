// The training loop: data -> model -> cross-entropy -> backward -> optimizer, one epoch at a time, with
// validation after each epoch, metrics appended to RUNDIR/metrics.jsonl, and RUNDIR/last.kiln written
// atomically after every epoch so an interrupted run loses at most one epoch and `resume` continues it.
//
// Everything random is a function of the seed: weight initialization, the epoch's sample order, each
// sample's augmentation, dropout. A run resumed from the checkpoint of epoch k therefore ends with the
// same weights as one that never stopped.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/augment.hpp"
#include "train/metrics.hpp"

namespace kiln::train {

struct TrainConfig {
  std::filesystem::path data;  // root/<class>/... or root/{train,test[,val]}/<class>/...
  std::filesystem::path run_dir = "runs/latest";
  std::string model = "resnet20";
  std::int64_t epochs = 10;
  std::int64_t batch_size = 128;
  std::string optimizer = "sgd";  // sgd | adam | adamw
  double learning_rate = 0.1;
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 5e-4;
  std::string schedule = "cosine";              // constant | multistep | cosine | onecycle
  std::vector<std::int64_t> milestones;         // multistep: epochs at which the rate is multiplied by gamma
  double gamma = 0.1;
  std::int64_t warmup_epochs = 0;
  double label_smoothing = 0.0;
  double clip_grad_norm = 0.0;                  // 0: off
  double val_split = 0.0;                       // used when the data has no val/ folder
  data::Augmentation augmentation{.crop_padding = 4, .horizontal_flip = true};
  std::uint64_t seed = 0;
  int loader_threads = 2;                       // data-loading threads (compute threads are set by the caller)
  bool strict = false;                          // a bad image file is an error, not a warning
  std::int64_t max_steps_per_epoch = 0;         // 0: whole epochs (tests and smoke runs use a cap)
  // Class imbalance (train/class_balance.hpp); at most one of the two.
  std::string class_weights;                    // "" (none), "auto", or a "class,weight" file
  std::vector<double> class_weight_values;      // [classes] the resolved weights, filled in at the start
                                                // of a run and stored, so --resume keeps them
  bool balanced_sampler = false;                // draw each epoch with replacement, classes equally likely

  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& json);
};

// What the loop reports as it goes; the CLI draws a progress bar or prints JSON lines from these.
struct StepProgress {
  std::int64_t epoch, step, steps_in_epoch;
  double loss, learning_rate, images_per_second;
};

struct EpochSummary {
  std::int64_t epoch, epochs;
  double train_loss, train_accuracy, learning_rate, seconds, images_per_second;
  std::optional<MetricsReport> validation;
  std::vector<std::string> classes = {};  // names for the per-class recall in to_json
  nlohmann::json to_json() const;
};

class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  virtual void on_start(const nlohmann::json& /*plan*/) {}
  virtual void on_step(const StepProgress& /*progress*/) {}
  virtual void on_epoch(const EpochSummary& /*summary*/) {}
};

struct TrainResult {
  std::filesystem::path checkpoint;  // RUNDIR/last.kiln
  std::vector<EpochSummary> history;
};

enum class RunStart {
  Fresh,    // a new run; refuses a run folder that already holds last.kiln, so no work is overwritten
  Resume,   // continue RUNDIR/last.kiln with its stored configuration (only the epoch count may grow)
  Replace,  // a new run that may replace an existing last.kiln (at the end of its first epoch)
};

// Throws kiln::Error on bad data, a NaN loss (after which last.kiln still holds the last good epoch)
// or a failed checkpoint write (which leaves the previous last.kiln intact).
TrainResult train(const TrainConfig& config, RunStart start, TrainingObserver& observer);

}  // namespace kiln::train
