// im2col / col2im (see im2col.hpp). Each col row is one (channel, kh, kw) tap; within it, each output row
// oh reads one input row ih (or the padding), and along the row the valid output columns form one range
// [ow_begin, ow_end): before it and after it the tap reads the left / right padding. Splitting the row into
// zeros | copy | zeros keeps the bounds test out of the inner loop, and with stride 1 the copy is contiguous.
#include "kernels/conv2d/im2col.hpp"

#include <algorithm>

namespace kiln::kernels {

void im2col(const Conv2dGeometry& g, const float* x_channels, std::int64_t channels, float* col,
            std::int64_t col_stride) {
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  for (std::int64_t c = 0; c < channels; ++c) {
    const float* x_plane = x_channels + c * g.in_height * g.in_width;
    for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
        float* col_row = col + ((c * g.kernel_h + kh) * g.kernel_w + kw) * col_stride;
        const std::int64_t col_offset = kw * g.dilation_w - g.pad_w;
        const Im2colRange cols = im2col_valid_outputs(col_offset, g.stride_w, g.in_width, out_w);
        for (std::int64_t oh = 0; oh < out_h; ++oh) {
          float* out = col_row + oh * out_w;
          const std::int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
          if (ih < 0 || ih >= g.in_height) {
            std::fill(out, out + out_w, 0.0f);
            continue;
          }
          const float* in_row = x_plane + ih * g.in_width;  // reads in_row[ow * stride_w + col_offset]
          std::fill(out, out + cols.begin, 0.0f);
          if (g.stride_w == 1) {
            std::copy(in_row + cols.begin + col_offset, in_row + cols.end + col_offset, out + cols.begin);
          } else {
            for (std::int64_t ow = cols.begin; ow < cols.end; ++ow)
              out[ow] = in_row[ow * g.stride_w + col_offset];
          }
          std::fill(out + cols.end, out + out_w, 0.0f);
        }
      }
    }
  }
}

void col2im_add(const Conv2dGeometry& g, const float* col, std::int64_t channels, std::int64_t col_stride,
                float* gx_channels) {
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  for (std::int64_t c = 0; c < channels; ++c) {
    float* gx_plane = gx_channels + c * g.in_height * g.in_width;
    for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
        const float* col_row = col + ((c * g.kernel_h + kh) * g.kernel_w + kw) * col_stride;
        const std::int64_t col_offset = kw * g.dilation_w - g.pad_w;
        const Im2colRange cols = im2col_valid_outputs(col_offset, g.stride_w, g.in_width, out_w);
        for (std::int64_t oh = 0; oh < out_h; ++oh) {
          const std::int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
          if (ih < 0 || ih >= g.in_height) continue;  // this tap read the padding: nothing to give back
          const float* from = col_row + oh * out_w;
          float* to_row = gx_plane + ih * g.in_width;
          if (g.stride_w == 1) {  // contiguous: the compiler vectorizes this form
            const std::int64_t first_input = cols.begin + col_offset;  // >= 0 for valid columns
            for (std::int64_t i = 0; i < cols.end - cols.begin; ++i)
              to_row[first_input + i] += from[cols.begin + i];
          } else {
            for (std::int64_t ow = cols.begin; ow < cols.end; ++ow)
              to_row[ow * g.stride_w + col_offset] += from[ow];
          }
        }
      }
    }
  }
}

}  // namespace kiln::kernels
