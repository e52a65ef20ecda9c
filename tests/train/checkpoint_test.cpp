// Tests for the checkpoint file (train/checkpoint.hpp), its CRC-32 (train/checksum.hpp) and the atomic
// write under it (train/atomic_file.hpp): known answers, a round trip of every stored dtype and awkward
// shape, the byte layout, each kind of damage a loader must name, writes that really fail (as root too)
// leaving the old file and no temp file, and the header and load_into checks the trainer relies on.
#include "train/checkpoint.hpp"

#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "train/atomic_file.hpp"
#include "train/checksum.hpp"

namespace train_checkpoint_test {

namespace fs = std::filesystem;
using kiln::DType;
using kiln::NamedTensor;
using kiln::Shape;
using kiln::Tensor;
using namespace kiln::train;

namespace {

// A fresh folder under the system temp folder, removed with everything in it at the end of the test.
class ScratchFolder {
 public:
  explicit ScratchFolder(const std::string& name)
      : path_(fs::temp_directory_path() /
              ("kiln_checkpoint_test_" + std::to_string(::getpid()) + "_" + name)) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::uint8_t> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

std::uint64_t little_endian(const std::vector<std::uint8_t>& bytes, std::size_t at, int count) {
  std::uint64_t value = 0;
  for (int i = 0; i < count; ++i)
    value |= static_cast<std::uint64_t>(bytes[at + static_cast<std::size_t>(i)]) << (8 * i);
  return value;
}

// The files in `folder` whose names contain ".tmp-": what a failed atomic write must not leave.
std::vector<std::string> temp_files_in(const fs::path& folder) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.path().filename().string().find(".tmp-") != std::string::npos)
      found.push_back(entry.path().string());
  }
  return found;
}

// A small checkpoint of every stored dtype, including awkward shapes.
Checkpoint sample_checkpoint() {
  Checkpoint checkpoint;
  checkpoint.header = {
      {"kind", "test"}, {"architecture", {{"name", "lenet5"}, {"classes", 10}}}, {"epoch", 3}};
  // A transposed view: its elements in row-major order are 0 3 1 4 2 5, not storage order.
  const Tensor transposed = Tensor::from_vector<double>({0, 1, 2, 3, 4, 5}, Shape{2, 3}).transpose(0, 1);
  checkpoint.tensors = {
      {"conv1.weight", Tensor::from_vector<float>({1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -0.125f}, Shape{2, 3})},
      {"transposed", transposed},
      {"step", Tensor::from_vector<std::int64_t>({-42}, Shape{})},
      {"empty", Tensor::empty(Shape{0, 5}, DType::Float32)},
      {"labels", Tensor::from_vector<std::int64_t>({1, 2, 3, 4, 5}, Shape{5})},
  };
  return checkpoint;
}

// A file with a hand-written header and data section, for damage that save_checkpoint never produces.
std::vector<std::uint8_t> handmade_file(std::uint32_t version, const std::string& header,
                                        const std::vector<std::uint8_t>& data = {}) {
  std::vector<std::uint8_t> file = bytes_of("KILNCKPT");
  for (int i = 0; i < 4; ++i) file.push_back(static_cast<std::uint8_t>(version >> (8 * i)));
  for (int i = 0; i < 8; ++i)
    file.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(header.size()) >> (8 * i)));
  file.insert(file.end(), header.begin(), header.end());
  file.resize((file.size() + 63) / 64 * 64, 0);
  file.insert(file.end(), data.begin(), data.end());
  return file;
}

}  // namespace

// ---- CRC-32 ---------------------------------------------------------------------------------------------

TEST_CASE("checkpoint: crc32 known answers") {
  CHECK(crc32(bytes_of("123456789")) == 0xCBF43926u);  // the standard check value
  CHECK(crc32(bytes_of("")) == 0x00000000u);
  CHECK(crc32(bytes_of("a")) == 0xE8B7BE43u);
  CHECK(crc32(bytes_of("The quick brown fox jumps over the lazy dog")) == 0x414FA339u);
  // One flipped bit changes the checksum.
  CHECK(crc32(bytes_of("123456788")) != 0xCBF43926u);
}

