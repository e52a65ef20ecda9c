#include "data/data_report.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <map>
#include <system_error>
#include <thread>
#include <utility>

#include "core/error.hpp"
#include "data/folder_listing.hpp"
#include "data/content_hash.hpp"
#include "data/image.hpp"
#include "data/label_table.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

namespace kiln::data {
namespace {

namespace fs = std::filesystem;

// The image files of one split, in the order ImageFolder::scan lists them (by class, then by name).
struct SplitFiles {
  std::string name;
  fs::path root;
  std::vector<std::string> classes;
  std::vector<fs::path> files;
  std::vector<std::size_t> labels;  // [files] index into classes
  std::vector<fs::path> ignored_files;    // in class folders, without an image extension
  std::vector<fs::path> ignored_folders;  // inside class folders (ImageFolder::scan warns of both too)
};

// What one file holds. Identical bytes give an identical (hash, bytes) key.
struct FileFacts {
  std::uint64_t hash = 0;
  std::uint64_t bytes = 0;
  std::int64_t width = 0, height = 0, channels = 0;  // as stored: channels 1 to 4
  std::string problem;                               // why the file is unreadable; empty when it is not
};
using ContentKey = std::pair<std::uint64_t, std::uint64_t>;  // (hash, bytes)
ContentKey key_of(const FileFacts& facts) { return {facts.hash, facts.bytes}; }

SplitFiles list_split(const std::string& name, const fs::path& root) {
  SplitFiles split{name, root, {}, {}, {}, {}, {}};
  const std::vector<fs::path> class_folders = sorted_subfolders(root);
  KILN_CHECK(!class_folders.empty(), root.string(),
             ": no class folders (expected one folder per class: <root>/<class>/<image>)");
  for (const fs::path& class_folder : class_folders) {
    const std::size_t label = split.classes.size();
    split.classes.push_back(class_folder.filename().string());
    const std::vector<fs::path> files = sorted_entries(class_folder, [](const fs::directory_entry& entry) {
      std::error_code ignored;
      return entry.is_regular_file(ignored) && !is_hidden(entry.path());
    });
    for (const fs::path& folder : sorted_subfolders(class_folder)) split.ignored_folders.push_back(folder);
    for (const fs::path& file : files) {
      if (!is_image_file(file)) {
        split.ignored_files.push_back(file);
        continue;
      }
      split.files.push_back(file);
      split.labels.push_back(label);
    }
  }
  return split;
}

// kiln's errors about a file start with its path; the report names the file separately.
std::string without_path(const std::string& message, const fs::path& path) {
  const std::string prefix = path.string() + ": ";
  return message.starts_with(prefix) ? message.substr(prefix.size()) : message;
}

FileFacts examine(const fs::path& path, bool decode) {
  FileFacts facts;
  std::vector<std::uint8_t> bytes;
  try {
    bytes = read_file_bytes(path);
  } catch (const Error& error) {
    facts.problem = without_path(error.what(), path);
    return facts;
  }
  facts.bytes = bytes.size();
  facts.hash = fnv1a64(bytes);
  if (bytes.empty()) {
    facts.problem = "empty file (0 bytes), not an image";
    return facts;
  }
  if (bytes.size() > static_cast<std::size_t>(INT_MAX)) {
    facts.problem = "too large for stb_image";
    return facts;
  }
  int width = 0, height = 0, channels = 0;
  if (!stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &width, &height, &channels)) {
    facts.problem = std::string("not an image (stb_image: ") + stbi_failure_reason() + ")";
    return facts;
  }
  if (decode) {
    try {
      decode_image_bytes(bytes, path.string());
    } catch (const Error& error) {
      facts.problem = without_path(error.what(), path);
      return facts;
    }
  }
  facts.width = width;
  facts.height = height;
  facts.channels = channels;
  return facts;
}

// Examines every file, on `threads` threads that each claim the next file; the calling thread reports
// progress meanwhile. facts[i] belongs to files[i] whatever the threads do.
std::vector<FileFacts> examine_all(const std::vector<fs::path>& files, const DataReportOptions& options) {
  const auto total = static_cast<std::int64_t>(files.size());
  std::vector<FileFacts> facts(files.size());
  const auto report_progress = [&](std::int64_t done) {
    if (options.progress) options.progress(done, total);
  };
  if (options.threads <= 1) {
    for (std::size_t i = 0; i < files.size(); ++i) {
      facts[i] = examine(files[i], options.decode);
      report_progress(static_cast<std::int64_t>(i + 1));
    }
    return facts;
  }
  std::atomic<std::size_t> next_file = 0;
  std::atomic<std::int64_t> done = 0;
  std::vector<std::thread> workers;
  for (int t = 0; t < options.threads; ++t) {
    workers.emplace_back([&] {
      for (std::size_t i; (i = next_file++) < files.size();) {
        facts[i] = examine(files[i], options.decode);  // never throws: problems are recorded
        ++done;
      }
    });
  }
  while (done < total) {
    report_progress(done);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (std::thread& worker : workers) worker.join();
  report_progress(total);
  return facts;
}

// Groups the indices in [begin, end) by content; only contents held by two or more files form a group.
// Groups are in the order of their first file.
std::vector<std::vector<std::size_t>> same_content_groups(const std::vector<FileFacts>& facts,
                                                          std::size_t begin, std::size_t end) {
  std::map<ContentKey, std::vector<std::size_t>> by_content;
  for (std::size_t i = begin; i < end; ++i) by_content[key_of(facts[i])].push_back(i);
  std::vector<std::vector<std::size_t>> groups;
  for (auto& [key, members] : by_content) {
    if (members.size() > 1) groups.push_back(std::move(members));
  }
  std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.front() < b.front(); });
  return groups;
}

