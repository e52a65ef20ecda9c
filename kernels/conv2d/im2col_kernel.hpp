// im2col and col2im_add (im2col.hpp) vectorized along the output row, written once against a small vector
// trait `V` and instantiated at AVX-512 width (avx512_im2col.cpp, 16 floats) and AVX2 width
// (avx2_im2col.cpp, 8 floats).
//
// The portable version spends its time in calls: for ResNet-20 on CIFAR each output row is 8..32 floats, and
// every row costs a memcpy call and up to two fills. Here one row is one or two vectors, and the padding is
// a lane mask instead of a separate fill:
//
//   tap (c, kh, kw) reads input column  iw = ow * stride_w + offset   (offset = kw*dilation_w - pad_w)
//   in a vector of outputs [ow0, ow0 + V::width), the lanes outside the valid columns [cols.begin, cols.end)
//   (im2col_valid_outputs) read the padding
//
//   stride 1:  out[ow0 .. ow0+width) = masked load of in_row[ow0+offset ..]     (masked-out lanes read 0)
//   stride 2:  two masked loads cover in_row[2*ow0+offset .. + 2*width), and the even lanes are the outputs
//   other strides: a plain scalar loop (no shape we train has them)
//
// (Masked-out lanes are never read, so a vector may start before the row or run past the plane.)
//
// The masks depend only on the tap and the vector's ow0, so the loops run ow0 outside and oh inside: per
// tap, the rows oh whose input row ih lies in the padding are zero vectors, the others one load and store.
//
// col2im_add turns the walk around: gx row by gx row, one vector of input columns at a time, it loads gx
// once, adds the taps that read it (kh, then kw, in the portable order, each lane masked to the taps that
// reached it), and stores it once. The portable loops add one tap at a time, but each gx element still gets
// the same sums in the same order (at most one col element per tap), so the result is bitwise the same, and
// nine load/stores of gx per element (each reading a store that just partly overlapped it) become one.
// Several gx rows go at once so that their chains of adds overlap.
// Masked-out lanes keep gx as it was (an added 0.0 would turn -0.0 into +0.0). Strides wider than 1 take
// the portable loops (im2col.cpp; compiled for AVX they came out slower).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/conv2d/im2col.hpp"

namespace kiln::kernels::im2col_kernel {

// im2col for the channels of one image (see im2col.hpp).
template <typename V>
void im2col(const Conv2dGeometry& g, const float* x_channels, std::int64_t channels, float* col,
            std::int64_t col_stride) {
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  const auto zero = V::zero();
  for (std::int64_t c = 0; c < channels; ++c) {
    const float* x_plane = x_channels + c * g.in_height * g.in_width;
    for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
      const std::int64_t row_offset = kh * g.dilation_h - g.pad_h;
      const Im2colRange rows = im2col_valid_outputs(row_offset, g.stride_h, g.in_height, out_h);
      for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
        float* col_row = col + ((c * g.kernel_h + kh) * g.kernel_w + kw) * col_stride;
        const std::int64_t offset = kw * g.dilation_w - g.pad_w;
        const Im2colRange cols = im2col_valid_outputs(offset, g.stride_w, g.in_width, out_w);
        for (std::int64_t ow0 = 0; ow0 < out_w; ow0 += V::width) {
          const int lanes = static_cast<int>(std::min<std::int64_t>(V::width, out_w - ow0));
          float* out = col_row + ow0;
          for (std::int64_t oh = 0; oh < rows.begin; ++oh) V::store_first(out + oh * out_w, zero, lanes);
          if (g.stride_w == 1) {
            const auto valid = V::lanes_between(cols.begin - ow0, cols.end - ow0);
            const float* in = x_plane + ow0 + offset;  // + ih * in_width
            for (std::int64_t oh = rows.begin; oh < rows.end; ++oh) {
              const std::int64_t ih = oh * g.stride_h + row_offset;
              V::store_first(out + oh * out_w, V::load_masked(valid, in + ih * g.in_width), lanes);
            }
          } else if (g.stride_w == 2) {
            // Input columns first + [0, 2*width): the low and high halves, each masked to [0, in_width).
            const std::int64_t first = 2 * ow0 + offset;
            const auto low_valid = V::lanes_between(-first, g.in_width - first);
            const auto high_valid = V::lanes_between(-first - V::width, g.in_width - first - V::width);
            for (std::int64_t oh = rows.begin; oh < rows.end; ++oh) {
              const float* in = x_plane + (oh * g.stride_h + row_offset) * g.in_width + first;
              const auto low = V::load_masked(low_valid, in),
                         high = V::load_masked(high_valid, in + V::width);
              V::store_first(out + oh * out_w, V::even_lanes(low, high), lanes);
            }
          } else {
            for (std::int64_t oh = rows.begin; oh < rows.end; ++oh) {
              const float* in_row = x_plane + (oh * g.stride_h + row_offset) * g.in_width;
              for (std::int64_t ow = ow0; ow < ow0 + lanes; ++ow) {
                const bool inside = ow >= cols.begin && ow < cols.end;
                out[oh * out_w + ow - ow0] = inside ? in_row[ow * g.stride_w + offset] : 0.0f;
              }
            }
          }
          for (std::int64_t oh = rows.end; oh < out_h; ++oh) V::store_first(out + oh * out_w, zero, lanes);
        }
      }
    }
  }
}

