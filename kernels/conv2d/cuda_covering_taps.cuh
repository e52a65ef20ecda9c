// The taps that read one input position, for the CUDA gather kernels of a convolution's backward-data
// (col2im in cuda_im2col.cu, the depthwise kernel in cuda_depthwise.cu). Included by .cu files only.
//
// Output (oh, ow) reads input ih = oh * stride_h - pad_h + kh * dilation_h (likewise iw) through tap
// (kh, kw), so the outputs that read (ih, iw) through that tap are oh = (ih + pad_h - kh * dilation_h) /
// stride_h when that is a whole number in [0, OH), and likewise ow. visit(kh, kw, oh, ow) is called for each
// such tap in (kh, kw) row-major order, a fixed order, so a sum over them is the same bits on every run.
#pragma once

#include <cstdint>

#include "kernels/conv2d/conv2d.hpp"

namespace kiln::kernels::cuda {

template <class Visit>
__device__ void for_each_covering_tap(const Conv2dGeometry& g, std::int64_t out_h, std::int64_t out_w,
                                      std::int64_t ih, std::int64_t iw, Visit&& visit) {
  for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
    const std::int64_t row_times_stride = ih + g.pad_h - kh * g.dilation_h;  // oh * stride_h
    if (row_times_stride < 0 || row_times_stride % g.stride_h != 0) continue;
    const std::int64_t oh = row_times_stride / g.stride_h;
    if (oh >= out_h) continue;
    for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
      const std::int64_t col_times_stride = iw + g.pad_w - kw * g.dilation_w;  // ow * stride_w
      if (col_times_stride < 0 || col_times_stride % g.stride_w != 0) continue;
      const std::int64_t ow = col_times_stride / g.stride_w;
      if (ow >= out_w) continue;
      visit(kh, kw, oh, ow);
    }
  }
}

}  // namespace kiln::kernels::cuda