// The report of one split, whose files are facts[begin, begin + split.files.size()).
SplitReport summarize(const SplitFiles& split, const std::vector<FileFacts>& facts, std::size_t begin) {
  SplitReport report;
  report.name = split.name;
  report.root = split.root;
  report.images = static_cast<std::int64_t>(split.files.size());
  report.ignored_files = std::ssize(split.ignored_files);
  report.ignored_extensions = count_extensions(split.ignored_files);
  report.ignored_folders = split.ignored_folders;
  for (const std::string& name : split.classes) report.classes.push_back({name, 0});
  for (const std::size_t label : split.labels) ++report.classes[label].images;

  const auto by_images = [](const ClassCount& a, const ClassCount& b) { return a.images < b.images; };
  report.largest_class = static_cast<std::size_t>(
      std::max_element(report.classes.begin(), report.classes.end(), by_images) - report.classes.begin());
  report.smallest_class = static_cast<std::size_t>(
      std::min_element(report.classes.begin(), report.classes.end(), by_images) - report.classes.begin());
  const std::int64_t smallest = report.classes[report.smallest_class].images;
  if (smallest > 0) {
    report.imbalance_ratio =
        static_cast<double>(report.classes[report.largest_class].images) / static_cast<double>(smallest);
  }

  std::map<std::pair<std::int64_t, std::int64_t>, std::int64_t> size_counts;  // (width, height) -> images
  for (std::size_t k = 0; k < split.files.size(); ++k) {
    const FileFacts& file = facts[begin + k];
    if (!file.problem.empty()) {
      report.unreadable.push_back({split.files[k], file.problem});
      continue;
    }
    ++size_counts[{file.width, file.height}];
    ++report.channels[static_cast<std::size_t>(file.channels - 1)];
  }
  for (const auto& [size, images] : size_counts) report.sizes.push_back({size.first, size.second, images});
  const auto area = [](const ImageSize& s) { return std::pair(s.width * s.height, s.width); };
  if (!report.sizes.empty()) {
    const auto by_area = [&](const ImageSize& a, const ImageSize& b) { return area(a) < area(b); };
    report.smallest_size = *std::min_element(report.sizes.begin(), report.sizes.end(), by_area);
    report.largest_size = *std::max_element(report.sizes.begin(), report.sizes.end(), by_area);
  }
  std::sort(report.sizes.begin(), report.sizes.end(), [&](const ImageSize& a, const ImageSize& b) {
    return a.images != b.images ? a.images > b.images : area(a) < area(b);
  });

  for (const std::vector<std::size_t>& group :
       same_content_groups(facts, begin, begin + split.files.size())) {
    DuplicateGroup duplicate;
    for (const std::size_t i : group) {
      duplicate.files.push_back(split.files[i - begin]);
      duplicate.classes.push_back(split.classes[split.labels[i - begin]]);
    }
    report.duplicates.push_back(std::move(duplicate));
  }
  return report;
}

