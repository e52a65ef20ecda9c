// PNG encoding through stb_image_write (Debian's libstb-dev), compiled in stb_plot.cpp.
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::plot {

// The PNG file of width x height RGB pixels (3 bytes each, row-major, top row first), as bytes.
std::vector<std::uint8_t> encode_rgb_png(int width, int height, const std::uint8_t* rgb);

}  // namespace kiln::plot
