// The channel scale (channel_scale.hpp) for float and bfloat16, written once over a vector trait V
// (simd::FloatVector512 or FloatVector256) and instantiated by avx512.cpp and avx2.cpp. bfloat16 values widen
// into float lanes and round once on the store; a product of two of them is exact in float, so y and gx are
// the reference's bits.
//
// NCHW, each (image, channel) plane is contiguous: its gate broadcast into a register, threads over planes.
// Channels-last, each pixel is a run of C channels scaled by the image's run of C gates, threads over
// images. The backward's plane sums gy * x ride the gx pass: in float lanes (an fma a vector), emptied into
// double every kChunk values of a plane (NCHW), or every kChunk pixels of an image into per-channel doubles
// (channels-last). Each sum's order is fixed by the data alone, so the results are the same on any thread
// count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/channel_scale/channel_scale.hpp"

namespace kiln::kernels::vectorized {
namespace {

inline constexpr std::int64_t kChannelScaleParallelThreshold = 32768;  // elements; below, one thread
inline constexpr std::int64_t kChannelScaleChunk = 1024;  // values a float lane's sum takes before double

// NCHW plane nc (n * C + c) of `count` values: out = in * gate; with x, also the sum of in * x, returned.
template <class V, class T>
double scale_plane(const T* in, float gate, std::int64_t count, T* out, const T* x) {
  using Reg = typename V::Reg;
  const Reg vgate = V::broadcast(gate);
  double sum = 0;
  Reg lanes = V::zero();
  for (std::int64_t i = 0; i < count; i += V::width) {
    const std::int64_t n = std::min<std::int64_t>(V::width, count - i);
    const Reg values = V::load_partial(in + i, n);
    V::store_partial(out + i, V::mul(values, vgate), n);
    if (!x) continue;
    lanes = V::fmadd(values, V::load_partial(x + i, n), lanes);
    if ((i + V::width) % kChannelScaleChunk == 0) {
      sum += V::sum_in_double(lanes);
      lanes = V::zero();
    }
  }
  return x ? sum + V::sum_in_double(lanes) : 0.0;
}

// Channels-last image n: each pixel's run of C values times the image's gates; with x, per-channel sums of
// in * x added into `sums` (C doubles), through float lanes emptied every kChunk pixels.
template <class V, class T>
void scale_image(const ChannelScaleGeometry& g, std::int64_t n, const T* in, const T* s, T* out, const T* x,
                 double* sums) {
  using Reg = typename V::Reg;
  const std::int64_t C = g.channels, plane = g.plane();
  std::vector<float> gates(static_cast<std::size_t>(C)), lanes(x ? static_cast<std::size_t>(C) : 0, 0.0f);
  for (std::int64_t c = 0; c < C; ++c) gates[static_cast<std::size_t>(c)] = static_cast<float>(s[n * C + c]);
  const auto empty_lanes = [&] {
    for (std::int64_t c = 0; c < C; ++c) {
      sums[c] += lanes[static_cast<std::size_t>(c)];
      lanes[static_cast<std::size_t>(c)] = 0.0f;
    }
  };
  for (std::int64_t pixel = 0; pixel < plane; ++pixel) {
    const std::int64_t at = (n * plane + pixel) * C;
    for (std::int64_t c0 = 0; c0 < C; c0 += V::width) {
      const std::int64_t k = std::min<std::int64_t>(V::width, C - c0);
      const Reg values = V::load_partial(in + at + c0, k);
      V::store_partial(out + at + c0, V::mul(values, V::load_partial(gates.data() + c0, k)), k);
      if (!x) continue;
      const Reg sum =
          V::fmadd(values, V::load_partial(x + at + c0, k), V::load_partial(lanes.data() + c0, k));
      V::store_partial(lanes.data() + c0, sum, k);
    }
    if (x && (pixel + 1) % kChannelScaleChunk == 0) empty_lanes();
  }
  if (x) empty_lanes();
}

// out = in * s per channel of each image; with x, gs = each plane's sum of in * x (the backward: in is gy).
template <class V, class T>
void scale_channels(const ChannelScaleGeometry& g, const T* in, const T* s, T* out, const T* x, T* gs) {
  const std::int64_t planes = g.batch * g.channels;
  const bool threaded = planes * g.plane() >= kChannelScaleParallelThreshold;
  if (!g.channels_last) {
#pragma omp parallel for schedule(static) if (threaded)
    for (std::int64_t nc = 0; nc < planes; ++nc) {
      const double sum = scale_plane<V>(in + nc * g.plane(), static_cast<float>(s[nc]), g.plane(),
                                        out + nc * g.plane(), x ? x + nc * g.plane() : nullptr);
      if (x) gs[nc] = static_cast<T>(sum);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (threaded)
  for (std::int64_t n = 0; n < g.batch; ++n) {
    std::vector<double> sums(x ? static_cast<std::size_t>(g.channels) : 0, 0.0);
    scale_image<V>(g, n, in, s, out, x, sums.data());
    for (std::int64_t c = 0; x && c < g.channels; ++c)
      gs[n * g.channels + c] = static_cast<T>(sums[static_cast<std::size_t>(c)]);
  }
}

}  // namespace

template <class V, class T>
void channel_scale_forward(const ChannelScaleGeometry& g, const T* x, const T* s, T* y) {
  scale_channels<V>(g, x, s, y, static_cast<const T*>(nullptr), static_cast<T*>(nullptr));
}

template <class V, class T>
void channel_scale_backward(const ChannelScaleGeometry& g, const T* x, const T* s, const T* gy, T* gx,
                            T* gs) {
  scale_channels<V>(g, gy, s, gx, x, gs);
}

}  // namespace kiln::kernels::vectorized
