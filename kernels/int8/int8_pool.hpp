// Pooling and the option-A shortcut on quantized activations: u8, channels last [N][H][W][CS].
//
// Each keeps its input's (scale, zero point), so it works on the bytes directly: the maximum of quantized
// values is the quantized maximum (quantization is monotonic), and the mean of quantized values is the
// quantized mean up to the final rounding. Geometry and padding rules are kernels/pool/pool.hpp's. All CS
// channels are processed alike: those past the real ones carry whatever they held, which is harmless
// because the next layer's weights for them are zero.
//
//   max pool      padding never wins (it is skipped, as -infinity would be)
//   average pool  sum / divisor rounded half up, the divisor as in pool.hpp (count_include_pad: padded
//                 positions count, and add the zero point each, i.e. real zero)
//   global        the mean of each channel over H x W, rounded half up: y [N][1][1][CS]
//   shortcut      y[n][oh][ow][c + before] = x[n][oh * stride][ow * stride][c] for the input's channels,
//                 the rest `fill` (the zero point: real zero), y [N][ceil(H/s)][ceil(W/s)][out stride]
#pragma once

#include <cstdint>

#include "kernels/pool/pool.hpp"

namespace kiln::kernels {

void int8_max_pool2d(const Pool2dGeometry& g, std::int64_t channel_stride, const std::uint8_t* x,
                     std::uint8_t* y);
void int8_avg_pool2d(const Pool2dGeometry& g, std::int64_t channel_stride, std::uint8_t zero_point,
                     const std::uint8_t* x, std::uint8_t* y);
void int8_global_avg_pool2d(std::int64_t batch, std::int64_t pixels, std::int64_t channel_stride,
                            const std::uint8_t* x, std::uint8_t* y);

struct Int8ShortcutGeometry {
  std::int64_t batch = 1, height = 1, width = 1, stride = 1;
  std::int64_t in_channels = 1, in_channel_stride = 1;
  std::int64_t channels_before = 0, out_channel_stride = 1;
  std::int64_t out_height() const { return (height + stride - 1) / stride; }
  std::int64_t out_width() const { return (width + stride - 1) / stride; }
};
void int8_pad_shortcut(const Int8ShortcutGeometry& g, std::uint8_t fill, const std::uint8_t* x,
                       std::uint8_t* y);

}  // namespace kiln::kernels
