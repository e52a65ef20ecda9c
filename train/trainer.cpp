#include "train/trainer.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "core/cuda_runtime.hpp"
#include "core/generator.hpp"
#include "core/profiler.hpp"
#include "data/dataset.hpp"
#include "data/loader.hpp"
#include "data/preprocessing.hpp"
#include "kernels/conv2d/cuda_tuning.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/parallel.hpp"
#include "models/architecture.hpp"
#include "models/model_file.hpp"
#include "optim/adam.hpp"
#include "optim/clip.hpp"
#include "optim/schedule.hpp"
#include "optim/sgd.hpp"
#include "train/atomic_file.hpp"
#include "train/batch_mixing.hpp"
#include "train/checkpoint.hpp"
#include "train/class_balance.hpp"
#include "train/conv_choices.hpp"
#include "train/device_batches.hpp"
#include "train/evaluate.hpp"
#include "train/fine_tune.hpp"
#include "train/folds.hpp"
#include "train/graphed_step.hpp"
#include "train/interrupt.hpp"
#include "train/label_counts.hpp"
#include "train/loss_readback.hpp"
#include "train/metrics_log.hpp"
#include "train/model_io.hpp"
#include "train/multi_label_evaluate.hpp"
#include "train/precision.hpp"
#include "train/profile_report.hpp"
#include "train/report_format.hpp"
#include "train/run_eta.hpp"
#include "train/run_plots.hpp"
#include "train/weight_average.hpp"

namespace kiln::train {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint64_t kInitializationStream = 0;  // Philox streams: weights and dropout never share numbers
constexpr std::uint64_t kDropoutStream = 1;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The training images a fresh run measures its preprocessing on (size, channels, mean and std): all of a
// CIFAR-sized set, a sample drawn from the run's seed beyond that. A folder of large photos would otherwise
// be decoded in full before the first step; a few thousand images pin the channel statistics down.
constexpr std::int64_t kSurveyImages = 5000;

// --resize: "" and "stretch" stretch, "crop" keeps the aspect ratio and the centre.
data::ResizePolicy resize_policy(const std::string& resize) {
  if (resize.empty() || resize == "stretch") return data::ResizePolicy::Stretch;
  KILN_CHECK(resize == "crop", "train: --resize must be stretch or crop, got '", resize, "'");
  return data::ResizePolicy::ShorterSideThenCenterCrop;
}
const char* resize_option(data::ResizePolicy policy) {
  return policy == data::ResizePolicy::Stretch ? "stretch" : "crop";
}

// How a run measures its preprocessing on the training set: --image-size and --resize where given.
data::PreprocessingOptions survey_options(const TrainConfig& config) {
  KILN_CHECK(config.image_height >= 0 && config.image_width >= 0 &&
                 (config.image_height > 0) == (config.image_width > 0),
             "train: --image-size takes a size N or HxW of positive numbers, got ", config.image_height, "x",
             config.image_width);
  return {.max_images = kSurveyImages,
          .seed = config.seed,
          .resize = resize_policy(config.resize),
          .height = config.image_height,
          .width = config.image_width};
}

std::filesystem::path last_checkpoint(const std::filesystem::path& run_dir) { return run_dir / "last.kiln"; }
std::filesystem::path best_checkpoint(const std::filesystem::path& run_dir) { return run_dir / "best.kiln"; }

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& config, std::vector<NamedTensor> parameters) {
  if (config.optimizer == "sgd") {
    return std::make_unique<optim::Sgd>(std::move(parameters),
                                        optim::SgdOptions{.lr = config.learning_rate, .momentum = config.momentum,
                                                          .weight_decay = config.weight_decay,
                                                          .nesterov = config.nesterov});
  }
  const optim::AdamOptions adam{.lr = config.learning_rate, .weight_decay = config.weight_decay};
  if (config.optimizer == "adam") return std::make_unique<optim::Adam>(std::move(parameters), adam);
  if (config.optimizer == "adamw") return std::make_unique<optim::AdamW>(std::move(parameters), adam);
  fail("unknown optimizer '", config.optimizer, "' (known: sgd, adam, adamw)");
}

std::unique_ptr<optim::Schedule> make_schedule(const TrainConfig& config, std::int64_t steps_per_epoch) {
  const std::int64_t total = config.epochs * steps_per_epoch;
  std::unique_ptr<optim::Schedule> schedule;
  if (config.schedule == "constant") {
    schedule = std::make_unique<optim::ConstantSchedule>(config.learning_rate);
  } else if (config.schedule == "cosine") {
    schedule = std::make_unique<optim::CosineSchedule>(config.learning_rate, total);
  } else if (config.schedule == "onecycle") {
    schedule = std::make_unique<optim::OneCycleSchedule>(config.learning_rate, total);
  } else if (config.schedule == "multistep") {
    std::vector<std::int64_t> milestone_steps;
    for (std::int64_t epoch : config.milestones) milestone_steps.push_back(epoch * steps_per_epoch);
    schedule = std::make_unique<optim::MultiStepSchedule>(config.learning_rate, milestone_steps, config.gamma);
  } else {
    fail("unknown schedule '", config.schedule, "' (known: constant, multistep, cosine, onecycle)");
  }
  if (config.warmup_epochs > 0) {
    schedule = std::make_unique<optim::WarmupSchedule>(std::move(schedule), config.warmup_epochs * steps_per_epoch);
  }
  return schedule;
}

// Parameters trained by one optimizer under one schedule. A run has one group, "optimizer", over every
// trainable parameter or, with --head-lr, two: "optimizer" for the body at --lr and "head_optimizer" for
// the classifier head at --head-lr (a group with no trainable parameters is left out). The key names the
// group's state in the checkpoint: header[key], and its tensors under "key.".
struct ParameterGroup {
  std::string key;
  std::unique_ptr<optim::Optimizer> optimizer;
  std::unique_ptr<optim::Schedule> schedule;
  double learning_rate;  // the group's peak rate, the schedule's: --lr, or --head-lr for the head
};

// Everything a run needs, built from the configuration (fresh) or from a checkpoint (resume).
struct Run {
  TrainConfig config;
  data::DataSplits splits;
  data::Preprocessing preprocessing;
  // A fresh run whose input size is not the training images' most common size: that size (the input is
  // --image-size's, or the most common size shrunk to data::kDefaultMaxInputSide).
  std::optional<data::SurveyedSize> input_size_from;
  models::ArchitectureSpec architecture;
  layers::ModulePtr model;
  std::string head;                    // the classifier head's module name ("fc")
  std::vector<ParameterGroup> groups;  // the optimizers, see ParameterGroup
  std::unique_ptr<data::DataLoader> train_loader;
  std::unique_ptr<data::DataLoader> eval_loader;
  Device device;                // where the model, its optimizer state and each step's batch live (--device)
  Precision precision = Precision::Float32;  // what the model computes in (--precision)
  std::string eval_split_name;  // "validation" or "test"
  ClassBalance balance;  // of the training split
  Tensor class_weight;   // float [classes] for cross_entropy, or undefined without --class-weights
  std::int64_t epochs_done = 0;
  std::vector<nlohmann::json> history_json;  // one metrics line per finished epoch, stored in the checkpoint
  Monitor monitor{"eval_loss", 0.0};         // what best.kiln and --early-stop watch
  EarlyStoppingState early_stopping;         // stored in the checkpoint, so --resume continues the count
  // Multi-label runs (a labels .csv): the loss's per-label positive weights (undefined: all 1) and the
  // decision thresholds, chosen on the validation split after each epoch and stored in the checkpoint.
  bool multi_label = false;
  Tensor pos_weight;
  ThresholdChoice thresholds;
  // With --cuda-graphs on a CUDA device: each step's pass, and each evaluation batch's forward pass, captured
  // once for the whole run.
  std::unique_ptr<GraphedStep> graphed_step, eval_graphed_step;
  // With --ema: the moving average of the weights, which the run evaluates and its checkpoints serve.
  std::unique_ptr<WeightAverage> average;
  bool train_graph_warned = false, eval_graph_warned = false;
  // --profile: the window's session while it is open (train/profile_report.hpp), what it has counted, and
  // whether this run has had its window.
  std::unique_ptr<profiler::Session> profile_session;
  ProfileReport profile;
  bool profiled = false;
};

