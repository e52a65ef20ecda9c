// kiln train DATA [options]: trains a model from the zoo (or a model file's) on an image folder (or,
// multi-label, on a labels .csv: data/label_table.hpp) and writes RUNDIR/last.kiln and RUNDIR/metrics.jsonl
// after every epoch (and RUNDIR/best.kiln when the held-out metric improves); with --folds K, K such runs of
// a cross-validation in RUNDIR/fold-1 .. fold-K and a summary.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.hpp"
#include "cli/image_size_option.hpp"
#include "cli/json_lines.hpp"
#include "cli/lr_find.hpp"
#include "cli/progress_bar.hpp"
#include "data/augment.hpp"
#include "data/preprocessing.hpp"
#include "kernels/conv2d/cuda_tuning.hpp"
#include "models/architecture.hpp"
#include "train/checkpoint.hpp"
#include "train/conv_choices.hpp"
#include "train/cross_validation.hpp"
#include "train/early_stopping.hpp"
#include "train/interrupt.hpp"
#include "train/trainer.hpp"

namespace kiln::cli {
namespace {

constexpr std::size_t kMaxWeightsShown = 12;  // beyond this many classes, see `kiln info --json`
constexpr std::size_t kProfileRows = 30;      // op rows --profile prints (the rest are in profile.json)

// The imbalance warning: given when the training classes are imbalanced (train/class_balance.hpp) and the
// run corrects for it neither way. With --json it is a JSON line {"event": "warning", "kind":
// "class_imbalance", ...} on stdout; otherwise one "kiln: warning:" line on stderr.
void warn_if_imbalanced(const nlohmann::json& plan, bool json) {
  const nlohmann::json& balance = plan.at("class_balance");
  if (balance.is_null()) return;  // multi-label: see --pos-weight
  const bool corrected = !plan.at("class_weights").is_null() || plan.at("sampler") == "balanced";
  if (!balance.at("imbalanced").get<bool>() || corrected) return;
  const std::string advice =
      "consider --class-weights auto or --balanced-sampler, and watch the per-class recall";
  if (json) {
    print_json_line(
        {{"event", "warning"}, {"kind", "class_imbalance"}, {"class_balance", balance}, {"advice", advice}});
    return;
  }
  std::fprintf(stderr, "kiln: warning: imbalanced training classes: %s; %s\n",
               balance.at("summary").get<std::string>().c_str(), advice.c_str());
}

// A multi-label run, in text: how often each label applies in training, the --pos-weight values and
// where the thresholds come from.
void print_label_settings(const nlohmann::json& plan) {
  std::string counts;
  for (const std::string name : plan.at("classes")) {
    counts += (counts.empty() ? "" : ", ") + name + " " + plan.at("label_counts").at(name).dump();
  }
  std::printf("labels (training images each applies to): %s\n", counts.c_str());
  if (!plan.at("pos_weight").is_null()) {
    std::string weights;
    for (const std::string name : plan.at("classes")) {
      char entry[32];
      std::snprintf(entry, sizeof entry, " %.3g", plan.at("pos_weight").at(name).get<double>());
      weights += (weights.empty() ? "" : ", ") + name + entry;
    }
    std::printf("pos weight (auto: negatives / positives): %s\n", weights.c_str());
  }
  std::printf("thresholds: %s\n", plan.at("thresholds").get<std::string>().c_str());
}

// What the run does about imbalance, in text: the imbalance when it is corrected, the weights, the sampler.
void print_balance_settings(const nlohmann::json& plan) {
  const nlohmann::json& balance = plan.at("class_balance");
  if (balance.is_null()) {
    print_label_settings(plan);
    return;
  }
  const nlohmann::json& weights = plan.at("class_weights");
  const bool balanced_sampler = plan.at("sampler") == "balanced";
  if (balance.at("imbalanced").get<bool>() && (!weights.is_null() || balanced_sampler)) {
    std::printf("imbalanced training classes: %s\n", balance.at("summary").get<std::string>().c_str());
  }
  if (!weights.is_null()) {
    std::string list;
    if (weights.at("weights").size() <= kMaxWeightsShown) {
      for (const std::string name : plan.at("classes")) {
        char entry[32];
        std::snprintf(entry, sizeof entry, " %.3g", weights.at("weights").at(name).get<double>());
        list += (list.empty() ? " " : ", ") + name + entry;
      }
    } else {
      list = " " + std::to_string(weights.at("weights").size()) + " classes (see kiln info --json)";
    }
    std::printf("class weights (%s):%s\n", weights.at("source").get<std::string>().c_str(), list.c_str());
  }
  if (balanced_sampler) {
    std::printf("sampler: balanced (each epoch draws %lld images with replacement, every class equally "
                "likely)\n",
                plan.at("train_images").get<long long>());
  }
}

// What the run does against overfitting, in text: which metric chooses best.kiln and on which split,
// the patience, and on --resume the best so far. A run without held-out data says it keeps no best.kiln.
void print_guard_settings(const nlohmann::json& plan) {
  const std::string split = plan.at("eval_split").get<std::string>();
  if (plan.at("best_checkpoint").is_null()) {
    std::printf("best.kiln: not kept, there is no held-out split (add --val-split 0.1 or a val/ folder)\n");
    return;
  }
  std::string line = "best.kiln: the epoch with the best " +
                     plan.at("monitor").at("description").get<std::string>() + " on " + split;
  const long long patience = plan.at("early_stop_patience").get<long long>();
  const long long eval_every = plan.at("eval_every").get<long long>();
  if (patience > 0) {
    line +=
        "; early stop after " + train::evaluated_epochs_phrase(patience, eval_every) + " without improvement";
  }
  if (split == "test") line += " (the test split chooses it: --val-split 0.1 keeps test for the final score)";
  std::printf("%s\n", line.c_str());
  const nlohmann::json& state = plan.at("early_stopping");
  if (plan.at("resumed_at_epoch").get<long long>() > 0 && !state.at("best").is_null()) {
    const long long since = state.at("epochs_without_improvement").get<long long>();
    std::printf("best so far: %s %.4g at epoch %lld, %s without improvement since\n",
                plan.at("monitor").at("metric").get<std::string>().c_str(), state.at("best").get<double>(),
                state.at("best_epoch").get<long long>(),
                train::evaluated_epochs_phrase(since, eval_every).c_str());
  }
}

// Fine-tuning, in text: the checkpoint the weights start from, whether its head was replaced, what is
// frozen and the head's learning rate. Nothing for a run from scratch that freezes nothing.
// What --cuda-conv VALUE does, in a few words.
std::string cuda_conv_summary(const std::string& value) {
  if (value == "measured") return "the fastest agreeing kernel per shape, measured on first use";
  if (value == "library") return "library (im2col + cuBLAS)";
  return "replayed from " + value + ", other shapes measured on first use";
}

void print_fine_tune_settings(const nlohmann::json& plan) {
  const nlohmann::json& fine_tune = plan.at("fine_tune");
  const nlohmann::json& init = fine_tune.at("init");
  const std::string head = fine_tune.at("head").get<std::string>();
  if (!init.is_null()) {
    std::printf("init: weights from %s (%zu classes), preprocessing kept from it; head '%s' %s\n",
                init.at("checkpoint").get<std::string>().c_str(), init.at("classes").size(), head.c_str(),
                init.at("head_replaced").get<bool>() ? "re-initialized for the new classes"
                                                     : "kept (same classes)");
  }
  std::string frozen;
  for (const auto& name : fine_tune.at("frozen")) frozen += (frozen.empty() ? "" : ", ") + name.get<std::string>();
  if (!frozen.empty()) std::printf("frozen: %s (no updates; batch-norm statistics kept)\n", frozen.c_str());
  if (!fine_tune.at("head_learning_rate").is_null()) {
    std::printf("head learning rate: %g for '%s'\n", fine_tune.at("head_learning_rate").get<double>(), head.c_str());
  }
}

// Where the input size came from when it is not the training images' most common size: the default that
// shrank large images (data::kDefaultMaxInputSide), or --image-size.
void print_input_size_note(const nlohmann::json& plan, const nlohmann::json& model) {
  const nlohmann::json& input = plan.at("input_size");
  if (input.at("most_common").is_null()) return;
  const long long height = input.at("most_common").at("height").get<long long>(),
                  width = input.at("most_common").at("width").get<long long>();
  if (input.at("chosen") == "default") {
    std::printf(
        "input size: the images' most common size, %lldx%lld, shrunk to %lldx%lld (at most %lld a "
        "side; --image-size N|HxW for another)\n",
        width, height, model.at("width").get<long long>(), model.at("height").get<long long>(),
        static_cast<long long>(data::kDefaultMaxInputSide));
  }
}

// Prints the run as it goes: a progress bar while an epoch runs, one line per epoch (or a JSON line
// with --json). The loader reports unreadable files on stderr itself.
class ConsoleObserver final : public train::CrossValidationObserver {
 public:
  explicit ConsoleObserver(bool json) : json_(json) {}

