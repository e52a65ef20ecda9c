#include "cli/json_lines.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>

namespace kiln::cli {

void print_json_line(const nlohmann::json& line) {
  std::printf("%s\n", line.dump().c_str());
  std::fflush(stdout);
}

}  // namespace kiln::cli