// ---- round trip and layout ------------------------------------------------------------------------------

TEST_CASE("checkpoint: round trip of float32, float64 and int64 tensors, views, 0-d and empty") {
  ScratchFolder folder("round_trip");
  const fs::path path = folder.path() / "last.kiln";
  const Checkpoint saved = sample_checkpoint();
  save_checkpoint(path, saved);
  const Checkpoint loaded = load_checkpoint(path);

  CHECK(loaded.header == saved.header);  // the caller's header exactly: "tensors" is taken back out
  CHECK_FALSE(loaded.header.contains("tensors"));
  REQUIRE(loaded.tensors.size() == saved.tensors.size());
  for (std::size_t i = 0; i < saved.tensors.size(); ++i) {
    const auto& [name, original] = saved.tensors[i];
    const auto& [loaded_name, copy] = loaded.tensors[i];
    INFO("tensor " << name);
    CHECK(loaded_name == name);  // in the order saved
    CHECK(copy.dtype() == original.dtype());
    CHECK(copy.shape() == original.shape());
    CHECK(copy.is_contiguous());
    CHECK(copy.to_vector<double>() == original.to_vector<double>());
  }
  CHECK(loaded.tensors[1].second.to_vector<double>() == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(loaded.tensors[2].second.dim() == 0);
  CHECK(loaded.tensors[2].second.item() == -42);
  CHECK(loaded.tensors[3].second.numel() == 0);
  CHECK(temp_files_in(folder.path()).empty());
}

TEST_CASE("checkpoint: the file layout is the documented one, with 64-byte aligned tensors") {
  ScratchFolder folder("layout");
  const fs::path path = folder.path() / "last.kiln";
  save_checkpoint(path, sample_checkpoint());
  const std::vector<std::uint8_t> file = read_bytes(path);

  REQUIRE(file.size() >= 20);
  CHECK(std::string(file.begin(), file.begin() + 8) == "KILNCKPT");
  CHECK(little_endian(file, 8, 4) == 1);
  const std::uint64_t header_length = little_endian(file, 12, 8);
  const nlohmann::json header =
      nlohmann::json::parse(file.begin() + 20, file.begin() + 20 + static_cast<long>(header_length));
  CHECK(header["epoch"] == 3);
  const std::uint64_t data_start = (20 + header_length + 63) / 64 * 64;
  CHECK(data_start % 64 == 0);
  for (std::uint64_t i = 20 + header_length; i < data_start; ++i) CHECK(file[i] == 0);  // zero padding

  const nlohmann::json& table = header["tensors"];
  REQUIRE(table.size() == 5);
  CHECK(table[0]["name"] == "conv1.weight");
  CHECK(table[0]["dtype"] == "float32");
  CHECK(table[0]["shape"] == nlohmann::json::array({2, 3}));
  CHECK(table[0]["bytes"] == 24);
  CHECK(table[1]["dtype"] == "float64");
  CHECK(table[2]["shape"] == nlohmann::json::array());
  std::uint64_t end = 0;
  for (const nlohmann::json& entry : table) {
    const auto offset = entry["offset"].get<std::uint64_t>();
    CHECK(offset % 64 == 0);
    CHECK(offset >= end);
    end = offset + entry["bytes"].get<std::uint64_t>();
  }
  CHECK(file.size() == data_start + end);

  // The int64 labels 1..5 lie little-endian at their offset, and their crc32 is over exactly those bytes.
  const auto labels_at = data_start + table[4]["offset"].get<std::uint64_t>();
  for (std::uint64_t i = 0; i < 5; ++i) CHECK(little_endian(file, labels_at + 8 * i, 8) == i + 1);
  const std::span<const std::uint8_t> label_bytes(file.data() + labels_at, 40);
  CHECK(table[4]["crc32"] == crc32(label_bytes));
}

TEST_CASE("checkpoint: saving rejects a reserved header key, duplicate names and unstored dtypes") {
  ScratchFolder folder("save_errors");
  const fs::path path = folder.path() / "bad.kiln";
  Checkpoint reserved{{{"tensors", 1}}, {}};
  CHECK_THROWS_WITH_AS(save_checkpoint(path, reserved), doctest::Contains("'tensors' is reserved"),
                       kiln::Error);
  Checkpoint duplicate{{}, {{"w", Tensor::zeros({2})}, {"w", Tensor::zeros({3})}}};
  CHECK_THROWS_WITH_AS(save_checkpoint(path, duplicate), doctest::Contains("two tensors are named 'w'"),
                       kiln::Error);
  Checkpoint bfloat{{}, {{"half", Tensor::empty({2}, DType::BFloat16)}}};
  CHECK_THROWS_WITH_AS(save_checkpoint(path, bfloat), doctest::Contains("tensor 'half' is bfloat16[2]"),
                       kiln::Error);
  CHECK_FALSE(fs::exists(path));
}

// ---- damage the loader must name ------------------------------------------------------------------------

TEST_CASE("checkpoint: a flipped byte in a tensor's data names that tensor") {
  ScratchFolder folder("flip");
  const fs::path path = folder.path() / "last.kiln";
  save_checkpoint(path, sample_checkpoint());
  std::vector<std::uint8_t> file = read_bytes(path);
  const std::uint64_t header_length = little_endian(file, 12, 8);
  const std::uint64_t data_start = (20 + header_length + 63) / 64 * 64;
  file[data_start + 5] ^= 0x01;  // inside conv1.weight, the first tensor
  write_bytes(path, file);
  CHECK_THROWS_WITH_AS(load_checkpoint(path),
                       doctest::Contains("tensor 'conv1.weight' is damaged (checksum mismatch)"),
                       kiln::Error);
}

TEST_CASE("checkpoint: a truncated file says truncated, wherever it is cut") {
  ScratchFolder folder("truncate");
  const fs::path path = folder.path() / "last.kiln";
  save_checkpoint(path, sample_checkpoint());
  const std::vector<std::uint8_t> file = read_bytes(path);
  const std::uint64_t header_length = little_endian(file, 12, 8);
  // In the preamble, in the header, in the padding, in the last tensor, one byte short.
  for (const std::uint64_t keep : {std::uint64_t{12}, 20 + header_length / 2, 20 + header_length,
                                   std::uint64_t{file.size() - 20}, std::uint64_t{file.size() - 1}}) {
    INFO("kept " << keep << " of " << file.size() << " bytes");
    write_bytes(path, std::vector<std::uint8_t>(file.begin(), file.begin() + static_cast<long>(keep)));
    CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("truncated"), kiln::Error);
  }
}

