// kiln explain CKPT IMAGE: Grad-CAM heat maps (train/grad_cam.hpp) of the top classes, laid over the image
// as the model saw it, one PNG per class and one sheet with all of them, so a user sees what the network
// looked at for each answer.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.hpp"
#include "cli/json_lines.hpp"
#include "core/error.hpp"
#include "plot/picture.hpp"
#include "train/grad_cam.hpp"
#include "train/run_plots.hpp"

namespace kiln::cli {
namespace {

struct ExplainOptions {
  std::filesystem::path checkpoint, image, out = ".";
  std::int64_t top = 3;
  bool json = false;
};

// Enough whole-pixel scale for the picture to be about 192 pixels across (CIFAR's 32x32 becomes 192x192).
int display_scale(const data::Image& image) {
  return std::max(
      1, static_cast<int>(std::ceil(192.0 / static_cast<double>(std::max(image.height, image.width)))));
}

std::string percent(double probability) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%", 100.0 * probability);
  return text;
}

void run_explain(const ExplainOptions& options) {
  const train::LoadedModel loaded = train::load_model(options.checkpoint);
  KILN_CHECK(!loaded.int8(), "kiln explain: ", options.checkpoint.string(),
             " is an int8 model; Grad-CAM differentiates the model, so give it the float checkpoint (",
             loaded.header.value("source_checkpoint", std::string("the one it was quantized from")), ")");
  const train::Explanation explanation =
      train::grad_cam(loaded, data::decode_image_file(options.image), options.top);
  std::filesystem::create_directories(options.out);
  const std::string stem = options.image.stem().string();
  const plot::ImageView seen{explanation.seen.height, explanation.seen.width, explanation.seen.channels,
                             explanation.seen.pixels.data()};
  const int scale = display_scale(explanation.seen);

  std::vector<plot::Canvas> sheet{
      plot::picture(seen, scale, {options.image.filename().string(), "as the model sees it"})};
  nlohmann::json maps = nlohmann::json::array();
  for (std::size_t rank = 0; rank < explanation.maps.size(); ++rank) {
    const train::ClassActivationMap& map = explanation.maps[rank];
    const plot::HeatMap heat{map.height, map.width, map.values.data()};
    plot::Canvas canvas =
        plot::picture(seen, scale,
                      {"#" + std::to_string(rank + 1) + " " + map.name + " " + percent(map.probability),
                       "Grad-CAM at " + explanation.feature_layer},
                      &heat);
    const std::filesystem::path file =
        options.out / (stem + "-" + std::to_string(rank + 1) + "-" + map.name + ".png");
    train::save_png(canvas, file);
    maps.push_back(
        {{"rank", rank + 1}, {"class", map.name}, {"probability", map.probability}, {"file", file.string()}});
    if (!options.json)
      std::printf("  %6.2f%%  %-12s %s\n", 100.0 * map.probability, map.name.c_str(), file.string().c_str());
    sheet.push_back(std::move(canvas));
  }
  const std::filesystem::path sheet_file = options.out / (stem + "-explained.png");
  train::save_png(plot::contact_sheet(sheet, static_cast<int>(sheet.size())), sheet_file);
  if (options.json) {
    print_json_line(nlohmann::json{{"image", options.image.string()},
                                   {"feature_layer", explanation.feature_layer},
                                   {"maps", maps},
                                   {"sheet", sheet_file.string()}});
  } else {
    std::printf("Grad-CAM at layer %s; all of them side by side: %s\n", explanation.feature_layer.c_str(),
                sheet_file.string().c_str());
  }
}

}  // namespace

void add_explain_command(CLI::App& app) {
  auto options = std::make_shared<ExplainOptions>();
  CLI::App* command = app.add_subcommand("explain", "Grad-CAM heat maps of an image's top classes, as PNGs");
  command->add_option("checkpoint", options->checkpoint, "a .kiln file written by kiln train")->required();
  command->add_option("image", options->image, "the image to explain")->required();
  command->add_option("--top", options->top, "how many of the most probable classes to explain")
      ->capture_default_str();
  command->add_option("--out", options->out, "folder for the PNGs")->capture_default_str();
  add_compute_threads_option(command);
  command->add_flag("--json", options->json, "print one JSON object");
  command->callback([options] { run_explain(*options); });
}

}  // namespace kiln::cli
