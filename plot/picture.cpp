#include "plot/picture.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace kiln::plot {
namespace {

constexpr int kCaptionScale = 2;
constexpr int kPad = 8;

std::uint8_t blend(std::uint8_t a, std::uint8_t b) { return static_cast<std::uint8_t>((a + b + 1) / 2); }

// The heat map at image position (y, x) of an image `height` x `width`: bilinear between the map's cell
// centres, clamped at the edges.
float sample(const HeatMap& heat, double y, double x, std::int64_t height, std::int64_t width) {
  const double my =
      std::clamp((y + 0.5) * static_cast<double>(heat.height) / static_cast<double>(height) - 0.5, 0.0,
                 static_cast<double>(heat.height - 1));
  const double mx = std::clamp((x + 0.5) * static_cast<double>(heat.width) / static_cast<double>(width) - 0.5,
                               0.0, static_cast<double>(heat.width - 1));
  const auto y0 = static_cast<std::int64_t>(my), x0 = static_cast<std::int64_t>(mx);
  const std::int64_t y1 = std::min(y0 + 1, heat.height - 1), x1 = std::min(x0 + 1, heat.width - 1);
  const double fy = my - static_cast<double>(y0), fx = mx - static_cast<double>(x0);
  const auto at = [&](std::int64_t r, std::int64_t c) {
    return static_cast<double>(heat.values[r * heat.width + c]);
  };
  return static_cast<float>((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) +
                            fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1)));
}

}  // namespace

Color heat_color(float value) {
  const float v = std::clamp(value, 0.0f, 1.0f);
  // Four straight pieces: blue (0, 0, 1) to cyan (0, 1, 1) to green (0, 1, 0) to yellow (1, 1, 0) to red.
  const auto channel = [](float t) {
    return static_cast<std::uint8_t>(std::lround(255.0f * std::clamp(t, 0.0f, 1.0f)));
  };
  return {channel(4 * v - 2), channel(v < 0.5f ? 4 * v : 4 - 4 * v), channel(2 - 4 * v)};
}

Canvas picture(const ImageView& image, int scale, const std::vector<std::string>& caption,
               const HeatMap* heat) {
  KILN_CHECK(image.height > 0 && image.width > 0 && (image.channels == 1 || image.channels == 3) && scale > 0,
             "plot: cannot draw a ", image.height, "x", image.width, "x", image.channels, " image");
  const int width = static_cast<int>(image.width) * scale, height = static_cast<int>(image.height) * scale;
  const int line = Canvas::text_height("Ag", kCaptionScale) + kPad / 2;
  int caption_width = 0;
  for (const std::string& text : caption)
    caption_width = std::max(caption_width, Canvas::text_width(text, kCaptionScale));
  Canvas canvas(std::max(width, caption_width) + 2 * kPad,
                height + 2 * kPad + static_cast<int>(caption.size()) * line);
  for (std::int64_t y = 0; y < image.height; ++y) {
    for (std::int64_t x = 0; x < image.width; ++x) {
      const std::uint8_t* p = image.pixels + (y * image.width + x) * image.channels;
      const Color pixel = image.channels == 3 ? Color{p[0], p[1], p[2]} : Color{p[0], p[0], p[0]};
      for (int dy = 0; dy < scale; ++dy) {
        for (int dx = 0; dx < scale; ++dx) {
          Color shown = pixel;
          if (heat) {
            const Color hot = heat_color(sample(*heat, static_cast<double>(y) + (dy + 0.5) / scale - 0.5,
                                                static_cast<double>(x) + (dx + 0.5) / scale - 0.5,
                                                image.height, image.width));
            shown = {blend(pixel.r, hot.r), blend(pixel.g, hot.g), blend(pixel.b, hot.b)};
          }
          canvas.set(kPad + static_cast<int>(x) * scale + dx, kPad + static_cast<int>(y) * scale + dy, shown);
        }
      }
    }
  }
  for (std::size_t i = 0; i < caption.size(); ++i) {
    canvas.text(kPad, height + 2 * kPad + static_cast<int>(i) * line, caption[i], kBlack, kCaptionScale);
  }
  return canvas;
}

Canvas contact_sheet(const std::vector<Canvas>& pictures, int columns) {
  KILN_CHECK(!pictures.empty() && columns > 0, "plot: a contact sheet needs pictures and columns");
  int cell_width = 0, cell_height = 0;
  for (const Canvas& p : pictures) {
    cell_width = std::max(cell_width, p.width());
    cell_height = std::max(cell_height, p.height());
  }
  const int count = static_cast<int>(pictures.size()), used = std::min(columns, count);
  const int rows = (count + columns - 1) / columns;
  Canvas sheet(used * cell_width, rows * cell_height);
  for (int i = 0; i < count; ++i) {
    const Canvas& p = pictures[static_cast<std::size_t>(i)];
    const int left = (i % columns) * cell_width, top = (i / columns) * cell_height;
    for (int y = 0; y < p.height(); ++y) {
      for (int x = 0; x < p.width(); ++x) sheet.set(left + x, top + y, p.at(x, y));
    }
  }
  return sheet;
}

}  // namespace kiln::plot
