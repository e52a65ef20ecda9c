#include "plot/canvas.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.hpp"
#include "plot/easy_font.hpp"
#include "plot/png_writer.hpp"

namespace kiln::plot {

Canvas::Canvas(int width, int height, Color background) : width_(width), height_(height) {
  KILN_CHECK(width > 0 && height > 0, "plot: a canvas needs a positive size, got ", width, "x", height);
  rgb_.resize(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
  fill_rect(0, 0, width, height, background);
}

Color Canvas::at(int x, int y) const {
  KILN_CHECK(x >= 0 && y >= 0 && x < width_ && y < height_, "plot: pixel (", x, ", ", y, ") is outside the ",
             width_, "x", height_, " canvas");
  const std::size_t i =
      (static_cast<std::size_t>(y) * static_cast<std::size_t>(width_) + static_cast<std::size_t>(x)) * 3;
  return {rgb_[i], rgb_[i + 1], rgb_[i + 2]};
}

void Canvas::set(int x, int y, Color color) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
  const std::size_t i =
      (static_cast<std::size_t>(y) * static_cast<std::size_t>(width_) + static_cast<std::size_t>(x)) * 3;
  rgb_[i] = color.r;
  rgb_[i + 1] = color.g;
  rgb_[i + 2] = color.b;
}

void Canvas::fill_rect(int x0, int y0, int x1, int y1, Color color) {
  x0 = std::max(x0, 0);
  y0 = std::max(y0, 0);
  x1 = std::min(x1, width_);
  y1 = std::min(y1, height_);
  for (int y = y0; y < y1; ++y) {
    for (int x = x0; x < x1; ++x) set(x, y, color);
  }
}

// Steps one pixel at a time along the longer axis (a DDA), stamping a thickness x thickness square at each
// step: plenty for plot lines, and every pixel of the line is hit whatever its slope.
void Canvas::line(double x0, double y0, double x1, double y1, Color color, int thickness) {
  const double dx = x1 - x0, dy = y1 - y0;
  const int steps = std::max(1, static_cast<int>(std::ceil(std::max(std::fabs(dx), std::fabs(dy)))));
  const int before = (thickness - 1) / 2, after = thickness - before;
  for (int i = 0; i <= steps; ++i) {
    const double t = static_cast<double>(i) / steps;
    const int x = static_cast<int>(std::lround(x0 + t * dx)), y = static_cast<int>(std::lround(y0 + t * dy));
    fill_rect(x - before, y - before, x + after, y + after, color);
  }
}

void Canvas::text(int x, int y, std::string_view text, Color color, int scale) {
  for (const FontQuad& quad : easy_font_quads(text)) {
    fill_rect(x + quad.x0 * scale, y + quad.y0 * scale, x + quad.x1 * scale, y + quad.y1 * scale, color);
  }
}

int Canvas::text_width(std::string_view text, int scale) { return easy_font_width(text) * scale; }
int Canvas::text_height(std::string_view text, int scale) { return easy_font_height(text) * scale; }

std::vector<std::uint8_t> Canvas::encode_png() const { return encode_rgb_png(width_, height_, rgb_.data()); }

}  // namespace kiln::plot