// gx_channels [channels, H, W] += fold(col) (see im2col.hpp).
template <typename V>
void col2im_add(const Conv2dGeometry& g, const float* col, std::int64_t channels, std::int64_t col_stride,
                float* gx_channels) {
  if (g.stride_w != 1) return kernels::col2im_add(g, col, channels, col_stride, gx_channels);
  // kRows gx rows at once: each vector's sum is a chain of KH*KW dependent adds, so independent rows keep
  // the adder busy while one chain waits.
  constexpr int kRows = 4;
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  for (std::int64_t c = 0; c < channels; ++c) {
    float* gx_plane = gx_channels + c * g.in_height * g.in_width;
    const float* col_channel = col + c * g.kernel_h * g.kernel_w * col_stride;
    for (std::int64_t ih0 = 0; ih0 < g.in_height; ih0 += kRows) {
      const std::int64_t rows = std::min<std::int64_t>(kRows, g.in_height - ih0);
      for (std::int64_t iw0 = 0; iw0 < g.in_width; iw0 += V::width) {
        const int lanes = static_cast<int>(std::min<std::int64_t>(V::width, g.in_width - iw0));
        typename V::Vector sum[kRows];
        for (int r = 0; r < kRows; ++r) {
          sum[r] = r < rows
                       ? V::load_masked(V::lanes_between(0, lanes), gx_plane + (ih0 + r) * g.in_width + iw0)
                       : V::zero();
        }
        for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
          for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
            // Input column iw took col column ow = iw - offset, for ow in [0, out_w).
            const std::int64_t offset = kw * g.dilation_w - g.pad_w;
            const std::int64_t first_ow = iw0 - offset;
            const auto valid = V::lanes_between(std::max<std::int64_t>(-first_ow, 0),
                                                std::min<std::int64_t>(out_w - first_ow, lanes));
            const float* col_row = col_channel + (kh * g.kernel_w + kw) * col_stride + first_ow;
            for (int r = 0; r < kRows; ++r) {
              // Input row ih took output row oh with oh * stride_h = ih - (kh * dilation_h - pad_h).
              const std::int64_t from_top = ih0 + r - (kh * g.dilation_h - g.pad_h);
              if (r >= rows || from_top < 0) continue;
              const std::int64_t oh = g.stride_h == 1 ? from_top : from_top / g.stride_h;  // (no divide at 1)
              if (oh >= out_h || oh * g.stride_h != from_top) continue;
              const float* from = col_row + oh * out_w;
              sum[r] = V::add_masked(valid, sum[r], V::load_masked(valid, from));
            }
          }
        }
        for (int r = 0; r < rows; ++r) V::store_first(gx_plane + (ih0 + r) * g.in_width + iw0, sum[r], lanes);
      }
    }
  }
}

}  // namespace kiln::kernels::im2col_kernel
