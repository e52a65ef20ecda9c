// Canvas: an RGB raster that kiln draws its own plots on (no Python, no plotting library), and writes as a
// PNG.
//
//   pixel (x, y): x rightwards from the left edge, y downwards from the top edge, both from 0
//
// The drawing is deliberately small: pixels, axis-aligned rectangles, lines of a given thickness, and
// text in stb_easy_font's segment font (Debian's libstb-dev), scaled by whole pixels. Everything outside
// the canvas is clipped, so callers never check bounds.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace kiln::plot {

struct Color {
  std::uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(const Color&, const Color&) = default;
};

inline constexpr Color kWhite{255, 255, 255};
inline constexpr Color kBlack{0, 0, 0};
inline constexpr Color kGrid{225, 225, 225};
inline constexpr Color kAxis{90, 90, 90};

class Canvas {
 public:
  Canvas(int width, int height, Color background = kWhite);

  int width() const { return width_; }
  int height() const { return height_; }
  Color at(int x, int y) const;  // throws kiln::Error outside the canvas

  void set(int x, int y, Color color);  // clipped
  // The rectangle [x0, x1) x [y0, y1), clipped; empty when x1 <= x0 or y1 <= y0.
  void fill_rect(int x0, int y0, int x1, int y1, Color color);
  // A straight line from (x0, y0) to (x1, y1), both ends included, `thickness` pixels wide: a square pen
  // centred on the line, so it also reaches half its width past each end.
  void line(double x0, double y0, double x1, double y1, Color color, int thickness = 1);

  // Text with its top-left corner at (x, y); `scale` pixels per font unit. Newlines start a new line.
  void text(int x, int y, std::string_view text, Color color, int scale = 1);
  // The size text(…, scale) covers, in pixels.
  static int text_width(std::string_view text, int scale = 1);
  static int text_height(std::string_view text, int scale = 1);

  // The canvas as an 8-bit RGB PNG file's bytes. Callers write them with train::write_file_atomically, so a
  // reader never sees half a picture (train::save_png in train/run_plots.hpp does both).
  std::vector<std::uint8_t> encode_png() const;

 private:
  int width_, height_;
  std::vector<std::uint8_t> rgb_;  // row-major, 3 bytes a pixel
};

}  // namespace kiln::plot
