// The strip: the layout that turns a convolution into a GEMM without im2col (direct_kernel.hpp).
//
// A chunk of images, one channel at a time, is copied into one long zero-padded "strip" of rows `row`
// floats wide. For stride 1 the images sit one under the other, each preceded by pad_h zero rows, and
// every row starts with pad_w zeros; the rows after the last image are zero too. For pad 1 and two 3x3
// images (a..i, j..r):
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
// Stride s: output ow reads padded column ow * s + kw * dilation, so consecutive outputs are s floats
// apart. A kernel that reads the strip one float at a time (the weight gradient's broadcasts, and
// direct_channels_kernel.hpp's forward) takes that as it is: it walks the stride-1 strip of the same
// padding, dilation and kernel s floats at a time (StridedOutputs, below). A kernel that loads whole
// vectors of consecutive outputs (direct_kernel.hpp's forward) cannot, and for it
// the padded image is split into s_h x s_w phases, phase (p, q) holding padded rows
// i * s_h + p and columns j * s_w + q, each phase a strip of its own; tap (kh, kw) reads phase
// ((kh * d_h) % s_h, (kw * d_w) % s_w) at the shift ((kh * d_h) / s_h, (kw * d_w) / s_w), and consecutive
// outputs read consecutive floats again. Stride 1 is the case of one phase. (Only Direct's forward reads
// phases; backward-data of a strided convolution is not a convolution of this form.)
//
// The price is "junk" positions: strip indices whose (oh, ow) is not an output (ow >= OW, oh >= OH, and
// the positions rounded up to a whole tile). They are computed and thrown away: with pad 1, 3x3 that is
// 6% of the work at 32x32, 12% at 16x16, 21% at 8x8. Junk positions may read anything inside the strip;
// no output reads a junk position.
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
// to[0, n) = from[0], from[2], ..., from[2n - 2]: a stride-2 phase of a row, two vectors deinterleaved at a
// time. Reads no further than from[2n - 2].
template <typename V>
float* copy_every_other(const float* from, std::int64_t n, float* to) {
  for (std::int64_t i = 0; i < n; i += V::width) {
    const std::int64_t lanes = std::min<std::int64_t>(V::width, n - i);
    const std::int64_t available = 2 * lanes - 1;  // from[2i .. 2i + 2 lanes - 2]
    const typename V::Reg low = V::load_partial(from + 2 * i, std::min<std::int64_t>(V::width, available));
    const typename V::Reg high =
        available > V::width ? V::load_partial(from + 2 * i + V::width, available - V::width) : V::zero();
    typename V::Reg even, odd;
    V::deinterleave(low, high, even, odd);
    V::store_partial(to + i, even, lanes);
  }
  return to + n;
}

template <typename V>
float* zero_floats(std::int64_t n, float* to) {
  for (std::int64_t i = 0; i < n; i += V::width)
    V::store_partial(to + i, V::zero(), std::min<std::int64_t>(V::width, n - i));
  return to + n;
}

// One axis of the strip (its rows, or its columns), for input size `size` with `pad` zeros on each side:
// phase p holds padded positions i * stride + p, that is input positions i * stride + p - pad, for i in
// [0, line). Lines follow each other: along columns a line is a strip row, along rows it is an image.
template <typename V>
struct StripAxis {
  std::int64_t size, pad, stride, dilation, kernel, out;
  std::int64_t line = 0;  // phase positions per line: every output, every input, and no harmful wrap

  StripAxis(std::int64_t size_, std::int64_t pad_, std::int64_t stride_, std::int64_t dilation_,
            std::int64_t kernel_)
      : size(size_),
        pad(pad_),
        stride(stride_),
        dilation(dilation_),
        kernel(kernel_),
        out((size_ + 2 * pad_ - dilation_ * (kernel_ - 1) - 1) / stride_ + 1) {
    line = out;
    for (std::int64_t p = 0; p < stride; ++p) line = std::max(line, data_end(p));
    // A tap reading past the line's end lands at the start of the next line, which must be that line's
    // leading zeros. It always is: reads never pass the right padding, and a phase has as many left-padding
    // positions as it can read of the right padding. (tests/kernels/conv2d_strip_test.cpp checks this
    // over every small geometry; wraps_into_data is that check.)
  }