// What a multi-label run cannot do: the settings that assume one class per image. Checked up front, so
// the error names the setting rather than failing deep inside.
void check_multi_label_settings(const Run& run) {
  const TrainConfig& config = run.config;
  KILN_CHECK(config.pos_weight.empty() || config.pos_weight == "auto",
             "train: --pos-weight must be auto, got '", config.pos_weight, "'");
  if (!run.multi_label) {
    KILN_CHECK(config.pos_weight.empty() && config.pos_weight_values.empty(),
               "train: --pos-weight is for multi-label data (a labels .csv); ", config.data.string(),
               " is a class folder (use --class-weights)");
    return;
  }
  const std::string data = config.data.string();
  KILN_CHECK(!config.balanced_sampler && config.class_weights.empty() && config.class_weight_values.empty(),
             "train: --balanced-sampler and --class-weights need one class per image; ", data,
             " is multi-label (use --pos-weight auto)");
  KILN_CHECK(config.label_smoothing == 0, "train: --label-smoothing is for single-label data; ", data,
             " is multi-label");
  KILN_CHECK(run.monitor.metric() == "eval_loss",
             "train: a multi-label run monitors eval_loss, not --monitor ", run.monitor.metric());
}

data::LoaderOptions loader_options(const TrainConfig& config, bool training) {
  data::LoaderOptions options;
  options.batch_size = config.batch_size;
  options.shuffle = training;
  options.balanced_sampling = training && config.balanced_sampler;
  options.seed = config.seed;
  options.threads = config.loader_threads;
  options.strict = config.strict;
  options.channels_last = config.memory_format == "channels-last";
  if (training) options.augmentation = config.augmentation;
  // The held-out split's cache gets a quarter of the training split's budget (usually it is a tenth to a
  // fifth of the images), so the two together keep within about a third of the machine's memory.
  if (!training) options.cache_budget_bytes = data::default_cache_budget_bytes() / 4;
  return options;
}

// The run's data: the folders and --val-split (data/dataset.hpp) or, for fold k of a cross-validation,
// the training images of the other folds to train on and fold k held out (train/folds.hpp).
data::DataSplits splits_for(const TrainConfig& config) {
  if (config.folds == 0) return data::discover_splits(config.data, config.val_split, config.seed);
  KILN_CHECK(config.val_split == 0,
             "train: --folds and --val-split both hold out training images; use one of them");
  const data::DataSplits folders = data::discover_splits(config.data, 0.0, config.seed);
  FoldSplit fold = fold_split(folders.train, config.folds, config.fold, config.seed);
  return {std::move(fold.train), std::move(fold.held_out), std::nullopt};
}

// --early-stop watches held-out data; a run without any could never stop, so it is an error up front.
void check_early_stop_has_data(const Run& run) {
  KILN_CHECK(run.config.early_stop_patience >= 0, "train: --early-stop must be >= 0 (0: off), got ",
             run.config.early_stop_patience);
  KILN_CHECK(run.config.early_stop_patience == 0 || run.splits.validation || run.splits.test,
             "train: --early-stop ", run.config.early_stop_patience, " watches held-out data, but ",
             run.config.data.string(),
             " has no val/ or test/ folder and --val-split is 0; add --val-split 0.1 (or cross-validate with "
             "--folds)");
}

// Loaders over run.splits, under run.preprocessing.
void open_loaders(Run& run) {
  run.train_loader =
      std::make_unique<data::DataLoader>(run.splits.train, run.preprocessing, loader_options(run.config, true));
  const std::optional<data::ImageFolder>& held_out = run.splits.validation ? run.splits.validation : run.splits.test;
  if (held_out) {
    run.eval_split_name = run.config.folds > 0    ? "fold " + std::to_string(run.config.fold + 1)
                          : run.splits.validation ? "validation"
                                                  : "test";
    run.eval_loader = std::make_unique<data::DataLoader>(*held_out, run.preprocessing, loader_options(run.config, false));
  }
}

// Multi-label: resolves --pos-weight auto from the training split (fresh) or takes the stored values
// (resume), and makes the loss's pos_weight tensor from them.
void prepare_pos_weight(Run& run, bool fresh) {
  TrainConfig& config = run.config;
  if (fresh && config.pos_weight == "auto") {
    config.pos_weight_values =
        auto_pos_weights(label_counts(run.splits.train), static_cast<std::int64_t>(run.splits.train.size()));
  }
  if (config.pos_weight_values.empty()) return;
  const std::vector<double>& weights = config.pos_weight_values;
  KILN_CHECK(weights.size() == run.splits.train.classes().size(), "train: ", weights.size(),
             " pos weights for ", run.splits.train.classes().size(), " labels");
  run.pos_weight = Tensor::from_vector(std::vector<float>(weights.begin(), weights.end()),
                                       {static_cast<std::int64_t>(weights.size())});
}

// Measures the training split's balance and sets up the loss weights. A fresh run resolves
// --class-weights (auto or a file) into run.config.class_weight_values, which the checkpoint stores; a
// resumed run finds them already there and uses them as they were.
void prepare_class_balance(Run& run, bool fresh) {
  TrainConfig& config = run.config;
  if (run.multi_label) {
    prepare_pos_weight(run, fresh);
    return;
  }
  run.balance = class_balance(run.splits.train);
  const bool weighted = !config.class_weights.empty() || !config.class_weight_values.empty();
  KILN_CHECK(!(weighted && config.balanced_sampler),
             "train: --class-weights and --balanced-sampler both correct class imbalance; use one of them");
  if (fresh && !config.class_weights.empty()) {
    config.class_weight_values = resolve_class_weights(config.class_weights, run.balance);
  }
  if (config.class_weight_values.empty()) return;
  const std::vector<double>& weights = config.class_weight_values;
  KILN_CHECK(weights.size() == run.balance.classes.size(), "train: ", weights.size(), " class weights for ",
             run.balance.classes.size(), " classes");
  for (const double weight : weights) {
    KILN_CHECK(std::isfinite(weight) && weight > 0, "train: class weights must be finite and > 0, got ",
               weight);
  }
  run.class_weight = Tensor::from_vector(std::vector<float>(weights.begin(), weights.end()),
                                         {static_cast<std::int64_t>(weights.size())});
}

// What the run does about class imbalance, for the start of the run's report.
nlohmann::json balance_plan(const Run& run) {
  if (run.multi_label) {
    const std::vector<std::string>& labels = run.splits.train.classes();
    const std::vector<std::int64_t> counts = label_counts(run.splits.train);
    nlohmann::json named = nlohmann::json::object(), weights = nullptr;
    for (std::size_t l = 0; l < labels.size(); ++l) named[labels[l]] = counts[l];
    if (!run.config.pos_weight_values.empty()) {
      weights = nlohmann::json::object();
      for (std::size_t l = 0; l < labels.size(); ++l) weights[labels[l]] = run.config.pos_weight_values[l];
    }
    return {{"class_balance", nullptr},
            {"class_weights", nullptr},
            {"sampler", "shuffle"},
            {"label_counts", named},
            {"pos_weight", weights}};
  }
  nlohmann::json weights = nullptr;
  if (!run.config.class_weight_values.empty()) {
    nlohmann::json named = nlohmann::json::object();
    for (std::size_t c = 0; c < run.balance.classes.size(); ++c) {
      named[run.balance.classes[c]] = run.config.class_weight_values[c];
    }
    const std::string source = run.config.class_weights.empty() ? "given" : run.config.class_weights;
    weights = {{"source", source}, {"weights", named}};
  }
  return {{"class_balance", run.balance.to_json()},
          {"class_weights", weights},
          {"sampler", run.config.balanced_sampler ? "balanced" : "shuffle"}};
}

