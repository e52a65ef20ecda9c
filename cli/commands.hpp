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
void add_summary_command(CLI::App& app);

// `--threads N`: how many threads the compute kernels use (OpenMP), set as soon as the option is parsed,
// before any kernel runs. 0 (the default) means every core. Data loading has its own `--loader-threads`.
void add_compute_threads_option(CLI::App* command);

// A check that an option's number is at least `minimum` (NaN fails it), saying so in a line a user reads:
// "--top: must be at least 1, got 0". (CLI11's PositiveNumber and NonNegativeNumber name the largest double,
// all 309 digits of it.)
CLI::Validator at_least(double minimum);

}  // namespace kiln::cli
