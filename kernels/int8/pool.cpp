// Pooling and the option-A shortcut on u8 channels-last activations (int8_pool.hpp). Plain loops: the inner
// loop runs over adjacent channels, which the compiler vectorizes; these passes move bytes and are a small
// part of a quantized network's time next to its convolutions. Images run in parallel.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/int8/int8_pool.hpp"

namespace kiln::kernels {

void int8_max_pool2d(const Pool2dGeometry& g, std::int64_t channel_stride, const std::uint8_t* x,
                     std::uint8_t* y) {
  const std::int64_t oh_count = g.out_height(), ow_count = g.out_width(), cs = channel_stride;
#pragma omp parallel for schedule(static) if (g.batch > 1)
  for (std::int64_t n = 0; n < g.batch; ++n) {
    for (std::int64_t oh = 0; oh < oh_count; ++oh) {
      for (std::int64_t ow = 0; ow < ow_count; ++ow) {
        std::uint8_t* out = y + ((n * oh_count + oh) * ow_count + ow) * cs;
        std::fill(out, out + cs, std::uint8_t{0});
        for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
          const std::int64_t ih = oh * g.stride_h - g.pad_h + kh;
          if (ih < 0 || ih >= g.in_height) continue;
          for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
            const std::int64_t iw = ow * g.stride_w - g.pad_w + kw;
            if (iw < 0 || iw >= g.in_width) continue;
            const std::uint8_t* in = x + ((n * g.in_height + ih) * g.in_width + iw) * cs;
            for (std::int64_t c = 0; c < cs; ++c) out[c] = std::max(out[c], in[c]);
          }
        }
      }
    }
  }
}

void int8_avg_pool2d(const Pool2dGeometry& g, std::int64_t channel_stride, std::uint8_t zero_point,
                     const std::uint8_t* x, std::uint8_t* y) {
  const std::int64_t oh_count = g.out_height(), ow_count = g.out_width(), cs = channel_stride;
#pragma omp parallel for schedule(static) if (g.batch > 1)
  for (std::int64_t n = 0; n < g.batch; ++n) {
    std::vector<std::int32_t> sum(static_cast<std::size_t>(cs));
    for (std::int64_t oh = 0; oh < oh_count; ++oh) {
      for (std::int64_t ow = 0; ow < ow_count; ++ow) {
        std::fill(sum.begin(), sum.end(), 0);
        // Window positions inside the input, and inside the padded input (pool.hpp's two divisors).
        std::int64_t inside = 0, inside_padded = 0;
        for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
          const std::int64_t ih = oh * g.stride_h - g.pad_h + kh;
          for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
            const std::int64_t iw = ow * g.stride_w - g.pad_w + kw;
            if (ih >= g.in_height + g.pad_h || iw >= g.in_width + g.pad_w)
              continue;  // past the right padding
            ++inside_padded;
            if (ih < 0 || ih >= g.in_height || iw < 0 || iw >= g.in_width) continue;
            ++inside;
            const std::uint8_t* in = x + ((n * g.in_height + ih) * g.in_width + iw) * cs;
            for (std::int64_t c = 0; c < cs; ++c) sum[c] += in[c];
          }
        }
        // A padded position is real zero, the byte zero_point.
        const std::int64_t padding_positions = g.count_include_pad ? inside_padded - inside : 0;
        const std::int32_t divisor =
            static_cast<std::int32_t>(std::max<std::int64_t>(inside + padding_positions, 1));
        const std::int32_t padding_sum = static_cast<std::int32_t>(padding_positions) * zero_point;
        std::uint8_t* out = y + ((n * oh_count + oh) * ow_count + ow) * cs;
        for (std::int64_t c = 0; c < cs; ++c)
          out[c] = static_cast<std::uint8_t>((sum[c] + padding_sum + divisor / 2) / divisor);
      }
    }
  }
}

void int8_global_avg_pool2d(std::int64_t batch, std::int64_t pixels, std::int64_t channel_stride,
                            const std::uint8_t* x, std::uint8_t* y) {
  const auto half = static_cast<std::int32_t>(pixels / 2), divisor = static_cast<std::int32_t>(pixels);
#pragma omp parallel for schedule(static) if (batch > 1)
  for (std::int64_t n = 0; n < batch; ++n) {
    std::vector<std::int32_t> sum(static_cast<std::size_t>(channel_stride), 0);
    const std::uint8_t* image = x + n * pixels * channel_stride;
    for (std::int64_t p = 0; p < pixels; ++p) {
      for (std::int64_t c = 0; c < channel_stride; ++c) sum[c] += image[p * channel_stride + c];
    }
    for (std::int64_t c = 0; c < channel_stride; ++c)
      y[n * channel_stride + c] = static_cast<std::uint8_t>((sum[c] + half) / divisor);
  }
}

void int8_pad_shortcut(const Int8ShortcutGeometry& g, std::uint8_t fill, const std::uint8_t* x,
                       std::uint8_t* y) {
  const std::int64_t oh_count = g.out_height(), ow_count = g.out_width();
#pragma omp parallel for schedule(static) if (g.batch > 1)
  for (std::int64_t n = 0; n < g.batch; ++n) {
    for (std::int64_t oh = 0; oh < oh_count; ++oh) {
      for (std::int64_t ow = 0; ow < ow_count; ++ow) {
        std::uint8_t* out = y + ((n * oh_count + oh) * ow_count + ow) * g.out_channel_stride;
        const std::uint8_t* in =
            x + ((n * g.height + oh * g.stride) * g.width + ow * g.stride) * g.in_channel_stride;
        std::memset(out, fill, static_cast<std::size_t>(g.out_channel_stride));
        std::memcpy(out + g.channels_before, in, static_cast<std::size_t>(g.in_channels));
      }
    }
  }
}

}  // namespace kiln::kernels
