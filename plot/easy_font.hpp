// Text as rectangles: stb_easy_font (Debian's libstb-dev) draws ASCII from horizontal and vertical
// segments and returns them as quads; kiln keeps only their corners, in font units (a capital letter is
// about 7 units tall), and the canvas fills them at any whole-pixel scale. Compiled in stb_plot.cpp.
#pragma once

#include <string_view>
#include <vector>

namespace kiln::plot {

struct FontQuad {
  int x0, y0, x1, y1;  // [x0, x1) x [y0, y1), from the text's top-left corner
};

std::vector<FontQuad> easy_font_quads(std::string_view text);
int easy_font_width(std::string_view text);
int easy_font_height(std::string_view text);

}  // namespace kiln::plot
