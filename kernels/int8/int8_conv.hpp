// Int8 convolution for quantized inference: u8 activations, s8 weights, exact s32 sums, and a float
// epilogue that turns each sum back into the next layer's u8 (or into float logits).
//
// The arithmetic (quant/ chooses the numbers; see quant/quantized_model.hpp): a real activation is
// scale_x * (x_u8 - zero_x) and a real weight scale_w[co] * w_s8, so a real output is
//
//   y[co] = scale_x * scale_w[co] * (sum x_u8 * w_s8 - zero_x * sum w_s8) + bias[co]
//
// The kernel computes the exact integer sum `acc` and then, per output channel,
//
//   v = acc * multiplier[co] + offset[co]           (one fused multiply-add)
//   v = r_u8 * residual_multiplier + v              (when a residual is given: the block's shortcut)
//   v = clamp(v, lower_bound, upper_bound)
//   y = round-half-even(v) as u8, or v as float when float_output
//
// with every constant folded in by the caller: multiplier = scale_x * scale_w[co] / scale_y, offset =
// (bias[co] - scale_x * scale_w[co] * zero_x * sum w) / scale_y + zero_y - residual_multiplier * zero_r,
// and ReLU as lower_bound = zero_y. The reference and the VNNI kernel evaluate exactly these float
// operations in this order, so they agree bit for bit.
//
// Layouts (channels last, so the 4 input channels a VNNI lane multiplies are adjacent bytes):
//   x  u8  [N][PH][PW][CS]   the input already zero-padded (pad_nhwc_u8 fills the border with zero_x,
//                            which contributes exactly 0 after the compensation above). CS, the channel
//                            stride, is a multiple of 4; channels past the real ones may hold anything,
//                            because their weights are zero.
//   w  s8  packed by pack_int8_conv_weights: [CO/16][KH][KW][CS/4][16][4], CO a multiple of 16: for each
//          block of 16 output channels, one 64-byte vector per (tap, group of 4 input channels), lane j
//          holding output channel 16 b + j's 4 weights. This is the order the kernel streams them in.
//   y  u8 or float [N][OH][OW][CO]
//   r  u8  [N][OH][OW][CO] (optional)
//
// Depthwise convolution (groups == channels) has its own kernel: each output channel reads one input
// channel, so there is no sum over channels for VNNI to vectorize.
//   w  s8  [KH][KW][CS]   (CS = CO, a multiple of 16)
#pragma once

#include <cstdint>
#include <limits>

