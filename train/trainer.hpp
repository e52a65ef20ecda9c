// The training loop: data -> model -> cross-entropy -> backward -> optimizer, one epoch at a time, with
// validation after each epoch (or every --eval-every epochs), metrics appended to RUNDIR/metrics.jsonl, and
// RUNDIR/last.kiln written atomically after every epoch so an interrupted run loses at most one epoch and
// `resume` continues it. Ctrl-C under a train::StopOnInterrupt ends the run after the step in flight with
// train::Interrupted (train/interrupt.hpp). With a held-out split, RUNDIR/best.kiln also holds the epoch with
// the best monitored metric so far, and --early-stop ends the run when that stops improving
// (train/early_stopping.hpp).
//
// A data path ending in .csv is a labels file (data/label_table.hpp): the run is then multi-label, with
// one sigmoid output per label, binary cross-entropy on logits (mean over the batch and the labels), the
// per-label metrics of train/multi_label_metrics.hpp on the held-out split, and per-label decision
// thresholds chosen on the validation split after every epoch (train/multi_label_thresholds.hpp) and
// stored with the weights in last.kiln and best.kiln.
//
// Everything random is a function of the seed: weight initialization, the epoch's sample order, each
// sample's augmentation, dropout. A run resumed from the checkpoint of epoch k therefore ends with the
// same weights as one that never stopped.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <optional>
#include <string>
#include <vector>

#include "data/augment.hpp"
#include "train/early_stopping.hpp"
#include "train/metrics.hpp"
#include "train/multi_label_metrics.hpp"
#include "train/multi_label_thresholds.hpp"
#include "train/profile_report.hpp"

