// im2col and its adjoint col2im: the unfolding that turns a convolution into a GEMM.
//
// For one image's channels x [channels, H, W] (a group's slice of x [N, C_in, H, W] for one n), im2col
// writes the matrix
//
//   col[(c * KH + kh) * KW + kw, oh * OW + ow] = x[c, oh*stride_h - pad_h + kh*dilation_h,
//                                                     ow*stride_w - pad_w + kw*dilation_w]   (0 in the
//                                                     padding)
//
// whose rows are [channels * KH * KW] and columns [OH * OW]; rows are col_stride floats apart, so several
// images can be unfolded side by side into one wider matrix (columns [b * OH*OW, (b+1) * OH*OW) for image b
// of a chunk). Then forward is   y_group[C_out/groups, OH*OW] = w_group[C_out/groups, channels*KH*KW] x col.
//
// col2im_add is the exact adjoint: it adds every col element back onto the input position it was read from
// (positions in the padding receive nothing). Backward-data is   col = w_group^T x gy_group,  then col2im.
//
// Three builds: the portable loops (im2col.cpp) and the AVX-512 / AVX2 ones (im2col_kernel.hpp). All give
// bitwise the same col and gx. dispatch.cpp picks one pair by cpu_level() and hands it to the im2col + GEMM
// convolution as an Im2colKernels.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/conv2d/conv2d.hpp"

namespace kiln::kernels {

// The output columns ow whose input column ow*stride + offset lies in [0, width), out of [0, out_width):
// one range, since the input column grows with ow. Outside it a tap reads the padding. (Also used for rows.)
struct Im2colRange {
  std::int64_t begin, end;
};
inline Im2colRange im2col_valid_outputs(std::int64_t offset, std::int64_t stride, std::int64_t width,
                                        std::int64_t out_width) {
  const std::int64_t begin = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const std::int64_t last_input = width - 1 - offset;  // ow*stride <= last_input
  const std::int64_t end = last_input < 0 ? 0 : last_input / stride + 1;
  const std::int64_t clamped_end = std::min(end, out_width);
  return {std::min(begin, clamped_end), clamped_end};
}

// The portable versions (im2col.cpp).
void im2col(const Conv2dGeometry& g, const float* x_channels, std::int64_t channels, float* col,
            std::int64_t col_stride);
// gx_channels [channels, H, W] += fold(col). gx_channels must be initialized (usually zeroed) by the caller.
void col2im_add(const Conv2dGeometry& g, const float* col, std::int64_t channels, std::int64_t col_stride,
                float* gx_channels);

namespace avx512 {
void im2col(const Conv2dGeometry& g, const float* x_channels, std::int64_t channels, float* col,
            std::int64_t col_stride);
void col2im_add(const Conv2dGeometry& g, const float* col, std::int64_t channels, std::int64_t col_stride,
                float* gx_channels);
}  // namespace avx512
namespace avx2 {
void im2col(const Conv2dGeometry& g, const float* x_channels, std::int64_t channels, float* col,
            std::int64_t col_stride);
void col2im_add(const Conv2dGeometry& g, const float* col, std::int64_t channels, std::int64_t col_stride,
                float* gx_channels);
}  // namespace avx2

// One im2col / col2im_add pair, as the im2col + GEMM convolution (gemm_conv.cpp) receives it.
struct Im2colKernels {
  void (*im2col)(const Conv2dGeometry& g, const float* x_channels, std::int64_t channels, float* col,
                 std::int64_t col_stride);
  void (*col2im_add)(const Conv2dGeometry& g, const float* col, std::int64_t channels,
                     std::int64_t col_stride, float* gx_channels);
};

}  // namespace kiln::kernels