  void on_start(const nlohmann::json& plan) override {
    if (json_) {
      print_json_line({{"event", "start"}, {"plan", plan}});
      warn_if_imbalanced(plan, true);
      return;
    }
    const auto& model = plan.at("model");
    const bool multi_label = plan.at("task") == "multi_label";
    std::string evaluating = plan.at("eval_split").get<std::string>();
    const long long eval_every = plan.at("eval_every").get<long long>();
    if (evaluating.empty()) {
      evaluating = "nothing (no test/ or val/ split)";
    } else if (eval_every > 1) {
      evaluating += " every " + std::to_string(eval_every) + " epochs and after the last";
    }
    std::printf(
        "training %s (%lld parameters) on %lld images, %zu %s, input %lldx%lldx%lld; evaluating on %s\n",
        model.at("name").get<std::string>().c_str(), plan.at("parameters").get<long long>(),
        plan.at("train_images").get<long long>(), plan.at("classes").size(),
        multi_label ? "labels (multi-label)" : "classes", model.at("in_channels").get<long long>(),
        model.at("height").get<long long>(), model.at("width").get<long long>(), evaluating.c_str());
    print_input_size_note(plan, model);
    const int threads = plan.at("kernels").at("threads").get<int>();
    std::printf("kernels: %s on %d thread%s\n", plan.at("kernels").at("cpu_level").get<std::string>().c_str(),
                threads, threads == 1 ? "" : "s");
    if (plan.at("device") != "cpu") {
      std::printf("device: %s, convolutions: %s%s\n", plan.at("device").get<std::string>().c_str(),
                  cuda_conv_summary(plan.at("cuda_conv").get<std::string>()).c_str(),
                  plan.at("cuda_graphs").get<bool>() ? ", steps as CUDA graphs" : "");
    }
    if (plan.at("precision") != "fp32") {
      std::printf("precision: %s (bfloat16 activations, float32 master weights)\n",
                  plan.at("precision").get<std::string>().c_str());
    }
    if (plan.at("memory_format") != "nchw") std::printf("memory format: channels-last images\n");
    if (plan.at("resumed_at_epoch").get<long long>() > 0) {
      std::printf("resuming after epoch %lld\n", plan.at("resumed_at_epoch").get<long long>());
    }
    print_fine_tune_settings(plan);
    print_balance_settings(plan);
    print_guard_settings(plan);
    std::fflush(stdout);
    warn_if_imbalanced(plan, false);
    keeps_best_ = !plan.at("best_checkpoint").is_null();
  }

