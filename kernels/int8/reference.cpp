// The reference int8 convolutions: plain loops over int8_conv.hpp's formula, the oracle for the AVX-512
// kernels, and what runs on a CPU without AVX-512 VNNI.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/int8/int8_conv.hpp"

namespace kiln::kernels::reference {
namespace {

// One output element: exact s32 sum -> float -> optional residual -> clamp -> u8 or float. fma, then fma,
// then clamp, then round-half-even: the operations _mm512_fmadd_ps, _mm512_min/max_ps and
// _mm512_cvtps_epi32 perform in the VNNI kernel, so both round identically. `index` is the element's
// position in y (and in the residual), pixel * CO + co.
void finish(const Int8Epilogue& e, std::int32_t acc, std::int64_t co, std::int64_t index, void* y) {
  float v = std::fma(static_cast<float>(acc), e.multiplier[co], e.offset[co]);
  if (e.residual) v = std::fma(static_cast<float>(e.residual[index]), e.residual_multiplier, v);
  v = std::min(std::max(v, e.lower_bound), e.upper_bound);
  if (e.float_output) {
    static_cast<float*>(y)[index] = v;
  } else {
    static_cast<std::uint8_t*>(y)[index] = static_cast<std::uint8_t>(std::nearbyint(v));
  }
}

}  // namespace

void int8_conv2d(const Int8ConvGeometry& g, const std::uint8_t* x, const std::int8_t* packed_w,
                 const Int8Epilogue& epilogue, void* y) {
  const std::int64_t oh_count = g.out_height(), ow_count = g.out_width(), cs = g.in_channel_stride;
  for (std::int64_t n = 0; n < g.batch; ++n) {
    for (std::int64_t oh = 0; oh < oh_count; ++oh) {
      for (std::int64_t ow = 0; ow < ow_count; ++ow) {
        const std::int64_t pixel = (n * oh_count + oh) * ow_count + ow;
        for (std::int64_t co = 0; co < g.out_channels; ++co) {
          const std::int8_t* block = packed_w + co / kInt8ChannelBlock * g.packed_block_bytes();
          const std::int64_t lane = co % kInt8ChannelBlock;
          std::int32_t acc = 0;
          for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
            for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
              const std::int64_t ih = oh * g.stride + kh * g.dilation, iw = ow * g.stride + kw * g.dilation;
              const std::uint8_t* in = x + ((n * g.padded_height + ih) * g.padded_width + iw) * cs;
              for (std::int64_t ci = 0; ci < cs; ++ci) {
                const std::int64_t step = (kh * g.kernel_w + kw) * g.channel_quads() + ci / kInt8ChannelQuad;
                const std::int8_t weight =
                    block[(step * kInt8ChannelBlock + lane) * kInt8ChannelQuad + ci % kInt8ChannelQuad];
                acc += static_cast<std::int32_t>(in[ci]) * static_cast<std::int32_t>(weight);
              }
            }
          }
          finish(epilogue, acc, co, pixel * g.out_channels + co, y);
        }
      }
    }
  }
}

void int8_depthwise_conv2d(const Int8ConvGeometry& g, const std::uint8_t* x, const std::int8_t* w,
                           const Int8Epilogue& epilogue, void* y) {
  const std::int64_t oh_count = g.out_height(), ow_count = g.out_width(), channels = g.out_channels;
  std::vector<std::int32_t> acc(static_cast<std::size_t>(channels));
  for (std::int64_t n = 0; n < g.batch; ++n) {
    for (std::int64_t oh = 0; oh < oh_count; ++oh) {
      for (std::int64_t ow = 0; ow < ow_count; ++ow) {
        std::fill(acc.begin(), acc.end(), 0);
        for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
          for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
            const std::int64_t ih = oh * g.stride + kh * g.dilation, iw = ow * g.stride + kw * g.dilation;
            const std::uint8_t* in = x + ((n * g.padded_height + ih) * g.padded_width + iw) * channels;
            const std::int8_t* tap = w + (kh * g.kernel_w + kw) * channels;
            for (std::int64_t c = 0; c < channels; ++c) acc[c] += std::int32_t{in[c]} * std::int32_t{tap[c]};
          }
        }
        const std::int64_t pixel = (n * oh_count + oh) * ow_count + ow;
        for (std::int64_t c = 0; c < channels; ++c) finish(epilogue, acc[c], c, pixel * channels + c, y);
      }
    }
  }
}

}  // namespace kiln::kernels::reference
