// The two faces of a DataReport: one JSON object for scripts, aligned text for people.
//
// JSON fields:
//   data                the folder
//   splits [{           one per split: train, val, test (those present), or all
//     name, path, images, ignored_files, ignored_extensions, ignored_folders
//     classes [{name, images, share}]             share of the split's images, 0 to 1
//     imbalance_ratio                             largest / smallest class; null when a class is empty
//     largest_class, smallest_class {name, images}
//     sizes {min, max {width, height}, most_common {width, height, images}, distinct,
//            counts [{width, height, images}]}    most common first; min, max, most_common null when
//                                                 nothing is readable
//     channels {gray, gray_alpha, rgb, rgba}      readable images by channels stored in the file
//     unreadable [{path, reason}]
//     duplicates [{files, classes, crosses_classes}]
//   }]
//   overlaps [{splits [first, second], files_in_second, shared [{<first>: [paths], <second>: [paths]}]}]
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/data_report.hpp"
#include "data/folder_listing.hpp"
#include "data/preprocessing.hpp"

namespace kiln::data {
namespace {

// Above this shorter side (of the most common size), the report suggests packing the images shrunk.
constexpr std::int64_t kLargeImageSide = 256;

namespace fs = std::filesystem;

nlohmann::json size_json(const std::optional<ImageSize>& size) {
  if (!size) return nullptr;
  return {{"width", size->width}, {"height", size->height}};
}

std::string size_text(const ImageSize& size) {
  return std::to_string(size.width) + "x" + std::to_string(size.height);
}

std::string plural(std::int64_t count, const std::string& one, const std::string& many) {
  return std::to_string(count) + " " + (count == 1 ? one : many);
}

// Display width in code points, so UTF-8 class names line up.
std::size_t display_width(const std::string& text) {
  std::size_t width = 0;
  for (const char byte : text) width += (static_cast<unsigned char>(byte) & 0xC0) != 0x80 ? 1 : 0;
  return width;
}

std::string pad_right(const std::string& text, std::size_t width) {
  const std::size_t shown = display_width(text);
  return text + std::string(width > shown ? width - shown : 0, ' ');
}

// Paths in the text are relative to the data folder, which the first line names.
std::string shown_path(const fs::path& path, const fs::path& root) {
  const fs::path relative = path.lexically_relative(root);
  return relative.empty() ? path.string() : relative.string();
}

std::string joined_paths(const std::vector<fs::path>& paths, const fs::path& root) {
  std::string text;
  for (const fs::path& path : paths) text += (text.empty() ? "" : " = ") + shown_path(path, root);
  return text;
}

void write_split(std::ostringstream& out, const SplitReport& split, const fs::path& root,
                 std::size_t max_listed) {
  const std::string indent = "              ";  // under the field values
  out << "split " << split.name << ": " << split.root.string() << "\n";
  out << "  " << plural(split.images, "image", "images") << " in "
      << plural(std::ssize(split.classes), "class", "classes") << "\n";

  std::size_t name_width = 5;
  for (const ClassCount& c : split.classes) name_width = std::max(name_width, display_width(c.name));
  out << "    " << pad_right("class", name_width) << "  images   share\n";
  for (const ClassCount& c : split.classes) {
    char numbers[48];
    const double share =
        split.images > 0 ? 100.0 * static_cast<double>(c.images) / static_cast<double>(split.images) : 0;
    std::snprintf(numbers, sizeof numbers, "  %6lld  %5.1f%%", static_cast<long long>(c.images), share);
    out << "    " << pad_right(c.name, name_width) << numbers << "\n";
  }

  const ClassCount& largest = split.classes[split.largest_class];
  const ClassCount& smallest = split.classes[split.smallest_class];
  out << "  imbalance   ";
  if (!split.imbalance_ratio) {
    out << "- (class '" << smallest.name << "' has no images)\n";
  } else {
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%.2f", *split.imbalance_ratio);
    out << ratio;
    if (largest.images == smallest.images) {
      out << " (every class has " << largest.images << ")\n";
    } else {
      out << " (largest / smallest class: '" << largest.name << "' " << largest.images << " / '"
          << smallest.name << "' " << smallest.images << ")\n";
    }
  }

  out << "  sizes       ";
  if (split.sizes.empty()) {
    out << "- (no readable image)\n";
  } else if (split.sizes.size() == 1) {
    out << size_text(split.sizes.front()) << " (all " << split.sizes.front().images << " readable images)\n";
  } else {
    const std::int64_t readable = split.images - std::ssize(split.unreadable);
    out << "min " << size_text(*split.smallest_size) << ", max " << size_text(*split.largest_size)
        << ", most common " << size_text(split.sizes.front()) << " (" << split.sizes.front().images << " of "
        << readable << "), " << split.sizes.size() << " distinct sizes\n"
        << "              (kiln train resizes each image to the most common size; --image-size N|HxW for "
           "another)\n";
  }
  if (!split.sizes.empty()) {
    const ImageSize& common = split.sizes.front();
    const auto [height, width] = default_input_size(common.height, common.width, kDefaultMaxInputSide);
    if (height != common.height || width != common.width) {
      out << "              (too large to train on as they are: kiln train shrinks the most common size to "
          << width << "x" << height << ",\n"
          << "              at most " << kDefaultMaxInputSide << " a side, unless --image-size gives one)\n";
    }
  }
  if (!split.sizes.empty() &&
      std::min(split.sizes.front().width, split.sizes.front().height) > kLargeImageSide) {
    out << "              (large images are decoded at full size every epoch: kiln pack DATA FILE\n"
        << "              --shorter-side N stores them shrunk, decoded once)\n";
  }

  static constexpr const char* kChannelNames[4] = {"gray", "gray+alpha", "RGB", "RGBA"};
  out << "  channels    ";
  std::string channels;
  for (std::size_t c = 0; c < 4; ++c) {
    if (split.channels[c] > 0) {
      channels += (channels.empty() ? "" : ", ") + std::string(kChannelNames[c]) + " " +
                  std::to_string(split.channels[c]);
    }
  }
  out << (channels.empty() ? "-" : channels) << "\n";

  out << "  unreadable  ";
  out << (split.unreadable.empty() ? "none" : plural(std::ssize(split.unreadable), "file", "files")) << "\n";
  for (std::size_t i = 0; i < split.unreadable.size() && i < max_listed; ++i) {
    out << indent << shown_path(split.unreadable[i].path, root) << ": " << split.unreadable[i].reason << "\n";
  }
  if (split.unreadable.size() > max_listed) {
    out << indent << "... and " << split.unreadable.size() - max_listed << " more (see --json)\n";
  }

  out << "  duplicates  ";
  if (split.duplicates.empty()) {
    out << "none\n";
  } else {
    std::int64_t extra_copies = 0;
    for (const DuplicateGroup& group : split.duplicates) extra_copies += std::ssize(group.files) - 1;
    out << plural(std::ssize(split.duplicates), "group", "groups") << " of identical files ("
        << plural(extra_copies, "extra copy", "extra copies") << ")\n";
  }
  for (std::size_t i = 0; i < split.duplicates.size() && i < max_listed; ++i) {
    const DuplicateGroup& group = split.duplicates[i];
    out << indent << joined_paths(group.files, root)
        << (group.crosses_classes() ? "  (different classes!)" : "") << "\n";
  }
  if (split.duplicates.size() > max_listed)
    out << indent << "... and " << split.duplicates.size() - max_listed << " more (see --json)\n";

  if (split.ignored_files > 0) {
    out << "  ignored     " << plural(split.ignored_files, "file", "files") << " without an image extension ("
        << describe_extensions(split.ignored_extensions)
        << "): kiln reads .jpg .jpeg .png .bmp and .tga; convert other images to JPEG or PNG\n";
  }
  if (!split.ignored_folders.empty()) {
    std::string folders;
    for (const fs::path& folder : split.ignored_folders)
      folders += (folders.empty() ? "" : ", ") + shown_path(folder, root);
    out << "  ignored     " << plural(std::ssize(split.ignored_folders), "folder", "folders")
        << " inside class folders, whose images are not read: " << folders << "\n";
  }
}

}  // namespace

nlohmann::json data_report_to_json(const DataReport& report) {
  nlohmann::json splits = nlohmann::json::array();
  for (const SplitReport& split : report.splits) {
    nlohmann::json classes = nlohmann::json::array();
    for (const ClassCount& c : split.classes) {
      classes.push_back(
          {{"name", c.name},
           {"images", c.images},
           {"share",
            split.images > 0 ? static_cast<double>(c.images) / static_cast<double>(split.images) : 0.0}});
    }
    nlohmann::json counts = nlohmann::json::array();
    for (const ImageSize& size : split.sizes) {
      counts.push_back({{"width", size.width}, {"height", size.height}, {"images", size.images}});
    }
    nlohmann::json ignored_folders = nlohmann::json::array();
    for (const fs::path& folder : split.ignored_folders) ignored_folders.push_back(folder.string());
    nlohmann::json unreadable = nlohmann::json::array();
    for (const UnreadableFile& file : split.unreadable)
      unreadable.push_back({{"path", file.path.string()}, {"reason", file.reason}});
    nlohmann::json duplicates = nlohmann::json::array();
    for (const DuplicateGroup& group : split.duplicates) {
      std::vector<std::string> files;
      for (const fs::path& file : group.files) files.push_back(file.string());
      duplicates.push_back(
          {{"files", files}, {"classes", group.classes}, {"crosses_classes", group.crosses_classes()}});
    }
    const ClassCount& largest = split.classes[split.largest_class];
    const ClassCount& smallest = split.classes[split.smallest_class];
    splits.push_back({{"name", split.name},
                      {"path", split.root.string()},
                      {"images", split.images},
                      {"ignored_files", split.ignored_files},
                      {"ignored_extensions", split.ignored_extensions},
                      {"ignored_folders", ignored_folders},
                      {"classes", classes},
                      {"imbalance_ratio", split.imbalance_ratio ? nlohmann::json(*split.imbalance_ratio)
                                                                : nlohmann::json(nullptr)},
                      {"largest_class", {{"name", largest.name}, {"images", largest.images}}},
                      {"smallest_class", {{"name", smallest.name}, {"images", smallest.images}}},
                      {"sizes",
                       {{"min", size_json(split.smallest_size)},
                        {"max", size_json(split.largest_size)},
                        {"most_common", split.sizes.empty() ? nlohmann::json(nullptr) : counts.front()},
                        {"distinct", split.sizes.size()},
                        {"counts", counts}}},
                      {"channels",
                       {{"gray", split.channels[0]},
                        {"gray_alpha", split.channels[1]},
                        {"rgb", split.channels[2]},
                        {"rgba", split.channels[3]}}},
                      {"unreadable", unreadable},
                      {"duplicates", duplicates}});
  }
  nlohmann::json overlaps = nlohmann::json::array();
  for (const SplitOverlap& overlap : report.overlaps) {
    nlohmann::json shared = nlohmann::json::array();
    for (const SplitOverlap::Shared& group : overlap.shared) {
      std::vector<std::string> first, second;
      for (const fs::path& file : group.in_first) first.push_back(file.string());
      for (const fs::path& file : group.in_second) second.push_back(file.string());
      shared.push_back({{overlap.first, first}, {overlap.second, second}});
    }
    overlaps.push_back({{"splits", {overlap.first, overlap.second}},
                        {"files_in_second", overlap.files_in_second()},
                        {"shared", shared}});
  }
  return {{"data", report.root.string()}, {"splits", splits}, {"overlaps", overlaps}};
}

std::string data_report_text(const DataReport& report, std::size_t max_listed) {
  std::ostringstream out;
  std::string names;
  for (const SplitReport& split : report.splits) names += (names.empty() ? "" : ", ") + split.name;
  out << "data report: " << report.root.string() << " ("
      << (report.splits.size() == 1 ? "split: " : "splits: ") << names << ")\n";
  for (const SplitReport& split : report.splits) {
    out << "\n";
    write_split(out, split, report.root, max_listed);
  }
  if (!report.overlaps.empty()) out << "\noverlap between splits (identical files)\n";
  for (const SplitOverlap& overlap : report.overlaps) {
    const std::string label = overlap.first + " / " + overlap.second;
    out << "  " << pad_right(label, 12) << "  ";
    if (overlap.shared.empty()) {
      out << "none\n";
      continue;
    }
    out << plural(overlap.files_in_second(), overlap.second + " file has", overlap.second + " files have")
        << " a copy in " << overlap.first << "\n";
    for (std::size_t i = 0; i < overlap.shared.size() && i < max_listed; ++i) {
      out << "                " << joined_paths(overlap.shared[i].in_second, report.root) << " = "
          << joined_paths(overlap.shared[i].in_first, report.root) << "\n";
    }
    if (overlap.shared.size() > max_listed) {
      out << "                ... and " << overlap.shared.size() - max_listed << " more (see --json)\n";
    }
  }
  return out.str();
}

}  // namespace kiln::data
