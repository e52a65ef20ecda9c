// The `kiln` subcommands, one file each. Each registers its options and its action on the app.
#pragma once

#include <CLI/CLI.hpp>

namespace kiln::cli {

void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_predict_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_report_command(CLI::App& app);
void add_explain_command(CLI::App& app);
void add_pack_command(CLI::App& app);
void add_data_report_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_quantize_command(CLI::App& app);

// `--threads N`: how many threads the compute kernels use (OpenMP), set as soon as the option is parsed,
// before any kernel runs. 0 (the default) means every core. Data loading has its own `--loader-threads`.
void add_compute_threads_option(CLI::App* command);

}  // namespace kiln::cli
