// Channels-last pixels in and out of channel vectors, for a kernel that keeps a block of channels
// channels-last in its own buffers (winograd_kernel.hpp; depthwise_channels_kernel.hpp moves whole vectors
// of a pixel's neighbouring blocks itself, gather_blocks): a pixel's channels padded to whole vectors of V
// (simd::FloatVector512 or FloatVector256), zero past the last real channel, so every lane a kernel reads is
// defined. Templates on V, so the AVX-512 and AVX2 builds never share a compiled function; the tensor side T
// is float or bfloat16 (widened exactly on the way in, rounded once on the way out: V's loads and stores),
// the buffers float.
#pragma once

#include <algorithm>
#include <cstdint>

namespace kiln::kernels::channel_pixels {

// Channels-last pixels into padded channel vectors: `count` pixels of `channels` floats, `from_stride`
// floats apart, into rows of `to_stride` floats (whole vectors), zero in the lanes past `channels`.
template <typename V, typename T>
void copy_pixels(const T* from, std::int64_t from_stride, std::int64_t count, std::int64_t channels,
                 float* to, std::int64_t to_stride) {
  for (std::int64_t i = 0; i < count; ++i) {
    for (std::int64_t lane0 = 0; lane0 < to_stride; lane0 += V::width) {
      const std::int64_t lanes = std::clamp<std::int64_t>(channels - lane0, 0, V::width);
      const T* pixel = from + i * from_stride + lane0;
      V::store(to + i * to_stride + lane0,
               lanes == V::width ? V::load(pixel) : V::load_partial(pixel, lanes));
    }
  }
}

// And back: `count` pixels' first `channels` floats from rows of `from_stride` into dense channels-last
// pixels.
template <typename V, typename T>
void store_pixels(const float* from, std::int64_t from_stride, std::int64_t count, std::int64_t channels,
                  T* to) {
  for (std::int64_t i = 0; i < count; ++i) {
    for (std::int64_t lane0 = 0; lane0 < channels; lane0 += V::width) {
      V::store_partial(to + i * channels + lane0, V::load(from + i * from_stride + lane0),
                       std::min<std::int64_t>(V::width, channels - lane0));
    }
  }
}

}  // namespace kiln::kernels::channel_pixels
