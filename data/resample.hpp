// Bilinear resampling of an 8-bit image, the resize step of Preprocessing (data/preprocessing.hpp).
//
// Coordinates are in source pixels, pixel i covering [i, i + 1), so its centre is i + 0.5. Output pixel
// o of n, resampling a window [start, start + size), is centred at start + (o + 0.5) * size / n and is
// a weighted average of the source pixels under a triangle centred there:
//
//   weight(i) = max(0, 1 - |i + 0.5 - centre| / radius),   radius = max(1, size / n)
//
// normalized to sum to 1 over the pixels inside the image. Enlarging (radius 1) this is ordinary
// bilinear interpolation between the two nearest pixel centres, clamped at the edges; shrinking, the
// triangle widens to cover every source pixel that falls in the output pixel, so nothing aliases. The
// two axes are resampled one after the other (the filter is separable).
#pragma once

#include <cstdint>
#include <vector>

#include "data/image.hpp"

namespace kiln::data {

// The part of the source image that fills the output, in source pixels.
struct SourceWindow {
  double top = 0, left = 0, height = 0, width = 0;
};

// All of the image.
SourceWindow whole_image(const Image& image);

// The centred window with the output's aspect ratio that is as large as the image allows: the image
// scaled by max(out_height / height, out_width / width) covers the output, and this is the part kept.
SourceWindow centre_crop_window(const Image& image, std::int64_t out_height, std::int64_t out_width);

// `window` of `image` resampled to out_height x out_width: float [out_height, out_width, image.channels]
// (HWC), values in 0 .. 255.
std::vector<float> resample_bilinear(const Image& image, const SourceWindow& window, std::int64_t out_height,
                                     std::int64_t out_width);

// `image` shrunk so that its shorter side is `shorter_side` pixels, aspect ratio kept (the longer side
// rounded to the nearest pixel), by resample_bilinear (which averages when it shrinks) rounded to 8 bits; an
// image whose shorter side is already at most `shorter_side` comes back unchanged. (kiln pack
// --shorter-side: photos brought down once to a size a small CNN's input is resized from.)
Image shrink_to_shorter_side(const Image& image, std::int64_t shorter_side);

}  // namespace kiln::data
