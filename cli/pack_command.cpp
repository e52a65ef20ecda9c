// kiln pack DIR FILE: an image folder (DIR/<class>/... or DIR/{train,val,test}/<class>/...) as one pack file
// (data/pack.hpp), written atomically, which train, eval and predict's data arguments accept in place of
// the folder.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/json_lines.hpp"
#include "cli/progress_bar.hpp"
#include "data/pack.hpp"
#include "train/atomic_file.hpp"

namespace kiln::cli {
namespace {

struct PackOptions {
  std::filesystem::path folder, file;
  bool strict = false, json = false;
};

void run_pack(const PackOptions& options) {
  ProgressBar bar;
  data::PackSummary summary;
  const std::vector<std::uint8_t> pack = data::build_pack(options.folder, options.strict, summary,
                                                          [&bar](std::int64_t done, std::int64_t total) {
                                                            if (done % 256 == 0 || done == total)
                                                              bar.update("packing", done, total, "");
                                                          });
  bar.clear();
  for (const std::string& warning : summary.warnings)
    std::fprintf(stderr, "kiln: warning: %s\n", warning.c_str());
  train::write_file_atomically(options.file, pack, "pack");
  std::string splits;
  for (const std::string& split : summary.splits)
    splits +=
        (splits.empty() ? "" : ", ") + (split.empty() ? std::string("one tree of class folders") : split);
  if (options.json) {
    print_json_line(nlohmann::json{{"pack", options.file.string()},
                                   {"images", summary.images},
                                   {"skipped", summary.skipped},
                                   {"bytes", summary.bytes},
                                   {"splits", summary.splits}});
    return;
  }
  std::printf("packed %lld images (%s) into %s, %.1f MB", static_cast<long long>(summary.images),
              splits.c_str(), options.file.string().c_str(), static_cast<double>(summary.bytes) / 1e6);
  if (summary.skipped > 0)
    std::printf("; %lld unreadable files left out", static_cast<long long>(summary.skipped));
  std::printf("\n");
}

}  // namespace

void add_pack_command(CLI::App& app) {
  auto options = std::make_shared<PackOptions>();
  CLI::App* command =
      app.add_subcommand("pack", "pack an image folder into one file that kiln reads like the folder");
  command
      ->add_option("folder", options->folder, "DIR/<class>/<image>, or DIR/{train,val,test}/<class>/<image>")
      ->required();
  command->add_option("file", options->file, "the pack file to write")->required();
  command->add_flag("--strict", options->strict, "stop on an unreadable image instead of leaving it out");
  command->add_flag("--json", options->json, "print one JSON object");
  command->callback([options] { run_pack(*options); });
}

}  // namespace kiln::cli
