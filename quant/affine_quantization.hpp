// The two ways kiln's int8 inference stores real numbers in bytes.
//
// Activations: unsigned 8-bit, affine (asymmetric), one (scale, zero point) per tensor:
//   real = scale * (q - zero_point),  q in [0, 255]
// The range [low, high] seen in calibration is widened to include 0, so real 0 (a ReLU's floor, the
// convolution's zero padding) is exactly representable as q = zero_point. After a ReLU, low = 0 and the
// zero point is 0: all 256 levels cover the positive range.
//
// Weights: signed 8-bit, symmetric, one scale per output channel:
//   real = scale[co] * q,  q in [-127, 127],  scale[co] = max |w[co, ...]| / 127
// Per-channel scales matter after batch-norm folding, which multiplies each channel's filter by its own
// gamma / sigma: one scale for the whole tensor would waste most levels on the small channels. -128 is not
// used, so the range is symmetric and the zero point is 0 (no cross term with the activations').
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace kiln::quant {

struct AffineQuantization {
  float scale = 1.0f;
  std::int32_t zero_point = 0;

  // The parameters covering [min(low, 0), max(high, 0)] with 256 levels; an empty range (all zeros) gets
  // scale 1 so nothing divides by zero.
  static AffineQuantization covering(float low, float high);

  // Round half to even, clamp to [0, 255]. Inline: it runs once per input pixel of every forward pass.
  std::uint8_t quantize(float real) const {
    const float q = std::nearbyint(real / scale) + static_cast<float>(zero_point);
    return static_cast<std::uint8_t>(std::clamp(q, 0.0f, 255.0f));
  }
  float dequantize(std::uint8_t q) const {
    return scale * static_cast<float>(static_cast<std::int32_t>(q) - zero_point);
  }
};

struct PerChannelWeights {
  std::vector<std::int8_t> values;  // the weights' layout, each in [-127, 127]
  std::vector<float> scales;        // [out_channels]; a channel of zeros gets scale 1
};

// w holds out_channels rows of per_channel weights each.
PerChannelWeights quantize_per_channel(const std::vector<float>& w, std::int64_t out_channels);

}  // namespace kiln::quant
