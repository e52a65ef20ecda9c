// Image: a decoded picture as 8-bit pixels, and decoding from a file or from bytes in memory.
//
// Decoding uses stb_image (Debian's libstb-dev) and reads JPEG, PNG, BMP and TGA. An image keeps the
// colour it was stored with, reduced to what a classifier uses:
//   grayscale          -> 1 channel
//   grayscale + alpha  -> 1 channel (alpha dropped)
//   RGB                -> 3 channels
//   RGBA               -> 3 channels (alpha dropped, not composited: the stored colour of a transparent
//                         pixel is kept, as PIL's convert("RGB") does)
//   palette PNG        -> 3 channels; 16-bit PNG -> 8 bits
// Turning an Image into a model input (resize, channel count, normalization) is Preprocessing's job
// (data/preprocessing.hpp), and only its.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace kiln::data {

// ITU-R BT.601 luma: the grey a colour pixel becomes, in a 1-channel preprocessing and in the grayscale
// augmentation alike.
constexpr float luma(float red, float green, float blue) {
  return 0.299f * red + 0.587f * green + 0.114f * blue;
}

struct Image {
  std::int64_t height = 0, width = 0, channels = 0;  // channels is 1 or 3
  std::vector<std::uint8_t> pixels;                  // [height, width, channels], row-major (HWC)

  std::uint8_t at(std::int64_t row, std::int64_t column, std::int64_t channel) const {
    return pixels[static_cast<std::size_t>((row * width + column) * channels + channel)];
  }
};

// Decodes the file at `path`. Throws kiln::Error naming the file when it is missing, unreadable, empty,
// or not an image stb_image can decode ("photos/cat.jpg: not an image (stb_image: ...)").
Image decode_image_file(const std::filesystem::path& path);

// Decodes an encoded image held in memory; `name_for_errors` (usually the file it came from) starts
// every error message.
Image decode_image_bytes(std::span<const std::uint8_t> bytes, const std::string& name_for_errors);

// The PNG file of `image` (gray or RGB, 8 bits a channel, lossless), as bytes.
std::vector<std::uint8_t> encode_png(const Image& image);

// The whole file as bytes. Throws kiln::Error naming the file and saying whether it is missing, a folder,
// or unreadable (with the system's reason).
std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path);

// path's extension in lower case, with its dot (".jpg" for "IMG_1.JPG"), or "" when it has none.
std::string lowercase_extension(const std::filesystem::path& path);

// Whether `path` has one of the extensions decode_image_file reads: .jpg .jpeg .png .bmp .tga, in any
// letter case. Only the name is looked at, not the contents.
bool is_image_file(const std::filesystem::path& path);

}  // namespace kiln::data
