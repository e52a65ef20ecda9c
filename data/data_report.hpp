// DataReport: what `kiln data-report DATA` finds in an image folder before any training. Per split: images
// per class and the imbalance ratio, image sizes, channel counts, unreadable files and exact duplicates;
// across splits: files whose bytes appear in two splits (a test image that is also a training image makes
// the test score a memory test).
//
// Layout, as discover_splits (data/dataset.hpp) reads it:
//   DATA/train/<class>/...  [DATA/val/<class>/...]  [DATA/test/<class>/...]   splits "train", "val", "test"
//   DATA/<class>/...                                                          one split, "all"
// Files are found as ImageFolder::scan finds them: files with an image extension (is_image_file) in the
// non-hidden class folders, sorted. Other files there are counted as ignored. Unlike scan, an empty class
// folder or a lone class is reported rather than refused.
//
// Each file is read once: its bytes are hashed (FNV-1a 64, data/content_hash.hpp) and its header is read
// with stb_image's stbi_info_from_memory, which gives width, height and stored channels without decoding
// the pixels. A file whose header stb_image rejects is unreadable, with stb_image's reason. A file with a
// sound header but a damaged body passes the header check; `decode` decodes every file fully to catch
// those too (slower). Two files are duplicates when their hashes and byte counts are equal.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <optional>
#include <string>
#include <vector>

namespace kiln::data {

struct ClassCount {
  std::string name;
  std::int64_t images = 0;  // image files, readable or not
};

struct ImageSize {
  std::int64_t width = 0, height = 0;
  std::int64_t images = 0;  // readable images of this size
};

struct UnreadableFile {
  std::filesystem::path path;
  std::string reason;  // stb_image's reason, or why the file could not be read
};

// Files with the same bytes. `classes` lists the class of each file, in the same order.
struct DuplicateGroup {
  std::vector<std::filesystem::path> files;
  std::vector<std::string> classes;
  bool crosses_classes() const;  // the same image under two labels: one of them is wrong
};

struct SplitReport {
  std::string name;  // train, val, test, or all
  std::filesystem::path root;
  std::vector<ClassCount> classes;  // sorted by name, as the labels are
  std::int64_t images = 0;          // image files, readable or not
  std::int64_t ignored_files = 0;   // files in class folders without an image extension
  std::map<std::string, std::int64_t> ignored_extensions;  // those files by extension: {".heic": 30}
  // Folders inside class folders: their images are not read.
  std::vector<std::filesystem::path> ignored_folders;
  // Largest / smallest class; absent when a class folder is empty. 1 is perfectly balanced.
  std::optional<double> imbalance_ratio;
  std::size_t largest_class = 0, smallest_class = 0;  // indices into classes; the first on ties
  std::vector<ImageSize> sizes;  // each distinct width x height, most common first (then by area)
  std::optional<ImageSize> smallest_size, largest_size;  // by pixel count; absent with no readable image
  // Readable images by the channels stored in the file: [0] gray, [1] gray + alpha, [2] RGB, [3] RGBA.
  std::array<std::int64_t, 4> channels{};
  std::vector<UnreadableFile> unreadable;
  std::vector<DuplicateGroup> duplicates;  // groups of two or more files with the same bytes
};

// Files of two splits that share their bytes: each group is one content, with its files in each split.
struct SplitOverlap {
  std::string first, second;  // split names, in the order train, val, test
  struct Shared {
    std::vector<std::filesystem::path> in_first, in_second;
  };
  std::vector<Shared> shared;
  std::int64_t files_in_second() const;  // files of the second split that have a copy in the first
};

struct DataReport {
  std::filesystem::path root;
  std::vector<SplitReport> splits;     // train, val, test (those present), or the one split "all"
  std::vector<SplitOverlap> overlaps;  // one per pair of splits: train/val, train/test, val/test
};

struct DataReportOptions {
  int threads = 2;      // files examined at once; 0 or 1 examines them on the calling thread
  bool decode = false;  // decode every image fully instead of reading only its header
  // Called on the calling thread as files are examined (done of total), e.g. to draw a progress bar.
  std::function<void(std::int64_t done, std::int64_t total)> progress;
};

// Throws kiln::Error naming `root` when it is missing or not a folder, or a split holds no class folders.
DataReport make_data_report(const std::filesystem::path& root, const DataReportOptions& options = {});

// The report as one JSON object (its fields are described in data_report_format.cpp), and as aligned
// text. `max_listed` caps the unreadable files, duplicate groups and shared files the text lists per
// split; the JSON lists them all.
nlohmann::json data_report_to_json(const DataReport& report);
std::string data_report_text(const DataReport& report, std::size_t max_listed = 10);

}  // namespace kiln::data