  void on_step(const train::StepProgress& p) override {
    if (p.step == 0) epoch_start_ = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start_).count();
    const double eta = elapsed / static_cast<double>(p.step + 1) * static_cast<double>(p.steps_in_epoch - p.step - 1);
    char details[192];
    std::snprintf(details, sizeof details, "loss %.4f  lr %.4g  %.0f img/s  ETA %s (run %s)", p.loss,
                  p.learning_rate, p.images_per_second, format_duration(eta).c_str(),
                  format_duration(p.run_seconds_left).c_str());
    bar_.update("epoch " + std::to_string(p.epoch + 1), p.step + 1, p.steps_in_epoch, details);
  }

  void on_epoch(const train::EpochSummary& s) override {
    bar_.clear();
    if (json_) {
      nlohmann::json line = s.to_json();
      line["event"] = "epoch";
      std::printf("%s\n", line.dump().c_str());
    } else if (s.thresholds) {
      print_multi_label_epoch(s);
    } else {
      std::printf("epoch %3lld/%lld  train loss %.4f acc %5.1f%%", static_cast<long long>(s.epoch + 1),
                  static_cast<long long>(s.epochs), s.train_loss, 100.0 * s.train_accuracy);
      if (s.validation) {
        std::printf("  |  eval loss %.4f acc %5.1f%% macro-recall %5.1f%%", s.validation->loss,
                    100.0 * s.validation->accuracy, 100.0 * s.validation->macro_recall);
      }
      print_epoch_end(s);
    }
    std::fflush(stdout);
  }

  // The end of an epoch's line, single- or multi-label: the rate, the speed, the pass's time, the run's time
  // left while epochs remain ("  run ETA 1:02:03"), and whether best.kiln now holds this epoch.
  void print_epoch_end(const train::EpochSummary& s) const {
    const std::string run_left =
        s.epoch + 1 < s.epochs ? "  run ETA " + format_duration(s.run_seconds_left) : std::string();
    std::printf("  |  lr %.4g  %.0f img/s  %s%s%s\n", s.learning_rate, s.images_per_second,
                format_duration(s.seconds).c_str(), run_left.c_str(),
                s.improved && keeps_best_ ? "  -> best.kiln" : "");
  }

  // A multi-label epoch: the train loss, and the held-out loss, mAP, macro F1 and exact match.
  void print_multi_label_epoch(const train::EpochSummary& s) const {
    std::printf("epoch %3lld/%lld  train loss %.4f", static_cast<long long>(s.epoch + 1),
                static_cast<long long>(s.epochs), s.train_loss);
    if (s.multi_label_validation) {
      const train::MultiLabelReport& report = *s.multi_label_validation;
      char map[16] = "-";  // absent when no held-out image has any label
      if (report.mean_average_precision)
        std::snprintf(map, sizeof map, "%.3f", *report.mean_average_precision);
      std::printf("  |  eval loss %.4f mAP %s macro-F1 %.3f exact %5.1f%%", report.loss, map, report.macro_f1,
                  100.0 * report.exact_match);
    }
    print_epoch_end(s);
  }

