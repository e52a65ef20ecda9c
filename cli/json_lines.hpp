// --json output: one JSON object per line on stdout, flushed at once, so a script reading the pipe sees
// each line as it happens (training runs print one per epoch or step).
#pragma once

#include <nlohmann/json_fwd.hpp>

namespace kiln::cli {

void print_json_line(const nlohmann::json& line);

}  // namespace kiln::cli