TEST_CASE("checkpoint: wrong magic, a future version and garbage JSON are each named") {
  ScratchFolder folder("bad_files");
  const fs::path path = folder.path() / "bad.kiln";

  write_bytes(path, bytes_of("PK\x03\x04 this is a zip file, not a checkpoint"));
  CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("not a kiln checkpoint"), kiln::Error);
  write_bytes(path, {});
  CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("not a kiln checkpoint"), kiln::Error);

  write_bytes(path, handmade_file(2, R"({"tensors": []})"));
  CHECK_THROWS_WITH_AS(load_checkpoint(path),
                       doctest::Contains("has format version 2; this build of kiln reads version 1"),
                       kiln::Error);

  write_bytes(path, handmade_file(1, R"({"tensors": [}garbage)"));
  CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("the header is not valid JSON"), kiln::Error);
  write_bytes(path, handmade_file(1, "[1, 2]"));
  CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("not an object"), kiln::Error);

  // The same well-formed file loads, so the failures above are about what they say.
  write_bytes(path, handmade_file(1, R"({"note": "ok", "tensors": []})"));
  CHECK(load_checkpoint(path).header == nlohmann::json{{"note", "ok"}});

  CHECK_THROWS_WITH_AS(load_checkpoint(folder.path() / "missing.kiln"),
                       doctest::Contains("missing.kiln does not exist"), kiln::Error);
}

