// Test support for the data/ tests: a temporary folder, and image files written with stb_image_write,
// so each test makes the tiny images it needs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>

#include "data/image.hpp"

namespace kiln::test {

// A fresh, empty folder under the system's temporary directory, removed with its contents on
// destruction.
class TemporaryFolder {
 public:
  TemporaryFolder();
  ~TemporaryFolder();
  TemporaryFolder(const TemporaryFolder&) = delete;
  TemporaryFolder& operator=(const TemporaryFolder&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::filesystem::path& relative) const { return path_ / relative; }

 private:
  std::filesystem::path path_;
};

// An image whose pixels follow a pattern that differs at every position and channel (offset by `seed`).
// `channels` may be 1 to 4 here, so tests can write grey+alpha and RGBA files.
data::Image pattern_image(std::int64_t height, std::int64_t width, std::int64_t channels, int seed = 0);
// An image with every value equal to `value`.
data::Image solid_image(std::int64_t height, std::int64_t width, std::int64_t channels, std::uint8_t value);

// Writes `image` to `path` in the format its extension names: .png .bmp .tga (lossless) or .jpg / .jpeg
// (quality 100), in any letter case. Creates the parent folders. stb_image_write stores a grey BMP or
// JPEG in colour.
void write_image(const std::filesystem::path& path, const data::Image& image);
// Writes `contents` as the whole file. Creates the parent folders.
void write_bytes(const std::filesystem::path& path, std::string_view contents);

}  // namespace kiln::test