// What the run watches against overfitting, for the start of the run's report.
nlohmann::json guard_plan(const Run& run) {
  const std::filesystem::path best = best_checkpoint(run.config.run_dir);
  nlohmann::json plan{
      {"monitor",
       {{"metric", run.monitor.metric()},
        {"min_delta", run.monitor.min_delta()},
        {"maximized", run.monitor.maximized()},
        {"description", run.monitor.describe()}}},
      {"early_stop_patience", run.config.early_stop_patience},
      {"eval_every", run.config.eval_every},
      {"early_stopping", run.early_stopping.to_json()},
      {"best_checkpoint", run.eval_loader ? nlohmann::json(best.string()) : nlohmann::json(nullptr)}};
  if (run.config.folds > 0) plan["fold"] = {{"fold", run.config.fold + 1}, {"folds", run.config.folds}};
  return plan;
}

// Where the weights started and what trains, for the start of the run's report: "init" is null for a
// run from scratch.
nlohmann::json fine_tune_plan(const Run& run) {
  const TrainConfig& config = run.config;
  nlohmann::json init = nullptr;
  if (!config.init_checkpoint.empty()) {
    init = {{"checkpoint", config.init_checkpoint.string()},
            {"classes", config.init_classes},
            {"head_replaced", config.head_replaced},
            {"preprocessing", "kept from the checkpoint"}};
  }
  return {{"init", init},
          {"head", run.head},
          {"frozen", config.freeze},
          {"head_learning_rate",
           config.head_learning_rate ? nlohmann::json(*config.head_learning_rate) : nlohmann::json(nullptr)}};
}

// Batches a training epoch takes (--max-steps caps them).
std::int64_t steps_per_epoch(const Run& run) {
  const std::int64_t full = run.train_loader->batches_per_epoch();
  return run.config.max_steps_per_epoch > 0 ? std::min(full, run.config.max_steps_per_epoch) : full;
}

// Optimizer steps an epoch takes, what the learning-rate schedules count: a step a batch, or with
// --accumulate N one each N batches and one for the rest.
std::int64_t optimizer_steps_per_epoch(const Run& run) {
  return (steps_per_epoch(run) + run.config.accumulate - 1) / run.config.accumulate;
}

// Freezes the run's --freeze modules and builds its optimizers and schedules (see ParameterGroup).
void prepare_optimizers(Run& run) {
  TrainConfig& config = run.config;
  KILN_CHECK((config.freeze.empty() && config.freeze_until.empty()) || !config.init_checkpoint.empty(),
             "train: --freeze and --freeze-until keep pretrained weights; they need --init CKPT");
  config.freeze = resolve_frozen_modules(*run.model, config.freeze, config.freeze_until);
  freeze_modules(*run.model, config.freeze);
  run.head = head_module_name(*run.model);
  TrainableParameters trainable = trainable_parameters(*run.model, run.head);
  const std::int64_t steps = optimizer_steps_per_epoch(run);
  const auto add_group = [&](std::string key, const TrainConfig& rates, std::vector<NamedTensor> parameters) {
    if (parameters.empty()) return;
    run.groups.push_back({std::move(key), make_optimizer(rates, std::move(parameters)),
                          make_schedule(rates, steps), rates.learning_rate});
  };
  if (!config.head_learning_rate) {
    std::vector<NamedTensor> all = std::move(trainable.body);
    all.insert(all.end(), trainable.head.begin(), trainable.head.end());
    add_group("optimizer", config, std::move(all));
    return;
  }
  KILN_CHECK(std::isfinite(*config.head_learning_rate) && *config.head_learning_rate >= 0,
             "train: --head-lr must be a finite number >= 0, got ", *config.head_learning_rate);
  TrainConfig head_rates = config;
  head_rates.learning_rate = *config.head_learning_rate;
  add_group("optimizer", config, std::move(trainable.body));
  add_group("head_optimizer", head_rates, std::move(trainable.head));
}

// --init: the model, its architecture and preprocessing from config.init_checkpoint, with the head
// re-initialized (from `initialization`) when the new data's classes differ from the checkpoint's.
void initialize_from_checkpoint(Run& run, Generator& initialization) {
  const std::filesystem::path path = run.config.init_checkpoint;
  const Checkpoint source = load_checkpoint(path);
  check_header_field(source.header, "kind", kCheckpointKind, path);
  check_header_field(source.header, "schema", kCheckpointSchema, path);
  try {
    run.preprocessing = data::Preprocessing::from_json(source.header.at("preprocessing"));
    run.architecture = models::ArchitectureSpec::from_json(source.header.at("architecture"));
    run.config.init_classes = source.header.at("classes").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& error) {
    fail("train: --init ", path.string(), ": malformed header (", error.what(), ")");
  }
  // The features were learned under the checkpoint's preprocessing, so the new data is seen through it;
  // only its input size has to agree with what the new images are (or, with --image-size, become).
  const data::Preprocessing own = data::preprocessing_for(run.splits.train, survey_options(run.config));
  const auto size = [](const data::Preprocessing& p) {
    return std::to_string(p.channels) + "x" + std::to_string(p.height) + "x" + std::to_string(p.width);
  };
  const bool sized = run.config.image_height > 0;
  const std::string hint = own.channels == run.preprocessing.channels
                               ? "; fine-tune at the checkpoint's input size (--image-size " +
                                     std::to_string(run.preprocessing.height) + "x" +
                                     std::to_string(run.preprocessing.width) + ")"
                               : "";
  KILN_CHECK(own.channels == run.preprocessing.channels && own.height == run.preprocessing.height &&
                 own.width == run.preprocessing.width,
             "train: --init ", path.string(), " takes ", size(run.preprocessing),
             " inputs, but the images in ", run.config.data.string(), sized ? " become " : " are ", size(own),
             sized ? " with --image-size" : "", hint);
  KILN_CHECK(run.config.resize.empty() || resize_policy(run.config.resize) == run.preprocessing.resize,
             "train: --init ", path.string(), " resizes by --resize ",
             resize_option(run.preprocessing.resize), ", not ", run.config.resize,
             "; fine-tuning sees the new images as the checkpoint did");
  const std::vector<std::string>& classes = run.splits.train.classes();
  run.config.model = run.architecture.name;
  run.config.head_replaced = classes != run.config.init_classes;
  run.architecture.classes = static_cast<std::int64_t>(classes.size());
  run.model = models::build_model(run.architecture, initialization);
  load_initial_weights(*run.model, source, path, head_module_name(*run.model), run.config.head_replaced);
}

// --cuda-conv: `library` or `measured` as the policy for the CUDA convolutions; anything else is a choices
// file from an earlier run, replayed, with the shapes it does not name measured.
void apply_cuda_conv(const Run& run) {
  const std::string& value = run.config.cuda_conv;
  if (value == "library") {
    kernels::cuda::set_conv_policy(kernels::cuda::ConvPolicy::Library);
    return;
  }
  kernels::cuda::set_conv_policy(kernels::cuda::ConvPolicy::Measured);
  if (value != "measured") replay_conv_choices(value, run.device.index);
}

// --memory-format auto as this run takes it (trainer.hpp): channels-last for bf16 on the CPU, where the AMX
// tile convolutions take channels-last activations only, and without AMX the Winograd and depthwise kernels
// read bfloat16 pixels as whole vectors of channels while NCHW planes go through transposes; nchw elsewhere.
// Two Zen 5 cores (AVX-512, no AMX), ms a training step of bf16 nchw / bf16 channels-last / fp32 nchw:
// ResNet-20 110-115 / 86-90 / 109, vgg_small 66 / 64 / 70, MobileNet-style 207 / 173 / 195; at the AVX2
// level ResNet-20 159 / 142 / 152, MobileNet-style 361 / 327 / 306.
std::string resolved_memory_format(const std::string& requested, Device device, Precision precision) {
  if (requested != "auto") return requested;
  return device.is_cpu() && precision == Precision::BFloat16 ? "channels-last" : "nchw";
}