TEST_CASE("checkpoint: load_checkpoint_header reads the header alone, checked as load_checkpoint checks it") {
  ScratchFolder folder("header_only");
  const fs::path path = folder.path() / "last.kiln";
  save_checkpoint(path, sample_checkpoint());
  CHECK(load_checkpoint_header(path) == load_checkpoint(path).header);
  CHECK_FALSE(load_checkpoint_header(path).contains("tensors"));

  // The tensors are not read: a damaged one is load_checkpoint's to find.
  std::vector<std::uint8_t> file = read_bytes(path);
  const std::uint64_t header_length = little_endian(file, 12, 8);
  file[(20 + header_length + 63) / 64 * 64 + 5] ^= 0x01;
  write_bytes(path, file);
  CHECK(load_checkpoint_header(path) == sample_checkpoint().header);
  CHECK_THROWS_AS(load_checkpoint(path), kiln::Error);

  // What it does read, it checks: the magic, the version, the JSON.
  write_bytes(path, bytes_of("PK\x03\x04 this is a zip file, not a checkpoint"));
  CHECK_THROWS_WITH_AS(load_checkpoint_header(path), doctest::Contains("not a kiln checkpoint"), kiln::Error);
  write_bytes(path, handmade_file(2, R"({"tensors": []})"));
  CHECK_THROWS_WITH_AS(load_checkpoint_header(path), doctest::Contains("has format version 2"), kiln::Error);
  write_bytes(path, handmade_file(1, R"({"tensors": [}garbage)"));
  CHECK_THROWS_WITH_AS(load_checkpoint_header(path), doctest::Contains("the header is not valid JSON"),
                       kiln::Error);
}

TEST_CASE("checkpoint: a bad tensor table entry is named") {
  ScratchFolder folder("bad_table");
  const fs::path path = folder.path() / "bad.kiln";
  const std::vector<std::uint8_t> eight_bytes(8, 0);
  const std::string crc = std::to_string(crc32(eight_bytes));

  write_bytes(
      path,
      handmade_file(
          1,
          R"({"tensors": [{"name": "w", "dtype": "float8", "shape": [8], "offset": 0, "bytes": 8, "crc32": )" +
              crc + "}]}",
          eight_bytes));
  CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("tensor 'w' has unknown dtype 'float8'"),
                       kiln::Error);

  write_bytes(
      path,
      handmade_file(
          1,
          R"({"tensors": [{"name": "w", "dtype": "int64", "shape": [2], "offset": 0, "bytes": 8, "crc32": )" +
              crc + "}]}",
          eight_bytes));
  CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("the table says 8 bytes"), kiln::Error);

  write_bytes(
      path,
      handmade_file(
          1,
          R"({"tensors": [{"name": "w", "dtype": "int64", "shape": [1], "offset": 0, "bytes": 8, "crc32": )" +
              crc + "}]}",
          eight_bytes));
  CHECK(load_checkpoint(path).tensors.at(0).second.item() == 0);  // the control: this one is fine

  std::vector<std::uint8_t> trailing = eight_bytes;
  trailing.push_back(0);
  write_bytes(
      path,
      handmade_file(
          1,
          R"({"tensors": [{"name": "w", "dtype": "int64", "shape": [1], "offset": 0, "bytes": 8, "crc32": )" +
              crc + "}]}",
          trailing));
  CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("1 unexpected bytes after its last tensor"),
                       kiln::Error);

  write_bytes(
      path,
      handmade_file(
          1,
          R"({"tensors": [{"name": "w", "dtype": "int64", "shape": [1000000000, 1000000000], "offset": 0, "bytes": 8, "crc32": 0}]})",
          eight_bytes));
  CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("larger than the whole file"), kiln::Error);

  write_bytes(
      path, handmade_file(
                1, R"({"tensors": [{"name": "w", "dtype": "int64", "shape": [1], "offset": 0, "bytes": 8}]})",
                eight_bytes));
  CHECK_THROWS_WITH_AS(load_checkpoint(path), doctest::Contains("tensor 'w' has no valid 'crc32'"),
                       kiln::Error);
}

// ---- atomic writes that fail --------------------------------------------------------------------------
// Permissions do not stop root, so each failure here is one the kernel refuses to anyone.

