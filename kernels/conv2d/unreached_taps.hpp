// Kernel taps that read only padding: a 3x3 kernel at padding 1 on a 1x1 plane (ResNet-18's last stage on
// a 32x32 image) reads its input through the centre tap alone, the other eight adding zeros for every
// output, yet every algorithm would compute all nine. Cropping them off is exact: the convolution with the
// kernel's reached taps and the padding reduced to match has the same output size and sums the same
// nonzero products; the cropped taps' weight gradient is zero (every input they read is padding).
//
// Along one axis, tap k of output o reads input  o * stride - pad + k * dilation;  a tap is reached when
// that lies in [0, in) for some output (im2col_valid_outputs, the range im2col pads around). Only a crop of
// the same number of taps from both ends keeps the output size (the geometry has one padding per axis), so
// the crop is the smaller of the unreached runs at the two ends.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>

#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/im2col.hpp"

namespace kiln::kernels {

// How many taps to crop from each end of one axis: unreached at both ends, with the padding left >= 0.
inline std::int64_t unreached_taps_each_end(std::int64_t in, std::int64_t out, std::int64_t kernel,
                                            std::int64_t stride, std::int64_t pad, std::int64_t dilation) {
  const auto reached = [&](std::int64_t tap) {
    const Im2colRange outputs = im2col_valid_outputs(tap * dilation - pad, stride, in, out);
    return outputs.begin < outputs.end;
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

// Filters [C_out * C_in / groups] at a time for the copies below: threads share them from this many kernel
// taps on. ResNet-18's last stage has 512 x 512 filters of 9 taps (9 MiB) for a 1x1 product of 0.2 ms at
// batch 128; copied on one thread, the crop and the uncrop took a millisecond each.
inline constexpr std::int64_t kParallelKernelTaps = std::int64_t{1} << 16;

// body(filter) for every filter, on the threads when the kernel is large: a filter's copies touch only its
// own taps of either kernel.
template <typename Body>
void for_each_filter(const Conv2dGeometry& g, Body body) {
  const std::int64_t filters = g.out_channels * g.in_channels_per_group();
#pragma omp parallel for schedule(static) if (filters * g.kernel_h * g.kernel_w >= kParallelKernelTaps)
  for (std::int64_t f = 0; f < filters; ++f) body(f);
}

// copy(full, kept, n) for each row of filter f that the crop keeps: `n` taps starting at offset `full` in
// w [C_out, C_in / groups, KH, KW] and at offset `kept` in the cropped [C_out, C_in / groups, KH', KW'].
template <typename CopyRow>
void for_each_kept_row(const Conv2dGeometry& g, const CroppedTaps& c, std::int64_t f, CopyRow copy) {
  const std::int64_t kh = c.geometry.kernel_h, kw = c.geometry.kernel_w;
  for (std::int64_t r = 0; r < kh; ++r)
    copy((f * g.kernel_h + c.first_row + r) * g.kernel_w + c.first_column, (f * kh + r) * kw, kw);
}

// w -> the cropped kernel's taps.
template <typename T>
void crop_weights(const Conv2dGeometry& g, const CroppedTaps& c, const T* w, T* cropped) {
  for_each_filter(g, [&](std::int64_t f) {
    for_each_kept_row(g, c, f, [&](std::int64_t full, std::int64_t kept, std::int64_t n) {
      for (std::int64_t i = 0; i < n; ++i) cropped[kept + i] = w[full + i];  // a few taps: no memmove call
    });
  });
}

// The cropped kernel's weight gradient placed in the full one, zero at the cropped taps.
template <typename T>
void uncrop_weight_gradient(const Conv2dGeometry& g, const CroppedTaps& c, const T* cropped, T* gw) {
  const std::int64_t taps = g.kernel_h * g.kernel_w;
  for_each_filter(g, [&](std::int64_t f) {
    for (std::int64_t i = f * taps; i < (f + 1) * taps; ++i) gw[i] = T(0.0f);
    for_each_kept_row(g, c, f, [&](std::int64_t full, std::int64_t kept, std::int64_t n) {
      for (std::int64_t i = 0; i < n; ++i) gw[full + i] = cropped[kept + i];
    });
  });
}

}  // namespace kiln::kernels
