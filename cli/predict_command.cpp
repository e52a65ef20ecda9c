// kiln predict CKPT PATH...: the top classes for each image (a file, or every image under a folder),
// preprocessed by the checkpoint's own Preprocessing, so a single image is seen exactly as in training.
// For a multi-label checkpoint: every label whose probability is at or over its stored threshold.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.hpp"
#include "cli/json_lines.hpp"
#include "data/dataset.hpp"
#include "train/evaluate.hpp"
#include "train/multi_label_evaluate.hpp"

namespace kiln::cli {
namespace {

struct PredictOptions {
  std::filesystem::path checkpoint;
  std::vector<std::filesystem::path> paths;
  std::int64_t top = 5;
  bool json = false;
};

// Files as given; folders expand to every image below them, sorted, so output order is stable.
std::vector<std::filesystem::path> expand(const std::vector<std::filesystem::path>& paths) {
  std::vector<std::filesystem::path> images;
  for (const auto& path : paths) {
    if (!std::filesystem::is_directory(path)) {
      KILN_CHECK(std::filesystem::exists(path), path.string(), ": no such file or folder");
      images.push_back(path);
      continue;
    }
    std::vector<std::filesystem::path> found;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(path)) {
      if (entry.is_regular_file() && data::is_image_file(entry.path())) found.push_back(entry.path());
    }
    std::sort(found.begin(), found.end());
    images.insert(images.end(), found.begin(), found.end());
  }
  return images;
}

// Multi-label: each image's labels at or over their thresholds, most probable first, or a line saying
// there is none. --json lists every label's probability and threshold, and whether it applies.
void predict_labels(const train::LoadedModel& loaded, const std::filesystem::path& image, bool json) {
  std::vector<train::LabelScore> scores = train::predict_labels_file(loaded, image);
  if (json) {
    nlohmann::json applies = nlohmann::json::array(), all = nlohmann::json::array();
    for (const auto& score : scores) {
      const nlohmann::json entry{{"label", score.name},
                                 {"index", score.index},
                                 {"probability", score.probability},
                                 {"threshold", score.threshold},
                                 {"applies", score.applies()}};
      if (score.applies()) applies.push_back(score.name);
      all.push_back(entry);
    }
    print_json_line(nlohmann::json{{"image", image.string()}, {"labels", applies}, {"scores", all}});
    return;
  }
  std::stable_sort(scores.begin(), scores.end(), [](const train::LabelScore& a, const train::LabelScore& b) {
    return a.probability > b.probability;
  });
  std::printf("%s\n", image.string().c_str());
  bool any = false;
  for (const auto& score : scores) {
    if (!score.applies()) continue;
    any = true;
    std::printf("  %6.2f%%  %s (threshold %.2f%%)\n", 100.0 * score.probability, score.name.c_str(),
                100.0 * score.threshold);
  }
  if (!any) std::printf("  (no label over its threshold)\n");
}

void run_predict(const PredictOptions& options) {
  const train::LoadedModel loaded = train::load_model(options.checkpoint);
  for (const auto& image : expand(options.paths)) {
    if (loaded.multi_label()) {
      predict_labels(loaded, image, options.json);
      continue;
    }
    const std::vector<train::ClassScore> scores = train::predict_file(loaded, image, options.top);
    if (options.json) {
      nlohmann::json top = nlohmann::json::array();
      for (const auto& score : scores) top.push_back({{"class", score.name}, {"index", score.index}, {"probability", score.probability}});
      print_json_line(nlohmann::json{{"image", image.string()}, {"top", top}});
      continue;
    }
    std::printf("%s\n", image.string().c_str());
    for (const auto& score : scores) std::printf("  %6.2f%%  %s\n", 100.0 * score.probability, score.name.c_str());
  }
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto options = std::make_shared<PredictOptions>();
  CLI::App* command = app.add_subcommand("predict", "classify images with a checkpoint");
  command->add_option("checkpoint", options->checkpoint, "a .kiln file written by kiln train")->required();
  command->add_option("paths", options->paths, "image files or folders of images")->required();
  command->add_option("--top", options->top, "how many classes to show per image (single-label)")
      ->capture_default_str();
  add_compute_threads_option(command);
  command->add_flag("--json", options->json, "one JSON object per image");
  command->callback([options] { run_predict(*options); });
}

}  // namespace kiln::cli