namespace kiln::train {

// TrainConfig::loader_threads' default: chosen for the device (see there).
inline constexpr int kAutoLoaderThreads = -1;

struct TrainConfig {
  std::filesystem::path data;  // root/<class>/... or root/{train,test[,val]}/<class>/..., or a labels .csv
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
  std::vector<std::int64_t> milestones{};       // multistep: epochs at which the rate is multiplied by gamma
  double gamma = 0.1;
  std::int64_t warmup_epochs = 0;
  double label_smoothing = 0.0;
  double clip_grad_norm = 0.0;                  // 0: off
  // Mixup's and CutMix's Beta(alpha, alpha) (train/batch_mixing.hpp); 0: off. With both, each batch one.
  double mixup = 0.0, cutmix = 0.0;
  // --ema: the decay of the weights' moving average that the run evaluates and serves
  // (train/weight_average.hpp); 0: off.
  double ema = 0.0;
  // --accumulate: batches whose gradients make one optimizer step (Darknet's subdivisions, Lightning's
  // accumulate_grad_batches): each step follows the mean gradient over accumulate x batch_size images, with
  // batch norms' statistics per batch. 1: a step a batch.
  std::int64_t accumulate = 1;
  double val_split = 0.0;                       // used when the data has no val/ folder
  data::Augmentation augmentation{.crop_padding = 4, .horizontal_flip = true};
  // The model's input size (--image-size): every image resized to image_height x image_width, or, with both
  // 0, to the training set's most common size. resize: "stretch" (the whole image, aspect ratio not kept)
  // or "crop" (the shorter side scaled to cover, the centre kept); "" is stretch. A fine-tuning run takes
  // its checkpoint's preprocessing, and either, when given, must agree with it.
  std::int64_t image_height = 0, image_width = 0;
  std::string resize{};
  std::uint64_t seed = 0;
  // Data-loading worker threads (data/loader.hpp; compute threads are set by the caller), or
  // kAutoLoaderThreads: none on the CPU, where each batch is made between steps on the compute threads
  // (workers beside the step take cores from its threads mid-kernel; on two Sapphire Rapids cores a bf16
  // ResNet-20 step took 79.6 ms with two workers and 62.0 without, its 2.9 ms of loading included; fp32 118.1
  // and 116.9), and two on a GPU, which they keep fed while the CPU waits for it. The run's plan records what
  // it became.
  int loader_threads = kAutoLoaderThreads;
  std::string device = "cpu";  // where the model trains: cpu, cuda, cuda:N (like loader_threads,
                               // a choice of this process: not stored, a --resume may change it)
  std::string precision = "fp32";  // fp32 | bf16 (train/precision.hpp); like device, a choice of this process
  // auto | nchw | channels-last: how the batches' images are stored, a layout the convolutions, batch norms,
  // pools and elementwise ops then keep through the model (on the CPU, faster for MobileNet-style nets:
  // kernels/conv2d/README.md, and for bf16, whose AMX and Winograd convolutions read channels-last pixels
  // in place; on a GPU, what the tensor-core convolutions read without transposes). auto is channels-last
  // where kiln knows it to be faster, bf16 on the CPU, and nchw elsewhere; the run's plan records what it
  // became. Like device, a choice of this process
  std::string memory_format = "auto";
  // measured | library | a choices file to replay (train/conv_choices.hpp): what runs each convolution on a
  // CUDA device (kernels/conv2d/cuda_tuning.hpp); like device, a choice of this process
  std::string cuda_conv = "measured";
  // Capture each step's forward and backward pass as a CUDA graph once, and launch it as one unit at every
  // later step (train/graphed_step.hpp); like device, a choice of this process
  bool cuda_graphs = false;
  // Time this many steps op by op (train/profile_report.hpp; 0: none), reported to the observer and written
  // to RUNDIR/profile.json; like device, a choice of this process
  std::int64_t profile_steps = 0;
  bool strict = false;                          // a bad image file is an error, not a warning
  std::int64_t max_steps_per_epoch = 0;         // 0: whole epochs (tests and smoke runs use a cap)
  // Class imbalance (train/class_balance.hpp); at most one of the two.
  std::string class_weights{};                  // "" (none), "auto", or a "class,weight" file
  std::vector<double> class_weight_values{};    // [classes] the resolved weights, filled in at the start
                                                // of a run and stored, so --resume keeps them
  bool balanced_sampler = false;                // draw each epoch with replacement, classes equally likely
  // Multi-label: --pos-weight auto weighs each label's positive term in the loss by negatives /
  // positives of the training split, so a rare label is not learned as "never".
  std::string pos_weight{};                 // "" (none) or "auto"
  std::vector<double> pos_weight_values{};  // [labels] resolved at the start of a run and stored
  // Overfitting guards (train/early_stopping.hpp, train/cross_validation.hpp).
  std::string monitor = "eval_loss";     // the held-out metric best.kiln and early stopping watch
  double min_delta = 0.0;                // an improvement must beat the best by more than this
  std::int64_t early_stop_patience = 0;  // stop after this many evaluations without improvement; 0: off
  // Evaluate the held-out split after every N-th epoch and after the last (train/run_eta.hpp): a long run
  // spends less time scoring. best.kiln and --early-stop see only the evaluated epochs, so the patience
  // counts evaluations. Like early_stop_patience, a --resume may change it.
  std::int64_t eval_every = 1;
  std::int64_t folds = 0;                // cross-validation: this run trains on all folds but `fold`
  std::int64_t fold = 0;                 // of the training data's `folds` (0 folds: not a fold run)
  // Fine-tuning (train/fine_tune.hpp).
  std::filesystem::path init_checkpoint{};     // --init: the checkpoint the weights start from ("": none)
  std::vector<std::string> init_classes{};     // its classes, filled in at the start and stored
  bool head_replaced = false;                  // the classes differed: the head was re-initialized
  std::vector<std::string> freeze{};           // top-level modules frozen; a run stores the resolved list
  std::string freeze_until{};                  // --freeze-until: every top-level module before this one
  std::optional<double> head_learning_rate{};  // --head-lr: the head's peak rate (unset: --lr)

  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& json);
};

// What the loop reports as it goes; the CLI draws a progress bar or prints JSON lines from these.
struct StepProgress {
  std::int64_t epoch, step, steps_in_epoch;
  double loss, learning_rate, images_per_second;
  double run_seconds_left;  // the whole run's, this epoch's rest included (train/run_eta.hpp)
};

