// kiln eval CKPT DATA: the checkpoint's model on a labelled image folder (DATA/test when it exists, else
// DATA itself), preprocessed exactly as in training, with the full metrics table (or --json), and with
// --misclassified DIR the worst misclassified images as pictures. A multi-label checkpoint evaluates a
// labels .csv (data/label_table.hpp) at the thresholds stored in the checkpoint, with the per-label table.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "cli/commands.hpp"
#include "cli/json_lines.hpp"
#include "cli/tta_option.hpp"
#include "data/dataset.hpp"
#include "data/label_table.hpp"
#include "data/loader.hpp"
#include "data/pack.hpp"
#include "plot/picture.hpp"
#include "train/evaluate.hpp"
#include "train/model_io.hpp"
#include "train/multi_label_evaluate.hpp"
#include "train/run_plots.hpp"
#include "train/tta.hpp"

namespace kiln::cli {
namespace {

struct EvalOptions {
  std::filesystem::path checkpoint, data;
  std::filesystem::path misclassified;  // empty: do not write the misclassified images
  std::size_t misclassified_count = 24;
  std::int64_t batch_size = 256;
  int loader_threads = 2;
  bool json = false;
  bool strict = false;
  bool tta = false;  // test-time augmentation: average over the flips and quarter turns trained with
};

// DIR/misclassified.png (a sheet) and one PNG per image: the worst misclassified images, each enlarged as
// the model saw it with its true and predicted class under it. Returns the files written.
std::vector<std::filesystem::path> write_misclassified(const EvalOptions& options, const train::LoadedModel& loaded,
                                                       const data::ImageFolder& folder,
                                                       const std::vector<train::SampleOutcome>& outcomes) {
  std::filesystem::create_directories(options.misclassified);
  std::vector<std::filesystem::path> files;
  std::vector<plot::Canvas> pictures;
  const std::vector<train::SampleOutcome> worst = train::worst_misclassified(outcomes, options.misclassified_count);
  for (std::size_t rank = 0; rank < worst.size(); ++rank) {
    const train::SampleOutcome& outcome = worst[rank];
    const data::Sample& sample = folder.samples()[outcome.sample];
    const data::Image seen = loaded.preprocessing.as_seen(folder.decode(outcome.sample));
    const std::string& truth = loaded.classes[static_cast<std::size_t>(outcome.label)];
    const std::string& guess = loaded.classes[static_cast<std::size_t>(outcome.predicted)];
    char line[128];
    std::snprintf(line, sizeof line, "said: %s %.0f%%", guess.c_str(), 100.0 * outcome.predicted_probability);
    plot::Canvas picture = plot::picture({seen.height, seen.width, seen.channels, seen.pixels.data()},
                                         std::max<int>(1, static_cast<int>(128 / std::max(seen.height, seen.width))),
                                         {sample.path.filename().string(), "true: " + truth, line});
    char name[64];
    std::snprintf(name, sizeof name, "%02zu-", rank + 1);
    files.push_back(options.misclassified / (name + truth + "-as-" + guess + "-" + sample.path.stem().string() + ".png"));
    train::save_png(picture, files.back());
    pictures.push_back(std::move(picture));
  }
  if (!pictures.empty()) {
    files.push_back(options.misclassified / "misclassified.png");
    train::save_png(plot::contact_sheet(pictures, 6), files.back());
  }
  return files;
}

data::LoaderOptions evaluation_loader_options(const EvalOptions& options) {
  return data::LoaderOptions::in_order(options.batch_size, options.loader_threads, options.strict);
}

// A multi-label checkpoint on a labels file: the per-label table (or JSON) at the checkpoint's thresholds.
// The file's labels must be among the checkpoint's; a label of the checkpoint the file never uses has
// support 0 (and no AP).
void run_multi_label_eval(const EvalOptions& options, const train::LoadedModel& loaded) {
  KILN_CHECK(data::is_label_file(options.data), options.checkpoint.string(),
             " is multi-label: evaluate it on a labels .csv (path,label[,label...] per line), not on ",
             options.data.string());
  KILN_CHECK(options.misclassified.empty(), "eval: --misclassified is for single-label checkpoints");
  const data::ImageFolder folder =
      data::multi_label_folder(data::read_label_table(options.data), loaded.classes);
  data::DataLoader loader(folder, loaded.preprocessing, evaluation_loader_options(options));
  const auto labels = static_cast<std::int64_t>(loaded.classes.size());
  const std::optional<std::vector<train::TtaView>> views = tta_option_views(options.tta, loaded);
  const train::MultiLabelReport report =
      train::evaluate_multi_label(*loaded.model, loader, labels, train::Precision::Float32, nullptr,
                                  views ? &*views : nullptr)
          .report(loaded.thresholds.thresholds);
  if (options.json) {
    nlohmann::json out = report.to_json(loaded.classes);
    out["data"] = folder.root().string();
    out["tta_views"] = views ? views->size() : 1;
    out["skipped_files"] = loader.skipped_files();
    out["thresholds_chosen_on"] = loaded.thresholds.chosen_on;
    print_json_line(out);
    return;
  }
  std::printf("%s on %s (%lld images, %lld labels", loaded.architecture.name.c_str(),
              folder.root().string().c_str(), static_cast<long long>(report.samples),
              static_cast<long long>(labels));
  if (loader.skipped_files() > 0)
    std::printf(", %lld unreadable files skipped", static_cast<long long>(loader.skipped_files()));
  std::printf("; thresholds %s)\n%s",
              loaded.thresholds.chosen_on == "validation" ? "chosen on the validation split"
                                                          : "0.5 (no validation split)",
              report.table(loaded.classes).c_str());
}

void run_eval(const EvalOptions& options) {
  const train::LoadedModel loaded = train::load_model(options.checkpoint);
  if (loaded.multi_label()) {
    run_multi_label_eval(options, loaded);
    return;
  }
  KILN_CHECK(!data::is_label_file(options.data), options.checkpoint.string(),
             " is a single-label classifier; ", options.data.string(), " is a multi-label labels file");
  // A pack evaluates its test split when it has one, else all its images (as a folder without test/ does).
  const bool packed = data::Pack::is_pack(options.data);
  const std::filesystem::path root =
      !packed && std::filesystem::is_directory(options.data / "test") ? options.data / "test" : options.data;
  data::ImageFolder folder;
  if (packed) {
    data::DataSplits splits = data::discover_splits(root, 0.0, 0);
    folder = splits.test ? std::move(*splits.test) : std::move(splits.train);
  } else {
    folder = data::ImageFolder::scan(root, data::ImageFolder::ClassesNeeded::One);
  }
  // A folder of some of the model's classes (one will do) evaluates on those: its labels are the model's
  // indices.
  const std::size_t classes_in_data = folder.classes().size();
  folder = folder.relabelled(loaded.classes);
  data::DataLoader loader(folder, loaded.preprocessing, evaluation_loader_options(options));
  std::vector<train::SampleOutcome> outcomes;
  const std::optional<std::vector<train::TtaView>> views = tta_option_views(options.tta, loaded);
  const train::MetricsReport report =
      train::evaluate(*loaded.model, loader, static_cast<std::int64_t>(loaded.classes.size()),
                      options.misclassified.empty() ? nullptr : &outcomes, train::Precision::Float32, nullptr,
                      views ? &*views : nullptr);
  const std::vector<std::filesystem::path> pictures =
      options.misclassified.empty() ? std::vector<std::filesystem::path>() : write_misclassified(options, loaded, folder, outcomes);
  if (options.json) {
    nlohmann::json out = report.to_json(loaded.classes);
    out["data"] = folder.root().string();
    out["tta_views"] = views ? views->size() : 1;
    out["classes_in_data"] = classes_in_data;
    out["skipped_files"] = loader.skipped_files();
    if (!options.misclassified.empty()) {
      out["misclassified_files"] = nlohmann::json::array();
      for (const auto& file : pictures) out["misclassified_files"].push_back(file.string());
    }
    print_json_line(out);
  } else {
    std::printf("%s on %s (%lld images", loaded.architecture.name.c_str(), folder.root().string().c_str(),
                static_cast<long long>(report.samples));
    if (classes_in_data < loaded.classes.size())
      std::printf(" of %zu of the model's %zu classes", classes_in_data, loaded.classes.size());
    if (loader.skipped_files() > 0) std::printf(", %lld unreadable files skipped", static_cast<long long>(loader.skipped_files()));
    std::printf(")\n%s", report.table(loaded.classes).c_str());
    if (!pictures.empty()) {
      std::printf("\nthe %zu worst misclassified images (least probability on the true class): %s\n",
                  pictures.size() - 1, pictures.back().string().c_str());
    } else if (!options.misclassified.empty()) {
      std::printf("\nno image was misclassified\n");
    }
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto options = std::make_shared<EvalOptions>();
  CLI::App* command = app.add_subcommand("eval", "evaluate a checkpoint on a labelled image folder");
  command->add_option("checkpoint", options->checkpoint, "a .kiln file written by kiln train")->required();
  command
      ->add_option(
          "data", options->data,
          "root/<class>/<image> (root/test is used when present), or a labels .csv for a multi-label "
          "checkpoint")
      ->required();
  command->add_option("--batch", options->batch_size, "batch size")->capture_default_str();
  command->add_option("--loader-threads", options->loader_threads, "data-loading threads")->capture_default_str();
  add_compute_threads_option(command);
  command->add_flag("--json", options->json, "print the metrics as one JSON object");
  command->add_flag("--strict", options->strict, "stop on an unreadable image instead of skipping it");
  add_tta_flag(command, options->tta);
  command->add_option("--misclassified", options->misclassified,
                      "write the worst misclassified images (true and predicted class under each) into this folder");
  command->add_option("--misclassified-count", options->misclassified_count, "how many misclassified images to write")
      ->capture_default_str();
  command->callback([options] { run_eval(*options); });
}

}  // namespace kiln::cli
