// kiln report RUNDIR: redraws a run's plots from RUNDIR/metrics.jsonl (loss.png, accuracy.png,
// confusion_matrix.png; see train/run_plots.hpp) and prints a summary of the run.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "train/metrics_log.hpp"
#include "train/run_plots.hpp"

namespace kiln::cli {

void add_report_command(CLI::App& app) {
  auto run_dir = std::make_shared<std::filesystem::path>();
  auto json = std::make_shared<bool>(false);
  CLI::App* command = app.add_subcommand("report", "redraw a run's plots and summarize it");
  command->add_option("run", *run_dir, "a run folder written by kiln train (--out)")->required();
  command->add_flag("--json", *json, "print the summary and the plot files as one JSON object");
  command->callback([run_dir, json] {
    const std::vector<nlohmann::json> epochs = train::read_epoch_lines(*run_dir);
    const std::vector<std::filesystem::path> plots = train::write_run_plots(*run_dir, epochs);
    const train::RunSummary summary = train::summarize_run(epochs);
    if (*json) {
      nlohmann::json out = summary.to_json();
      out["run"] = run_dir->string();
      out["plots"] = nlohmann::json::array();
      for (const auto& plot : plots) out["plots"].push_back(plot.string());
      std::printf("%s\n", out.dump().c_str());
      return;
    }
    std::printf("run         %s\n%s", run_dir->string().c_str(), summary.text().c_str());
    for (const auto& plot : plots) std::printf("plot        %s\n", plot.string().c_str());
  });
}

}  // namespace kiln::cli
