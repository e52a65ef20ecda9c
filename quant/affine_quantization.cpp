#include "quant/affine_quantization.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace kiln::quant {

AffineQuantization AffineQuantization::covering(float low, float high) {
  KILN_CHECK(std::isfinite(low) && std::isfinite(high) && low <= high, "quantization range [", low, ", ",
             high, "] is not a finite interval");
  low = std::min(low, 0.0f);
  high = std::max(high, 0.0f);
  if (high - low <= 0.0f) return AffineQuantization{1.0f, 0};
  AffineQuantization q;
  q.scale = (high - low) / 255.0f;
  q.zero_point = static_cast<std::int32_t>(std::clamp(std::nearbyint(-low / q.scale), 0.0f, 255.0f));
  return q;
}

PerChannelWeights quantize_per_channel(const std::vector<float>& w, std::int64_t out_channels) {
  KILN_CHECK(out_channels > 0 && w.size() % static_cast<std::size_t>(out_channels) == 0,
             "quantize_per_channel: ", w.size(), " weights do not split into ", out_channels, " channels");
  const std::size_t per_channel = w.size() / static_cast<std::size_t>(out_channels);
  PerChannelWeights q;
  q.values.resize(w.size());
  q.scales.resize(static_cast<std::size_t>(out_channels));
  for (std::size_t co = 0; co < q.scales.size(); ++co) {
    const auto first = w.begin() + static_cast<std::ptrdiff_t>(co * per_channel);
    float largest = 0.0f;
    for (auto it = first; it != first + static_cast<std::ptrdiff_t>(per_channel); ++it)
      largest = std::max(largest, std::abs(*it));
    const float scale = largest > 0.0f ? largest / 127.0f : 1.0f;
    q.scales[co] = scale;
    for (std::size_t i = 0; i < per_channel; ++i) {
      const float level = std::clamp(std::nearbyint(w[co * per_channel + i] / scale), -127.0f, 127.0f);
      q.values[co * per_channel + i] = static_cast<std::int8_t>(level);
    }
  }
  return q;
}

}  // namespace kiln::quant
