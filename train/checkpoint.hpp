// Checkpoint: one self-describing file holding a JSON header (whatever the caller wants to keep: the
// architecture, class names, preprocessing, optimizer settings, ...) and a list of named tensors.
//
// The file, byte by byte (all integers little-endian):
//
//   offset  size  contents
//   0       8     magic "KILNCKPT" (ASCII, no terminator)
//   8       4     u32 format version, currently 1
//   12      8     u64 H, the length of the header in bytes
//   20      H     the header: UTF-8 JSON, an object. It is the caller's header plus one key that
//                 save_checkpoint adds, "tensors": an array with one entry per tensor, in order,
//                   {"name": "model.conv1.weight", "dtype": "float32", "shape": [6, 1, 5, 5],
//                    "offset": 0, "bytes": 600, "crc32": 1234567890}
//                 offset counts bytes from the start of the data section, bytes is the tensor's length
//                 (numel * dtype size) and crc32 is train/checksum.hpp's CRC-32 of those bytes.
//   20+H    P     zero bytes, P in [0, 64), so that the data section starts on a 64-byte boundary
//   D       ...   the data section, D = 20 + H + P: each tensor's elements dense, row-major, in its
//                 dtype's little-endian bytes, starting at a multiple of 64 from D (zero bytes between).
//                 The file ends with the last tensor's last byte.
//
// 64-byte alignment matches Storage's, so a later version can map the file and hand the bytes to AVX-512
// kernels without copying. The dtypes stored are float32, float64, int64 and int8 (quantized weights).
//
// Loading checks everything it reads and throws kiln::Error naming the file and the problem: a missing
// file, the wrong magic ("not a kiln checkpoint"), a version this build cannot read, a truncated file,
// a malformed header or tensor table, an unknown dtype, a tensor whose bytes fail their checksum.
// Files are written with write_file_atomically, so an interrupted save leaves the previous checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>  // the full type: Checkpoint holds a json by value
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.hpp"

namespace kiln::train {

inline constexpr char kCheckpointMagic[8] = {'K', 'I', 'L', 'N', 'C', 'K', 'P', 'T'};
inline constexpr std::uint32_t kCheckpointFormatVersion = 1;
inline constexpr std::size_t kCheckpointAlignment = 64;

struct Checkpoint {
  nlohmann::json header;             // an object (or null, saved as {}); the key "tensors" is reserved
  std::vector<NamedTensor> tensors;  // unique, non-empty names; saved and loaded in this order
};

// Writes `checkpoint` to `path` atomically. Tensors may be any view (they are made dense first) of
// float32, float64 or int64 on the CPU.
void save_checkpoint(const std::filesystem::path& path, const Checkpoint& checkpoint);

// Reads and validates a checkpoint. The returned header is the one that was saved (without "tensors");
// each tensor is a fresh dense CPU tensor.
Checkpoint load_checkpoint(const std::filesystem::path& path);

// Whether `path` is a file that starts with kCheckpointMagic: a kiln checkpoint, or a damaged one (which
// load_checkpoint then refuses naming the damage), rather than some other file.
bool starts_as_checkpoint(const std::filesystem::path& path);

// The same header alone, for a caller that wants a run's settings or progress: the preamble and the header
// are read and checked as load_checkpoint checks them, the tensors neither read nor checked.
nlohmann::json load_checkpoint_header(const std::filesystem::path& path);

// Throws unless the header's `field` (a dotted path into nested objects, "architecture.name") equals
// `expected`:
//   "checkpoint runs/a/last.kiln: field 'architecture.name' is 'resnet20', expected 'lenet5'"
//   "checkpoint runs/a/last.kiln: field 'schema' is missing, expected 1"
void check_header_field(const nlohmann::json& header, const std::string& field,
                        const nlohmann::json& expected, const std::filesystem::path& path);

// Copies the checkpoint's tensors into existing tensors (a model's parameters and buffers, an optimizer's
// state), without recording anything on the tape.
//
// The checkpoint tensors taken part are those whose name starts with `prefix`; with the prefix removed,
// their names must be exactly the destination's names, each with the same shape and dtype. So a
// checkpoint holding "model.*" and "optimizer.*" tensors loads into a model with prefix "model.".
// Everything is checked before anything is copied: on error (the first missing, unexpected or
// mismatched tensor, with its shapes) the destination is unchanged.
void load_into(const std::vector<NamedTensor>& destination, const Checkpoint& checkpoint,
               const std::filesystem::path& path, std::string_view prefix = "");

}  // namespace kiln::train
