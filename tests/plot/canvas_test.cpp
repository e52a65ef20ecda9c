// The plotting canvas: pixels, clipped rectangles, lines of any slope and thickness, text, and the PNG it
// writes (read back with stb_image).
#include "plot/canvas.hpp"

#include <doctest/doctest.h>
#include <stb/stb_image.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/error.hpp"
#include "train/run_plots.hpp"

namespace plot_canvas_test {

using kiln::plot::Canvas;
using kiln::plot::Color;
using kiln::plot::kBlack;
using kiln::plot::kWhite;

namespace {

constexpr Color kRed{255, 0, 0};

int count_of(const Canvas& canvas, Color color) {
  int count = 0;
  for (int y = 0; y < canvas.height(); ++y) {
    for (int x = 0; x < canvas.width(); ++x) count += canvas.at(x, y) == color;
  }
  return count;
}

}  // namespace

TEST_CASE("plot canvas: starts as the background, sets pixels and clips rectangles to the canvas") {
  Canvas canvas(10, 6);
  CHECK(count_of(canvas, kWhite) == 60);
  canvas.set(3, 2, kRed);
  canvas.set(-1, 2, kRed);  // outside: ignored
  canvas.set(10, 0, kRed);
  CHECK(canvas.at(3, 2) == kRed);
  CHECK(count_of(canvas, kRed) == 1);
  canvas.fill_rect(8, 4, 20, 20, kBlack);  // clipped to [8, 10) x [4, 6)
  CHECK(count_of(canvas, kBlack) == 4);
  canvas.fill_rect(5, 5, 5, 9, kBlack);  // empty
  CHECK(count_of(canvas, kBlack) == 4);
  CHECK_THROWS_AS(canvas.at(10, 0), kiln::Error);
  CHECK_THROWS_AS(Canvas(0, 5), kiln::Error);
}

TEST_CASE("plot canvas: a line hits both ends and one pixel per step along its longer axis") {
  Canvas canvas(20, 20);
  canvas.line(2, 3, 17, 9, kRed);  // 15 steps along x
  CHECK(canvas.at(2, 3) == kRed);
  CHECK(canvas.at(17, 9) == kRed);
  CHECK(count_of(canvas, kRed) == 16);
  for (int x = 2; x <= 17; ++x) {
    int in_column = 0;
    for (int y = 0; y < 20; ++y) in_column += canvas.at(x, y) == kRed;
    CHECK(in_column == 1);
  }
  Canvas thick(20, 20);
  thick.line(5, 10, 14, 10, kRed, 3);  // 3 pixels wide: rows 9 to 11, and the pen's half past each end
  CHECK(count_of(thick, kRed) == 12 * 3);
  CHECK(thick.at(4, 9) == kRed);
  CHECK(thick.at(15, 11) == kRed);
  CHECK_FALSE(thick.at(16, 10) == kRed);
}

TEST_CASE("plot canvas: text draws inside the box its size reports, and more text covers more") {
  Canvas canvas(200, 60);
  const int width = Canvas::text_width("loss 0.25", 2), height = Canvas::text_height("loss 0.25", 2);
  CHECK(width > 0);
  CHECK(height > 0);
  canvas.text(10, 20, "loss 0.25", kBlack, 2);
  const int inked = count_of(canvas, kBlack);
  CHECK(inked > 50);
  // Nothing outside the reported box.
  for (int y = 0; y < canvas.height(); ++y) {
    for (int x = 0; x < canvas.width(); ++x) {
      if (canvas.at(x, y) == kBlack) {
        CHECK(x >= 10);
        CHECK(x < 10 + width);
        CHECK(y >= 20);
        CHECK(y < 20 + height);
      }
    }
  }
  Canvas longer(200, 60);
  longer.text(10, 20, "loss 0.25 and more", kBlack, 2);
  CHECK(count_of(longer, kBlack) > inked);
  CHECK(Canvas::text_width("ab", 3) == 3 * Canvas::text_width("ab", 1));
}

TEST_CASE("plot canvas: saved as a PNG, it reads back pixel for pixel, and a bad path is named") {
  Canvas canvas(7, 5);
  canvas.fill_rect(1, 1, 4, 3, kRed);
  canvas.set(6, 4, Color{1, 2, 3});
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("kiln-canvas-test-" + std::to_string(::getpid()) + ".png");
  kiln::train::save_png(canvas, file);
  CHECK_FALSE(std::filesystem::exists(file.string() + ".tmp-" + std::to_string(::getpid())));
  int width = 0, height = 0, channels = 0;
  unsigned char* pixels = stbi_load(file.c_str(), &width, &height, &channels, 3);
  REQUIRE(pixels != nullptr);
  CHECK(width == 7);
  CHECK(height == 5);
  for (int y = 0; y < 5; ++y) {
    for (int x = 0; x < 7; ++x) {
      const unsigned char* p = pixels + (y * 7 + x) * 3;
      const Color expected = canvas.at(x, y);
      CHECK(Color{p[0], p[1], p[2]} == expected);
    }
  }
  stbi_image_free(pixels);
  std::filesystem::remove(file);
  CHECK_THROWS_WITH_AS(kiln::train::save_png(canvas, "/nonexistent-folder/plot.png"),
                       doctest::Contains("cannot write picture /nonexistent-folder/plot.png"), kiln::Error);
}

}  // namespace plot_canvas_test
