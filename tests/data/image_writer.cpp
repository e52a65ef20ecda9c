// Test images written with stb_image_write (its implementation is compiled once, in data/stb_image_impl.cpp).
#include "tests/data/image_writer.hpp"

#include <cctype>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

#include <stb/stb_image_write.h>

namespace kiln::test {

TemporaryFolder::TemporaryFolder() {
  std::random_device entropy;
  const std::filesystem::path base = std::filesystem::temp_directory_path();
  do {
    path_ = base / ("kiln-data-test-" + std::to_string(entropy()) + std::to_string(entropy()));
  } while (!std::filesystem::create_directory(path_));
}

TemporaryFolder::~TemporaryFolder() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

data::Image pattern_image(std::int64_t height, std::int64_t width, std::int64_t channels, int seed) {
  data::Image image{height, width, channels, {}};
  for (std::int64_t y = 0; y < height; ++y) {
    for (std::int64_t x = 0; x < width; ++x) {
      for (std::int64_t c = 0; c < channels; ++c) {
        image.pixels.push_back(static_cast<std::uint8_t>((y * 53 + x * 19 + c * 71 + seed * 13 + 7) % 256));
      }
    }
  }
  return image;
}

data::Image solid_image(std::int64_t height, std::int64_t width, std::int64_t channels, std::uint8_t value) {
  return {height, width, channels,
          std::vector<std::uint8_t>(static_cast<std::size_t>(height * width * channels), value)};
}

void write_image(const std::filesystem::path& path, const data::Image& image) {
  std::filesystem::create_directories(path.parent_path());
  const std::string name = path.string();
  std::string extension = path.extension().string();
  for (char& letter : extension) letter = static_cast<char>(std::tolower(static_cast<unsigned char>(letter)));
  const int w = static_cast<int>(image.width), h = static_cast<int>(image.height),
            c = static_cast<int>(image.channels);
  const void* pixels = image.pixels.data();
  int written = 0;
  if (extension == ".png") {
    written = stbi_write_png(name.c_str(), w, h, c, pixels, w * c);
  } else if (extension == ".bmp") {
    written = stbi_write_bmp(name.c_str(), w, h, c, pixels);
  } else if (extension == ".tga") {
    written = stbi_write_tga(name.c_str(), w, h, c, pixels);
  } else if (extension == ".jpg" || extension == ".jpeg") {
    written = stbi_write_jpg(name.c_str(), w, h, c, pixels, 100);
  } else {
    throw std::runtime_error("write_image: unknown extension " + extension);
  }
  if (!written) throw std::runtime_error("write_image: could not write " + name);
}

void write_bytes(const std::filesystem::path& path, std::string_view contents) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream file(path, std::ios::binary);
  file.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  if (!file) throw std::runtime_error("write_bytes: could not write " + path.string());
}

}  // namespace kiln::test