// --loader-threads auto as this run takes it (trainer.hpp): no workers on the CPU, two on a GPU.
int resolved_loader_threads(int requested, Device device) {
  if (requested != kAutoLoaderThreads) return requested;
  return device.is_cpu() ? 0 : 2;
}

// Moves the model and the loss weights to --device, before the optimizers are built (their state is
// created beside the parameters), and settles --memory-format and --loader-threads auto for it. Fails before
// any work when the device cannot be used.
void place_on_device(Run& run) {
  run.device = parse_device(run.config.device);
  run.config.memory_format = resolved_memory_format(run.config.memory_format, run.device, run.precision);
  run.config.loader_threads = resolved_loader_threads(run.config.loader_threads, run.device);
  KILN_CHECK(run.config.loader_threads >= 0, "train: --loader-threads takes auto or a count, not ",
             run.config.loader_threads);
  KILN_CHECK(run.config.accumulate == 1 || !run.config.cuda_graphs,
             "train: --cuda-graphs captures a step of one batch; it does not take --accumulate ",
             run.config.accumulate);
  KILN_CHECK(!run.config.cuda_graphs || run.device.is_cuda(),
             "train: --cuda-graphs needs a CUDA device (--device cuda), not ", run.config.device);
  KILN_CHECK(run.config.profile_steps >= 0, "train: --profile takes a number of steps, not ",
             run.config.profile_steps);
  KILN_CHECK(run.config.profile_steps == 0 || !run.config.cuda_graphs,
             "train: --profile times each op, and --cuda-graphs launches the step as one graph, inside which "
             "no op can be timed: use one or the other");
  KILN_CHECK(run.config.memory_format == "nchw" || run.config.memory_format == "channels-last",
             "train: --memory-format ", run.config.memory_format, " is none of auto, nchw and channels-last");
  if (run.device.is_cuda()) {
    try {
      cuda::require_device(run.device.index);
    } catch (const Error& error) {
      fail("train: --device ", run.config.device, ": ", error.what());
    }
  }
  if (run.device.is_cuda()) apply_cuda_conv(run);
  run.model->to(run.device);
  if (run.class_weight.defined()) run.class_weight = run.class_weight.to(run.device);
  if (run.pos_weight.defined()) run.pos_weight = run.pos_weight.to(run.device);
}

Run start_fresh(const TrainConfig& config) {
  Run run;
  run.config = config;
  run.precision = parse_precision(config.precision);
  run.monitor = Monitor(config.monitor, config.min_delta);
  run.splits = splits_for(config);
  run.multi_label = run.splits.train.multi_label();
  run.thresholds = ThresholdChoice::defaults(run.splits.train.classes().size());
  check_multi_label_settings(run);
  check_early_stop_has_data(run);
  prepare_class_balance(run, true);
  Generator initialization(config.seed, kInitializationStream);
  if (config.init_checkpoint.empty()) {
    data::SurveyedSize most_common;
    run.preprocessing = data::preprocessing_for(run.splits.train, survey_options(config), &most_common);
    if (run.preprocessing.height != most_common.height || run.preprocessing.width != most_common.width)
      run.input_size_from = most_common;
    const auto& classes = run.splits.train.classes();
    models::NamedModel named = models::build_named_model(
        config.model, run.preprocessing.channels, run.preprocessing.height, run.preprocessing.width,
        static_cast<std::int64_t>(classes.size()), initialization);
    run.architecture = std::move(named.architecture);
    run.model = std::move(named.model);
  } else {
    initialize_from_checkpoint(run, initialization);
  }
  place_on_device(run);
  open_loaders(run);
  prepare_optimizers(run);
  if (config.ema > 0)
    run.average = std::make_unique<WeightAverage>(run.architecture, *run.model, config.ema, run.device);
  default_generator() = Generator(config.seed, kDropoutStream);
  return run;
}

Run resume_from(const TrainConfig& requested) {
  const std::filesystem::path path = last_checkpoint(requested.run_dir);
  KILN_CHECK(std::filesystem::exists(path), "cannot resume: ", path.string(), " does not exist");
  Checkpoint checkpoint = load_checkpoint(path);
  const nlohmann::json& header = checkpoint.header;
  check_header_field(header, "kind", kCheckpointKind, path);
  check_header_field(header, "schema", kCheckpointSchema, path);

  Run run;
  const TrainConfig stored = TrainConfig::from_json(header.at("config"));
  run.config = resumed_config(stored, requested, path);
  if (run.config.epochs > stored.epochs && (stored.schedule == "cosine" || stored.schedule == "onecycle")) {
    // The schedule is rebuilt for the new length: the rate from here on follows the longer curve, not the
    // one the run was on (a cosine run near its end rises again).
    std::fprintf(stderr,
                 "kiln: note: --epochs %lld lengthens the run planned for %lld epoch%s: its %s schedule "
                 "now spans %lld, so the learning rate from epoch %lld on follows the longer curve\n",
                 static_cast<long long>(run.config.epochs), static_cast<long long>(stored.epochs),
                 stored.epochs == 1 ? "" : "s", stored.schedule.c_str(),
                 static_cast<long long>(run.config.epochs),
                 static_cast<long long>(header.at("epoch").get<std::int64_t>() + 1));
  }
  run.precision = parse_precision(run.config.precision);
  run.monitor = Monitor(run.config.monitor, run.config.min_delta);
  run.early_stopping = EarlyStoppingState::from_json(header.value("early_stopping", nlohmann::json()));
  run.preprocessing = data::Preprocessing::from_json(header.at("preprocessing"));
  run.splits = splits_for(run.config);
  run.multi_label = run.splits.train.multi_label();
  KILN_CHECK(header.value("task", std::string(kSingleLabelTask)) ==
                 (run.multi_label ? kMultiLabelTask : kSingleLabelTask),
             "cannot resume ", path.string(), ": the checkpoint's task is ",
             header.value("task", std::string(kSingleLabelTask)), " but ", run.config.data.string(), " is ",
             run.multi_label ? "multi-label" : "single-label");
  run.thresholds =
      run.multi_label ? ThresholdChoice::from_json(header.at("thresholds"), run.splits.train.classes().size(),
                                                   "cannot resume " + path.string())
                      : ThresholdChoice::defaults(run.splits.train.classes().size());
  check_multi_label_settings(run);
  check_early_stop_has_data(run);
  const auto stored_classes = header.at("classes").get<std::vector<std::string>>();
  KILN_CHECK(stored_classes == run.splits.train.classes(), "cannot resume ", path.string(), ": the data at ",
             run.config.data.string(), " has different classes than the checkpoint");
  prepare_class_balance(run, false);
  run.architecture = models::ArchitectureSpec::from_json(header.at("architecture"));
  Generator initialization(run.config.seed, kInitializationStream);
  run.model = models::build_model(run.architecture, initialization);
  place_on_device(run);     // the stored weights and optimizer state are then copied straight there
  open_loaders(run);        // after the device settles the batches' layout and the loader's threads
  prepare_optimizers(run);  // the stored --freeze list and --head-lr: frozen modules stay frozen

  std::vector<NamedTensor> model_tensors;
  std::vector<std::vector<NamedTensor>> optimizer_tensors(run.groups.size());
  for (NamedTensor& entry : checkpoint.tensors) {
    if (entry.first.starts_with(kModelTensorPrefix)) {
      model_tensors.push_back(std::move(entry));
      continue;
    }
    for (std::size_t g = 0; g < run.groups.size(); ++g) {
      const std::string prefix = run.groups[g].key + ".";
      if (entry.first.starts_with(prefix)) optimizer_tensors[g].emplace_back(entry.first.substr(prefix.size()), entry.second);
    }
  }
  load_into(model_state(*run.model), Checkpoint{header, std::move(model_tensors)}, path);
  for (std::size_t g = 0; g < run.groups.size(); ++g) {
    run.groups[g].optimizer->load_state(header.at(run.groups[g].key), optimizer_tensors[g]);
  }
  if (run.config.ema > 0) {
    run.average = std::make_unique<WeightAverage>(run.architecture, *run.model, run.config.ema, run.device);
    run.average->load(header.at("ema"), checkpoint.tensors, path);
  }
  run.epochs_done = header.at("epoch").get<std::int64_t>();
  default_generator() = Generator(run.config.seed, kDropoutStream);
  default_generator().set_offset(header.at("rng").at("dropout_offset").get<std::uint64_t>());
  for (const nlohmann::json& entry : header.at("history")) run.history_json.push_back(entry);
  return run;
}