  bool wraps_into_data() const {
    for (std::int64_t t = 0; t < kernel; ++t) {
      const std::int64_t last_read = out - 1 + shift(t);
      if (last_read >= line && last_read - line >= data_begin(phase(t))) return true;
    }
    return false;
  }

  std::int64_t phase(std::int64_t tap) const { return tap * dilation % stride; }
  std::int64_t shift(std::int64_t tap) const { return tap * dilation / stride; }
  // Phase p's positions [data_begin, data_end) hold input; the rest of its line is zero.
  std::int64_t data_begin(std::int64_t p) const { return p >= pad ? 0 : (pad - p + stride - 1) / stride; }
  std::int64_t data_end(std::int64_t p) const {
    return pad + size - 1 - p < 0 ? 0 : (pad + size - 1 - p) / stride + 1;
  }
  std::int64_t input_of(std::int64_t p, std::int64_t i) const { return i * stride + p - pad; }
};

template <typename V>
struct Strip {
  StripAxis<V> rows, columns;
  std::int64_t row;             // floats per strip row
  std::int64_t image_stride;    // floats per image in one phase: rows.line strip rows
  std::int64_t images;          // images per chunk
  std::int64_t block;           // computed positions come in whole multiples of this (a kernel's tile)
  std::int64_t phase_stride;    // floats per phase of one channel, every read of every tile included
  std::int64_t channel_stride;  // floats per channel: stride_h * stride_w phases

  // The layout of a chunk of up to `images` images of g's input (a forward convolution's x). `slack`: how
  // many positions past the last computed one a kernel may read (zeros), for tiles that overrun a row.
  Strip(const Conv2dGeometry& g, std::int64_t images_per_chunk, std::int64_t tile_positions,
        std::int64_t slack = 0)
      : rows(g.in_height, g.pad_h, g.stride_h, g.dilation_h, g.kernel_h),
        columns(g.in_width, g.pad_w, g.stride_w, g.dilation_w, g.kernel_w),
        row(columns.line),
        image_stride(rows.line * row),
        images(images_per_chunk),
        block(tile_positions) {
    const std::int64_t last_read =
        positions(images) - 1 + slack + rows.shift(g.kernel_h - 1) * row + columns.shift(g.kernel_w - 1);
    phase_stride = (last_read + 1 + V::width - 1) / V::width * V::width;
    // A stride of a multiple of 4 KiB would put every channel's same column in the same L1 set.
    if (phase_stride % 1024 == 0) phase_stride += V::width;
    channel_stride = rows.stride * columns.stride * phase_stride;
  }

  // Output positions computed for a chunk of `count` images: every output, rounded up to a whole block.
  std::int64_t positions(std::int64_t count) const {
    return (count * image_stride + block - 1) / block * block;
  }
  std::int64_t output_index(std::int64_t b, std::int64_t oh, std::int64_t ow) const {
    return b * image_stride + oh * row + ow;
  }
  // Where tap (kh, kw) reads, relative to the output index, within a channel.
  std::int64_t tap_offset(std::int64_t kh, std::int64_t kw) const {
    const std::int64_t phase = rows.phase(kh) * columns.stride + columns.phase(kw);
    return phase * phase_stride + rows.shift(kh) * row + columns.shift(kw);
  }
  std::int64_t out_height() const { return rows.out; }
  std::int64_t out_width() const { return columns.out; }
  std::int64_t floats(std::int64_t channels) const { return channels * channel_stride; }

