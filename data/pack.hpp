// A pack: a whole image-folder data set in one file. Every image keeps its encoded bytes (the JPEG or PNG
// as it was in the folder; or, packed with a shorter side, a PNG of the image shrunk to it), beside an
// index of its split, class and name, so a data set travels as one
// file (to a machine that receives only a working tree, such as a GPU box) and loads without touching
// thousands of small files. Training, evaluation and the data report take a pack wherever they take a
// folder (discover_splits in dataset.hpp recognizes one by its first bytes).
//
// Layout, little-endian:
//   "KILNPACK"     8 bytes
//   version        u32, 1
//   index_bytes    u64, the length of the index that follows
//   index          JSON: {"classes": [names, sorted],
//                         "entries": [[split, label, name, offset, size], ...],
//                         "data_bytes": N, "data_fnv1a64": "16 hex digits"[, "shorter_side": S]}
//                  split is "train", "val", "test", or "" for a folder of class folders with no splits;
//                  entries are in the folder's order (split, then class, then name); offsets count from
//                  the start of the data
//   data           the images' bytes, back to back
//
// Opening reads the whole file and checks all of it (magic, version, index, every entry inside the data,
// the data's FNV-1a checksum), so a truncated or damaged pack is refused with an error naming the file and
// the problem, never half-used.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace kiln::data {

inline constexpr char kPackMagic[8] = {'K', 'I', 'L', 'N', 'P', 'A', 'C', 'K'};
inline constexpr std::uint32_t kPackVersion = 1;

class Pack {
 public:
  struct Entry {
    std::string split;  // "train", "val", "test" or ""
    std::int64_t label = 0;
    std::string name;  // the image's file name in its class folder
    std::uint64_t offset = 0, size = 0;
  };

  // Reads and checks `file`. Throws kiln::Error naming the file and what is wrong with it.
  static std::shared_ptr<const Pack> open(const std::filesystem::path& file);
  // Whether `path` is a regular file that starts with the pack magic.
  static bool is_pack(const std::filesystem::path& path);

  const std::filesystem::path& file() const { return file_; }
  const std::vector<std::string>& classes() const { return classes_; }
  const std::vector<Entry>& entries() const { return entries_; }
  // The encoded bytes of entry i.
  std::span<const std::uint8_t> bytes(std::size_t entry) const;

 private:
  std::filesystem::path file_;
  std::vector<std::string> classes_;
  std::vector<Entry> entries_;
  std::vector<std::uint8_t> file_bytes_;  // the whole file, as read
  std::size_t data_start_ = 0;            // where the image data begins in it
};

struct PackOptions {
  bool strict = false;  // an unreadable image is an error naming it, not a warning
  // > 0: an image whose shorter side is longer is stored shrunk to it, aspect ratio kept, as a PNG
  // (shrink_to_shorter_side, data/resample.hpp); smaller images keep their bytes. A folder of large photos
  // for a small CNN is decoded at full size once, here, instead of at every epoch.
  std::int64_t shorter_side = 0;
};

struct PackSummary {
  std::int64_t images = 0, skipped = 0;  // packed, and left out as unreadable
  std::int64_t shrunk = 0;               // stored shrunk to options.shorter_side
  std::uint64_t bytes = 0;               // of the whole pack
  std::vector<std::string> splits;       // as stored ("" for a one-tree folder)
  std::vector<std::string> warnings;     // one per skipped file, naming it and why
};

// The pack of the image folder at `root` (root/<class>/... or root/{train,val,test}/<class>/...), as the
// bytes of a pack file. Each image is decoded once to check it (and to shrink it, see PackOptions), on every
// compute thread, and packed in the folder's order (the same bytes for any thread count): an unreadable
// one is left out with a warning, or, with options.strict, is an error naming it. progress(done, total) is
// called after each image, from one thread at a time.
std::vector<std::uint8_t> build_pack(const std::filesystem::path& root, const PackOptions& options,
                                     PackSummary& summary,
                                     const std::function<void(std::int64_t, std::int64_t)>& progress = {});

}  // namespace kiln::data
