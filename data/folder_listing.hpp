// Listing a folder the way the data set code wants it: sorted by path (so a folder always lists the same
// entries in the same order), hidden entries recognizable, and an unreadable folder an error naming it.
// Used by the class-folder scan (dataset.cpp) and the data report (data_report.cpp), which also count the
// files they do not read by extension.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include "core/error.hpp"
#include "data/image.hpp"

namespace kiln::data {

inline bool is_hidden(const std::filesystem::path& path) { return path.filename().string().starts_with("."); }

// The entries of `folder` for which `keep(entry)` holds, sorted by path. Throws kiln::Error naming the folder
// when it cannot be listed.
template <typename Keep>
std::vector<std::filesystem::path> sorted_entries(const std::filesystem::path& folder, Keep keep) {
  std::vector<std::filesystem::path> entries;
  std::error_code status;
  std::filesystem::directory_iterator it(folder, status);
  if (status) fail(folder.string(), ": cannot list the folder (", status.message(), ")");
  for (; it != std::filesystem::directory_iterator(); it.increment(status)) {
    if (keep(*it)) entries.push_back(it->path());
  }
  if (status) fail(folder.string(), ": cannot list the folder (", status.message(), ")");
  std::sort(entries.begin(), entries.end());
  return entries;
}

// The folders in `folder` that are not hidden, sorted: the class folders of a split, or (inside a class
// folder) the folders whose images are not read.
inline std::vector<std::filesystem::path> sorted_subfolders(const std::filesystem::path& folder) {
  return sorted_entries(folder, [](const std::filesystem::directory_entry& entry) {
    std::error_code ignored;
    return entry.is_directory(ignored) && !is_hidden(entry.path());
  });
}

// How many of `files` have each extension, lower case with its dot ("(no extension)" for none), for the
// messages about files kiln does not read: a phone's .heic photos beside the .jpg ones, a notes.txt.
using ExtensionCounts = std::map<std::string, std::int64_t>;
inline ExtensionCounts count_extensions(const std::vector<std::filesystem::path>& files) {
  ExtensionCounts counts;
  for (const std::filesystem::path& file : files) {
    const std::string extension = lowercase_extension(file);
    ++counts[extension.empty() ? "(no extension)" : extension];
  }
  return counts;
}
// "30 .heic, 2 .txt"
inline std::string describe_extensions(const ExtensionCounts& counts) {
  std::string described;
  for (const auto& [extension, count] : counts)
    described += (described.empty() ? "" : ", ") + std::to_string(count) + " " + extension;
  return described;
}

}  // namespace kiln::data