// Writes RUNDIR/last.kiln, and first RUNDIR/best.kiln (the same checkpoint) when the epoch improved the
// monitored metric. In that order, a crash between the two writes leaves last.kiln an epoch behind, and
// --resume retrains that epoch to the same best.kiln; the other order could leave last.kiln naming a best
// epoch that best.kiln does not hold.
void save(const Run& run, bool improved) {
  nlohmann::json header;
  header["kind"] = kCheckpointKind;
  header["schema"] = kCheckpointSchema;
  header["architecture"] = run.architecture.to_json();
  header["classes"] = run.splits.train.classes();
  header["preprocessing"] = run.preprocessing.to_json();
  header["config"] = run.config.to_json();
  for (const ParameterGroup& group : run.groups) header[group.key] = group.optimizer->state_json();
  header["schedule"] = run.groups.front().schedule->to_json();
  if (run.groups.size() > 1) header["head_schedule"] = run.groups.back().schedule->to_json();
  header["epoch"] = run.epochs_done;
  header["rng"] = {{"seed", run.config.seed}, {"dropout_offset", default_generator().offset()}};
  header["history"] = run.history_json;
  header["early_stopping"] = run.early_stopping.to_json();
  if (run.multi_label) {
    header["task"] = kMultiLabelTask;
    header["thresholds"] = run.thresholds.to_json();
  }
  std::vector<NamedTensor> tensors = model_state(*run.model);
  for (const ParameterGroup& group : run.groups) {
    for (const auto& [name, tensor] : group.optimizer->state_tensors()) tensors.emplace_back(group.key + "." + name, tensor);
  }
  if (run.average) {
    header["ema"] = run.average->state_json();
    for (NamedTensor& entry : run.average->state_tensors()) tensors.push_back(std::move(entry));
  }
  const Checkpoint checkpoint{header, tensors};
  if (improved) save_checkpoint(best_checkpoint(run.config.run_dir), checkpoint);
  save_checkpoint(last_checkpoint(run.config.run_dir), checkpoint);
}

EarlyStop early_stop_report(const Run& run, bool before_resume) {
  return {.before_resume = before_resume,
          .epoch = run.epochs_done,
          .epochs = run.config.epochs,
          .patience = run.config.early_stop_patience,
          .metric = run.monitor.metric(),
          .min_delta = run.monitor.min_delta(),
          .best_value = run.early_stopping.best.value_or(std::nan("")),
          .best_epoch = run.early_stopping.best_epoch,
          .best_checkpoint = best_checkpoint(run.config.run_dir),
          .epochs_without_improvement = run.early_stopping.epochs_without_improvement,
          .eval_every = run.config.eval_every};
}

// RUNDIR's loss, accuracy and confusion-matrix pictures (run_plots.hpp), redrawn after epochs (train's
// loop says which). A picture that cannot be written is a warning, never a reason to stop training.
constexpr std::chrono::seconds kRedrawPlotSeconds{5};
void redraw_plots(const std::filesystem::path& run_dir) {
  try {
    write_run_plots(run_dir, read_epoch_lines(run_dir));
  } catch (const Error& error) {
    std::fprintf(stderr, "kiln: warning: the run's plots were not drawn: %s\n", error.what());
  }
}

// The model an epoch's evaluation scores, and its checkpoints serve: the weights' average with --ema, else
// the model as trained.
layers::Module& evaluated_model(Run& run) { return run.average ? run.average->model() : *run.model; }

// Says once, on stderr, why a --cuda-graphs pass runs without a graph (train/graphed_step.hpp).
void warn_once_if_not_captured(const GraphedStep* step, const char* what, bool& warned) {
  if (step == nullptr || !step->fallback_reason() || warned) return;
  std::fprintf(stderr,
               "kiln: warning: --cuda-graphs: the %s could not be captured (%s); it runs without a graph\n",
               what, step->fallback_reason()->c_str());
  warned = true;
}

// A multi-label epoch's held-out evaluation. On the validation split it first chooses the thresholds
// (kept in run.thresholds, so the checkpoint written next carries them) and reports at them; a run
// whose held-out split is the test split keeps the default thresholds, so the test images stay unseen.
void evaluate_multi_label_epoch(Run& run, EpochSummary& summary) {
  layers::Module& evaluated = evaluated_model(run);
  if (run.graphed_step && !run.eval_graphed_step)
    run.eval_graphed_step = multi_label_evaluation_graph(evaluated, run.precision);
  const MultiLabelMetrics metrics = evaluate_multi_label(
      evaluated, *run.eval_loader, run.architecture.classes, run.precision, run.eval_graphed_step.get());
  warn_once_if_not_captured(run.eval_graphed_step.get(), "evaluation pass", run.eval_graph_warned);
  if (run.splits.validation) {
    run.thresholds = choose_thresholds(metrics.probabilities(), metrics.truth(),
                                       static_cast<std::size_t>(run.architecture.classes));
  }
  summary.multi_label_validation = metrics.report(run.thresholds.thresholds);
  summary.thresholds = run.thresholds;
}

// Step `step` of `epoch`'s inputs: the batch's images and labels (or targets), and with mixup or CutMix the
// step's mixing weight (train/batch_mixing.hpp), on the batch's device.
std::vector<Tensor> step_inputs(const Run& run, const data::Batch& batch, std::int64_t epoch,
                                std::int64_t step) {
  std::vector<Tensor> inputs{batch.images, run.multi_label ? batch.targets : batch.labels};
  const BatchMixing mixing{run.config.mixup, run.config.cutmix};
  if (mixing.any()) {
    const std::int64_t height = batch.images.size(2), width = batch.images.size(3);
    const MixDraw draw = draw_mixing(mixing, run.config.seed, epoch, step, height, width);
    inputs.push_back(mixing_weight(draw, height, width).to(batch.images.device()));
  }
  return inputs;
}

// The step's loss from the logits: with a mixing weight (inputs[2]), its share lambda of the loss on each
// image's own labels and 1 - lambda on its partner's (for multi-label, one loss on targets mixed alike).
Tensor step_loss(const Run& run, const Tensor& logits, const std::vector<Tensor>& inputs) {
  const auto loss_on = [&](const Tensor& truth) {
    return run.multi_label ? binary_cross_entropy_with_logits(logits, truth, run.pos_weight)
                           : cross_entropy(logits, truth, run.class_weight,
                                           {.label_smoothing = run.config.label_smoothing});
  };
  if (inputs.size() < 3) return loss_on(inputs[1]);
  const Tensor lambda = own_share(inputs[2]);
  if (run.multi_label) return loss_on(inputs[1] * lambda + flip(inputs[1], {0}) * (1.0 - lambda));
  return loss_on(inputs[1]) * lambda + loss_on(flip(inputs[1], {0})) * (1.0 - lambda);
}

// The forward half of a batch's pass: the logits (float32 [B, classes]) and the loss.
//   inputs: images and labels (single-label) or images and targets (multi-label), and with mixup or CutMix
//           the mixing weight (step_inputs).
struct ForwardPass {
  Tensor logits, loss;
};
ForwardPass forward_pass(Run& run, const std::vector<Tensor>& inputs) {
  const Tensor images = inputs.size() > 2 ? mix_images(inputs[0], inputs[2]) : inputs[0];
  ForwardPass pass{forward_logits(*run.model, images, run.precision), Tensor()};
  pass.loss = step_loss(run, pass.logits, inputs);
  return pass;
}

