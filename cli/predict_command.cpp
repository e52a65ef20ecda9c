// kiln predict CKPT PATH...: the top classes for each image (a file, or every image under a folder),
// preprocessed by the checkpoint's own Preprocessing, so a single image is seen exactly as in training.
// For a multi-label checkpoint: every label whose probability is at or over its stored threshold. An image
// that cannot be read is skipped with a warning (--strict: stops the command), and the command fails at the
// end.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "cli/commands.hpp"
#include "cli/json_lines.hpp"
#include "cli/tta_option.hpp"
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
  bool strict = false;  // stop at the first image that cannot be read, instead of skipping it
  bool tta = false;     // test-time augmentation (train/tta.hpp)
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
    KILN_CHECK(!found.empty(), path.string(), ": no image files in this folder");
    std::sort(found.begin(), found.end());
    images.insert(images.end(), found.begin(), found.end());
  }
  return images;
}

// Multi-label: each image's labels at or over their thresholds, most probable first, or a line saying
// there is none. --json lists every label's probability and threshold, and whether it applies.
void predict_labels(const train::LoadedModel& loaded, const std::filesystem::path& image, bool json,
                    const std::vector<train::TtaView>* views) {
  std::vector<train::LabelScore> scores = train::predict_labels_file(loaded, image, views);
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

// One image's classes (or labels), as text or a JSON line.
void predict_image(const train::LoadedModel& loaded, const std::filesystem::path& image,
                   const PredictOptions& options, const std::vector<train::TtaView>* views) {
  if (loaded.multi_label()) {
    predict_labels(loaded, image, options.json, views);
    return;
  }
  const std::vector<train::ClassScore> scores = train::predict_file(loaded, image, options.top, views);
  if (options.json) {
    nlohmann::json top = nlohmann::json::array();
    for (const auto& score : scores)
      top.push_back({{"class", score.name}, {"index", score.index}, {"probability", score.probability}});
    print_json_line(nlohmann::json{{"image", image.string()}, {"top", top}});
    return;
  }
  std::printf("%s\n", image.string().c_str());
  for (const auto& score : scores)
    std::printf("  %6.2f%%  %s\n", 100.0 * score.probability, score.name.c_str());
}

// Every image in turn. One that cannot be read is skipped with a warning (with --json also a line naming
// it and the error), so the others still get their answers, and the command then fails saying how many
// were skipped; with --strict the first one stops it.
void run_predict(const PredictOptions& options) {
  const train::LoadedModel loaded = train::load_model(options.checkpoint);
  const std::vector<std::filesystem::path> images = expand(options.paths);
  const std::optional<std::vector<train::TtaView>> views = tta_option_views(options.tta, loaded);
  std::int64_t skipped = 0;
  for (const auto& image : images) {
    try {
      predict_image(loaded, image, options, views ? &*views : nullptr);
    } catch (const Error& error) {
      if (options.strict) throw;
      ++skipped;
      std::fprintf(stderr, "kiln: warning: skipped %s\n", error.what());
      if (options.json) print_json_line(nlohmann::json{{"image", image.string()}, {"error", error.what()}});
    }
  }
  KILN_CHECK(skipped == 0, skipped, " of ", images.size(),
             " images could not be read (see the warnings above)");
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto options = std::make_shared<PredictOptions>();
  CLI::App* command = app.add_subcommand("predict", "classify images with a checkpoint");
  command->add_option("checkpoint", options->checkpoint, "a .kiln file written by kiln train")->required();
  command->add_option("paths", options->paths, "image files or folders of images")->required();
  command->add_option("--top", options->top, "how many classes to show per image (single-label)")
      ->check(at_least(1))
      ->capture_default_str();
  command->add_flag("--strict", options->strict,
                    "stop at the first image that cannot be read (default: skip it with a warning, classify "
                    "the others, and fail at the end)");
  add_compute_threads_option(command);
  add_tta_flag(command, options->tta);
  command->add_flag("--json", options->json, "one JSON object per image");
  command->callback([options] { run_predict(*options); });
}

}  // namespace kiln::cli
