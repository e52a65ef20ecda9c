// The squeeze-and-excitation block's last step (Hu et al. 2018; MobileNetV3's inverted residuals): every
// channel of every image scaled by its own gate.
//
//   x, y, gy, gx  [N][C][H][W], NCHW or channels-last ([N][H][W][C] in memory);  s, gs  [N][C]
//   forward:   y[n][c][h][w] = x[n][c][h][w] * s[n][c]
//   backward:  gx[n][c][h][w] = gy[n][c][h][w] * s[n][c]
//              gs[n][c] = sum over (h, w) of gy[n][c][h][w] * x[n][c][h][w]
//
// Why an op of its own: as a broadcasting multiply ([N, C, H, W] * [N, C, 1, 1]) the backward was two
// multiplies over the whole tensor, gy * s and gy * x, the second written out only to be summed over each
// plane by a reduction: three passes that wrote two tensors, where this backward reads gy and x once and
// writes gx, the sums riding the same pass.
//
// The products are the multiply's: a product of two floats (or two bfloat16s, exact in float) rounded once
// to T, so y and gx are the broadcasting multiply's bits in every kernel. gs sums in double (the reference
// and CUDA) or in float lanes emptied into double every 1024 values (vectorized), each plane's sum in a fixed
// order, rounded once to T: the same bits on any thread count, within a rounding of the reference.
#pragma once

#include <cstdint>

#include "core/bfloat16.hpp"  // bfloat16, KILN_HOST_DEVICE
#include "core/device.hpp"

namespace kiln::kernels {

struct ChannelScaleGeometry {
  std::int64_t batch = 0, channels = 0, height = 0, width = 0;
  bool channels_last = false;  // x, y, gy, gx stored [N][H][W][C]; s and gs are [N][C] either way

  KILN_HOST_DEVICE std::int64_t plane() const { return height * width; }
  // Where value i (i < H * W) of image n's plane of channel c lies.
  KILN_HOST_DEVICE std::int64_t offset(std::int64_t n, std::int64_t c, std::int64_t i) const {
    return channels_last ? (n * plane() + i) * channels + c : (n * channels + c) * plane() + i;
  }
};

// T is float, double or bfloat16.
template <typename T>
void channel_scale_forward(Device device, const ChannelScaleGeometry& g, const T* x, const T* s, T* y);
template <typename T>
void channel_scale_backward(Device device, const ChannelScaleGeometry& g, const T* x, const T* s, const T* gy,
                            T* gx, T* gs);

namespace reference {
template <typename T>
void channel_scale_forward(const ChannelScaleGeometry& g, const T* x, const T* s, T* y);
template <typename T>
void channel_scale_backward(const ChannelScaleGeometry& g, const T* x, const T* s, const T* gy, T* gx, T* gs);
}  // namespace reference

// float and bfloat16 (vectorized_channel_scale.hpp): NCHW a plane at a time, its gate broadcast;
// channels-last a pixel's run of channels against the image's run of gates; threads over planes or images.
namespace avx512 {
template <typename T>
void channel_scale_forward(const ChannelScaleGeometry& g, const T* x, const T* s, T* y);
template <typename T>
void channel_scale_backward(const ChannelScaleGeometry& g, const T* x, const T* s, const T* gy, T* gx, T* gs);
}  // namespace avx512
namespace avx2 {
template <typename T>
void channel_scale_forward(const ChannelScaleGeometry& g, const T* x, const T* s, T* y);
template <typename T>
void channel_scale_backward(const ChannelScaleGeometry& g, const T* x, const T* s, const T* gy, T* gx, T* gs);
}  // namespace avx2

// CUDA (cuda_channel_scale.cu): a thread per element for y and gx, a block per (image, channel) for gs; on
// the current device, on the compute stream, asynchronously; every pointer is a device pointer.
namespace cuda {
template <typename T>
void channel_scale_forward(const ChannelScaleGeometry& g, const T* x, const T* s, T* y);
template <typename T>
void channel_scale_backward(const ChannelScaleGeometry& g, const T* x, const T* s, const T* gy, T* gx, T* gs);
}  // namespace cuda

}  // namespace kiln::kernels
