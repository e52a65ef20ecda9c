#include "train/checkpoint.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "train/atomic_file.hpp"
#include "train/checksum.hpp"

namespace kiln::train {
namespace {

// Tensor bytes are copied to and from the file as they lie in memory, which is the file's little-endian
// order only on a little-endian machine. A big-endian port would swap bytes here.
static_assert(std::endian::native == std::endian::little,
              "checkpoint tensor bytes assume a little-endian host");

constexpr std::size_t kPreambleBytes = 8 + 4 + 8;  // magic, version, header length

std::uint64_t round_up_to_alignment(std::uint64_t bytes) {
  return (bytes + kCheckpointAlignment - 1) / kCheckpointAlignment * kCheckpointAlignment;
}

// The dtypes a checkpoint stores, by the names in the tensor table.
std::optional<DType> stored_dtype_named(std::string_view name) {
  for (const DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::Int8}) {
    if (dtype_name(dtype) == name) return dtype;
  }
  return std::nullopt;
}

void write_little_endian(std::vector<std::uint8_t>& out, std::size_t at, std::uint64_t value,
                         int byte_count) {
  for (int i = 0; i < byte_count; ++i)
    out[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(value >> (8 * i));
}

std::uint64_t read_little_endian(std::span<const std::uint8_t> bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) value |= static_cast<std::uint64_t>(bytes[i]) << (8 * i);
  return value;
}

// The bytes of a dense tensor's elements (its view may start at an offset into the storage).
std::span<std::uint8_t> dense_bytes(const Tensor& dense) {
  return {static_cast<std::uint8_t*>(dense.data_ptr()), dense.nbytes()};
}

// ---- saving ------------------------------------------------------------------------------------------

// The file's bytes: preamble, header, padding, then each tensor at its 64-aligned offset. The whole file
// is assembled in memory (one more copy of the weights) so it can be written in one atomic replace.
std::vector<std::uint8_t> encode_checkpoint(const std::filesystem::path& path, const Checkpoint& checkpoint) {
  const std::string where = path.string();
  const nlohmann::json& caller_header = checkpoint.header;
  KILN_CHECK(caller_header.is_object() || caller_header.is_null(), "cannot save checkpoint ", where,
             ": the header must be a JSON object, not ", caller_header.type_name());
  KILN_CHECK(!caller_header.contains("tensors"), "cannot save checkpoint ", where,
             ": the header key 'tensors' is reserved for the tensor table");

  NoGradGuard no_grad;
  std::vector<Tensor> dense_tensors;
  nlohmann::json table = nlohmann::json::array();
  std::set<std::string> names;
  std::uint64_t data_bytes = 0;
  for (const auto& [name, tensor] : checkpoint.tensors) {
    KILN_CHECK(!name.empty(), "cannot save checkpoint ", where, ": a tensor has an empty name");
    KILN_CHECK(names.insert(name).second, "cannot save checkpoint ", where, ": two tensors are named '", name,
               "'");
    KILN_CHECK(tensor.defined(), "cannot save checkpoint ", where, ": tensor '", name, "' is undefined");
    KILN_CHECK(stored_dtype_named(dtype_name(tensor.dtype())), "cannot save checkpoint ", where, ": tensor '",
               name, "' is ", tensor.describe(), "; checkpoints store float32, float64 and int64");
    Tensor dense = tensor.detach().to(Device::cpu()).contiguous();  // a CUDA model's tensors are copied out
    const std::span<const std::uint8_t> bytes = dense_bytes(dense);
    const std::uint64_t offset = round_up_to_alignment(data_bytes);
    table.push_back({{"name", name},
                     {"dtype", dtype_name(tensor.dtype())},
                     {"shape", tensor.shape().dims()},
                     {"offset", offset},
                     {"bytes", bytes.size()},
                     {"crc32", crc32(bytes)}});
    data_bytes = offset + bytes.size();
    dense_tensors.push_back(std::move(dense));
  }

  nlohmann::json header = caller_header.is_null() ? nlohmann::json::object() : caller_header;
  header["tensors"] = std::move(table);
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::json::exception& error) {  // a string that is not valid UTF-8
    fail("cannot save checkpoint ", where, ": the header cannot be written as JSON (", error.what(), ")");
  }

