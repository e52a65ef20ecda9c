// kiln data-report DATA: what an image folder holds before any training — images per class and how
// uneven the classes are, image sizes and channels, unreadable files, identical files within a split and
// across splits (data/data_report.hpp). Text tables, or one JSON object with --json.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/json_lines.hpp"
#include "cli/progress_bar.hpp"
#include "data/data_report.hpp"

namespace kiln::cli {
namespace {

struct DataReportCommandOptions {
  std::filesystem::path data;
  int threads = 2;
  bool decode = false;
  bool json = false;
};

void run_data_report(const DataReportCommandOptions& options) {
  ProgressBar bar;
  data::DataReportOptions report_options;
  report_options.threads = options.threads;
  report_options.decode = options.decode;
  report_options.progress = [&bar](std::int64_t done, std::int64_t total) {
    bar.update("reading", done, total, "files");
  };
  const data::DataReport report = data::make_data_report(options.data, report_options);
  bar.clear();
  if (options.json) {
    print_json_line(data::data_report_to_json(report));
  } else {
    std::printf("%s", data::data_report_text(report).c_str());
  }
}

}  // namespace

void add_data_report_command(CLI::App& app) {
  auto options = std::make_shared<DataReportCommandOptions>();
  CLI::App* command = app.add_subcommand(
      "data-report",
      "describe an image folder: classes, balance, sizes, channels, unreadable and duplicate files");
  command
      ->add_option("data", options->data, "root/<class>/<image>, or root/{train,test[,val]}/<class>/<image>")
      ->required();
  command->add_option("--loader-threads", options->threads, "threads reading files")
      ->capture_default_str()
      ->check(at_least(0));
  command->add_flag("--decode", options->decode,
                    "decode every image fully (finds damaged files whose header is intact; slower)");
  command->add_flag("--json", options->json, "print the report as one JSON object");
  command->callback([options] { run_data_report(*options); });
}

}  // namespace kiln::cli