// What a pass returns: the loss, and (single-label) the count of correct predictions (of each image's own
// label, mixed or not), a float64 scalar.
std::vector<Tensor> pass_results(const Run& run, const ForwardPass& pass, const std::vector<Tensor>& inputs) {
  if (run.multi_label) return {pass.loss};
  const NoGradGuard no_grad;
  return {pass.loss, sum(eq(argmax(pass.logits, 1).to(DType::Float64), inputs[1].to(DType::Float64)))};
}

// --clip-grad-norm, on a step's whole gradient (after its last backward).
void clip_gradients(Run& run) {
  if (run.config.clip_grad_norm > 0)
    optim::clip_grad_norm(run.model->parameters(), run.config.clip_grad_norm);
}

// A step's pass, everything of it but the optimizers' update (what train/graphed_step.hpp can capture):
// forward, the loss, backward, clipping, and the results (pass_results).
std::vector<Tensor> training_pass(Run& run, const std::vector<Tensor>& inputs) {
  const ForwardPass pass = forward_pass(run, inputs);
  for (ParameterGroup& group : run.groups) group.optimizer->zero_grad();
  pass.loss.backward();
  clip_gradients(run);
  return pass_results(run, pass, inputs);
}

// One batch of a step of --accumulate N batches: its loss's gradient weighted by `share` (its images over
// the step's N x batch_size), added to what the step's earlier batches left in the gradients.
std::vector<Tensor> accumulating_pass(Run& run, const std::vector<Tensor>& inputs, double share) {
  const ForwardPass pass = forward_pass(run, inputs);
  (pass.loss * share).backward();
  return pass_results(run, pass, inputs);
}

// The optimizers' update, and the weights' average following it.
void apply_step(Run& run) {
  for (ParameterGroup& group : run.groups) group.optimizer->step();
  if (run.average) run.average->update(*run.model);
}

// Ends a step of --accumulate batches that saw `images` images: the gradients are their mean once the step
// saw fewer than N x batch_size (the epoch's short last step), then clipped and applied.
void finish_accumulated_step(Run& run, std::int64_t images) {
  const std::int64_t planned = run.config.accumulate * run.config.batch_size;
  if (images != planned) {
    const NoGradGuard no_grad;
    const double scale = static_cast<double>(planned) / static_cast<double>(images);
    for (Tensor& parameter : run.model->parameters()) {
      if (parameter.grad().defined()) parameter.set_grad(parameter.grad() * scale);
    }
  }
  clip_gradients(run);
  apply_step(run);
}

// --profile's window (train/profile_report.hpp): whether it opens at `step` of an epoch of `steps`.
bool opens_profile_window(const Run& run, std::int64_t step, std::int64_t steps) {
  return run.config.profile_steps > 0 && !run.profiled && !run.profile_session &&
         step == std::min(kProfileSkippedSteps, steps - 1);
}

void open_profile_window(Run& run, std::int64_t epoch, std::int64_t step) {
  run.profile = ProfileReport{};
  run.profile.epoch = epoch;
  run.profile.first_step = step;
  run.profile_session = std::make_unique<profiler::Session>(run.device);
}

// Ends the window: the table to the observer, the rows to RUNDIR/profile.json.
void close_profile_window(Run& run, TrainingObserver& observer) {
  run.profile.profile = run.profile_session->finish();
  run.profile_session.reset();
  run.profiled = true;
  write_file_atomically(run.config.run_dir / kProfileFile, run.profile.to_json().dump(2) + "\n", "file");
  observer.on_profile(run.profile);
}

// Ends the run where Ctrl-C asked it to (train/interrupt.hpp), saying what last.kiln holds and how to go on.
// `where`: "in epoch 3 at step 27 of 32" (that epoch's steps are in no checkpoint) or "after epoch 2".
// A fold of a cross-validation resumes with the whole of it: --out its parent, with --folds.
[[noreturn]] void stop_interrupted(const Run& run, const std::string& where, bool mid_epoch) {
  const TrainConfig& config = run.config;
  const std::string lost =
      mid_epoch ? " (epoch " + std::to_string(run.epochs_done + 1) + "'s steps so far are not in it)" : "";
  const std::string resume =
      "kiln train " + config.data.string() + " --out " +
      (config.folds > 0 ? config.run_dir.parent_path().string() + " --folds " + std::to_string(config.folds)
                        : config.run_dir.string()) +
      " --resume";
  const std::string saved =
      run.epochs_done > 0
          ? last_checkpoint(config.run_dir).string() + " holds epoch " + std::to_string(run.epochs_done) +
                " of " + std::to_string(config.epochs) + lost + "; " + resume + " continues from there"
          : std::string("no checkpoint was written yet");
  throw Interrupted("interrupted " + where + "; " + saved);
}