// The contents that files [first_begin, first_end) and [second_begin, second_end) share, in the order of
// their first file in the second split.
SplitOverlap overlap(const SplitFiles& first, std::size_t first_begin, const SplitFiles& second,
                     std::size_t second_begin, const std::vector<FileFacts>& facts) {
  std::map<ContentKey, std::vector<std::size_t>> in_first, in_second;
  for (std::size_t k = 0; k < first.files.size(); ++k) in_first[key_of(facts[first_begin + k])].push_back(k);
  for (std::size_t k = 0; k < second.files.size(); ++k)
    in_second[key_of(facts[second_begin + k])].push_back(k);
  std::vector<std::pair<std::size_t, SplitOverlap::Shared>> found;  // (first file in second, group)
  for (const auto& [key, second_files] : in_second) {
    const auto match = in_first.find(key);
    if (match == in_first.end()) continue;
    SplitOverlap::Shared shared;
    for (const std::size_t k : match->second) shared.in_first.push_back(first.files[k]);
    for (const std::size_t k : second_files) shared.in_second.push_back(second.files[k]);
    found.emplace_back(second_files.front(), std::move(shared));
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  SplitOverlap result{first.name, second.name, {}};
  for (auto& [position, shared] : found) result.shared.push_back(std::move(shared));
  return result;
}

}  // namespace

bool DuplicateGroup::crosses_classes() const {
  return std::any_of(classes.begin(), classes.end(),
                     [&](const std::string& name) { return name != classes.front(); });
}

std::int64_t SplitOverlap::files_in_second() const {
  std::int64_t files = 0;
  for (const Shared& group : shared) files += static_cast<std::int64_t>(group.in_second.size());
  return files;
}

DataReport make_data_report(const std::filesystem::path& root, const DataReportOptions& options) {
  std::error_code status;
  KILN_CHECK(fs::exists(root, status), root.string(), ": data folder does not exist");
  KILN_CHECK(fs::is_directory(root, status), root.string(),
             is_label_file(root) ? ": data-report reads image folders; a labels file (.csv) is not supported yet"
                                 : ": is not a folder");

  std::vector<SplitFiles> splits;
  if (fs::is_directory(root / "train", status)) {
    for (const char* name : {"train", "val", "test"}) {
      if (fs::is_directory(root / name, status)) splits.push_back(list_split(name, root / name));
    }
  } else {
    splits.push_back(list_split("all", root));
  }

  // Every split's files in one list, so one pass (and one progress bar) examines them all.
  std::vector<fs::path> files;
  std::vector<std::size_t> begins;
  for (const SplitFiles& split : splits) {
    begins.push_back(files.size());
    files.insert(files.end(), split.files.begin(), split.files.end());
  }
  const std::vector<FileFacts> facts = examine_all(files, options);

  DataReport report;
  report.root = root;
  for (std::size_t s = 0; s < splits.size(); ++s)
    report.splits.push_back(summarize(splits[s], facts, begins[s]));
  for (std::size_t a = 0; a < splits.size(); ++a) {
    for (std::size_t b = a + 1; b < splits.size(); ++b) {
      report.overlaps.push_back(overlap(splits[a], begins[a], splits[b], begins[b], facts));
    }
  }
  return report;
}

}  // namespace kiln::data