  // The whole file, zero-filled (which is the padding), with each piece copied to its place.
  const std::uint64_t data_start = round_up_to_alignment(kPreambleBytes + header_text.size());
  std::vector<std::uint8_t> file(data_start + data_bytes, 0);
  std::copy(std::begin(kCheckpointMagic), std::end(kCheckpointMagic), file.begin());
  write_little_endian(file, 8, kCheckpointFormatVersion, 4);
  write_little_endian(file, 12, header_text.size(), 8);
  std::copy(header_text.begin(), header_text.end(), file.begin() + kPreambleBytes);
  for (std::size_t i = 0; i < dense_tensors.size(); ++i) {
    const std::uint64_t offset = header["tensors"][i]["offset"].get<std::uint64_t>();
    const std::span<const std::uint8_t> bytes = dense_bytes(dense_tensors[i]);
    std::copy(bytes.begin(), bytes.end(), file.begin() + static_cast<std::ptrdiff_t>(data_start + offset));
  }
  return file;
}

// ---- loading -----------------------------------------------------------------------------------------

// One row of the tensor table, checked.
struct TableEntry {
  std::string name;
  DType dtype = DType::Float32;
  Shape shape;
  std::uint64_t offset = 0, bytes = 0;
  std::uint32_t crc = 0;
};

// Reads byte ranges of the file; running past its end means the file is truncated.
class FileReader {
 public:
  explicit FileReader(const std::filesystem::path& path) : path_(path) {
    std::error_code error;
    const bool exists = std::filesystem::exists(path, error);
    KILN_CHECK(exists, "checkpoint ", path.string(), " does not exist");
    KILN_CHECK(!std::filesystem::is_directory(path, error), "checkpoint ", path.string(),
               " is a folder, not a checkpoint file");
    in_.open(path, std::ios::binary);
    if (!in_) fail("cannot open checkpoint ", path.string(), ": ", std::strerror(errno));
    in_.seekg(0, std::ios::end);
    size_ = static_cast<std::uint64_t>(in_.tellg());
  }

  std::uint64_t size() const { return size_; }

  void read(std::uint64_t offset, std::span<std::uint8_t> into, std::string_view what) {
    KILN_CHECK(offset <= size_ && into.size() <= size_ - offset, "checkpoint ", path_.string(),
               " is truncated: ", what, " needs bytes up to ", offset + into.size(), " but the file has ",
               size_);
    if (into.empty()) return;
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(reinterpret_cast<char*>(into.data()), static_cast<std::streamsize>(into.size()));
    KILN_CHECK(in_.gcount() == static_cast<std::streamsize>(into.size()), "cannot read checkpoint ",
               path_.string(), ": ", what, " could not be read");
  }

 private:
  std::filesystem::path path_;
  std::ifstream in_;
  std::uint64_t size_ = 0;
};

// numel * element_size, or nothing when that exceeds `limit` (a shape no file of that size could hold;
// checking as we multiply keeps a hostile shape from overflowing).
std::optional<std::uint64_t> byte_length(const Shape& shape, std::size_t element_size, std::uint64_t limit) {
  if (shape.numel() == 0) return 0;
  std::uint64_t total = element_size;
  for (const std::int64_t size : shape) {
    const auto dim = static_cast<std::uint64_t>(size);
    if (total > limit / dim) return std::nullopt;
    total *= dim;
  }
  return total;
}

TableEntry parse_table_entry(const nlohmann::json& row, std::size_t index, std::uint64_t file_size,
                             const std::string& where) {
  const std::string entry = "tensor table entry " + std::to_string(index);
  KILN_CHECK(row.is_object(), "checkpoint ", where, ": ", entry, " is not an object");
  KILN_CHECK(row.contains("name") && row["name"].is_string() && !row["name"].get<std::string>().empty(),
             "checkpoint ", where, ": ", entry, " has no name");
  TableEntry parsed;
  parsed.name = row["name"].get<std::string>();
  const std::string tensor = "tensor '" + parsed.name + "'";
  const auto unsigned_field = [&](const char* key) {
    KILN_CHECK(row.contains(key) && row[key].is_number_unsigned(), "checkpoint ", where, ": ", tensor,
               " has no valid '", key, "' (a non-negative integer)");
    return row[key].get<std::uint64_t>();
  };

  KILN_CHECK(row.contains("dtype") && row["dtype"].is_string(), "checkpoint ", where, ": ", tensor,
             " has no dtype");
  const std::optional<DType> dtype = stored_dtype_named(row["dtype"].get<std::string>());
  KILN_CHECK(dtype, "checkpoint ", where, ": ", tensor, " has unknown dtype '",
             row["dtype"].get<std::string>(), "' (this build reads float32, float64, int64, int8)");
  parsed.dtype = *dtype;

  KILN_CHECK(row.contains("shape") && row["shape"].is_array(), "checkpoint ", where, ": ", tensor,
             " has no shape");
  std::vector<std::int64_t> dims;
  for (const nlohmann::json& size : row["shape"]) {
    KILN_CHECK(
        size.is_number_unsigned() &&
            size.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()),
        "checkpoint ", where, ": ", tensor, " has an invalid shape ", row["shape"].dump());
    dims.push_back(size.get<std::int64_t>());
  }
  parsed.shape = Shape(std::move(dims));

  parsed.offset = unsigned_field("offset");
  parsed.bytes = unsigned_field("bytes");
  const std::uint64_t crc = unsigned_field("crc32");
  KILN_CHECK(crc <= 0xFFFFFFFFu, "checkpoint ", where, ": ", tensor, " has a crc32 wider than 32 bits");
  parsed.crc = static_cast<std::uint32_t>(crc);

  const std::optional<std::uint64_t> expected_bytes =
      byte_length(parsed.shape, dtype_size(parsed.dtype), file_size);
  KILN_CHECK(expected_bytes, "checkpoint ", where, " is truncated: ", tensor, " (", dtype_name(parsed.dtype),
             parsed.shape.str(), ") is larger than the whole file (", file_size, " bytes)");
  KILN_CHECK(*expected_bytes == parsed.bytes, "checkpoint ", where, ": ", tensor, " is ",
             dtype_name(parsed.dtype), parsed.shape.str(), " (", *expected_bytes,
             " bytes) but the table says ", parsed.bytes, " bytes");
  KILN_CHECK(parsed.offset % kCheckpointAlignment == 0, "checkpoint ", where, ": ", tensor,
             " starts at offset ", parsed.offset, ", not a multiple of ", kCheckpointAlignment);
  return parsed;
}

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const Checkpoint& checkpoint) {
  const std::vector<std::uint8_t> file = encode_checkpoint(path, checkpoint);
  write_file_atomically(path, file, "checkpoint");
}