  void on_profile(const train::ProfileReport& report) override {
    bar_.clear();
    if (json_) {
      nlohmann::json line = report.to_json();
      line["event"] = "profile";
      print_json_line(line);
      return;
    }
    std::printf("%s", report.table(kProfileRows).c_str());
    std::fflush(stdout);
  }

  void on_early_stop(const train::EarlyStop& stop) override {
    if (json_) {
      nlohmann::json line = stop.to_json();
      line["event"] = "early_stop";
      print_json_line(line);
      return;
    }
    std::printf("early stop: %s\n", stop.message().c_str());
    std::fflush(stdout);
  }

  void on_cross_validation_start(const nlohmann::json& plan) override {
    if (json_) {
      print_json_line({{"event", "cross_validation_start"}, {"plan", plan}});
      return;
    }
    std::string sizes;
    for (const auto& size : plan.at("fold_sizes")) sizes += (sizes.empty() ? "" : ", ") + size.dump();
    std::printf(
        "cross-validation: %lld stratified folds of the %lld images in %s (seed %llu; held out: %s)\n",
        plan.at("folds").get<long long>(), plan.at("images").get<long long>(),
        plan.at("data").get<std::string>().c_str(), plan.at("seed").get<unsigned long long>(), sizes.c_str());
    for (const auto& split : plan.at("unused_splits")) {
      std::printf("the %s/ split is not used: the folds come from the training images only\n",
                  split.get<std::string>().c_str());
    }
    std::fflush(stdout);
  }

  void on_fold_start(std::int64_t fold, std::int64_t folds, bool already_finished) override {
    if (json_) {
      print_json_line(
          {{"event", "fold"}, {"fold", fold}, {"folds", folds}, {"already_finished", already_finished}});
      return;
    }
    std::printf("\nfold %lld/%lld%s\n", static_cast<long long>(fold), static_cast<long long>(folds),
                already_finished ? ": finished earlier, skipped" : "");
    std::fflush(stdout);
  }

