// Kernel taps that read only padding: a 3x3 kernel at padding 1 on a 1x1 plane (ResNet-18's last stage on
// a 32x32 image) reads its input through the centre tap alone, the other eight adding zeros for every
// output, yet every algorithm would compute all nine. Cropping them off is exact: the convolution with the
// kernel's reached taps and the padding reduced to match has the same output size and sums the same
// nonzero products; the cropped taps' weight gradient is zero (every input they read is padding).
//
// Along one axis, tap k of output o reads input  o * stride - pad + k * dilation;  a tap is reached when
// that lies in [0, in) for some output. Only a crop of the same number of taps from both ends keeps the
// output size (the geometry has one padding per axis), so the crop is the smaller of the unreached runs at
// the two ends.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>

#include "kernels/conv2d/conv2d.hpp"

namespace kiln::kernels {

// How many taps to crop from each end of one axis: unreached at both ends, with the padding left >= 0.
inline std::int64_t unreached_taps_each_end(std::int64_t in, std::int64_t out, std::int64_t kernel,
                                            std::int64_t stride, std::int64_t pad, std::int64_t dilation) {
  const auto reached = [&](std::int64_t tap) {
    for (std::int64_t o = 0; o < out; ++o) {
      const std::int64_t i = o * stride - pad + tap * dilation;
      if (i >= 0 && i < in) return true;
    }
    return false;
  };
  std::int64_t crop = 0;
  while (kernel - 2 * (crop + 1) >= 1 && !reached(crop) && !reached(kernel - 1 - crop) &&
         pad - (crop + 1) * dilation >= 0)
    ++crop;
  return crop;
}

// The cropped geometry and where its taps start in the full kernel; none when nothing can be cropped.
struct CroppedTaps {
  Conv2dGeometry geometry;
  std::int64_t first_row, first_column;
};
inline std::optional<CroppedTaps> crop_unreached_taps(const Conv2dGeometry& g) {
  const std::int64_t rows =
      unreached_taps_each_end(g.in_height, g.out_height(), g.kernel_h, g.stride_h, g.pad_h, g.dilation_h);
  const std::int64_t columns =
      unreached_taps_each_end(g.in_width, g.out_width(), g.kernel_w, g.stride_w, g.pad_w, g.dilation_w);
  if (rows == 0 && columns == 0) return std::nullopt;
  CroppedTaps cropped{g, rows, columns};
  cropped.geometry.kernel_h -= 2 * rows;
  cropped.geometry.kernel_w -= 2 * columns;
  cropped.geometry.pad_h -= rows * g.dilation_h;
  cropped.geometry.pad_w -= columns * g.dilation_w;
  return cropped;
}

// w [C_out, C_in / groups, KH, KW] -> the cropped kernel's taps [C_out, C_in / groups, KH', KW'].
template <typename T>
void crop_weights(const Conv2dGeometry& g, const CroppedTaps& c, const T* w, T* cropped) {
  const std::int64_t filters = g.out_channels * g.in_channels_per_group();
  const std::int64_t kh = c.geometry.kernel_h, kw = c.geometry.kernel_w;
  for (std::int64_t f = 0; f < filters; ++f) {
    for (std::int64_t r = 0; r < kh; ++r) {
      const T* from = w + (f * g.kernel_h + c.first_row + r) * g.kernel_w + c.first_column;
      std::copy(from, from + kw, cropped + (f * kh + r) * kw);
    }
  }
}

// The cropped kernel's weight gradient placed in the full one, zero at the cropped taps.
template <typename T>
void uncrop_weight_gradient(const Conv2dGeometry& g, const CroppedTaps& c, const T* cropped, T* gw) {
  const std::int64_t filters = g.out_channels * g.in_channels_per_group();
  const std::int64_t kh = c.geometry.kernel_h, kw = c.geometry.kernel_w;
  std::fill(gw, gw + filters * g.kernel_h * g.kernel_w, T(0.0f));
  for (std::int64_t f = 0; f < filters; ++f) {
    for (std::int64_t r = 0; r < kh; ++r) {
      const T* from = cropped + (f * kh + r) * kw;
      std::copy(from, from + kw, gw + (f * g.kernel_h + c.first_row + r) * g.kernel_w + c.first_column);
    }
  }
}

}  // namespace kiln::kernels