TEST_CASE("checkpoint: a write whose folder is really a file fails naming the path and errno") {
  ScratchFolder folder("not_a_folder");
  const fs::path blocker = folder.path() / "runs";
  write_bytes(blocker, bytes_of("a regular file where a folder should be"));
  const fs::path path = blocker / "last.kiln";
  CHECK_THROWS_WITH_AS(
      save_checkpoint(path, sample_checkpoint()),
      doctest::Contains(("cannot write checkpoint " + path.string() + ": Not a directory").c_str()),
      kiln::Error);
  CHECK(read_bytes(blocker) == bytes_of("a regular file where a folder should be"));
  CHECK(temp_files_in(folder.path()).empty());
}

TEST_CASE("checkpoint: a failed rename removes the temp file and leaves what was there") {
  // rename(2) cannot put a file over a non-empty folder (EISDIR): the temp file was written and synced,
  // so this exercises the clean-up after the last step that can fail.
  ScratchFolder folder("rename_fails");
  const fs::path path = folder.path() / "last.kiln";
  fs::create_directories(path);
  write_bytes(path / "keep.txt", bytes_of("still here"));
  CHECK_THROWS_WITH_AS(
      save_checkpoint(path, sample_checkpoint()),
      doctest::Contains(("cannot write checkpoint " + path.string() + ": Is a directory").c_str()),
      kiln::Error);
  CHECK(read_bytes(path / "keep.txt") == bytes_of("still here"));
  CHECK(temp_files_in(folder.path()).empty());
}

namespace {

// Lowers this process's file-size limit for a scope. Past the limit write(2) fails with EFBIG, a real
// short write that root is subject to as well. The kernel also sends SIGXFSZ, which would end the
// process, so it is ignored meanwhile.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_limit_);
    previous_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved_limit_;
    lowered.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &lowered);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_limit_);
    std::signal(SIGXFSZ, previous_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_limit_{};
  void (*previous_handler_)(int) = nullptr;
};

}  // namespace

TEST_CASE("checkpoint: a short write (file size limit) keeps the old checkpoint and removes the temp file") {
  ScratchFolder folder("short_write");
  const fs::path path = folder.path() / "last.kiln";
  Checkpoint old_checkpoint{{{"epoch", 1}}, {{"w", Tensor::ones({4})}}};
  save_checkpoint(path, old_checkpoint);
  const std::vector<std::uint8_t> old_bytes = read_bytes(path);

  Checkpoint big{{{"epoch", 2}}, {{"w", Tensor::zeros({64 * 1024})}}};  // 256 KiB, far past the limit
  {
    FileSizeLimit limit(4096);
    CHECK_THROWS_WITH_AS(
        save_checkpoint(path, big),
        doctest::Contains(
            ("cannot write checkpoint " + path.string() + ": File too large (writing ").c_str()),
        kiln::Error);
  }
  CHECK(read_bytes(path) == old_bytes);
  CHECK(load_checkpoint(path).header["epoch"] == 1);
  CHECK(temp_files_in(folder.path()).empty());

  save_checkpoint(path, big);  // with the limit lifted the same save succeeds and replaces the file
  CHECK(load_checkpoint(path).header["epoch"] == 2);
}

TEST_CASE("checkpoint: write_file_atomically replaces a file and leaves no temp file") {
  ScratchFolder folder("atomic");
  const fs::path path = folder.path() / "notes.txt";
  write_file_atomically(path, bytes_of("first"));
  write_file_atomically(path, bytes_of("second, longer"));
  CHECK(read_bytes(path) == bytes_of("second, longer"));
  write_file_atomically(path, {});
  CHECK(fs::file_size(path) == 0);
  CHECK(temp_files_in(folder.path()).empty());
}

// ---- checks the trainer makes -------------------------------------------------------------------------