struct EpochSummary {
  std::int64_t epoch, epochs;
  double train_loss, train_accuracy, learning_rate, seconds, images_per_second;  // accuracy: single-label
  std::optional<MetricsReport> validation;
  std::vector<std::string> classes = {};  // names for the per-class recall (per-label AP) in to_json
  bool improved = false;                  // the monitored metric improved: best.kiln now holds this epoch
  std::int64_t best_epoch = 0;  // 1-based: the epoch best.kiln holds after this one (0: no best.kiln)
  // A multi-label run's held-out metrics, at `thresholds` (chosen on this epoch's validation split).
  std::optional<MultiLabelReport> multi_label_validation = std::nullopt;
  std::optional<ThresholdChoice> thresholds = std::nullopt;  // multi-label runs only
  // The held-out evaluation's wall time (`seconds` is the training pass's); none when this epoch did
  // not evaluate (--eval-every).
  std::optional<double> eval_seconds = std::nullopt;
  double run_seconds_left = 0.0;  // the run's estimated time still to go after this epoch (0 after the last)
  nlohmann::json to_json() const;
};

class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  virtual void on_start(const nlohmann::json& /*plan*/) {}
  virtual void on_step(const StepProgress& /*progress*/) {}
  virtual void on_epoch(const EpochSummary& /*summary*/) {}
  virtual void on_early_stop(const EarlyStop& /*stop*/) {}
  virtual void on_profile(const ProfileReport& /*report*/) {}
};

struct TrainResult {
  std::filesystem::path checkpoint;                      // RUNDIR/last.kiln
  std::optional<std::filesystem::path> best_checkpoint;  // RUNDIR/best.kiln, for a run with held-out data
  std::string monitored_metric;                          // what chose best.kiln: "eval_loss"
  EarlyStoppingState monitored;                          // its best value and epoch (the one in best.kiln)
  std::vector<EpochSummary> history;                     // the epochs this call trained
  std::optional<EarlyStop> early_stop;                   // set when --early-stop ended the run
};

enum class RunStart {
  Fresh,    // a new run; refuses a run folder that already holds last.kiln, so no work is overwritten
  Resume,   // continue RUNDIR/last.kiln with its stored configuration (only the epoch count may grow)
  Replace,  // a new run that may replace an existing last.kiln (at the end of its first epoch)
};

// A Fresh or Replace run with config.init_checkpoint starts from that checkpoint (train/fine_tune.hpp).
// Throws kiln::Error on bad data, a NaN loss (after which last.kiln still holds the last good epoch)
// or a failed checkpoint write (which leaves the previous last.kiln intact), and on settings that cannot
// work: an unknown --monitor, --early-stop without held-out data, an --eval-every below 1.
TrainResult train(const TrainConfig& config, RunStart start, TrainingObserver& observer);

// One optimizer step of train_at_rates: its 0-based index, the rate it ran at and its training loss.
struct RateStep {
  std::int64_t step;
  double learning_rate, loss;
};

// A fresh model of `config`, trained as train() would (the same data, batches, augmentation, optimizer and
// device) for at most `steps` optimizer steps, the rate of step s being rate(s) in place of the schedule's
// (a --head-lr group keeps its ratio to --lr); on_step is told each step's loss as soon as it is known and
// returns whether to go on. Nothing is written to disk: this is the loop the learning-rate range test
// (train/lr_range_test.hpp) runs. A non-finite loss is reported like any other; stopping is on_step's call.
void train_at_rates(const TrainConfig& config, std::int64_t steps,
                    const std::function<double(std::int64_t step)>& rate,
                    const std::function<bool(const RateStep&)>& on_step);

// The configuration a --resume trains with: `stored` (the checkpoint's, read from `path`) with the
// request's run folder, data folder (when given), loader threads, epochs (which may only grow),
// early-stop patience (which may change: a larger one continues a run that stopped early) and
// --eval-every. Throws when the request watches another --monitor or --min-delta than the run's best.kiln
// was chosen by.
TrainConfig resumed_config(const TrainConfig& stored, const TrainConfig& requested,
                           const std::filesystem::path& path);

}  // namespace kiln::train
