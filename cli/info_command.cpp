// kiln info CKPT: what a checkpoint holds — architecture, classes, preprocessing, how far it trained.
#include <cstdio>
#include <memory>
#include <numeric>

#include "cli/commands.hpp"
#include "models/model_file.hpp"
#include "quant/quantized_module.hpp"
#include "train/early_stopping.hpp"
#include "train/model_io.hpp"

namespace kiln::cli {
namespace {

// The overfitting guards' state: the best epoch so far (the one in best.kiln), the patience, the fold.
void print_guards(const nlohmann::json& header) {
  const nlohmann::json& config = header.at("config");
  const train::EarlyStoppingState state =
      train::EarlyStoppingState::from_json(header.value("early_stopping", nlohmann::json()));
  const long long epoch = header.at("epoch").get<long long>();
  const auto eval_every = config.value("eval_every", std::int64_t{1});
  if (state.best) {
    const std::string since = state.best_epoch == epoch ? "this checkpoint's epoch"
                                                        : train::evaluated_epochs_phrase(
                                                              state.epochs_without_improvement, eval_every) +
                                                              " without improvement since";
    std::printf("best           epoch %lld, %s %.4g (%s)\n", static_cast<long long>(state.best_epoch),
                config.value("monitor", std::string("eval_loss")).c_str(), *state.best, since.c_str());
  }
  const auto patience = config.value("early_stop_patience", std::int64_t{0});
  if (patience > 0) {
    const bool stopped =
        train::patience_exhausted(state, patience) && epoch < config.at("epochs").get<long long>();
    const std::string every =
        eval_every > 1 ? " (evaluating every " + std::to_string(eval_every) + " epochs)" : std::string();
    std::printf("early stop     after %s without improvement%s%s\n",
                train::evaluated_epochs_phrase(patience, eval_every).c_str(), every.c_str(),
                stopped ? ": stopped" : "");
  }
  const auto folds = config.value("folds", std::int64_t{0});
  if (folds > 0) {
    std::printf("fold           %lld of %lld (cross-validation)\n", config.at("fold").get<long long>() + 1,
                static_cast<long long>(folds));
  }
}

// A network from a model file: its layer lines, each beside the names its modules took ("conv1", or
// "residual2 .. residual9" for a repeat=8), which --freeze and explain's messages use.
void print_described_layers(const train::LoadedModel& loaded) {
  const std::vector<std::string>& lines = loaded.architecture.layers;
  if (lines.empty()) return;
  const auto& children = loaded.model->named_children();
  std::vector<std::size_t> counts;  // the modules each line built
  for (const std::string& line : lines)
    counts.push_back(static_cast<std::size_t>(models::layers_of_line(line)));
  const bool named =
      !loaded.int8() && children.size() == std::accumulate(counts.begin(), counts.end(), std::size_t{0});
  std::size_t child = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::size_t count = counts[i];
    std::string names = std::to_string(i + 1);
    if (named) {
      names = children[child].first + (count > 1 ? " .. " + children[child + count - 1].first : "");
    }
    child += count;
    std::printf("%-15s%-28s%s\n", i == 0 ? "layers" : "", names.c_str(), lines[i].c_str());
  }
}

// Fine-tuning: the checkpoint the run started from and its classes, whether the head was replaced, the
// frozen modules and the head's learning rate. Nothing for a run from scratch.
void print_fine_tune(const nlohmann::json& config) {
  const std::string init = config.value("init_checkpoint", std::string());
  if (!init.empty()) {
    std::string classes;
    for (const std::string& name : config.value("init_classes", std::vector<std::string>())) {
      classes += (classes.empty() ? "" : ", ") + name;
    }
    std::printf("init           %s (classes: %s); head %s\n", init.c_str(), classes.c_str(),
                config.value("head_replaced", false) ? "re-initialized" : "kept");
  }
  std::string frozen;
  for (const std::string& name : config.value("freeze", std::vector<std::string>())) {
    frozen += (frozen.empty() ? "" : ", ") + name;
  }
  if (!frozen.empty()) std::printf("frozen         %s\n", frozen.c_str());
  if (config.contains("head_learning_rate") && !config.at("head_learning_rate").is_null()) {
    std::printf("head lr        %g\n", config.at("head_learning_rate").get<double>());
  }
}

// Multi-label: the task, each label with its threshold, and where the thresholds were chosen.
void print_labels(const train::LoadedModel& loaded) {
  const train::ThresholdChoice& thresholds = loaded.thresholds;
  std::printf(
      "task           multi-label (one sigmoid per label; a label applies when p >= its threshold)\n");
  std::string labels;
  for (std::size_t l = 0; l < loaded.classes.size(); ++l) {
    char threshold[48];
    std::snprintf(threshold, sizeof threshold, " %.3f%s", thresholds.thresholds[l],
                  thresholds.tuned[l] ? "" : " (default)");
    labels += (labels.empty() ? "" : ", ") + loaded.classes[l] + threshold;
  }
  std::printf("labels         %zu: %s\n", loaded.classes.size(), labels.c_str());
  std::printf("thresholds     %s\n", thresholds.chosen_on == "validation"
                                         ? "chosen on the validation split (max F1 per label)"
                                         : "0.5 for every label (the run had no validation split)");
}

// An int8 model (kiln quantize): where it came from, how it was calibrated, its size.
void print_int8(const train::LoadedModel& loaded) {
  const nlohmann::json& header = loaded.header;
  const nlohmann::json& calibration = header.at("calibration");
  auto& model = dynamic_cast<quant::QuantizedModule&>(*loaded.model).model();
  std::printf("int8           quantized from %s: %zu steps, %.2f MB of weights (int8, per-channel scales)\n",
              header.value("source_checkpoint", std::string("?")).c_str(), model.steps().size(),
              static_cast<double>(model.weight_bytes()) / 1e6);
  std::printf("calibration    %s on %lld images of %s\n", calibration.value("method", std::string("?")).c_str(),
              calibration.value("images", 0LL), calibration.value("data", std::string("?")).c_str());
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto checkpoint = std::make_shared<std::filesystem::path>();
  auto json = std::make_shared<bool>(false);
  CLI::App* command = app.add_subcommand("info", "describe a checkpoint");
  command->add_option("checkpoint", *checkpoint, "a .kiln file written by kiln train")->required();
  command->add_flag("--json", *json, "print the checkpoint's header as JSON");
  command->callback([checkpoint, json] {
    const train::LoadedModel loaded = train::load_model(*checkpoint);
    if (*json) {
      std::printf("%s\n", loaded.header.dump(2).c_str());
      return;
    }
    const nlohmann::json& header = loaded.header;
    std::printf("checkpoint     %s\n", checkpoint->string().c_str());
    const std::string size = loaded.int8() ? std::string("int8")
                                           : std::to_string(loaded.model->parameter_count()) + " parameters";
    std::printf("architecture   %s (%s), input %lldx%lldx%lld\n", loaded.architecture.name.c_str(), size.c_str(),
                static_cast<long long>(loaded.architecture.in_channels),
                static_cast<long long>(loaded.architecture.height), static_cast<long long>(loaded.architecture.width));
    print_described_layers(loaded);
    if (loaded.multi_label()) {
      print_labels(loaded);
    } else {
      std::string classes;
      for (const auto& name : loaded.classes) classes += (classes.empty() ? "" : ", ") + name;
      std::printf("classes        %zu: %s\n", loaded.classes.size(), classes.c_str());
    }
    std::printf("preprocessing  %s\n", loaded.preprocessing.to_json().dump().c_str());
    if (loaded.int8()) return print_int8(loaded);
    std::printf("trained        %lld of %lld epochs\n", header.at("epoch").get<long long>(),
                header.at("config").at("epochs").get<long long>());
    const nlohmann::json& config = header.at("config");
    print_fine_tune(config);
    if (config.value("balanced_sampler", false)) std::printf("balancing      balanced sampler\n");
    const auto weights = config.value("class_weight_values", std::vector<double>());
    if (!weights.empty() && weights.size() == loaded.classes.size()) {
      std::string list;
      for (std::size_t c = 0; c < weights.size(); ++c) {
        char weight[32];
        std::snprintf(weight, sizeof weight, " %.3g", weights[c]);
        list += (list.empty() ? "" : ", ") + loaded.classes[c] + weight;
      }
      const std::string source = config.value("class_weights", std::string());
      std::printf("balancing      class weights (%s): %s\n", source.c_str(), list.c_str());
    }
    if (header.contains("ema")) {
      std::printf("weights        the moving average (--ema %g, %lld updates), which eval and predict use\n",
                  header.at("ema").at("decay").get<double>(),
                  header.at("ema").at("updates").get<long long>());
    }
    print_guards(header);
    if (!header.at("history").empty()) std::printf("last epoch     %s\n", header.at("history").back().dump().c_str());
  });
}

}  // namespace kiln::cli