namespace {

// A checkpoint's header as read: the JSON object, tensor table included, and its length in bytes.
struct StoredHeader {
  nlohmann::json json;
  std::uint64_t length;
};

// The preamble and the header of the checkpoint `reader` reads, checked: the magic, the version, the JSON
// object with its tensor table (whose rows load_checkpoint checks).
StoredHeader read_header(FileReader& reader, std::uint64_t file_size, const std::string& where) {
  // The magic first: a file that is not a checkpoint at all deserves that answer, not "truncated".
  std::uint8_t preamble[kPreambleBytes] = {};
  const std::size_t magic_available = static_cast<std::size_t>(std::min<std::uint64_t>(file_size, 8));
  reader.read(0, std::span(preamble, magic_available), "the magic");
  KILN_CHECK(file_size > 0 && std::equal(preamble, preamble + magic_available, kCheckpointMagic),
             "checkpoint ", where, ": not a kiln checkpoint (it does not start with \"KILNCKPT\")");
  reader.read(0, std::span(preamble), "the preamble (magic, version, header length)");

  const std::uint64_t version = read_little_endian(std::span(preamble + 8, 4));
  KILN_CHECK(version == kCheckpointFormatVersion, "checkpoint ", where, " has format version ", version,
             "; this build of kiln reads version ", kCheckpointFormatVersion,
             version > kCheckpointFormatVersion ? " (was it written by a newer kiln?)" : "");

  const std::uint64_t header_length = read_little_endian(std::span(preamble + 12, 8));
  KILN_CHECK(header_length <= file_size - kPreambleBytes, "checkpoint ", where,
             " is truncated: its header of ", header_length, " bytes runs past the end of the file (",
             file_size, " bytes)");
  std::string header_text(static_cast<std::size_t>(header_length), '\0');
  reader.read(kPreambleBytes,
              std::span(reinterpret_cast<std::uint8_t*>(header_text.data()), header_text.size()),
              "the header");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text);
  } catch (const nlohmann::json::exception& error) {
    fail("checkpoint ", where, ": the header is not valid JSON (", error.what(), ")");
  }
  KILN_CHECK(header.is_object(), "checkpoint ", where, ": the header is JSON ", header.type_name(),
             ", not an object");
  KILN_CHECK(header.contains("tensors") && header["tensors"].is_array(), "checkpoint ", where,
             ": the header has no tensor table ('tensors')");
  return {std::move(header), header_length};
}

}  // namespace

bool starts_as_checkpoint(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  char magic[sizeof(kCheckpointMagic)] = {};
  return file.read(magic, sizeof(magic)) && std::equal(std::begin(magic), std::end(magic), kCheckpointMagic);
}

nlohmann::json load_checkpoint_header(const std::filesystem::path& path) {
  FileReader reader(path);
  nlohmann::json header = read_header(reader, reader.size(), path.string()).json;
  header.erase("tensors");
  return header;
}

