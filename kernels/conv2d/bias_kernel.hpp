// Bias add and bias gradient for conv2d, written once against a float vector trait V (simd::FloatVector512
// or FloatVector256, kernels/simd/) and instantiated by avx512_bias.cpp and avx2_bias.cpp.
//
//   add       y[n, co, :, :] += bias[co]                      threads over (n, co) planes
//   normalize y[n, co, :, :] = act(normalized(y) + residual)  threads over (n, co) planes
//   gradient  gb[co] = sum over n, oh, ow of gy[n, co, oh, ow] NCHW: threads over channels
//                                                              channels-last: threads over images
//
// The gradient sums each image's plane of a channel in float vector accumulators (four, to cover the add
// latency), in a fixed order, and adds the plane sums into a double image after image: the same bits for
// any thread count, and no long float sum over the whole batch. NCHW a plane is a run of values, summed
// along it; channels-last a vector holds V::width channels of one position, summed over the positions, so
// every lane is a channel's own sum. gy and gb are float or bfloat16 (widened as loaded, the sum rounded
// once).
#pragma once

#include <omp.h>

#include <cstdint>
#include <vector>

#include "kernels/batchnorm/batchnorm_vector_ops.hpp"
#include "kernels/conv2d/conv2d.hpp"

namespace kiln::kernels::conv2d_bias {

// Below this many additions a call runs on one thread: a parallel region costs more than the work.
constexpr std::int64_t kMinParallelAdds = std::int64_t{1} << 16;

template <typename V>
void add_bias(const Conv2dGeometry& g, const float* bias, float* y) {
  const std::int64_t planes = g.batch * g.out_channels, plane = g.out_height() * g.out_width();
#pragma omp parallel for schedule(static) if (g.batch * g.out_channels * plane >= kMinParallelAdds)
  for (std::int64_t p = 0; p < planes; ++p) {
    const typename V::Reg b = V::broadcast(bias[p % g.out_channels]);
    float* row = y + p * plane;
    for (std::int64_t i = 0; i < plane; i += V::width) {
      const std::int64_t count = plane - i < V::width ? plane - i : V::width;
      V::store_partial(row + i, V::add(V::load_partial(row + i, count), b), count);
    }
  }
}

// y = act(normalized(y) + residual) on NCHW planes, in place (OutputNormalization, conv2d.hpp: inference's
// batch norm on a convolution's output), each plane through batch norm's own run
// (batchnorm_vector_ops.hpp's shift_scale_offset), so the eval kernel's bits: plane p (of channel p %
// channels) alone, as the depthwise forward normalizes each plane it computes, or all of them, threads over
// planes unless the caller is already one of a team's (a chunk of images in a kernel's own parallel region).
template <typename V>
void normalize_plane(const OutputNormalization& n, std::int64_t p, std::int64_t channels, std::int64_t plane,
                     float* y) {
  const std::int64_t c = p % channels;
  float* run = y + p * plane;
  vectorized::shift_scale_offset<V>(run, plane, n.shift[c], n.scale[c], n.offset[c],
                                    n.residual ? n.residual + p * plane : nullptr,
                                    vectorized::OutputActivation{n.relu, n.relu_upper}, run);
}

template <typename V>
void normalize_outputs(const Conv2dGeometry& g, const OutputNormalization& n, float* y) {
  const std::int64_t planes = g.batch * g.out_channels, plane = g.out_height() * g.out_width();
#pragma omp parallel for schedule(static) if (planes * plane >= kMinParallelAdds && !omp_in_parallel())
  for (std::int64_t p = 0; p < planes; ++p) normalize_plane<V>(n, p, g.out_channels, plane, y);
}

template <typename V, typename T>
float plane_sum(const T* values, std::int64_t count) {
  using Vector = typename V::Reg;
  Vector sums[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
  std::int64_t i = 0;
  for (; i + 4 * V::width <= count; i += 4 * V::width) {
    for (int k = 0; k < 4; ++k) sums[k] = V::add(sums[k], V::load(values + i + k * V::width));
  }
  for (; i < count; i += V::width) {
    const std::int64_t lanes = count - i < V::width ? count - i : V::width;
    sums[0] = V::add(sums[0], V::load_partial(values + i, lanes));
  }
  return V::sum(V::add(V::add(sums[0], sums[1]), V::add(sums[2], sums[3])));
}

// One channels-last image's [positions][channels] summed over its positions: sums[c] for every channel.
template <typename V, typename T>
void image_channel_sums(const T* image, std::int64_t positions, std::int64_t channels, float* sums) {
  using Vector = typename V::Reg;
  for (std::int64_t c = 0; c < channels; c += V::width) {
    const std::int64_t lanes = channels - c < V::width ? channels - c : V::width;
    Vector partial[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
    std::int64_t p = 0;
    for (; p + 4 <= positions; p += 4) {
      for (int k = 0; k < 4; ++k)
        partial[k] = V::add(partial[k], V::load_partial(image + (p + k) * channels + c, lanes));
    }
    for (; p < positions; ++p)
      partial[0] = V::add(partial[0], V::load_partial(image + p * channels + c, lanes));
    V::store_partial(sums + c, V::add(V::add(partial[0], partial[1]), V::add(partial[2], partial[3])), lanes);
  }
}

template <typename V, typename T>
void backward_bias(const Conv2dGeometry& g, const T* gy, T* gb) {
  const std::int64_t plane = g.out_height() * g.out_width(), channels = g.out_channels;
  const bool parallel = g.batch * channels * plane >= kMinParallelAdds;
  if (!g.channels_last) {
#pragma omp parallel for schedule(static) if (parallel)
    for (std::int64_t co = 0; co < channels; ++co) {
      double total = 0.0;
      for (std::int64_t n = 0; n < g.batch; ++n) {
        total += static_cast<double>(plane_sum<V>(gy + (n * channels + co) * plane, plane));
      }
      gb[co] = static_cast<T>(total);
    }
    return;
  }
  std::vector<float> image_sums(static_cast<std::size_t>(g.batch * channels));  // [N][C]
#pragma omp parallel for schedule(static) if (parallel)
  for (std::int64_t n = 0; n < g.batch; ++n) {
    image_channel_sums<V>(gy + n * plane * channels, plane, channels, image_sums.data() + n * channels);
  }
  for (std::int64_t co = 0; co < channels; ++co) {
    double total = 0.0;
    for (std::int64_t n = 0; n < g.batch; ++n)
      total += image_sums[static_cast<std::size_t>(n * channels + co)];
    gb[co] = static_cast<T>(total);
  }
}

}  // namespace kiln::kernels::conv2d_bias
