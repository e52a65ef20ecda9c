// ResNet's parameter-free shortcut, option A of He et al. (2016): where a stage halves the plane and widens
// the channels, the block's input joins its output subsampled and with zero channels around it.
//
//   x [N][C][H][W]  ->  y [N][pad_before + C + pad_after][ceil(H / s)][ceil(W / s)]   (s: the stride)
//   forward:   y[n][pad_before + c][i][j] = x[n][c][i s][j s];  y = 0 in the padded channels
//   backward:  gx[n][c][i s][j s] = gy[n][pad_before + c][i][j];  gx = 0 at the pixels the forward skips
//   backward, accumulating:  gx[n][c][i s][j s] += gy[n][pad_before + c][i][j];  nothing else is touched
//
// Both tensors lie NCHW, or both channels-last ([N][H][W][C] in memory, g.channels_last).
//
// Why an op of its own: composed of views, the forward was a fill of each zero band and a strided copy, and
// the backward a fill of gx and a strided copy into it, which the autograd engine then added to the gradient
// from the block's first convolution: five passes over memory where one does. Accumulating, the backward
// adds gy into that gradient where it lies (autograd.hpp's NeedsGrad::sum_into): a quarter of gx's pixels at
// stride 2, and no gx of its own at all. The values are the composed ops' (copies, and for the sum the same
// single addition per element, rounded once to T).
#pragma once

#include <cstdint>

#include "core/bfloat16.hpp"  // bfloat16, KILN_HOST_DEVICE
#include "core/device.hpp"

namespace kiln::kernels {

struct SubsamplePadGeometry {
  std::int64_t batch = 0, channels = 0, height = 0, width = 0;  // x's
  std::int64_t stride = 1;
  std::int64_t pad_before = 0, pad_after = 0;  // zero channels before and after x's in y
  bool channels_last = false;

  KILN_HOST_DEVICE std::int64_t out_channels() const { return pad_before + channels + pad_after; }
  KILN_HOST_DEVICE std::int64_t out_height() const { return (height + stride - 1) / stride; }
  KILN_HOST_DEVICE std::int64_t out_width() const { return (width + stride - 1) / stride; }
};

// Element (n, c, h, w) of a [batch][channels][height][width] tensor, NCHW or channels-last: how the reference
// and the CUDA kernels, which walk logical indices, find it.
KILN_HOST_DEVICE inline std::int64_t subsample_pad_offset(bool channels_last, std::int64_t channels,
                                                          std::int64_t height, std::int64_t width,
                                                          std::int64_t n, std::int64_t c, std::int64_t h,
                                                          std::int64_t w) {
  return channels_last ? ((n * height + h) * width + w) * channels + c
                       : ((n * channels + c) * height + h) * width + w;
}

// T is float, double or bfloat16.
template <typename T>
void subsample_pad_forward(Device device, const SubsamplePadGeometry& g, const T* x, T* y);
template <typename T>
void subsample_pad_backward(Device device, const SubsamplePadGeometry& g, const T* gy, T* gx,
                            bool accumulate);

namespace reference {
template <typename T>
void subsample_pad_forward(const SubsamplePadGeometry& g, const T* x, T* y);
template <typename T>
void subsample_pad_backward(const SubsamplePadGeometry& g, const T* gy, T* gx, bool accumulate);
}  // namespace reference

// float and bfloat16 (vectorized_subsample_pad.hpp): channel runs copied and added a vector at a time
// channels-last; NCHW rows at stride 2 through the trait's deinterleave and interleave; threads over rows.
namespace avx512 {
template <typename T>
void subsample_pad_forward(const SubsamplePadGeometry& g, const T* x, T* y);
template <typename T>
void subsample_pad_backward(const SubsamplePadGeometry& g, const T* gy, T* gx, bool accumulate);
}  // namespace avx512
namespace avx2 {
template <typename T>
void subsample_pad_forward(const SubsamplePadGeometry& g, const T* x, T* y);
template <typename T>
void subsample_pad_backward(const SubsamplePadGeometry& g, const T* gy, T* gx, bool accumulate);
}  // namespace avx2

// CUDA (cuda_subsample_pad.cu): a thread per element of y, and of gx; on the current device, on the compute
// stream, asynchronously; every pointer is a device pointer.
namespace cuda {
template <typename T>
void subsample_pad_forward(const SubsamplePadGeometry& g, const T* x, T* y);
template <typename T>
void subsample_pad_backward(const SubsamplePadGeometry& g, const T* gy, T* gx, bool accumulate);
}  // namespace cuda

}  // namespace kiln::kernels
