// kiln summary MODEL: a network layer by layer (models/summary.hpp): each layer's output shape for one
// image, its parameters and its forward FLOPs, then the totals. MODEL is a checkpoint (its own input and
// classes), a network of the zoo or a model file (an input of --channels x --image-size, --classes
// outputs). What one writes a model file against, or sizes a zoo network with for a new input.
#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli/commands.hpp"
#include "cli/image_size_option.hpp"
#include "models/model_file.hpp"
#include "models/summary.hpp"
#include "train/checkpoint.hpp"
#include "train/model_io.hpp"

namespace kiln::cli {
namespace {

struct SummaryOptions {
  std::string model;
  std::optional<std::pair<std::int64_t, std::int64_t>> image_size;  // {height, width}
  std::optional<std::int64_t> channels, classes;
  bool json = false;
};

// "1.23 M" / "456.8 k" / "12": a count as a reader takes it in.
std::string readable(double count) {
  char text[32];
  if (count >= 1e9)
    std::snprintf(text, sizeof(text), "%.2f G", count / 1e9);
  else if (count >= 1e6)
    std::snprintf(text, sizeof(text), "%.2f M", count / 1e6);
  else if (count >= 1e4)
    std::snprintf(text, sizeof(text), "%.1f k", count / 1e3);
  else
    std::snprintf(text, sizeof(text), "%.0f", count);
  return text;
}

// "269,722": digits in groups of three.
std::string grouped(std::int64_t count) {
  std::string digits = std::to_string(count);
  for (std::ptrdiff_t at = static_cast<std::ptrdiff_t>(digits.size()) - 3; at > 0; at -= 3) {
    digits.insert(static_cast<std::size_t>(at), ",");
  }
  return digits;
}

std::string image_shape_text(const Shape& shape) {
  std::string text;
  for (const std::int64_t size : shape) text += (text.empty() ? "" : "x") + std::to_string(size);
  return text;
}

void print_table(const std::string& title, const models::ModelSummary& summary) {
  std::printf("%s\n", title.c_str());
  std::size_t name_width = 5, module_width = 6;
  for (const models::LayerSummary& layer : summary.layers) {
    name_width = std::max(name_width, layer.name.size());
    module_width = std::max(module_width, layer.module.size());
  }
  const int nw = static_cast<int>(name_width), mw = static_cast<int>(module_width);
  std::printf("%-*s  %-*s  %-13s %12s %12s\n", nw, "layer", mw, "module", "output", "parameters", "FLOPs");
  for (const models::LayerSummary& layer : summary.layers) {
    std::printf("%-*s  %-*s  %-13s %12s %12s\n", nw, layer.name.c_str(), mw, layer.module.c_str(),
                image_shape_text(layer.output).c_str(), grouped(layer.parameters).c_str(),
                readable(static_cast<double>(layer.flops)).c_str());
  }
  const double megabytes = static_cast<double>(summary.output_values) * 4.0 / 1e6;
  std::printf(
      "total: %s parameters (%.2f MB in float32), %sFLOPs an image forward (a training step about "
      "3x); the outputs above %.2f MB an image in float32\n",
      grouped(summary.parameters).c_str(), static_cast<double>(summary.parameters) * 4.0 / 1e6,
      readable(static_cast<double>(summary.flops)).c_str(), megabytes);
}

void run_summary(const SummaryOptions& options) {
  layers::ModulePtr model;
  models::ArchitectureSpec architecture;
  if (train::starts_as_checkpoint(options.model)) {
    KILN_CHECK(
        !options.image_size && !options.channels && !options.classes, "summary: ", options.model,
        " is a checkpoint, whose input and classes are its own; --image-size, --channels and --classes "
        "are for a network of the zoo or a model file");
    train::LoadedModel loaded = train::load_model(options.model);
    KILN_CHECK(!loaded.int8(), "summary: ", options.model,
               " is an int8 model (kiln quantize); `kiln info` describes it");
    architecture = loaded.architecture;
    model = loaded.model;
  } else {
    const auto [height, width] = options.image_size.value_or(std::pair<std::int64_t, std::int64_t>{32, 32});
    Generator unused(0);  // summaries count weights, never read them
    models::NamedModel named = models::build_named_model(options.model, options.channels.value_or(3), height,
                                                         width, options.classes.value_or(10), unused);
    architecture = std::move(named.architecture);
    model = std::move(named.model);
  }
  const models::ModelSummary summary =
      models::summarize(*model, architecture.in_channels, architecture.height, architecture.width);
  if (options.json) {
    nlohmann::json json = summary.to_json();
    json["model"] = architecture.name;
    json["classes"] = architecture.classes;
    std::printf("%s\n", json.dump().c_str());
    return;
  }
  print_table(architecture.name + ", input " + image_shape_text(summary.input) + ", " +
                  std::to_string(architecture.classes) + " classes",
              summary);
}

}  // namespace

void add_summary_command(CLI::App& app) {
  auto options = std::make_shared<SummaryOptions>();
  CLI::App* command = app.add_subcommand(
      "summary",
      "a network layer by layer: output shapes, parameters and FLOPs (a checkpoint, a zoo name or a "
      "model file)");
  command->add_option("model", options->model, "a checkpoint, a network of the zoo or a model file")
      ->required();
  command
      ->add_option_function<std::string>(
          "--image-size",
          [options](const std::string& size) { options->image_size = parse_image_size(size); },
          "the input's size, N or HxW (default 32)")
      ->type_name("N|HxW");
  command->add_option("--channels", options->channels, "the input's channels (default 3)")
      ->check(at_least(1));
  command->add_option("--classes", options->classes, "the outputs (default 10)")->check(at_least(2));
  command->add_flag("--json", options->json, "print the summary as one JSON object");
  command->callback([options] { run_summary(*options); });
}

}  // namespace kiln::cli
