// TrainConfig's JSON form, stored in every checkpoint so a resumed run trains exactly as it started, and
// what a --resume may change of it.
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "train/trainer.hpp"

namespace kiln::train {

nlohmann::json TrainConfig::to_json() const {
  return {{"data", data.string()},
          {"model", model},
          {"epochs", epochs},
          {"batch_size", batch_size},
          {"optimizer", optimizer},
          {"learning_rate", learning_rate},
          {"momentum", momentum},
          {"nesterov", nesterov},
          {"weight_decay", weight_decay},
          {"schedule", schedule},
          {"milestones", milestones},
          {"gamma", gamma},
          {"warmup_epochs", warmup_epochs},
          {"label_smoothing", label_smoothing},
          {"clip_grad_norm", clip_grad_norm},
          {"mixup", mixup},
          {"cutmix", cutmix},
          {"ema", ema},
          {"accumulate", accumulate},
          {"val_split", val_split},
          {"augmentation", augmentation.to_json()},
          {"image_height", image_height},
          {"image_width", image_width},
          {"resize", resize},
          {"seed", seed},
          {"strict", strict},
          {"max_steps_per_epoch", max_steps_per_epoch},
          {"class_weights", class_weights},
          {"class_weight_values", class_weight_values},
          {"pos_weight", pos_weight},
          {"pos_weight_values", pos_weight_values},
          {"balanced_sampler", balanced_sampler},
          {"monitor", monitor},
          {"min_delta", min_delta},
          {"early_stop_patience", early_stop_patience},
          {"eval_every", eval_every},
          {"folds", folds},
          {"fold", fold},
          {"init_checkpoint", init_checkpoint.string()},
          {"init_classes", init_classes},
          {"head_replaced", head_replaced},
          {"freeze", freeze},
          {"freeze_until", freeze_until},
          {"head_learning_rate",
           head_learning_rate ? nlohmann::json(*head_learning_rate) : nlohmann::json(nullptr)}};
}

TrainConfig TrainConfig::from_json(const nlohmann::json& json) {
  TrainConfig config;
  try {
    config.data = json.at("data").get<std::string>();
    config.model = json.at("model").get<std::string>();
    config.epochs = json.at("epochs").get<std::int64_t>();
    config.batch_size = json.at("batch_size").get<std::int64_t>();
    config.optimizer = json.at("optimizer").get<std::string>();
    config.learning_rate = json.at("learning_rate").get<double>();
    config.momentum = json.at("momentum").get<double>();
    config.nesterov = json.at("nesterov").get<bool>();
    config.weight_decay = json.at("weight_decay").get<double>();
    config.schedule = json.at("schedule").get<std::string>();
    config.milestones = json.at("milestones").get<std::vector<std::int64_t>>();
    config.gamma = json.at("gamma").get<double>();
    config.warmup_epochs = json.at("warmup_epochs").get<std::int64_t>();
    config.label_smoothing = json.at("label_smoothing").get<double>();
    config.clip_grad_norm = json.at("clip_grad_norm").get<double>();
    // Absent from checkpoints written before kiln mixed batches: those runs did not.
    config.mixup = json.value("mixup", 0.0);
    config.cutmix = json.value("cutmix", 0.0);
    config.ema = json.value("ema", 0.0);  // before --ema: no average
    config.accumulate = json.value("accumulate", std::int64_t{1});  // before --accumulate: a step a batch
    config.val_split = json.at("val_split").get<double>();
    config.augmentation = data::Augmentation::from_json(json.at("augmentation"));
    // Absent from checkpoints written before --image-size: those runs took the most common size, stretched.
    config.image_height = json.value("image_height", std::int64_t{0});
    config.image_width = json.value("image_width", std::int64_t{0});
    config.resize = json.value("resize", std::string());
    config.seed = json.at("seed").get<std::uint64_t>();
    config.strict = json.at("strict").get<bool>();
    config.max_steps_per_epoch = json.at("max_steps_per_epoch").get<std::int64_t>();
    // Absent from checkpoints written before kiln had them: those runs used neither.
    config.class_weights = json.value("class_weights", std::string());
    config.class_weight_values = json.value("class_weight_values", std::vector<double>());
    config.pos_weight = json.value("pos_weight", std::string());
    config.pos_weight_values = json.value("pos_weight_values", std::vector<double>());
    config.balanced_sampler = json.value("balanced_sampler", false);
    // Absent from checkpoints written before kiln kept best.kiln: those runs watched the default.
    config.monitor = json.value("monitor", std::string("eval_loss"));
    config.min_delta = json.value("min_delta", 0.0);
    config.early_stop_patience = json.value("early_stop_patience", std::int64_t{0});
    config.eval_every = json.value("eval_every", std::int64_t{1});  // before --eval-every: every epoch
    config.folds = json.value("folds", std::int64_t{0});
    config.fold = json.value("fold", std::int64_t{0});
    // Absent from checkpoints written before kiln could fine-tune: those runs started from scratch.
    config.init_checkpoint = json.value("init_checkpoint", std::string());
    config.init_classes = json.value("init_classes", std::vector<std::string>());
    config.head_replaced = json.value("head_replaced", false);
    config.freeze = json.value("freeze", std::vector<std::string>());
    config.freeze_until = json.value("freeze_until", std::string());
    if (json.contains("head_learning_rate") && !json.at("head_learning_rate").is_null()) {
      config.head_learning_rate = json.at("head_learning_rate").get<double>();
    }
  } catch (const nlohmann::json::exception& error) {
    fail("training configuration: ", error.what());
  }
  return config;
}

TrainConfig resumed_config(const TrainConfig& stored, const TrainConfig& requested,
                           const std::filesystem::path& path) {
  TrainConfig config = stored;
  config.run_dir = requested.run_dir;
  config.data = requested.data.empty() ? stored.data : requested.data;
  config.loader_threads = requested.loader_threads;
  config.device = requested.device;
  config.precision = requested.precision;
  config.memory_format = requested.memory_format;
  config.cuda_conv = requested.cuda_conv;
  config.cuda_graphs = requested.cuda_graphs;
  config.profile_steps = requested.profile_steps;
  KILN_CHECK(requested.epochs >= stored.epochs, "cannot resume ", path.string(), " with --epochs ",
             requested.epochs, ": the run was planned for ", stored.epochs);
  // A longer run keeps the stored schedule's shape only for schedules that do not depend on the total.
  config.epochs = requested.epochs;
  KILN_CHECK(requested.monitor == stored.monitor && requested.min_delta == stored.min_delta, "cannot resume ",
             path.string(), " with --monitor ", requested.monitor, " --min-delta ", requested.min_delta,
             ": its best.kiln was chosen by --monitor ", stored.monitor, " --min-delta ", stored.min_delta,
             "; resume with those, or start a new run");
  config.early_stop_patience = requested.early_stop_patience;
  config.eval_every = requested.eval_every;
  return config;
}

}  // namespace kiln::train
