// PNG encoding through stb_image_write (Debian's libstb-dev), compiled in stb_plot.cpp.
#pragma once

#include <cstdint>
#include <filesystem>

namespace kiln::plot {

// Writes width x height RGB pixels (3 bytes each, row-major, top row first). False when the file cannot be
// written.
bool write_rgb_png(const std::filesystem::path& path, int width, int height, const std::uint8_t* rgb);

}  // namespace kiln::plot