 private:
  bool json_;
  bool keeps_best_ = false;
  ProgressBar bar_;
  std::chrono::steady_clock::time_point epoch_start_;
};

// The cross-validation's summary: a table in text, or one JSON line {"event": "cross_validation", ...}.
void print_cross_validation(const train::CrossValidationSummary& summary,
                            const std::filesystem::path& run_dir, bool json) {
  const std::filesystem::path file = run_dir / train::kFoldsSummaryFile;
  if (json) {
    nlohmann::json line = summary.to_json();
    line["event"] = "cross_validation";
    line["summary_file"] = file.string();
    print_json_line(line);
    return;
  }
  std::printf("\ncross-validation: %lld folds, each scored at its %s (std: sample standard deviation)\n%s",
              static_cast<long long>(summary.folds), summary.scored_at.c_str(), summary.table().c_str());
  std::printf("summary: %s\n", file.string().c_str());
}

// After a CUDA run: how many convolution shapes a ladder step served, and where the measurements are.
void print_conv_choices(const std::filesystem::path& run_dir, bool json) {
  const std::vector<kernels::cuda::ConvChoice> choices = kernels::cuda::conv_choices();
  if (choices.empty()) return;  // the library policy, or no convolution
  const auto by_ladder = std::count_if(choices.begin(), choices.end(), [](const kernels::cuda::ConvChoice& c) {
    return c.chosen != kernels::cuda::kLibraryCandidate;
  });
  const std::filesystem::path file = run_dir / train::kConvChoicesFile;
  if (json) {
    print_json_line({{"event", "cuda_conv_choices"},
                     {"shapes", choices.size()},
                     {"served_by_ladder", by_ladder},
                     {"file", file.string()}});
    return;
  }
  std::printf("convolutions: %zu shapes and passes, %lld of them served by a ladder step (%s)\n", choices.size(),
              static_cast<long long>(by_ladder), file.string().c_str());
}

// After a run: where its checkpoints are.
void print_checkpoints(const train::TrainResult& result) {
  std::printf("checkpoint: %s\n", result.checkpoint.string().c_str());
  if (result.best_checkpoint && result.monitored.best) {
    std::printf("best: %s (epoch %lld, %s %.4g)\n", result.best_checkpoint->string().c_str(),
                static_cast<long long>(result.monitored.best_epoch), result.monitored_metric.c_str(),
                *result.monitored.best);
  }
}

// The options whose values a resumed run takes from its checkpoint (train::resumed_config), and the fields
// of TrainConfig::to_json they set. Given with --resume, each must repeat the run's own value: the run would
// otherwise go on with the checkpoint's and say nothing (--monitor and --min-delta, which choose best.kiln,
// resumed_config checks itself).
struct StoredSetting {
  const char* option;
  std::vector<const char*> fields;  // JSON pointers
};
const std::vector<StoredSetting>& stored_settings() {
  static const std::vector<StoredSetting> settings = {
      {"--model", {"/model"}},
      {"--batch", {"/batch_size"}},
      {"--lr", {"/learning_rate"}},
      {"--optimizer", {"/optimizer"}},
      {"--momentum", {"/momentum"}},
      {"--nesterov", {"/nesterov"}},
      {"--weight-decay", {"/weight_decay"}},
      {"--schedule", {"/schedule"}},
      {"--milestones", {"/milestones"}},
      {"--gamma", {"/gamma"}},
      {"--warmup-epochs", {"/warmup_epochs"}},
      {"--label-smoothing", {"/label_smoothing"}},
      {"--mixup", {"/mixup"}},
      {"--cutmix", {"/cutmix"}},
      {"--ema", {"/ema"}},
      {"--accumulate", {"/accumulate"}},
      {"--clip-grad-norm", {"/clip_grad_norm"}},
      {"--val-split", {"/val_split"}},
      {"--image-size", {"/image_height", "/image_width"}},
      {"--resize", {"/resize"}},
      {"--crop-padding", {"/augmentation/crop_padding"}},
      {"--flip", {"/augmentation/horizontal_flip"}},
      {"--color-jitter", {"/augmentation/brightness"}},
      {"--cutout", {"/augmentation/cutout"}},
      {"--crop-scale", {"/augmentation/min_crop_scale"}},
      {"--vertical-flip", {"/augmentation/vertical_flip"}},
      {"--rotate90", {"/augmentation/rotate90"}},
      {"--trivial-augment", {"/augmentation/trivial_augment"}},
      {"--rand-augment", {"/augmentation/rand_augment_ops"}},
      {"--rand-magnitude", {"/augmentation/rand_augment_magnitude"}},
      {"--seed", {"/seed"}},
      {"--strict", {"/strict"}},
      {"--max-steps", {"/max_steps_per_epoch"}},
      {"--class-weights", {"/class_weights"}},
      {"--balanced-sampler", {"/balanced_sampler"}},
      {"--pos-weight", {"/pos_weight"}},
      {"--freeze", {"/freeze"}},
      {"--freeze-until", {"/freeze_until"}},
      {"--head-lr", {"/head_learning_rate"}},
  };
  return settings;
}

// Throws when an option given with --resume asks for another value than the run in `checkpoint` trains
// with, naming both.
void check_resume_keeps_settings(const CLI::App& command, const train::TrainConfig& requested,
                                 const std::filesystem::path& checkpoint) {
  if (!std::filesystem::exists(checkpoint)) return;  // train() says so
  const nlohmann::json stored = train::load_checkpoint_header(checkpoint).value("config", nlohmann::json());
  const nlohmann::json asked = requested.to_json();
  for (const StoredSetting& setting : stored_settings()) {
    if (command.count(setting.option) == 0) continue;
    for (const char* field : setting.fields) {
      const nlohmann::json::json_pointer pointer(field);
      if (!stored.contains(pointer) || stored.at(pointer) == asked.at(pointer)) continue;
      fail("cannot resume ", checkpoint.string(), " with ", setting.option, " ", asked.at(pointer).dump(),
           ": the run trains with ", stored.at(pointer).dump(),
           " (a resumed run keeps its settings; --epochs, --early-stop and --eval-every may change). Leave ",
           setting.option, " out, or start a new run with --overwrite or another --out");
    }
  }
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto config = std::make_shared<train::TrainConfig>();
  auto resume = std::make_shared<bool>(false);
  auto overwrite = std::make_shared<bool>(false);
  auto json = std::make_shared<bool>(false);
  auto head_learning_rate = std::make_shared<double>(0.0);
  CLI::App* command = app.add_subcommand("train", "train a classifier on an image folder");
  command
      ->add_option(
          "data", config->data,
          "root/<class>/<image>, root/{train,test[,val]}/<class>/<image>, or a labels .csv (multi-label: "
          "path,label[,label...] per line; train.csv takes val.csv and test.csv beside it)")
      ->required();
  std::string models;
  for (const std::string& name : models::model_names()) models += (models.empty() ? "" : ", ") + name;
  command
      ->add_option("--model", config->model,
                   "architecture: " + models +
                       "; or the path of a model file, one layer a line (README: \"Your own network\")")
      ->capture_default_str();
  command->add_option("--epochs", config->epochs, "epochs to train")->capture_default_str();
  command->add_option("--batch", config->batch_size, "batch size")->check(at_least(1))->capture_default_str();
  command->add_option("--lr", config->learning_rate, "peak learning rate")->capture_default_str();
  command->add_option("--optimizer", config->optimizer, "sgd, adam or adamw")->capture_default_str();
  command->add_option("--momentum", config->momentum, "SGD momentum")
      ->check(at_least(0))
      ->capture_default_str();
  command->add_flag("--nesterov", config->nesterov, "Nesterov momentum");
  command
      ->add_option("--weight-decay", config->weight_decay, "L2 (sgd, adam) or decoupled (adamw) weight decay")
      ->check(at_least(0))
      ->capture_default_str();
  command->add_option("--schedule", config->schedule, "constant, multistep, cosine or onecycle")->capture_default_str();
  command->add_option("--milestones", config->milestones, "multistep: epochs where the rate is multiplied by gamma")
      ->delimiter(',');
  command->add_option("--gamma", config->gamma, "multistep factor")->capture_default_str();
  command->add_option("--warmup-epochs", config->warmup_epochs, "linear warm-up epochs")
      ->check(at_least(0))
      ->capture_default_str();
  command->add_option("--label-smoothing", config->label_smoothing, "cross-entropy label smoothing")
      ->capture_default_str();
  command
      ->add_option("--mixup", config->mixup,
                   "mixup: each image blended with another of its batch by a share drawn from Beta(ALPHA, "
                   "ALPHA), the loss mixed alike (0: off; 0.2 is usual)")
      ->type_name("ALPHA")
      ->check(at_least(0))
      ->capture_default_str();
  command
      ->add_option("--ema", config->ema,
                   "keep a moving average of the weights, decay DECAY per step (0.999 is usual; 0: off), and "
                   "evaluate, keep and serve it instead of the trained weights")
      ->type_name("DECAY")
      ->check(CLI::Range(0.0, 1.0, "in [0, 1)"))
      ->capture_default_str();
  command
      ->add_option("--accumulate", config->accumulate,
                   "batches per optimizer step: each step follows the mean gradient of N batches (a batch of "
                   "N x --batch images in N pieces; batch norms see each piece alone)")
      ->type_name("N")
      ->check(at_least(1))
      ->capture_default_str();
  command
      ->add_option("--cutmix", config->cutmix,
                   "CutMix: a box of another image of the batch pasted in, its area drawn from Beta(ALPHA, "
                   "ALPHA), the loss mixed by area (0: off; 1 is usual; with --mixup, each batch one of the "
                   "two)")
      ->type_name("ALPHA")
      ->check(at_least(0))
      ->capture_default_str();
  command->add_option("--clip-grad-norm", config->clip_grad_norm, "clip the global gradient norm (0: off)")
      ->check(at_least(0))
      ->capture_default_str();
  command->add_option("--val-split", config->val_split, "validation fraction when DATA has no val/ folder")
      ->capture_default_str();
  command
      ->add_option_function<std::string>(
          "--image-size",
          [config](const std::string& size) {
            const auto [height, width] = parse_image_size(size);
            config->image_height = height;
            config->image_width = width;
          },
          "the model's input size, N or HxW: every image resized to it (default: the training images' most "
          "common size); checkpoints carry it, so eval and predict resize the same way")
      ->type_name("N|HxW");
  command
      ->add_option("--resize", config->resize,
                   "how an image becomes the input size: stretch (the whole image, aspect ratio not kept) or "
                   "crop (the shorter side scaled to cover it, the centre kept)")
      ->check(CLI::IsMember({"stretch", "crop"}))
      ->default_str("stretch");
  command->add_option("--crop-padding", config->augmentation.crop_padding, "random-crop padding (0: off)")
      ->capture_default_str();
  command->add_option("--flip", config->augmentation.horizontal_flip, "random horizontal flips")->capture_default_str();
  command->add_option("--color-jitter", config->augmentation.brightness,
                      "brightness, contrast and saturation jitter strength");
  command->add_option("--cutout", config->augmentation.cutout, "cutout square side (0: off)")->capture_default_str();
  command
      ->add_option("--crop-scale", config->augmentation.min_crop_scale,
                   "random resized crop: each training image a random window of MIN to 1 of the area the "
                   "input is resized from, aspect ratio x3/4 to x4/3, resized to the input size (1: off)")
      ->type_name("MIN")
      ->check(CLI::Range(0.0, 1.0).description("in (0, 1]"))
      ->capture_default_str();
  command
      ->add_option("--vertical-flip", config->augmentation.vertical_flip,
                   "random vertical flips (images with no up and down: micrographs, satellite tiles)")
      ->capture_default_str();
  command
      ->add_option("--rotate90", config->augmentation.rotate90,
                   "random quarter turns (0, 90, 180 or 270 degrees; square inputs only)")
      ->capture_default_str();
  command
      ->add_option("--trivial-augment", config->augmentation.trivial_augment,
                   "TrivialAugment: one of 14 operations (shear, shift, rotation, colour, contrast, "
                   "equalize, ...) at a random strength on each training image, nothing to tune")
      ->capture_default_str();
  command
      ->add_option("--rand-augment", config->augmentation.rand_augment_ops,
                   "RandAugment: N of the same 14 operations in turn on each training image, at the strength "
                   "--rand-magnitude (torchvision's default N: 2; 0: off)")
      ->type_name("N")
      ->check(CLI::Range(std::int64_t{0}, data::kMaxRandAugmentOps))
      ->capture_default_str();
  command
      ->add_option("--rand-magnitude", config->augmentation.rand_augment_magnitude,
                   "RandAugment's strength, a level of 0 to 30")
      ->type_name("M")
      ->check(CLI::Range(0, 30))
      ->capture_default_str();
  command->add_option("--seed", config->seed, "seed for initialization, order and augmentation")->capture_default_str();
  command
      ->add_option("--loader-threads", config->loader_threads,
                   "data-loading worker threads; 0 makes each batch between steps on the compute threads; "
                   "auto: 0 on the CPU, 2 on a GPU")
      ->transform(CLI::Validator(
          [](std::string& value) -> std::string {
            if (value == "auto") {
              value = std::to_string(train::kAutoLoaderThreads);
              return "";
            }
            const bool count = !value.empty() && value.size() <= 4 &&
                               value.find_first_not_of("0123456789") == std::string::npos;
            return count ? "" : "takes auto or a number of threads, not " + value;
          },
          ""))
      ->type_name("auto|N")
      ->default_str("auto");
  command->add_option("--device", config->device, "where to train: cpu, cuda or cuda:N")
      ->capture_default_str();
  command
      ->add_option("--precision", config->precision,
                   "fp32, or bf16: bfloat16 activations and conv/GEMM operands with float32 accumulation "
                   "and float32 master weights")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  command
      ->add_option(
          "--memory-format", config->memory_format,
          "nchw, or channels-last: store each batch's images channels-last, a layout the "
          "convolutions, batch norms, pools and elementwise ops keep through the model (on the CPU faster "
          "for MobileNet-style nets, and for bf16; on a GPU the tensor-core convolutions' own layout); "
          "auto: channels-last for bf16 on the CPU, else nchw")
      ->check(CLI::IsMember({"auto", "nchw", "channels-last"}))
      ->capture_default_str();
  command
      ->add_option(
          "--cuda-conv", config->cuda_conv,
          "on a CUDA device, what runs each convolution: measured (per shape, on first use, the fastest "
          "of the library path and the kernel ladder's steps that agree with it), library (im2col + "
          "cuBLAS always: the same bits on every run), or FILE, a cuda_conv_choices.json from an earlier "
          "run: its choices replayed (its speed, and the same bits on every run), other shapes measured")
      ->check(CLI::IsMember({"measured", "library"}) | CLI::ExistingFile)
      ->capture_default_str();
  command->add_flag(
      "--cuda-graphs", config->cuda_graphs,
      "on a CUDA device, capture the training step's forward and backward pass as a CUDA graph "
      "after one step, and launch it as one unit at every later step (the optimizer's update "
      "stays outside); falls back to plain launches, with a warning, when it cannot be captured");
  command
      ->add_option("--profile", config->profile_steps,
                   "time STEPS training steps op by op (from the first epoch's third step) and print where "
                   "the time went: per op, precision, device and shape; the whole table goes to "
                   "RUNDIR/profile.json")
      ->check(at_least(0));
  add_compute_threads_option(command);
  command->add_option("--out", config->run_dir, "run folder for last.kiln and metrics.jsonl")->capture_default_str();
  command->add_option("--max-steps", config->max_steps_per_epoch, "cap on steps per epoch (0: whole epochs)")
      ->check(at_least(0));
  command->add_option("--class-weights", config->class_weights,
                      "weigh the loss per class: auto (inverse frequency, mean 1) or a file of "
                      "class,weight lines");
  command->add_flag("--balanced-sampler", config->balanced_sampler,
                    "draw each epoch with replacement, every class equally likely");
  command->add_option("--pos-weight", config->pos_weight,
                      "multi-label: auto weighs each label's positives by negatives / positives in training");
  command
      ->add_option("--monitor", config->monitor,
                   "held-out metric for best.kiln and --early-stop: eval_loss (minimized), eval_accuracy or "
                   "eval_macro_recall (maximized)")
      ->capture_default_str();
  command
      ->add_option("--min-delta", config->min_delta,
                   "smallest change of --monitor that counts as improvement")
      ->capture_default_str();
  command
      ->add_option("--early-stop", config->early_stop_patience,
                   "stop after this many epochs without improvement of --monitor (0: off; with --eval-every, "
                   "evaluations)")
      ->capture_default_str();
  command
      ->add_option(
          "--eval-every", config->eval_every,
          "evaluate the held-out split after every N-th epoch and the last (best.kiln and --early-stop "
          "see those epochs only)")
      ->capture_default_str();
  command->add_option(
      "--folds", config->folds,
      "k-fold cross-validation: K >= 2 runs in --out/fold-1 .. fold-K, then their mean and spread");
  command->add_option("--init", config->init_checkpoint,
                      "fine-tune: start from this checkpoint's weights, architecture and preprocessing (its "
                      "classifier head is re-initialized when the classes differ)");
  command->add_option("--freeze", config->freeze,
                      "with --init: top-level modules to freeze, e.g. conv1,bn1,stage1")
      ->delimiter(',');
  command->add_option("--freeze-until", config->freeze_until,
                      "with --init: freeze every top-level module before this one");
  CLI::Option* head_lr_option =
      command->add_option("--head-lr", *head_learning_rate, "the classifier head's peak learning rate (default: --lr)");
  command->add_flag("--strict", config->strict, "stop on an unreadable image instead of skipping it");
  command->add_flag("--resume", *resume, "continue the run in --out from its last.kiln");
  command->add_flag("--overwrite", *overwrite, "start afresh even if --out holds a checkpoint");
  command->add_flag("--json", *json, "print one JSON object per line instead of text");
  auto lr_find = std::make_shared<bool>(false);
  auto range = std::make_shared<train::LrRangeOptions>();
  auto range_ends = std::make_shared<std::vector<double>>();
  command->add_flag("--lr-find", *lr_find,
                    "instead of training, run the learning-rate range test with these options and suggest "
                    "--lr (writes --out/lr_find.png and lr_find.json)");
  command->add_option("--lr-find-steps", range->steps, "--lr-find: steps from the start rate to the end rate")
      ->capture_default_str();
  command->add_option("--lr-find-range", *range_ends, "--lr-find: START,END rates (default 1e-7,10)")
      ->delimiter(',')
      ->expected(2);
  const auto run = [command, config, resume, overwrite, json, head_learning_rate, head_lr_option, lr_find,
                    range, range_ends] {
    KILN_CHECK(!(*resume && *overwrite), "train: --resume and --overwrite contradict each other");
    if (head_lr_option->count() > 0) config->head_learning_rate = *head_learning_rate;
    config->augmentation.contrast = config->augmentation.saturation = config->augmentation.brightness;
    if (*lr_find) {
      KILN_CHECK(!*resume && config->folds == 0,
                 "train: --lr-find tests rates on a fresh model; it takes neither --resume nor --folds");
      if (!range_ends->empty()) {
        range->start = range_ends->at(0);
        range->end = range_ends->at(1);
      }
      run_lr_find(*config, *range, *json);
      return;
    }
    const std::filesystem::path first_fold = train::fold_run_dir(config->run_dir, 1) / "last.kiln";
    if (*resume) {
      check_resume_keeps_settings(*command, *config,
                                  config->folds != 0 ? first_fold : config->run_dir / "last.kiln");
    }
    ConsoleObserver observer(*json);
    const train::RunStart start = *resume      ? train::RunStart::Resume
                                  : *overwrite ? train::RunStart::Replace
                                               : train::RunStart::Fresh;
    if (config->folds != 0) {
      print_cross_validation(train::cross_validate(*config, start, observer), config->run_dir, *json);
      return;
    }
    KILN_CHECK(!*resume || std::filesystem::exists(config->run_dir / "last.kiln") ||
                   !std::filesystem::exists(first_fold),
               "cannot resume: ", config->run_dir.string(), " holds a cross-validation (",
               first_fold.string(), "); resume it with --folds");
    const train::TrainResult result = train::train(*config, start, observer);
    print_conv_choices(config->run_dir, *json);
    if (!*json) print_checkpoints(result);
  };
  // With --json a run that fails ends its stream with {"event": "error", "message": ...}, so a script
  // reading the lines learns why as well as when (the message also goes to stderr, as always), and one that
  // Ctrl-C stopped with {"event": "interrupted", "message": ...}. The first Ctrl-C stops the run after the
  // step in flight (train/interrupt.hpp); a second ends the process.
  command->callback([run, json] {
    const train::StopOnInterrupt stop_on_interrupt;
    try {
      run();
    } catch (const train::Interrupted& stopped) {
      if (*json) print_json_line({{"event", "interrupted"}, {"message", stopped.what()}});
      throw;
    } catch (const Error& error) {
      if (*json) print_json_line({{"event", "error"}, {"message", error.what()}});
      throw;
    }
  });
}

}  // namespace kiln::cli
