#include "data/image.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>

#include "core/error.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace kiln::data {

std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path) {
  std::error_code status;
  if (!std::filesystem::exists(path, status)) fail(path.string(), ": no such file");
  if (std::filesystem::is_directory(path, status)) fail(path.string(), ": is a directory, not an image file");
  std::ifstream file(path, std::ios::binary);
  if (!file) fail(path.string(), ": cannot open (", std::strerror(errno), ")");
  file.seekg(0, std::ios::end);
  const std::streamoff size = file.tellg();
  file.seekg(0, std::ios::beg);
  if (size < 0) fail(path.string(), ": cannot read (", std::strerror(errno), ")");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  if (!file.read(reinterpret_cast<char*>(bytes.data()), size)) {
    fail(path.string(), ": read failed (", std::strerror(errno), ")");
  }
  return bytes;
}

std::vector<std::uint8_t> encode_png(const Image& image) {
  KILN_CHECK((image.channels == 1 || image.channels == 3) && image.height > 0 && image.width > 0 &&
                 image.pixels.size() == static_cast<std::size_t>(image.height * image.width * image.channels),
             "encode_png: an image must be gray or RGB with height * width * channels pixels");
  std::vector<std::uint8_t> png;
  const auto append = [](void* context, void* data, int size) {
    auto* out = static_cast<std::vector<std::uint8_t>*>(context);
    const auto* bytes = static_cast<const std::uint8_t*>(data);
    out->insert(out->end(), bytes, bytes + size);
  };
  const int width = static_cast<int>(image.width), channels = static_cast<int>(image.channels);
  KILN_CHECK(stbi_write_png_to_func(append, &png, width, static_cast<int>(image.height), channels,
                                    image.pixels.data(), width * channels) != 0,
             "encode_png: stb_image_write failed on a ", image.width, "x", image.height, " image");
  return png;
}

Image decode_image_bytes(std::span<const std::uint8_t> bytes, const std::string& name_for_errors) {
  KILN_CHECK(!bytes.empty(), name_for_errors, ": empty file (0 bytes), not an image");
  KILN_CHECK(bytes.size() <= static_cast<std::size_t>(std::numeric_limits<int>::max()), name_for_errors, ": ",
             bytes.size(), " bytes is too large for stb_image");

  int width = 0, height = 0, stored_channels = 0;
  // desired_channels = 0: decode with the file's own channel count (1 to 4), reduced below.
  std::unique_ptr<stbi_uc, void (*)(void*)> decoded(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &width, &height, &stored_channels,
                            0),
      stbi_image_free);
  if (!decoded) fail(name_for_errors, ": not an image (stb_image: ", stbi_failure_reason(), ")");

  Image image;
  image.height = height;
  image.width = width;
  image.channels = stored_channels >= 3 ? 3 : 1;  // colour or not; alpha (channel 2 or 4) is dropped
  const auto pixel_count = static_cast<std::size_t>(image.height * image.width);
  const auto kept = static_cast<std::size_t>(image.channels),
             stored = static_cast<std::size_t>(stored_channels);
  image.pixels.resize(pixel_count * kept);
  for (std::size_t pixel = 0; pixel < pixel_count; ++pixel) {
    std::copy_n(decoded.get() + pixel * stored, kept, image.pixels.data() + pixel * kept);
  }
  return image;
}

Image decode_image_file(const std::filesystem::path& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return decode_image_bytes(bytes, path.string());
}

std::string lowercase_extension(const std::filesystem::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return extension;
}

bool is_image_file(const std::filesystem::path& path) {
  const std::string extension = lowercase_extension(path);
  return extension == ".jpg" || extension == ".jpeg" || extension == ".png" || extension == ".bmp" ||
         extension == ".tga";
}

}  // namespace kiln::data
