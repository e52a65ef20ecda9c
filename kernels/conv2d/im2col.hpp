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
#pragma once

#include <cstdint>

#include "kernels/conv2d/conv2d.hpp"

namespace kiln::kernels {

void im2col(const Conv2dGeometry& g, const float* x_channels, std::int64_t channels, float* col,
            std::int64_t col_stride);
// gx_channels [channels, H, W] += fold(col). gx_channels must be initialized (usually zeroed) by the caller.
void col2im_add(const Conv2dGeometry& g, const float* col, std::int64_t channels, std::int64_t col_stride,
                float* gx_channels);

}  // namespace kiln::kernels