  // strip[c] = images [0, count) of `channels` planes [H, W] (plane c of image b at
  // x + b * image_floats + c * H*W), with every padding float written as zero and the rest of each phase
  // zero too: the whole strip is written, so the scratch it lives in may start as anything.
  void fill_input(const float* x, std::int64_t image_floats, std::int64_t count, std::int64_t channels,
                  float* strip) const {
    const std::int64_t plane = rows.size * columns.size;
    for (std::int64_t c = 0; c < channels; ++c) {
      for (std::int64_t p = 0; p < rows.stride; ++p) {
        for (std::int64_t q = 0; q < columns.stride; ++q) {
          float* phase_begin = strip + c * channel_stride + (p * columns.stride + q) * phase_stride;
          float* to = phase_begin;
          for (std::int64_t b = 0; b < count; ++b) {
            const float* image_plane = x + b * image_floats + c * plane;
            for (std::int64_t i = 0; i < rows.line; ++i) {
              const std::int64_t ih = rows.input_of(p, i);
              to = ih >= 0 && ih < rows.size ? fill_row(image_plane + ih * columns.size, q, to)
                                             : zero_floats<V>(row, to);
            }
          }
          zero_floats<V>(phase_begin + phase_stride - to, to);
        }
      }
    }
  }

  // y planes [OH, OW] (plane c of image b at y + b * image_floats + c * OH*OW) = the output positions of
  // strip[c] (`stride` floats apart), plus bias[c] when bias is not null: the junk is dropped.
  void gather_output(const float* strip, std::int64_t stride, std::int64_t count, std::int64_t channels,
                     const float* bias, float* y, std::int64_t image_floats) const {
    const std::int64_t out_h = out_height(), out_w = out_width();
    for (std::int64_t b = 0; b < count; ++b) {
      for (std::int64_t c = 0; c < channels; ++c) {
        const float* from = strip + c * stride + b * image_stride;
        float* plane = y + b * image_floats + c * out_h * out_w;
        for (std::int64_t oh = 0; oh < out_h; ++oh) {
          const float* in_row = from + oh * row;
          float* out_row = plane + oh * out_w;
          if (bias) {
            for (std::int64_t ow = 0; ow < out_w; ++ow) out_row[ow] = in_row[ow] + bias[c];
          } else {
            copy_floats<V>(in_row, out_w, out_row);
          }
        }
      }
    }
  }

 private:
  // One strip row of column phase q from an input row: zeros, the phase's input columns, zeros.
  float* fill_row(const float* input_row, std::int64_t q, float* to) const {
    const std::int64_t begin = columns.data_begin(q), end = std::min(row, columns.data_end(q));
    to = zero_floats<V>(begin, to);
    if (columns.stride == 1) {
      to = copy_floats<V>(input_row + columns.input_of(q, begin), end - begin, to);
    } else if (columns.stride == 2) {
      to = copy_every_other<V>(input_row + columns.input_of(q, begin), end - begin, to);
    } else {
      for (std::int64_t j = begin; j < end; ++j) *to++ = input_row[columns.input_of(q, j)];
    }
    return zero_floats<V>(row - std::max(begin, end), to);
  }
};

// The output positions of g, a convolution of any stride, on the stride-1 strip of g's padding, dilation
// and kernel (unit_stride(g)): output (b, oh, ow) is strip index  first(b, oh) + ow * column_step, and tap
// (kh, kw) reads there plus the stride-1 strip's tap_offset(kh, kw). Every read lies where stride 1's
// outputs read: s * (OW - 1) + dilation * (KW - 1) <= W + 2 * pad - 1, the last column the stride-1
// strip's last output reads, and the same down the rows; so the strip's zeros are every padding a read
// needs. At stride 1 this is the strip's own walk.
struct StridedOutputs {
  std::int64_t out_height, out_width;
  std::int64_t image_stride, row_step, column_step;

  template <typename V>
  StridedOutputs(const Conv2dGeometry& g, const Strip<V>& dense_strip)
      : out_height(g.out_height()),
        out_width(g.out_width()),
        image_stride(dense_strip.image_stride),
        row_step(g.stride_h * dense_strip.row),
        column_step(g.stride_w) {}

  std::int64_t first(std::int64_t b, std::int64_t oh) const { return b * image_stride + oh * row_step; }
};

// g with stride 1 and everything else kept: the geometry whose strip StridedOutputs walks.
constexpr Conv2dGeometry unit_stride(Conv2dGeometry g) {
  g.stride_h = g.stride_w = 1;
  return g;
}

}  // namespace kiln::kernels::direct
