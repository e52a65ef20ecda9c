#include "data/pack.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "data/content_hash.hpp"
#include "data/dataset.hpp"
#include "data/image.hpp"
#include "data/resample.hpp"

namespace kiln::data {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kPreambleBytes = sizeof kPackMagic + sizeof(std::uint32_t) + sizeof(std::uint64_t);

void append_le(std::vector<std::uint8_t>& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

std::uint64_t read_le(const std::uint8_t* at, int bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= static_cast<std::uint64_t>(at[i]) << (8 * i);
  return value;
}

std::string hex64(std::uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

// The splits of a folder as discover_splits lays them out, by name ("" for one tree of class folders).
std::vector<std::pair<std::string, fs::path>> split_folders(const fs::path& root) {
  KILN_CHECK(fs::is_directory(root), root.string(), ": not a folder of images to pack");
  if (!fs::is_directory(root / "train")) return {{"", root}};
  std::vector<std::pair<std::string, fs::path>> splits{{"train", root / "train"}};
  for (const char* name : {"val", "test"}) {
    if (fs::is_directory(root / name)) splits.emplace_back(name, root / name);
  }
  return splits;
}

}  // namespace

bool Pack::is_pack(const fs::path& path) {
  std::error_code ignored;
  if (!fs::is_regular_file(path, ignored)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[sizeof kPackMagic] = {};
  return in.read(magic, sizeof magic) && std::memcmp(magic, kPackMagic, sizeof magic) == 0;
}

std::shared_ptr<const Pack> Pack::open(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  KILN_CHECK(in.good(), file.string(), ": cannot open the pack");
  std::vector<std::uint8_t> all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  KILN_CHECK(all.size() >= kPreambleBytes && std::memcmp(all.data(), kPackMagic, sizeof kPackMagic) == 0,
             file.string(), ": not a kiln pack (no KILNPACK header)");
  const auto version = static_cast<std::uint32_t>(read_le(all.data() + 8, 4));
  KILN_CHECK(version == kPackVersion, file.string(), ": pack version ", version, " (this kiln reads version ",
             kPackVersion, ")");
  const std::uint64_t index_bytes = read_le(all.data() + 12, 8);
  KILN_CHECK(index_bytes <= all.size() - kPreambleBytes, file.string(),
             ": truncated (the index runs past the end)");
  const nlohmann::json index = nlohmann::json::parse(
      all.begin() + kPreambleBytes, all.begin() + static_cast<std::ptrdiff_t>(kPreambleBytes + index_bytes),
      nullptr, false);
  KILN_CHECK(index.is_object() && index.contains("classes") && index.contains("entries") &&
                 index.contains("data_bytes") && index.contains("data_fnv1a64"),
             file.string(), ": damaged pack index");
  auto pack = std::make_shared<Pack>();
  pack->file_ = file;
  const std::size_t data_start = kPreambleBytes + index_bytes;
  const auto data_bytes = index.at("data_bytes").get<std::uint64_t>();
  KILN_CHECK(all.size() - data_start == data_bytes, file.string(), ": truncated or padded (",
             all.size() - data_start, " bytes of image data, the index says ", data_bytes, ")");
  const std::span<const std::uint8_t> data(all.data() + data_start, data_bytes);
  KILN_CHECK(hex64(fnv1a64(data)) == index.at("data_fnv1a64").get<std::string>(), file.string(),
             ": damaged (the image data does not match its checksum)");
  try {
    pack->classes_ = index.at("classes").get<std::vector<std::string>>();
    for (const nlohmann::json& row : index.at("entries")) {
      Entry entry{row.at(0).get<std::string>(), row.at(1).get<std::int64_t>(), row.at(2).get<std::string>(),
                  row.at(3).get<std::uint64_t>(), row.at(4).get<std::uint64_t>()};
      KILN_CHECK(entry.label >= 0 && entry.label < static_cast<std::int64_t>(pack->classes_.size()) &&
                     entry.offset <= data_bytes && entry.size <= data_bytes - entry.offset,
                 file.string(), ": damaged index entry for '", entry.name, "'");
      pack->entries_.push_back(std::move(entry));
    }
  } catch (const nlohmann::json::exception&) {
    fail(file.string(), ": damaged pack index");
  }
  pack->data_start_ = data_start;
  pack->file_bytes_ = std::move(all);  // kept whole: no copy of the image data
  return pack;
}

std::span<const std::uint8_t> Pack::bytes(std::size_t entry) const {
  const Entry& e = entries_.at(entry);
  return {file_bytes_.data() + data_start_ + e.offset, static_cast<std::size_t>(e.size)};
}

namespace {

// One image as the pack stores it, prepared on any thread: its bytes, or why it is left out.
struct PackedImage {
  std::vector<std::uint8_t> bytes;
  std::string problem;         // it does not decode: left out with a warning (strict: an error)
  std::exception_ptr failure;  // the file cannot be read: an error either way
  bool shrunk = false;
};

PackedImage pack_image(const Sample& sample, const PackOptions& options) {
  PackedImage packed;
  try {
    packed.bytes = read_file_bytes(sample.path);
  } catch (...) {
    packed.failure = std::current_exception();
    return packed;
  }
  try {
    const Image image = decode_image_bytes(packed.bytes, sample.path.string());
    if (options.shorter_side > 0 && std::min(image.height, image.width) > options.shorter_side) {
      packed.bytes = encode_png(shrink_to_shorter_side(image, options.shorter_side));
      packed.shrunk = true;
    }
  } catch (const Error& error) {
    packed.problem = error.what();
    packed.bytes.clear();
  }
  return packed;
}

}  // namespace

std::vector<std::uint8_t> build_pack(const fs::path& root, const PackOptions& options, PackSummary& summary,
                                     const std::function<void(std::int64_t, std::int64_t)>& progress) {
  KILN_CHECK(options.shorter_side >= 0, "pack: the shorter side must be positive, got ",
             options.shorter_side);
  std::vector<std::pair<std::string, ImageFolder>> splits;
  std::vector<std::pair<std::size_t, const Sample*>> samples;  // (split, sample) in the folder's order
  for (const auto& [name, folder] : split_folders(root)) {
    splits.emplace_back(name, ImageFolder::scan(folder));
    KILN_CHECK(splits.back().second.classes() == splits.front().second.classes(), folder.string(),
               ": its classes differ from ", splits.front().second.root().string(), "'s");
    summary.splits.push_back(name);
  }
  for (std::size_t split = 0; split < splits.size(); ++split) {
    for (const Sample& sample : splits[split].second.samples()) samples.emplace_back(split, &sample);
  }

  // Reading, decoding and shrinking run on every compute thread (a folder of photos is mostly decoding);
  // the pack is assembled afterwards in the folder's order, so it is the same bytes for any thread count.
  const auto total = static_cast<std::int64_t>(samples.size());
  std::vector<PackedImage> packed(samples.size());
  std::int64_t done = 0;
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t i = 0; i < total; ++i) {
    packed[static_cast<std::size_t>(i)] = pack_image(*samples[static_cast<std::size_t>(i)].second, options);
    if (progress) {
#pragma omp critical(kiln_pack_progress)
      progress(++done, total);
    }
  }

  nlohmann::json entries = nlohmann::json::array();
  std::vector<std::uint8_t> data;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto& [split, sample] = samples[i];
    PackedImage& image = packed[i];
    if (image.failure) std::rethrow_exception(image.failure);
    if (!image.problem.empty()) {
      KILN_CHECK(!options.strict, image.problem);
      summary.warnings.push_back(image.problem + "; left out of the pack");
      ++summary.skipped;
      continue;
    }
    entries.push_back({splits[split].first, sample->label, sample->path.filename().string(), data.size(),
                       image.bytes.size()});
    data.insert(data.end(), image.bytes.begin(), image.bytes.end());
    std::vector<std::uint8_t>().swap(image.bytes);  // the copy in `data` is the one kept
    ++summary.images;
    summary.shrunk += image.shrunk ? 1 : 0;
  }
  nlohmann::json index_json{{"classes", splits.front().second.classes()},
                            {"entries", entries},
                            {"data_bytes", data.size()},
                            {"data_fnv1a64", hex64(fnv1a64(data))}};
  if (options.shorter_side > 0) index_json["shorter_side"] = options.shorter_side;
  const std::string index = index_json.dump();
  std::vector<std::uint8_t> pack(kPackMagic, kPackMagic + sizeof kPackMagic);
  append_le(pack, kPackVersion, 4);
  append_le(pack, index.size(), 8);
  pack.insert(pack.end(), index.begin(), index.end());
  pack.insert(pack.end(), data.begin(), data.end());
  summary.bytes = pack.size();
  return pack;
}

}  // namespace kiln::data
