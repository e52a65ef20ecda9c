// The `kiln` subcommands, one file each. Each registers its options and its action on the app.
#pragma once

#include <CLI/CLI.hpp>

namespace kiln::cli {

void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_predict_command(CLI::App& app);
void add_info_command(CLI::App& app);

}  // namespace kiln::cli
