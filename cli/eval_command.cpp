// kiln eval CKPT DATA: the checkpoint's model on a labelled image folder (DATA/test when it exists, else
// DATA itself), preprocessed exactly as in training, with the full metrics table (or --json).
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.hpp"
#include "data/dataset.hpp"
#include "data/loader.hpp"
#include "train/evaluate.hpp"
#include "train/model_io.hpp"

namespace kiln::cli {
namespace {

struct EvalOptions {
  std::filesystem::path checkpoint, data;
  std::int64_t batch_size = 256;
  int loader_threads = 2;
  bool json = false;
  bool strict = false;
};

// The checkpoint's classes, in order, must be the folder's: a model's output i means class i.
void check_same_classes(const std::vector<std::string>& trained, const std::vector<std::string>& found,
                        const std::filesystem::path& data) {
  for (std::size_t i = 0; i < std::max(trained.size(), found.size()); ++i) {
    const std::string expected = i < trained.size() ? trained[i] : "(none)";
    const std::string actual = i < found.size() ? found[i] : "(none)";
    KILN_CHECK(expected == actual, "classes of ", data.string(), " differ from the checkpoint's: class ", i, " is '",
               actual, "' but the model was trained with '", expected, "'");
  }
}

void run_eval(const EvalOptions& options) {
  const train::LoadedModel loaded = train::load_model(options.checkpoint);
  const std::filesystem::path root =
      std::filesystem::is_directory(options.data / "test") ? options.data / "test" : options.data;
  const data::ImageFolder folder = data::ImageFolder::scan(root);
  check_same_classes(loaded.classes, folder.classes(), root);
  data::LoaderOptions loader_options;
  loader_options.batch_size = options.batch_size;
  loader_options.shuffle = false;
  loader_options.threads = options.loader_threads;
  loader_options.strict = options.strict;
  data::DataLoader loader(folder, loaded.preprocessing, loader_options);
  const train::MetricsReport report =
      train::evaluate(*loaded.model, loader, static_cast<std::int64_t>(loaded.classes.size()));
  if (options.json) {
    nlohmann::json out = report.to_json(loaded.classes);
    out["data"] = root.string();
    out["skipped_files"] = loader.skipped_files();
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("%s on %s (%lld images", loaded.architecture.name.c_str(), root.string().c_str(),
                static_cast<long long>(report.samples));
    if (loader.skipped_files() > 0) std::printf(", %lld unreadable files skipped", static_cast<long long>(loader.skipped_files()));
    std::printf(")\n%s", report.table(loaded.classes).c_str());
  }
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto options = std::make_shared<EvalOptions>();
  CLI::App* command = app.add_subcommand("eval", "evaluate a checkpoint on a labelled image folder");
  command->add_option("checkpoint", options->checkpoint, "a .kiln file written by kiln train")->required();
  command->add_option("data", options->data, "root/<class>/<image> (root/test is used when present)")->required();
  command->add_option("--batch", options->batch_size, "batch size")->capture_default_str();
  command->add_option("--loader-threads", options->loader_threads, "data-loading threads")->capture_default_str();
  add_compute_threads_option(command);
  command->add_flag("--json", options->json, "print the metrics as one JSON object");
  command->add_flag("--strict", options->strict, "stop on an unreadable image instead of skipping it");
  command->callback([options] { run_eval(*options); });
}

}  // namespace kiln::cli