Checkpoint load_checkpoint(const std::filesystem::path& path) {
  const std::string where = path.string();
  FileReader reader(path);
  const std::uint64_t file_size = reader.size();
  StoredHeader stored = read_header(reader, file_size, where);
  nlohmann::json& header = stored.json;
  const std::uint64_t header_length = stored.length;

  // The table: unique names, known dtypes, lengths that match shapes, aligned ranges in order.
  std::vector<TableEntry> entries;
  std::set<std::string> names;
  std::uint64_t data_bytes = 0;
  for (const nlohmann::json& row : header["tensors"]) {
    TableEntry entry = parse_table_entry(row, entries.size(), file_size, where);
    KILN_CHECK(names.insert(entry.name).second, "checkpoint ", where, ": two tensors are named '", entry.name,
               "'");
    KILN_CHECK(entry.offset >= data_bytes, "checkpoint ", where, ": tensor '", entry.name, "' at offset ",
               entry.offset, " overlaps the tensor before it (which ends at ", data_bytes, ")");
    data_bytes = entry.offset + entry.bytes;
    entries.push_back(std::move(entry));
  }
  const std::uint64_t data_start = round_up_to_alignment(kPreambleBytes + header_length);
  const std::uint64_t expected_size = data_start + data_bytes;
  KILN_CHECK(file_size >= expected_size, "checkpoint ", where, " is truncated: its tensors need ",
             expected_size, " bytes but the file has ", file_size);
  KILN_CHECK(file_size == expected_size, "checkpoint ", where, " has ", file_size - expected_size,
             " unexpected bytes after its last tensor");

  Checkpoint checkpoint;
  for (const TableEntry& entry : entries) {
    Tensor tensor = Tensor::empty(entry.shape, entry.dtype);
    const std::span<std::uint8_t> bytes = dense_bytes(tensor);
    reader.read(data_start + entry.offset, bytes, "tensor '" + entry.name + "'");
    KILN_CHECK(crc32(bytes) == entry.crc, "checkpoint ", where, ": tensor '", entry.name,
               "' is damaged (checksum mismatch)");
    checkpoint.tensors.emplace_back(entry.name, std::move(tensor));
  }
  header.erase("tensors");
  checkpoint.header = std::move(header);
  return checkpoint;
}

namespace {

// A header value as a message shows it: strings in single quotes, everything else as JSON.
std::string show(const nlohmann::json& value) {
  if (!value.is_string()) return value.dump();
  std::string quoted = "'";
  quoted += value.get_ref<const std::string&>();
  quoted += "'";
  return quoted;
}

}  // namespace

void check_header_field(const nlohmann::json& header, const std::string& field,
                        const nlohmann::json& expected, const std::filesystem::path& path) {
  const nlohmann::json* value = &header;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = field.find('.', start);
    const std::string key = field.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    KILN_CHECK(value->is_object() && value->contains(key), "checkpoint ", path.string(), ": field '", field,
               "' is missing, expected ", show(expected));
    value = &(*value)[key];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  KILN_CHECK(*value == expected, "checkpoint ", path.string(), ": field '", field, "' is ", show(*value),
             ", expected ", show(expected));
}

void load_into(const std::vector<NamedTensor>& destination, const Checkpoint& checkpoint,
               const std::filesystem::path& path, std::string_view prefix) {
  const std::string where = path.string();
  std::map<std::string_view, const Tensor*> stored;  // by name without the prefix
  for (const auto& [name, tensor] : checkpoint.tensors) {
    if (std::string_view(name).starts_with(prefix))
      stored.emplace(std::string_view(name).substr(prefix.size()), &tensor);
  }

  // Check every pairing before copying anything, so a failed load leaves the destination as it was.
  std::vector<std::pair<Tensor, const Tensor*>> copies;
  std::set<std::string_view> wanted;
  for (const auto& [name, target] : destination) {
    KILN_CHECK(wanted.insert(name).second, "load_into: the destination names '", name, "' twice");
    const auto found = stored.find(name);
    KILN_CHECK(found != stored.end(), "checkpoint ", where, " has no tensor '", prefix, name, "' (expected ",
               target.describe(), ")");
    const Tensor& source = *found->second;
    KILN_CHECK(source.dtype() == target.dtype() && source.shape() == target.shape(), "checkpoint ", where,
               ": tensor '", prefix, name, "' is ", source.describe(), " in the checkpoint but ",
               target.describe(), " here");
    copies.emplace_back(target, found->second);
  }
  for (const auto& [name, tensor] : checkpoint.tensors) {
    if (!std::string_view(name).starts_with(prefix)) continue;
    KILN_CHECK(wanted.contains(std::string_view(name).substr(prefix.size())), "checkpoint ", where,
               ": unexpected tensor '", name, "' (", tensor.describe(), "), which nothing here takes");
  }

  NoGradGuard no_grad;
  for (auto& [target, source] : copies) target.copy_(*source);
}

}  // namespace kiln::train
