// check_output_file (output_file.hpp): where a command may write the file the user names.
#include "cli/output_file.hpp"

#include <algorithm>
#include <system_error>

#include "core/error.hpp"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

// The path as the file system resolves it (links, "..", "."), as far as it exists.
fs::path resolved(const fs::path& path) {
  std::error_code error;
  const fs::path absolute = fs::weakly_canonical(path, error);
  return error ? fs::absolute(path).lexically_normal() : absolute;
}

// Whether `path` is `folder` or lies somewhere below it.
bool lies_within(const fs::path& path, const fs::path& folder) {
  const fs::path inner = resolved(path), outer = resolved(folder);
  return std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end()).first == outer.end();
}

bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code error;
  const bool same = fs::equivalent(a, b, error);
  return !error && same;
}

}  // namespace

void check_output_file(const std::string& command, const std::string& option, const fs::path& output,
                       bool overwrite, const std::vector<CommandInput>& inputs) {
  const std::string named = (option.empty() ? "" : option + " ") + output.string();
  for (const CommandInput& input : inputs) {
    KILN_CHECK(!same_file(output, input.path) && resolved(output) != resolved(input.path), "kiln ", command,
               ": ", named, " is ", input.role, " it reads; write the output to another file");
    std::error_code error;
    KILN_CHECK(!fs::is_directory(input.path, error) || !lies_within(output, input.path), "kiln ", command,
               ": ", named, " lies inside ", input.path.string(), ", ", input.role,
               " it reads; write the output outside it");
  }
  std::error_code error;
  const fs::file_status status = fs::status(output, error);
  KILN_CHECK(!fs::is_directory(status), "kiln ", command, ": ", named,
             " is a folder; name the file to write");
  KILN_CHECK(overwrite || !fs::exists(status), "kiln ", command, ": ", named,
             " exists (pass --overwrite to replace it)");
}

}  // namespace kiln::cli
