// kiln quantize CKPT DATA --out FILE: int8 post-training quantization (quant/quantize_checkpoint.hpp).
// Calibrates on a sample of DATA's training images, writes the int8 model atomically, and, when DATA has
// a test split, compares it with the float model there: accuracy, agreement and inference speed.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/output_file.hpp"
#include "cli/progress_bar.hpp"
#include "core/error.hpp"
#include "kernels/int8/int8_conv.hpp"
#include "kernels/parallel.hpp"
#include "quant/quantize_checkpoint.hpp"

namespace kiln::cli {
namespace {

struct QuantizeCommandOptions {
  std::filesystem::path checkpoint, data, out;
  quant::QuantizeOptions quantize;
  bool json = false, overwrite = false;
};

// The float model's parameter bytes, for the size comparison.
std::int64_t float_weight_bytes(const layers::Module& model) {
  std::int64_t bytes = 0;
  for (const auto& [name, tensor] : model.named_parameters()) bytes += tensor.numel() * 4;
  return bytes;
}

void run_quantize(const QuantizeCommandOptions& options) {
  check_output_file("quantize", "--out", options.out, options.overwrite,
                    {{"the checkpoint", options.checkpoint}, {"the data", options.data}});
  const train::LoadedModel loaded = train::load_model(options.checkpoint);
  KILN_CHECK(!loaded.int8(), "kiln quantize: ", options.checkpoint.string(), " is already an int8 model");
  KILN_CHECK(!loaded.multi_label(), "kiln quantize: ", options.checkpoint.string(),
             " is a multi-label model; int8 quantization supports single-label classifiers for now (its "
             "comparison scores one class per image)");
  const data::DataSplits splits = data::discover_splits(options.data, 0.0, 0);
  ProgressBar bar;
  const quant::QuantizeResult result =
      quant::quantize_checkpoint(loaded, options.checkpoint, splits, options.quantize,
                                 [&](const std::string& stage, std::int64_t done, std::int64_t total) {
                                   if (!options.json) bar.update(stage, done, total, "");
                                 });
  bar.clear();
  result.model.save(options.out, result.header);

  const std::int64_t float_bytes = float_weight_bytes(*loaded.model),
                     int8_bytes = result.model.weight_bytes();
  const char* kernel = kernels::int8_conv2d_uses_vnni() ? "AVX-512 VNNI" : "reference kernels";
  if (options.json) {
    nlohmann::json out{{"int8_model", options.out.string()},
                       {"architecture", loaded.architecture.name},
                       {"steps", result.model.steps().size()},
                       {"lowering_error", result.lowering_error},
                       {"calibration_images", result.calibration_images},
                       {"float32_weight_bytes", float_bytes},
                       {"int8_weight_bytes", int8_bytes},
                       {"int8_kernel", kernel},
                       {"threads", kernels::compute_threads()}};
    if (const auto& c = result.comparison) {
      out["test"] = {{"images", c->images},
                     {"batch", c->batch_size},
                     {"float32_accuracy", c->float32.accuracy},
                     {"int8_accuracy", c->int8.accuracy},
                     {"accuracy_drop", c->accuracy_drop()},
                     {"agreement", c->agreement},
                     {"float32_images_per_second", c->images_per_second(c->float32)},
                     {"int8_images_per_second", c->images_per_second(c->int8)},
                     {"speedup", c->speedup()}};
    }
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::printf(
      "lowered %s to %zu int8 steps (batch-norm folded, ReLU and shortcuts fused); the program's float "
      "logits match the model's within %.1e\n",
      loaded.architecture.name.c_str(), result.model.steps().size(), result.lowering_error);
  std::printf("calibrated activation ranges on %lld training images (min-max)\n",
              static_cast<long long>(result.calibration_images));
  std::printf("wrote %s: weights %.2f MB in int8 (float32: %.2f MB, %.1fx smaller)\n",
              options.out.string().c_str(), static_cast<double>(int8_bytes) / 1e6,
              static_cast<double>(float_bytes) / 1e6,
              static_cast<double>(float_bytes) / static_cast<double>(int8_bytes));
  const auto& c = result.comparison;
  if (!c) {
    std::printf("no test split in %s: accuracy and speed not compared\n", options.data.string().c_str());
    return;
  }
  std::printf("\n%s test split, %lld images, batch %lld, %d threads:\n", options.data.string().c_str(),
              static_cast<long long>(c->images), static_cast<long long>(c->batch_size),
              kernels::compute_threads());
  std::printf("  %-28s %9s %10s\n", "", "accuracy", "images/s");
  std::printf("  %-28s %8.2f%% %10.0f\n", "float32", 100.0 * c->float32.accuracy,
              c->images_per_second(c->float32));
  std::printf("  %-28s %8.2f%% %10.0f\n", (std::string("int8 (") + kernel + ")").c_str(),
              100.0 * c->int8.accuracy, c->images_per_second(c->int8));
  std::printf("  accuracy drop %.2f points; the two agree on %.1f%% of the images; int8 is %.2fx as fast\n",
              100.0 * c->accuracy_drop(), 100.0 * c->agreement, c->speedup());
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto options = std::make_shared<QuantizeCommandOptions>();
  CLI::App* command = app.add_subcommand("quantize",
                                         "int8 post-training quantization: calibrate on DATA, write the int8 "
                                         "model, compare on DATA's test split");
  command->add_option("checkpoint", options->checkpoint, "a .kiln file written by kiln train")->required();
  command
      ->add_option("data", options->data,
                   "the training data (a folder or pack): calibration images come from its training split")
      ->required();
  command->add_option("--out", options->out, "the int8 model file to write")->required();
  command->add_flag("--overwrite", options->overwrite, "replace the --out file if it exists");
  command
      ->add_option("--calibration-images", options->quantize.calibration_images,
                   "training images whose activations set the ranges")
      ->capture_default_str()
      ->check(at_least(1));
  command->add_option("--batch", options->quantize.batch_size, "batch size")
      ->capture_default_str()
      ->check(at_least(1));
  command->add_option("--seed", options->quantize.seed, "picks the calibration images")
      ->capture_default_str();
  command->add_option("--loader-threads", options->quantize.loader_threads, "data-loading threads")
      ->capture_default_str();
  command->add_flag(
      "--no-compare", [options](std::int64_t) { options->quantize.compare = false; },
      "do not evaluate the two models on the test split");
  command->add_flag("--strict", options->quantize.strict,
                    "stop on an unreadable image instead of skipping it");
  command->add_flag("--json", options->json, "print one JSON object");
  add_compute_threads_option(command);
  command->callback([options] { run_quantize(*options); });
}

}  // namespace kiln::cli