namespace kiln::kernels {

inline constexpr std::int64_t kInt8ChannelQuad = 4;    // input channels per VNNI lane
inline constexpr std::int64_t kInt8ChannelBlock = 16;  // output channels per 512-bit vector of s32
// The s32 sums are exact while no sum of products (each at most 255 x 128 in size) can pass 2^31: up to
// this many inputs per output (KH x KW x CS). The kernels refuse more.
inline constexpr std::int64_t kInt8MaxInputsPerOutput = (std::int64_t{1} << 31) / (255 * 128) - 1;

constexpr std::int64_t round_up_to_multiple(std::int64_t value, std::int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

struct Int8ConvGeometry {
  std::int64_t batch = 1;
  std::int64_t padded_height = 1, padded_width = 1;  // of x, border included
  std::int64_t in_channel_stride = 4;                // CS, a multiple of 4 (of 16 for depthwise)
  std::int64_t out_channels = 16;                    // CO, a multiple of 16
  std::int64_t kernel_h = 1, kernel_w = 1;
  std::int64_t stride = 1, dilation = 1;

  constexpr std::int64_t out_height() const {
    return (padded_height - dilation * (kernel_h - 1) - 1) / stride + 1;
  }
  constexpr std::int64_t out_width() const {
    return (padded_width - dilation * (kernel_w - 1) - 1) / stride + 1;
  }
  constexpr std::int64_t out_pixels() const { return batch * out_height() * out_width(); }
  constexpr std::int64_t channel_quads() const { return in_channel_stride / kInt8ChannelQuad; }
  // Bytes of one block of 16 output channels' packed weights.
  constexpr std::int64_t packed_block_bytes() const {
    return kernel_h * kernel_w * channel_quads() * kInt8ChannelBlock * kInt8ChannelQuad;
  }
};

struct Int8Epilogue {
  const float* multiplier = nullptr;  // [CO]
  const float* offset = nullptr;      // [CO]
  const std::uint8_t* residual = nullptr;
  float residual_multiplier = 0.0f;
  float lower_bound = 0.0f;    // u8 output: zero_y with ReLU, else 0; float output: 0 or -inf
  float upper_bound = 255.0f;  // u8 output: 255; float output: +inf
  bool float_output = false;   // y is float, not u8
};

// The bounds for a u8 output with zero point `zero` (ReLU clamps at the zero point: real 0), and for a
// float output.
constexpr Int8Epilogue int8_bounds_u8(std::int32_t zero, bool relu) {
  Int8Epilogue e;
  e.lower_bound = relu ? static_cast<float>(zero) : 0.0f;
  e.upper_bound = 255.0f;
  return e;
}
constexpr Int8Epilogue int8_bounds_float(bool relu) {
  Int8Epilogue e;
  e.lower_bound = relu ? 0.0f : -std::numeric_limits<float>::infinity();
  e.upper_bound = std::numeric_limits<float>::infinity();
  e.float_output = true;
  return e;
}

// ---- layout helpers (layout.cpp) ----------------------------------------------------------------------

// w [CO_real][KH][KW][CI_real] s8 -> the packed layout above for CO = round_up(CO_real, 16) and the given
// CS >= CI_real; the padding weights are zero. `packed` holds CO / 16 * g.packed_block_bytes() bytes.
void pack_int8_conv_weights(const Int8ConvGeometry& g, std::int64_t real_out_channels,
                            std::int64_t real_in_channels, const std::int8_t* w, std::int8_t* packed);

// x [N][H][W][CS] -> [N][H + 2 pad][W + 2 pad][CS], the border filled with `fill`.
void pad_nhwc_u8(std::int64_t batch, std::int64_t height, std::int64_t width, std::int64_t channel_stride,
                 std::int64_t pad, std::uint8_t fill, const std::uint8_t* x, std::uint8_t* padded);

// ---- kernels ------------------------------------------------------------------------------------------

// Dispatch (dispatch.cpp): the AVX-512 kernels when the CPU has VNNI and the level allows AVX-512, else
// the reference (threaded over images). y is u8* or float* as the epilogue says.
void int8_conv2d(const Int8ConvGeometry& g, const std::uint8_t* x, const std::int8_t* packed_w,
                 const Int8Epilogue& epilogue, void* y);
void int8_depthwise_conv2d(const Int8ConvGeometry& g, const std::uint8_t* x, const std::int8_t* w,
                           const Int8Epilogue& epilogue, void* y);
// Whether int8_conv2d runs the VNNI kernel now (for benchmarks and `kiln quantize`'s report).
bool int8_conv2d_uses_vnni();

namespace reference {
// Plain loops over the formula above: the oracle.
void int8_conv2d(const Int8ConvGeometry& g, const std::uint8_t* x, const std::int8_t* packed_w,
                 const Int8Epilogue& epilogue, void* y);
void int8_depthwise_conv2d(const Int8ConvGeometry& g, const std::uint8_t* x, const std::int8_t* w,
                           const Int8Epilogue& epilogue, void* y);
}  // namespace reference

// The AVX-512 kernels (avx512_vnni.cpp), threaded. The depthwise one needs only AVX-512BW but shares the
// file's vector epilogue, so it runs where the VNNI kernel does.
namespace avx512_vnni {
void int8_conv2d(const Int8ConvGeometry& g, const std::uint8_t* x, const std::int8_t* packed_w,
                 const Int8Epilogue& epilogue, void* y);
void int8_depthwise_conv2d(const Int8ConvGeometry& g, const std::uint8_t* x, const std::int8_t* w,
                           const Int8Epilogue& epilogue, void* y);
}  // namespace avx512_vnni

}  // namespace kiln::kernels
