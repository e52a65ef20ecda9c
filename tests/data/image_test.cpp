// Tests for data/image.hpp: decoding each format and colour layout, and the errors for files that are
// not images.
#include "data/image.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <vector>

#include "core/error.hpp"
#include "tests/data/image_writer.hpp"

namespace data_image_test {

using kiln::Error;
using kiln::data::decode_image_bytes;
using kiln::data::decode_image_file;
using kiln::data::Image;
using kiln::test::pattern_image;
using kiln::test::TemporaryFolder;
using kiln::test::write_bytes;
using kiln::test::write_image;

namespace {

// stb_image_write stores every JPEG in colour, so the greyscale JPEG is built here by hand: a 16x8
// baseline JPEG with one component and two 8x8 blocks, left all 200 and right all 100. Each block has
// only its DC coefficient, 8 * (value - 128) with every quantizer 1: 576, then a difference of -800.
// Both Huffman tables hold a single 1-bit code "0": the DC one for size category 10 (the difference needs
// 10 bits), the AC one for end-of-block. Entropy-coded bits, per block: "0" (category 10), the 10-bit
// difference (576 = 1001000000; -800 as 1023 - 800 = 0011011111), "0" (end of block).
std::vector<std::uint8_t> grey_jpeg_16x8() {
  std::vector<std::uint8_t> bytes{0xFF, 0xD8,                     // start of image
                                  0xFF, 0xDB, 0x00, 0x43, 0x00};  // quantization table 0:
  bytes.insert(bytes.end(), 64, 1);                               //   all ones
  const std::vector<std::uint8_t> rest{
      0xFF, 0xC0, 0x00, 0x0B, 8,    0x00, 8,    0x00, 16, 1, 1, 0x11, 0,  // frame: 8 bits, 8x16, 1 component
      0xFF, 0xC4, 0x00, 0x14, 0x00, 1,    0,    0,    0,  0, 0, 0,    0,
      0,    0,    0,    0,    0,    0,    0,    0,    10,  // DC table: "0" -> 10
      0xFF, 0xC4, 0x00, 0x14, 0x10, 1,    0,    0,    0,  0, 0, 0,    0,
      0,    0,    0,    0,    0,    0,    0,    0,    0,      // AC table: "0" -> EOB
      0xFF, 0xDA, 0x00, 0x08, 1,    1,    0x00, 0,    63, 0,  // scan: component 1, tables 0/0
      0x48, 0x01, 0xBE,                                       // 0 1001000000 0 | 0 0011011111 0
      0xFF, 0xD9};                                            // end of image
  bytes.insert(bytes.end(), rest.begin(), rest.end());
  return bytes;
}

std::vector<std::uint8_t> file_bytes(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("data/image: PNG, BMP and TGA decode to exactly the pixels written, grey and colour") {
  const TemporaryFolder folder;
  for (const std::string extension : {".png", ".bmp", ".tga"}) {
    // stb_image_write stores a grey BMP as 24-bit colour, so BMP is checked in colour only (a grey
    // image read as three equal channels is checked below).
    for (const std::int64_t channels :
         extension == ".bmp" ? std::vector<std::int64_t>{3} : std::vector<std::int64_t>{1, 3}) {
      CAPTURE(extension);
      CAPTURE(channels);
      const Image written = pattern_image(5, 7, channels);
      const auto path = folder / ("image" + std::to_string(channels) + extension);
      write_image(path, written);
      const Image read = decode_image_file(path);
      CHECK(read.height == 5);
      CHECK(read.width == 7);
      CHECK(read.channels == channels);
      CHECK(read.pixels == written.pixels);
    }
  }
}

TEST_CASE("data/image: a stored-as-colour grey BMP keeps its three equal channels") {
  const TemporaryFolder folder;
  const Image grey = pattern_image(3, 5, 1);
  write_image(folder / "grey.bmp", grey);
  const Image read = decode_image_file(folder / "grey.bmp");
  REQUIRE(read.channels == 3);
  for (std::int64_t y = 0; y < 3; ++y) {
    for (std::int64_t x = 0; x < 5; ++x) {
      for (std::int64_t c = 0; c < 3; ++c) CHECK(read.at(y, x, c) == grey.at(y, x, 0));
    }
  }
}

TEST_CASE("data/image: a greyscale JPEG decodes to one channel") {
  const Image read = decode_image_bytes(grey_jpeg_16x8(), "grey.jpg");
  CHECK(read.height == 8);
  CHECK(read.width == 16);
  REQUIRE(read.channels == 1);
  for (std::int64_t y = 0; y < 8; ++y) {
    for (std::int64_t x = 0; x < 16; ++x)
      CHECK(read.at(y, x, 0) == doctest::Approx(x < 8 ? 200 : 100).epsilon(0.01));
  }
}

TEST_CASE("data/image: a colour JPEG decodes to its shape and close to the pixels written") {
  const TemporaryFolder folder;
  // A smooth image, which JPEG at quality 100 keeps to within a few levels.
  Image written{8, 16, 3, {}};
  for (std::int64_t y = 0; y < 8; ++y) {
    for (std::int64_t x = 0; x < 16; ++x) {
      for (std::int64_t c = 0; c < 3; ++c)
        written.pixels.push_back(static_cast<std::uint8_t>(40 + 8 * x + 4 * y + 20 * c));
    }
  }
  for (const char* name : {"photo.jpg", "photo.JPEG"}) {
    CAPTURE(name);
    write_image(folder / name, written);
    const Image read = decode_image_file(folder / name);
    REQUIRE(read.height == 8);
    REQUIRE(read.width == 16);
    REQUIRE(read.channels == 3);
    int largest_error = 0;
    for (std::size_t i = 0; i < read.pixels.size(); ++i) {
      largest_error = std::max(largest_error, std::abs(int{read.pixels[i]} - int{written.pixels[i]}));
    }
    CHECK(largest_error <= 6);
  }
}

TEST_CASE("data/image: alpha is dropped, RGBA -> RGB and grey+alpha -> grey") {
  const TemporaryFolder folder;
  SUBCASE("RGBA") {
    const Image rgba = pattern_image(3, 4, 4);
    write_image(folder / "rgba.png", rgba);
    const Image read = decode_image_file(folder / "rgba.png");
    REQUIRE(read.channels == 3);
    for (std::int64_t y = 0; y < 3; ++y) {
      for (std::int64_t x = 0; x < 4; ++x) {
        for (std::int64_t c = 0; c < 3; ++c) CHECK(read.at(y, x, c) == rgba.at(y, x, c));
      }
    }
  }
  SUBCASE("grey + alpha") {
    const Image grey_alpha = pattern_image(3, 4, 2);
    write_image(folder / "ga.png", grey_alpha);
    const Image read = decode_image_file(folder / "ga.png");
    REQUIRE(read.channels == 1);
    for (std::int64_t y = 0; y < 3; ++y) {
      for (std::int64_t x = 0; x < 4; ++x) CHECK(read.at(y, x, 0) == grey_alpha.at(y, x, 0));
    }
  }
}

TEST_CASE("data/image: decode_image_bytes decodes from memory and names the source in errors") {
  const TemporaryFolder folder;
  const Image written = pattern_image(2, 3, 3);
  write_image(folder / "a.png", written);
  const std::vector<std::uint8_t> bytes = file_bytes(folder / "a.png");
  CHECK(decode_image_bytes(bytes, "memory").pixels == written.pixels);

  const std::vector<std::uint8_t> garbage{'h', 'e', 'l', 'l', 'o'};
  CHECK_THROWS_WITH_AS(decode_image_bytes(garbage, "upload #3"),
                       doctest::Contains("upload #3: not an image (stb_image: "), Error);
  CHECK_THROWS_WITH_AS(decode_image_bytes({}, "upload #4"), doctest::Contains("upload #4: empty file"),
                       Error);
}

TEST_CASE("data/image: files that are not images give errors naming the file") {
  const TemporaryFolder folder;
  SUBCASE("text with an image extension") {
    const auto path = folder / "notes.jpg";
    write_bytes(path, "this is not a picture of a cat");
    CHECK_THROWS_WITH_AS(decode_image_file(path),
                         doctest::Contains((path.string() + ": not an image (stb_image: ").c_str()), Error);
  }
  SUBCASE("a truncated PNG") {
    write_image(folder / "whole.png", pattern_image(16, 16, 3));
    const std::vector<std::uint8_t> bytes = file_bytes(folder / "whole.png");
    const auto path = folder / "cut.png";
    write_bytes(path,
                std::string(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2)));
    CHECK_THROWS_WITH_AS(decode_image_file(path),
                         doctest::Contains((path.string() + ": not an image").c_str()), Error);
  }
  SUBCASE("an empty file") {
    const auto path = folder / "empty.png";
    write_bytes(path, "");
    CHECK_THROWS_WITH_AS(decode_image_file(path), doctest::Contains((path.string() + ": empty file").c_str()),
                         Error);
  }
  SUBCASE("a missing file") {
    const auto path = folder / "missing.png";
    CHECK_THROWS_WITH_AS(decode_image_file(path),
                         doctest::Contains((path.string() + ": no such file").c_str()), Error);
  }
  SUBCASE("a folder") {
    std::filesystem::create_directory(folder / "dir.png");
    CHECK_THROWS_WITH_AS(decode_image_file(folder / "dir.png"), doctest::Contains("is a directory"), Error);
  }
}

TEST_CASE("data/image: is_image_file goes by extension, in any letter case") {
  using kiln::data::is_image_file;
  for (const char* name : {"a.jpg", "a.JPG", "b.jpeg", "c.Png", "d.bmp", "e.TGA", "dir/f.png"}) {
    CAPTURE(name);
    CHECK(is_image_file(name));
  }
  for (const char* name : {"a.txt", "jpg", "a.gif", "a.png.bak", "a.webp", ".png.txt"}) {
    CAPTURE(name);
    CHECK_FALSE(is_image_file(name));
  }
}

}  // namespace data_image_test