// One epoch: the training pass, then (when --eval-every says so) the held-out evaluation, each timed into
// `eta`.
EpochSummary train_one_epoch(Run& run, std::int64_t epoch, RunEta& eta, TrainingObserver& observer) {
  layers::Module& model = *run.model;
  model.train();
  keep_frozen_modules_in_eval(model, run.config.freeze);  // their batch-norm statistics stay as loaded
  DeviceBatches batches(*run.train_loader, run.device);   // the loader's batches, on the model's device
  batches.start_epoch(epoch);
  const std::int64_t steps = steps_per_epoch(run);
  const auto start = Clock::now();
  double loss_sum = 0.0, seen = 0.0, learning_rate = 0.0;
  // Counted on the model's device and read once, at the epoch's end: a read every step would make the host
  // wait for the GPU at every step.
  Tensor correct = Tensor::zeros({}, DType::Float64, run.device);
  if (run.config.cuda_graphs && run.device.is_cuda() && !run.graphed_step) {
    run.graphed_step = std::make_unique<GraphedStep>(
        run.device.index, model.parameters(),
        [&run](const std::vector<Tensor>& inputs) { return training_pass(run, inputs); });
  }
  // Each step's loss reaches the host a step late (train/loss_readback.hpp): it is checked, summed and
  // reported once the next step's work is queued, so on a GPU the device never waits for the host.
  LossReadback losses(run.device);
  struct Unreported {
    std::int64_t step;
    std::uint64_t loss_ticket;
    double learning_rate, images;
  };
  std::optional<Unreported> unreported;
  // --accumulate N: batch `step` opens optimizer step step / N when step % N == 0, and the step closes after
  // its N-th batch or the epoch's last. The schedules count optimizer steps, so N batches of B follow a run
  // of batches of N x B step for step.
  const std::int64_t accumulate = run.config.accumulate;
  const std::int64_t optimizer_steps = optimizer_steps_per_epoch(run);
  std::int64_t step_images = 0;  // images in the open step's batches so far
  const auto report = [&](const Unreported& u) {
    const double loss_value = losses.value(u.loss_ticket);
    if (!std::isfinite(loss_value)) {
      // NaN or infinite, in words: printf's "-nan" says more about the sign bit than about the run.
      fail("training stopped: the loss became ", std::isnan(loss_value) ? "NaN" : "infinite", " at epoch ",
           epoch + 1, ", step ", u.step + 1, "; ",
           run.epochs_done > 0 ? last_checkpoint(run.config.run_dir).string() + " still holds epoch " +
                                     std::to_string(run.epochs_done)
                               : std::string("no checkpoint was written"),
           ". Try a lower --lr or --clip-grad-norm.");
    }
    loss_sum += loss_value * u.images;
    seen += u.images;
    const double seconds = seconds_since(start);
    observer.on_step({epoch, u.step, steps, loss_value, u.learning_rate, seen / seconds,
                      eta.during_epoch(epoch, u.step + 1, steps, seconds)});
  };
  for (std::int64_t step = 0; step < steps; ++step) {
    if (opens_profile_window(run, step, steps)) open_profile_window(run, epoch, step);
    std::optional<data::Batch> batch;
    {
      // Under --profile: the time the device waited for the loader and the batch's copy (on a GPU still busy
      // with the last step, none).
      profiler::Scope wait("next_batch", run.device, std::nullopt);
      batch = batches.next();
    }
    if (!batch) break;
    const bool opens_step = step % accumulate == 0;
    if (opens_step) {
      const std::int64_t index = epoch * optimizer_steps + step / accumulate;
      learning_rate = run.groups.front().schedule->learning_rate(index);
      for (ParameterGroup& group : run.groups)
        group.optimizer->set_learning_rate(group.schedule->learning_rate(index));
    }

    const std::vector<Tensor> inputs = step_inputs(run, *batch, epoch, step);
    const std::int64_t images = batch->images.size(0);
    std::vector<Tensor> results;
    if (accumulate == 1) {
      // A graph's outputs are overwritten by its next launch: the loss's copy and the count below are
      // queued before it.
      results = run.graphed_step ? run.graphed_step->run(inputs) : training_pass(run, inputs);
    } else {
      if (opens_step) {
        for (ParameterGroup& group : run.groups) group.optimizer->zero_grad();
      }
      const double share =
          static_cast<double>(images) / static_cast<double>(accumulate * run.config.batch_size);
      results = accumulating_pass(run, inputs, share);
      step_images += images;
    }
    const std::uint64_t loss_ticket = losses.start(results[0]);
    warn_once_if_not_captured(run.graphed_step.get(), "training step", run.train_graph_warned);
    if (accumulate == 1) {
      apply_step(run);
    } else if ((step + 1) % accumulate == 0 || step + 1 == steps) {
      finish_accumulated_step(run, step_images);
      step_images = 0;
    }
    if (!run.multi_label) {
      const NoGradGuard no_grad;
      correct = correct + results[1];
    }
    if (unreported) report(*unreported);
    unreported = Unreported{step, loss_ticket, learning_rate, static_cast<double>(batch->labels.numel())};
    if (interrupt_requested()) {
      stop_interrupted(run,
                       "in epoch " + std::to_string(epoch + 1) + " at step " + std::to_string(step + 1) +
                           " of " + std::to_string(steps),
                       true);
    }
    if (run.profile_session) {
      run.profile.images += batch->labels.numel();
      if (++run.profile.steps == run.config.profile_steps) close_profile_window(run, observer);
    }
  }
  if (step_images > 0) finish_accumulated_step(run, step_images);  // the loader ran out inside a step
  if (run.profile_session) close_profile_window(run, observer);  // the epoch ended inside the window
  if (unreported) report(*unreported);
  KILN_CHECK(seen > 0, "training: epoch ", epoch + 1, " saw no readable images");
  // Reading the hit count waits for the device, so the pass is timed after it.
  const double train_accuracy = run.multi_label ? std::nan("") : correct.item() / seen;
  const double seconds = seconds_since(start);
  EpochSummary summary{epoch,          run.config.epochs, loss_sum / seen,
                       train_accuracy, learning_rate,     seconds,
                       seen / seconds, std::nullopt,      run.splits.train.classes()};
  eta.record_training(seconds);
  if (run.multi_label) summary.thresholds = run.thresholds;  // until an evaluation chooses new ones
  if (!run.eval_loader || !evaluates_after_epoch(epoch, run.config.epochs, run.config.eval_every))
    return summary;

  const auto eval_start = Clock::now();
  if (run.multi_label) {
    evaluate_multi_label_epoch(run, summary);
  } else {
    layers::Module& evaluated = evaluated_model(run);
    if (run.graphed_step && !run.eval_graphed_step)
      run.eval_graphed_step = evaluation_graph(evaluated, run.precision);
    summary.validation = evaluate(evaluated, *run.eval_loader, run.architecture.classes, nullptr,
                                  run.precision, run.eval_graphed_step.get());
    warn_once_if_not_captured(run.eval_graphed_step.get(), "evaluation pass", run.eval_graph_warned);
  }
  summary.eval_seconds = seconds_since(eval_start);
  eta.record_evaluation(*summary.eval_seconds);
  return summary;
}

}  // namespace

nlohmann::json EpochSummary::to_json() const {
  nlohmann::json line{{"epoch", epoch + 1},
                      {"epochs", epochs},
                      {"train_loss", train_loss},
                      {"learning_rate", learning_rate},
                      {"seconds", seconds},
                      {"images_per_second", images_per_second},
                      {"run_seconds_left", run_seconds_left}};
  if (eval_seconds) line["eval_seconds"] = *eval_seconds;
  if (thresholds) {
    line["task"] = kMultiLabelTask;
  } else {
    line["train_accuracy"] = train_accuracy;
  }
  if (multi_label_validation) {
    const MultiLabelReport& report = *multi_label_validation;
    line["improved"] = improved;
    line["best_epoch"] = best_epoch;
    line["eval_loss"] = report.loss;
    line["eval_map"] = optional_to_json(report.mean_average_precision);
    line["eval_macro_f1"] = report.macro_f1;
    line["eval_micro_f1"] = report.micro_f1;
    line["eval_exact_match"] = report.exact_match;
    line["eval_hamming_loss"] = report.hamming_loss;
    if (classes.size() == report.per_label.size()) {
      nlohmann::json ap = nlohmann::json::object(), chosen = nlohmann::json::object();
      for (std::size_t l = 0; l < classes.size(); ++l) {
        ap[classes[l]] = optional_to_json(report.per_label[l].average_precision);
        chosen[classes[l]] = report.thresholds[l];
      }
      line["eval_ap_per_label"] = ap;
      line["thresholds"] = chosen;
    }
  }
  if (validation) {
    line["improved"] = improved;
    line["best_epoch"] = best_epoch;
    line["eval_loss"] = validation->loss;
    line["eval_accuracy"] = validation->accuracy;
    line["eval_macro_recall"] = validation->macro_recall;
    // Beside accuracy, so a model that only ever answers the largest class cannot hide.
    if (classes.size() == validation->per_class.size()) {
      nlohmann::json recall = nlohmann::json::object();
      for (std::size_t c = 0; c < classes.size(); ++c) recall[classes[c]] = validation->per_class[c].recall;
      line["eval_recall_per_class"] = recall;
    }
  }
  return line;
}

