// The data layouts of the int8 convolution (int8_conv.hpp): packing weights into the order the VNNI
// kernel streams them, and padding a channels-last image with its zero point.
#include <cstring>

#include "core/error.hpp"
#include "kernels/int8/int8_conv.hpp"

namespace kiln::kernels {

void pack_int8_conv_weights(const Int8ConvGeometry& g, std::int64_t real_out_channels,
                            std::int64_t real_in_channels, const std::int8_t* w, std::int8_t* packed) {
  KILN_CHECK(g.out_channels % kInt8ChannelBlock == 0 && g.in_channel_stride % kInt8ChannelQuad == 0 &&
                 real_out_channels <= g.out_channels && real_in_channels <= g.in_channel_stride,
             "pack_int8_conv_weights: ", real_out_channels, " -> ", real_in_channels, " channels do not fit ",
             g.out_channels, " x ", g.in_channel_stride);
  const std::int64_t quads = g.channel_quads();
  std::memset(packed, 0,
              static_cast<std::size_t>(g.out_channels / kInt8ChannelBlock * g.packed_block_bytes()));
  for (std::int64_t co = 0; co < real_out_channels; ++co) {
    const std::int64_t block = co / kInt8ChannelBlock, lane = co % kInt8ChannelBlock;
    for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
        for (std::int64_t ci = 0; ci < real_in_channels; ++ci) {
          const std::int64_t step = (kh * g.kernel_w + kw) * quads + ci / kInt8ChannelQuad;
          const std::int64_t at = block * g.packed_block_bytes() +
                                  (step * kInt8ChannelBlock + lane) * kInt8ChannelQuad +
                                  ci % kInt8ChannelQuad;
          packed[at] = w[((co * g.kernel_h + kh) * g.kernel_w + kw) * real_in_channels + ci];
        }
      }
    }
  }
}

void pad_nhwc_u8(std::int64_t batch, std::int64_t height, std::int64_t width, std::int64_t channel_stride,
                 std::int64_t pad, std::uint8_t fill, const std::uint8_t* x, std::uint8_t* padded) {
  const std::int64_t padded_width = width + 2 * pad, padded_height = height + 2 * pad;
  const auto row_bytes = static_cast<std::size_t>(width * channel_stride);
  const auto pad_bytes = static_cast<std::size_t>(pad * channel_stride);
#pragma omp parallel for schedule(static) if (batch > 1)
  for (std::int64_t n = 0; n < batch; ++n) {
    std::uint8_t* image = padded + n * padded_height * padded_width * channel_stride;
    const std::size_t band = static_cast<std::size_t>(pad * padded_width * channel_stride);
    std::memset(image, fill, band);                                                   // top rows
    std::memset(image + (pad + height) * padded_width * channel_stride, fill, band);  // bottom rows
    for (std::int64_t h = 0; h < height; ++h) {
      std::uint8_t* row = image + (pad + h) * padded_width * channel_stride;
      std::memset(row, fill, pad_bytes);
      std::memcpy(row + pad_bytes, x + ((n * height + h) * width) * channel_stride, row_bytes);
      std::memset(row + pad_bytes + row_bytes, fill, pad_bytes);
    }
  }
}

}  // namespace kiln::kernels
