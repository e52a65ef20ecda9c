// The stb library the plots draw text with (Debian's libstb-dev): stb_easy_font (ASCII text as segment
// quads; its functions are static, so each includer would get its own copy, hence this one file). PNG
// encoding is data::encode_png's (stb_image_write, compiled in data/stb_image_impl.cpp).
// stb is third-party C-style code; its warnings are not ours to fix.
#include <cmath>
#include <string>

#include "data/image.hpp"
#include "plot/easy_font.hpp"
#include "plot/png_writer.hpp"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

namespace kiln::plot {
namespace {

// stb_easy_font's vertex: x, y, z floats and 4 color bytes; four vertices a quad.
struct Vertex {
  float x, y, z;
  unsigned char color[4];
};

}  // namespace

std::vector<FontQuad> easy_font_quads(std::string_view text) {
  std::string copy(text);  // stb wants a mutable, NUL-terminated string
  // stb's own estimate is about 270 bytes a character; give each character room for 30 quads.
  std::vector<Vertex> vertices((copy.size() + 1) * 30 * 4);
  const int quads = stb_easy_font_print(0.0f, 0.0f, copy.data(), nullptr, vertices.data(),
                                        static_cast<int>(vertices.size() * sizeof(Vertex)));
  std::vector<FontQuad> out;
  out.reserve(static_cast<std::size_t>(quads));
  for (int q = 0; q < quads; ++q) {
    const Vertex& top_left = vertices[static_cast<std::size_t>(q) * 4];
    const Vertex& bottom_right = vertices[static_cast<std::size_t>(q) * 4 + 2];
    out.push_back({static_cast<int>(std::lround(top_left.x)), static_cast<int>(std::lround(top_left.y)),
                   static_cast<int>(std::lround(bottom_right.x)),
                   static_cast<int>(std::lround(bottom_right.y))});
  }
  return out;
}

int easy_font_width(std::string_view text) {
  std::string copy(text);
  return stb_easy_font_width(copy.data());
}

int easy_font_height(std::string_view text) {
  std::string copy(text);
  return stb_easy_font_height(copy.data());
}

std::vector<std::uint8_t> encode_rgb_png(int width, int height, const std::uint8_t* rgb) {
  const std::size_t bytes = static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3;
  return data::encode_png({.height = height, .width = width, .channels = 3, .pixels = {rgb, rgb + bytes}});
}

}  // namespace kiln::plot