TrainResult train(const TrainConfig& config, RunStart start, TrainingObserver& observer) {
  Monitor{config.monitor, config.min_delta};  // a bad --monitor or --min-delta fails before any work
  BatchMixing{config.mixup, config.cutmix}.validate();
  KILN_CHECK(config.ema >= 0 && config.ema < 1, "train: --ema takes a decay in [0, 1) (0: off), got ",
             config.ema);
  KILN_CHECK(config.accumulate >= 1, "train: --accumulate takes a count of batches >= 1, got ",
             config.accumulate);
  KILN_CHECK(config.epochs >= 1, "train: --epochs must be >= 1, got ", config.epochs);
  KILN_CHECK(config.eval_every >= 1, "train: --eval-every must be >= 1, got ", config.eval_every);
  KILN_CHECK(start != RunStart::Resume || config.init_checkpoint.empty(),
             "train: --init starts a new run from another checkpoint and --resume continues this one; use "
             "one of them");
  KILN_CHECK(start != RunStart::Fresh || !std::filesystem::exists(last_checkpoint(config.run_dir)),
             last_checkpoint(config.run_dir).string(),
             " already exists; continue it with --resume, or choose another --out (or --overwrite)");
  std::filesystem::create_directories(config.run_dir);
  Run run;
  try {
    run = start == RunStart::Resume ? resume_from(config) : start_fresh(config);
  } catch (const nlohmann::json::exception& error) {
    fail("cannot resume from ", last_checkpoint(config.run_dir).string(), ": malformed header (", error.what(), ")");
  }
  if (start == RunStart::Resume) rewrite_metrics_log(run.config.run_dir, run.history_json);
  nlohmann::json plan{
      {"model", run.architecture.to_json()},
      {"classes", run.splits.train.classes()},
      {"train_images", run.splits.train.size()},
      {"eval_split", run.eval_split_name},
      {"parameters", run.model->parameter_count()},
      {"steps_per_epoch", steps_per_epoch(run)},
      {"optimizer_steps_per_epoch", optimizer_steps_per_epoch(run)},
      {"resumed_at_epoch", run.epochs_done},
      {"preprocessing", run.preprocessing.to_json()},
      {"input_size",
       {{"chosen", run.config.image_height > 0 ? "--image-size" : "default"},
        {"most_common", run.input_size_from ? nlohmann::json{{"height", run.input_size_from->height},
                                                             {"width", run.input_size_from->width}}
                                            : nlohmann::json(nullptr)}}},
      {"kernels",
       {{"cpu_level", kernels::cpu_level_name(kernels::cpu_level())},
        {"threads", kernels::compute_threads()}}},
      {"device",
       run.device.is_cuda() ? run.device.str() + ": " + cuda::device_description(run.device.index) : "cpu"},
      {"precision", precision_name(run.precision)},
      {"memory_format", run.config.memory_format},
      {"loader_threads", run.config.loader_threads}};
  if (run.device.is_cuda()) {
    plan["cuda_conv"] = run.config.cuda_conv;
    plan["cuda_graphs"] = run.config.cuda_graphs;
  }
  plan["task"] = run.multi_label ? kMultiLabelTask : kSingleLabelTask;
  if (run.multi_label) {
    const std::string when =
        run.config.eval_every == 1
            ? "after each epoch"
            : "at each evaluation, every " + std::to_string(run.config.eval_every) + " epochs";
    plan["thresholds"] = run.splits.validation
                             ? "chosen on validation " + when + " (max F1 per label)"
                             : "0.5 for every label (no validation split to choose them on)";
  }
  plan.update(balance_plan(run));
  plan.update(guard_plan(run));
  plan["fine_tune"] = fine_tune_plan(run);
  observer.on_start(plan);
  TrainResult result;
  result.checkpoint = last_checkpoint(run.config.run_dir);
  if (run.eval_loader) result.best_checkpoint = best_checkpoint(run.config.run_dir);
  result.monitored_metric = run.monitor.metric();
  const std::int64_t patience = run.config.early_stop_patience;
  if (run.epochs_done < run.config.epochs && patience_exhausted(run.early_stopping, patience)) {
    result.monitored = run.early_stopping;
    result.early_stop = early_stop_report(run, true);
    observer.on_early_stop(*result.early_stop);
    return result;
  }
  RunEta eta(run.config.epochs, run.config.eval_every);
  // The pictures are redrawn at most every kRedrawPlotSeconds, and always after the run's last epoch (the
  // last of --epochs, or the one an early stop or Ctrl-C ends on): drawing and encoding them takes about
  // 0.1 s, a fifth of an epoch of LeNet-5 on the bundled data. `kiln report RUNDIR` redraws them any time.
  auto plots_drawn = std::chrono::steady_clock::now();
  for (std::int64_t epoch = run.epochs_done; epoch < run.config.epochs; ++epoch) {
    EpochSummary summary = train_one_epoch(run, epoch, eta, observer);
    summary.run_seconds_left = eta.after_epoch(epoch);
    run.epochs_done = epoch + 1;
    if (summary.validation || summary.multi_label_validation) {
      // A multi-label run monitors eval_loss (check_multi_label_settings).
      const double value = summary.validation ? run.monitor.value_of(*summary.validation)
                                              : summary.multi_label_validation->loss;
      summary.improved = record_epoch(run.early_stopping, run.monitor, run.epochs_done, value);
      summary.best_epoch = run.early_stopping.best_epoch;
    }
    nlohmann::json line = summary.to_json();
    if (!run.eval_split_name.empty()) line["eval_split"] = run.eval_split_name;
    run.history_json.push_back(line);
    if (start != RunStart::Resume && epoch == 0) {
      // What a run that was here before left is not this run's: its metrics log (this one starts anew as
      // last.kiln is replaced), and its best.kiln unless this epoch writes a new one. (Its pictures go as
      // they are redrawn.)
      std::error_code ignored;
      std::filesystem::remove(run.config.run_dir / "metrics.jsonl", ignored);
      if (!summary.improved) std::filesystem::remove(best_checkpoint(run.config.run_dir), ignored);
    }
    save(run,
         summary.improved);  // after the epoch's metrics are final, so the checkpoint and metrics.jsonl agree
    // metrics.jsonl also gets the held-out confusion matrix (the checkpoint's history stays small).
    nlohmann::json logged = line;
    if (summary.validation) {
      logged["eval_confusion_matrix"] = {{"classes", summary.classes}, {"counts", summary.validation->confusion}};
    }
    append_metrics_line(run.config.run_dir, logged);
    if (run.device.is_cuda()) write_conv_choices(run.config.run_dir);  // the first epoch has met every shape
    const bool ends_run = run.epochs_done == run.config.epochs || interrupt_requested() ||
                          patience_exhausted(run.early_stopping, patience);
    if (ends_run || std::chrono::steady_clock::now() - plots_drawn >= kRedrawPlotSeconds) {
      redraw_plots(run.config.run_dir);
      plots_drawn = std::chrono::steady_clock::now();
    }
    observer.on_epoch(summary);
    result.history.push_back(std::move(summary));
    if (interrupt_requested() && run.epochs_done < run.config.epochs)
      stop_interrupted(run, "after epoch " + std::to_string(run.epochs_done), false);
    if (run.epochs_done < run.config.epochs && patience_exhausted(run.early_stopping, patience)) {
      result.early_stop = early_stop_report(run, false);
      observer.on_early_stop(*result.early_stop);
      break;
    }
  }
  result.monitored = run.early_stopping;
  return result;
}

void train_at_rates(const TrainConfig& config, std::int64_t steps,
                    const std::function<double(std::int64_t step)>& rate,
                    const std::function<bool(const RateStep&)>& on_step) {
  KILN_CHECK(steps >= 1, "train: the number of steps must be >= 1, got ", steps);
  KILN_CHECK(config.accumulate == 1, "train: --lr-find takes a step a batch; it does not take --accumulate ",
             config.accumulate);
  Run run = start_fresh(config);
  layers::Module& model = *run.model;
  std::int64_t step = 0;
  for (std::int64_t epoch = 0; step < steps; ++epoch) {
    model.train();
    keep_frozen_modules_in_eval(model, run.config.freeze);
    DeviceBatches batches(*run.train_loader, run.device);
    batches.start_epoch(epoch);
    bool any = false;
    for (; step < steps; ++step) {
      std::optional<data::Batch> batch = batches.next();
      if (!batch) break;
      any = true;
      const double learning_rate = rate(step);
      // Each group at its own peak rate's share of --lr (a --head-lr head keeps its ratio).
      for (ParameterGroup& group : run.groups) {
        const double scale = config.learning_rate > 0 ? group.learning_rate / config.learning_rate : 1.0;
        group.optimizer->set_learning_rate(learning_rate * scale);
      }
      const std::vector<Tensor> results = training_pass(run, step_inputs(run, *batch, epoch, step));
      for (ParameterGroup& group : run.groups) group.optimizer->step();
      // Read at once, not a step late as train() does: whether to take the next step depends on it.
      if (!on_step({step, learning_rate, results[0].item()})) return;
      if (interrupt_requested())
        throw Interrupted("interrupted during the learning-rate test, at step " + std::to_string(step + 1) +
                          " of " + std::to_string(steps));
    }
    KILN_CHECK(any, "train: an epoch of ", config.data.string(), " gave no batch of readable images");
  }
}

}  // namespace kiln::train