TEST_CASE("checkpoint: check_header_field follows dotted paths and names both values") {
  const nlohmann::json header = {
      {"kind", "kiln-classifier"}, {"schema", 1}, {"architecture", {{"name", "resnet20"}}}};
  const fs::path path = "runs/a/last.kiln";
  CHECK_NOTHROW(check_header_field(header, "kind", "kiln-classifier", path));
  CHECK_NOTHROW(check_header_field(header, "schema", 1, path));
  CHECK_NOTHROW(check_header_field(header, "architecture.name", "resnet20", path));
  CHECK_THROWS_WITH_AS(
      check_header_field(header, "architecture.name", "lenet5", path),
      "checkpoint runs/a/last.kiln: field 'architecture.name' is 'resnet20', expected 'lenet5'", kiln::Error);
  CHECK_THROWS_WITH_AS(check_header_field(header, "schema", 2, path),
                       "checkpoint runs/a/last.kiln: field 'schema' is 1, expected 2", kiln::Error);
  CHECK_THROWS_WITH_AS(check_header_field(header, "architecture.depth", 20, path),
                       "checkpoint runs/a/last.kiln: field 'architecture.depth' is missing, expected 20",
                       kiln::Error);
  CHECK_THROWS_WITH_AS(check_header_field(header, "kind.name", "x", path),
                       doctest::Contains("field 'kind.name' is missing"), kiln::Error);
}

TEST_CASE("checkpoint: load_into copies exactly matching tensors under a prefix") {
  Tensor weight = Tensor::zeros({2, 3});
  weight.set_requires_grad();
  Tensor bias = Tensor::zeros({3});
  const Checkpoint checkpoint{{},
                              {{"model.weight", Tensor::full({2, 3}, 2.0)},
                               {"model.bias", Tensor::from_vector<float>({1, 2, 3}, Shape{3})},
                               {"optimizer.step", Tensor::scalar(7, DType::Int64)}}};
  load_into({{"weight", weight}, {"bias", bias}}, checkpoint, "ckpt.kiln", "model.");
  CHECK(weight.to_vector<double>() == std::vector<double>(6, 2.0));
  CHECK(bias.to_vector<double>() == std::vector<double>{1, 2, 3});
  CHECK(weight.grad_fn() == nullptr);  // nothing was recorded on the tape
}

TEST_CASE("checkpoint: load_into names the missing, unexpected or mismatched tensor and changes nothing") {
  Tensor weight = Tensor::zeros({2, 3});
  Tensor bias = Tensor::zeros({3});
  const std::vector<NamedTensor> destination = {{"model.weight", weight}, {"model.bias", bias}};
  const auto unchanged = [&] {
    return weight.to_vector<double>() == std::vector<double>(6, 0.0) &&
           bias.to_vector<double>() == std::vector<double>(3, 0.0);
  };

  const Checkpoint missing{{}, {{"model.weight", Tensor::ones({2, 3})}}};
  CHECK_THROWS_WITH_AS(load_into(destination, missing, "a.kiln"),
                       "checkpoint a.kiln has no tensor 'model.bias' (expected float32[3])", kiln::Error);
  CHECK(unchanged());

  const Checkpoint extra{{},
                         {{"model.weight", Tensor::ones({2, 3})},
                          {"model.bias", Tensor::ones({3})},
                          {"model.fc2.weight", Tensor::ones({4, 4})}}};
  CHECK_THROWS_WITH_AS(load_into(destination, extra, "a.kiln"),
                       doctest::Contains("unexpected tensor 'model.fc2.weight' (float32[4, 4])"),
                       kiln::Error);
  CHECK(unchanged());

  const Checkpoint reshaped{{}, {{"model.weight", Tensor::ones({3, 2})}, {"model.bias", Tensor::ones({3})}}};
  CHECK_THROWS_WITH_AS(
      load_into(destination, reshaped, "a.kiln"),
      "checkpoint a.kiln: tensor 'model.weight' is float32[3, 2] in the checkpoint but float32[2, 3] here",
      kiln::Error);
  CHECK(unchanged());

  const Checkpoint retyped{
      {}, {{"model.weight", Tensor::ones({2, 3}, DType::Float64)}, {"model.bias", Tensor::ones({3})}}};
  CHECK_THROWS_WITH_AS(load_into(destination, retyped, "a.kiln"),
                       doctest::Contains("is float64[2, 3] in the checkpoint but float32[2, 3] here"),
                       kiln::Error);
  CHECK(unchanged());
}

}  // namespace train_checkpoint_test
