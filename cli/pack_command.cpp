// kiln pack DIR FILE: an image folder (DIR/<class>/... or DIR/{train,val,test}/<class>/...) as one pack file
// (data/pack.hpp), written atomically, which train, eval and predict's data arguments accept in place of
// the folder; with --shorter-side N, large images stored shrunk so their shorter side is N.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/json_lines.hpp"
#include "cli/output_file.hpp"
#include "cli/progress_bar.hpp"
#include "data/pack.hpp"
#include "train/atomic_file.hpp"

namespace kiln::cli {
namespace {

struct PackCommand {
  std::filesystem::path folder, file;
  data::PackOptions pack;
  bool json = false, overwrite = false;
};

void run_pack(const PackCommand& options) {
  check_output_file("pack", "", options.file, options.overwrite, {{"the folder", options.folder}});
  ProgressBar bar;
  data::PackSummary summary;
  const std::vector<std::uint8_t> pack =
      data::build_pack(options.folder, options.pack, summary, [&bar](std::int64_t done, std::int64_t total) {
        if (done % 256 == 0 || done == total) bar.update("packing", done, total, "");
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
                                   {"shrunk", summary.shrunk},
                                   {"bytes", summary.bytes},
                                   {"splits", summary.splits}});
    return;
  }
  std::printf("packed %lld images (%s) into %s, %.1f MB", static_cast<long long>(summary.images),
              splits.c_str(), options.file.string().c_str(), static_cast<double>(summary.bytes) / 1e6);
  if (summary.shrunk > 0) {
    std::printf("; %lld shrunk to a shorter side of %lld", static_cast<long long>(summary.shrunk),
                static_cast<long long>(options.pack.shorter_side));
  }
  if (summary.skipped > 0)
    std::printf("; %lld unreadable files left out", static_cast<long long>(summary.skipped));
  std::printf("\n");
}

}  // namespace

void add_pack_command(CLI::App& app) {
  auto options = std::make_shared<PackCommand>();
  CLI::App* command =
      app.add_subcommand("pack", "pack an image folder into one file that kiln reads like the folder");
  command
      ->add_option("folder", options->folder, "DIR/<class>/<image>, or DIR/{train,val,test}/<class>/<image>")
      ->required();
  command->add_option("file", options->file, "the pack file to write")->required();
  command->add_flag("--strict", options->pack.strict,
                    "stop on an unreadable image instead of leaving it out");
  command
      ->add_option("--shorter-side", options->pack.shorter_side,
                   "store an image whose shorter side is longer than N shrunk to N, aspect ratio kept, as a "
                   "PNG: large photos decoded once here, not at every epoch (train's --image-size then "
                   "resizes from N)")
      ->check(CLI::Range(1, 65535));
  command->add_flag("--overwrite", options->overwrite, "replace FILE if it exists");
  command->add_flag("--json", options->json, "print one JSON object");
  command->callback([options] { run_pack(*options); });
}

}  // namespace kiln::cli
