// Pictures of images: an image enlarged to be seen (CIFAR's 32x32 is a thumbnail), optionally with a heat
// map laid over it, and caption lines under it. Grad-CAM's explanations and eval's misclassified images
// are drawn with these.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plot/canvas.hpp"

namespace kiln::plot {

// An image to draw: height x width pixels of `channels` (1 gray or 3 RGB) bytes each, row-major.
struct ImageView {
  std::int64_t height = 0, width = 0, channels = 0;
  const std::uint8_t* pixels = nullptr;
};

// A heat map [height, width] of values in [0, 1].
struct HeatMap {
  std::int64_t height = 0, width = 0;
  const float* values = nullptr;
};

// Blue (0) through cyan, green and yellow to red (1): a "jet"-like ramp, computed piecewise.
Color heat_color(float value);

// The image scaled by `scale` (whole pixels), the heat map (when given) stretched over it bilinearly and
// blended half and half, and `caption` below, one line each.
Canvas picture(const ImageView& image, int scale, const std::vector<std::string>& caption,
               const HeatMap* heat = nullptr);

// Pictures side by side, `columns` per row, on white, with a gap between them.
Canvas contact_sheet(const std::vector<Canvas>& pictures, int columns);

}  // namespace kiln::plot
