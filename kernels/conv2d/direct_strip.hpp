// The strip: the layout that turns a stride-1 convolution into a GEMM without im2col (direct_kernel.hpp).
//
// A chunk of images, one channel at a time, is copied into one long zero-padded "strip" of rows `row`
// floats wide. The images sit one under the other, each preceded by pad_h zero rows, and every row starts
// with pad_w zeros; the rows after the last image are zero too. For pad 1 and two 3x3 images (a..i, j..r):
//
//      0 0 0 0        row 0     image 0's top padding   (pad_h rows)
//      0 a b c        row 1     image 0, each row led by pad_w zeros
//      0 d e f
//      0 g h i
//      0 0 0 0        row 4     image 1's top padding = image 0's bottom padding
//      0 j k l
//      ...
//
// An output position (b, oh, ow) is given the strip index  b * image_stride + oh * row + ow,  and then tap
// (kh, kw) reads the strip at that index plus the constant  kh * dilation_h * row + kw * dilation_w:
// every tap of every output is one fixed offset, so a run of consecutive output positions reads a run of
// consecutive strip floats, for any image size, padding and dilation. Two tricks keep the strip small:
//
//   - rows are only W + pad_w wide: a tap reaching past a row's right edge wraps into the next row's
//     leading zeros, which are the right padding it needs (pad_w of them; the reach is always pad_w);
//   - each image's top padding is the previous image's bottom padding.
//
// The price is "junk" positions: strip indices whose (oh, ow) is not an output (ow >= OW, oh >= OH, and
// the positions rounded up to a whole tile). They are computed and thrown away: with pad 1, 3x3 that is
// 6% of the work at 32x32, 12% at 16x16, 21% at 8x8. Junk positions may read anything inside the strip;
// no output reads a junk position.
//
// Both tricks need an output row to fit in a strip row, OW <= W + pad_w (and OH <= H + pad_h), that is
// pad <= dilation * (K - 1) along each axis: every "same" and "valid" convolution (fits_direct_strip,
// conv2d.hpp, checks it).
//
// Templates on the vector trait V only so that the two instruction sets never share a compiled function
// (avx512_direct.cpp and avx2_direct.cpp are compiled with different -m flags).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/conv2d/conv2d.hpp"

namespace kiln::kernels::direct {

// to[0, n) = from[0, n), and zero-filling, in whole vectors with one masked tail: strip rows are short (8 to
// 32 floats in CIFAR-sized nets), too short for a memmove call per row to pay for itself.
template <typename V>
float* copy_floats(const float* from, std::int64_t n, float* to) {
  for (std::int64_t i = 0; i < n; i += V::width) {
    const std::int64_t lanes = std::min<std::int64_t>(V::width, n - i);
    V::store_partial(to + i, V::load_partial(from + i, lanes), lanes);
  }
  return to + n;
}
template <typename V>
float* zero_floats(std::int64_t n, float* to) {
  for (std::int64_t i = 0; i < n; i += V::width) V::store_partial(to + i, V::zero(), std::min<std::int64_t>(V::width, n - i));
  return to + n;
}

template <typename V>
struct Strip {
  std::int64_t in_height, in_width, pad_h, pad_w;
  std::int64_t out_height, out_width;
  std::int64_t row;             // floats per strip row: W + pad_w
  std::int64_t image_stride;    // floats per image: (H + pad_h) rows
  std::int64_t images;          // images per chunk
  std::int64_t block;           // computed positions come in whole multiples of this (a kernel's tile)
  std::int64_t channel_stride;  // floats per channel's strip, every read of every tile included

  // The layout of a chunk of up to `images` images of g's input (a forward convolution's x).
  Strip(const Conv2dGeometry& g, std::int64_t images_per_chunk, std::int64_t tile_positions)
      : in_height(g.in_height),
        in_width(g.in_width),
        pad_h(g.pad_h),
        pad_w(g.pad_w),
        out_height(g.out_height()),
        out_width(g.out_width()),
        row(g.in_width + g.pad_w),
        image_stride((g.in_height + g.pad_h) * row),
        images(images_per_chunk),
        block(tile_positions) {
    const std::int64_t data_rows = images * (in_height + pad_h) + pad_h;  // the last image's bottom padding
    const std::int64_t last_read = positions(images) - 1 + tap_offset(g, g.kernel_h - 1, g.kernel_w - 1);
    channel_stride = (std::max(data_rows * row, last_read + 1) + V::width - 1) / V::width * V::width;
    // A stride of a multiple of 4 KiB would put every channel's same column in the same L1 set.
    if (channel_stride % 1024 == 0) channel_stride += V::width;
  }

  // Output positions computed for a chunk of `count` images: every output, rounded up to a whole block.
  std::int64_t positions(std::int64_t count) const {
    return (count * image_stride + block - 1) / block * block;
  }
  std::int64_t output_index(std::int64_t b, std::int64_t oh, std::int64_t ow) const {
    return b * image_stride + oh * row + ow;
  }
  static std::int64_t tap_offset(const Conv2dGeometry& g, std::int64_t kh, std::int64_t kw) {
    return kh * g.dilation_h * (g.in_width + g.pad_w) + kw * g.dilation_w;
  }
  std::int64_t floats(std::int64_t channels) const { return channels * channel_stride; }

  // strip[c] = images [0, count) of `channels` planes [H, W] (plane c of image b at
  // x + b * image_floats + c * H*W), with every padding float written as zero and the rest of the channel's
  // strip zero too: the whole strip is written, so the scratch it lives in may start as anything.
  void fill_input(const float* x, std::int64_t image_floats, std::int64_t count, std::int64_t channels,
                  float* strip) const {
    for (std::int64_t c = 0; c < channels; ++c) {
      float* to = strip + c * channel_stride;
      for (std::int64_t b = 0; b < count; ++b) {
        const float* plane = x + b * image_floats + c * in_height * in_width;
        to = zero_floats<V>(pad_h * row, to);
        for (std::int64_t ih = 0; ih < in_height; ++ih) {
          to = zero_floats<V>(pad_w, to);
          to = copy_floats<V>(plane + ih * in_width, in_width, to);
        }
      }
      zero_floats<V>(strip + (c + 1) * channel_stride - to, to);
    }
  }

  // y planes [OH, OW] (plane c of image b at y + b * image_floats + c * OH*OW) = the output positions of
  // strip[c] (`stride` floats apart), plus bias[c] when bias is not null: the junk is dropped.
  void gather_output(const float* strip, std::int64_t stride, std::int64_t count, std::int64_t channels,
                     const float* bias, float* y, std::int64_t image_floats) const {
    for (std::int64_t b = 0; b < count; ++b) {
      for (std::int64_t c = 0; c < channels; ++c) {
        const float* from = strip + c * stride + b * image_stride;
        float* plane = y + b * image_floats + c * out_height * out_width;
        for (std::int64_t oh = 0; oh < out_height; ++oh) {
          const float* in_row = from + oh * row;
          float* out_row = plane + oh * out_width;
          if (bias) {
            for (std::int64_t ow = 0; ow < out_width; ++ow) out_row[ow] = in_row[ow] + bias[c];
          } else {
            copy_floats<V>(in_row, out_width, out_row);
          }
        }
      }
    }
  }
};

}  // namespace kiln::kernels::direct
