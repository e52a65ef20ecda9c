// `--tta` for kiln eval and kiln predict: test-time augmentation, each prediction averaged over the flips and
// quarter turns the checkpoint trained with (train/tta.hpp).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <vector>

#include "train/model_io.hpp"
#include "train/tta.hpp"

namespace kiln::cli {

void add_tta_flag(CLI::App* command, bool& tta);
// --tta's views for `loaded`, said in a line on stderr (stdout may be JSON); nullopt without --tta.
std::optional<std::vector<train::TtaView>> tta_option_views(bool tta, const train::LoadedModel& loaded);

}  // namespace kiln::cli
