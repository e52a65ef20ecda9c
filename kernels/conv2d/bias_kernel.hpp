// Bias add and bias gradient for conv2d, written once against a float vector trait V (simd::FloatVector512
// or FloatVector256, kernels/simd/) and instantiated by avx512_bias.cpp and avx2_bias.cpp.
//
//   add       y[n, co, :, :] += bias[co]                      threads over (n, co) planes
//   gradient  gb[co] = sum over n, oh, ow of gy[n, co, oh, ow] threads over channels
//
// The gradient sums each plane with vector accumulators (four, to cover the add latency), in a fixed
// order, and adds the plane sums into a double image after image: the same bits for any thread count,
// and no long float sum over the whole batch.
#pragma once

#include <cstdint>

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

template <typename V>
float plane_sum(const float* values, std::int64_t count) {
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

template <typename V>
void backward_bias(const Conv2dGeometry& g, const float* gy, float* gb) {
  const std::int64_t plane = g.out_height() * g.out_width();
#pragma omp parallel for schedule(static) if (g.batch * g.out_channels * plane >= kMinParallelAdds)
  for (std::int64_t co = 0; co < g.out_channels; ++co) {
    double total = 0.0;
    for (std::int64_t n = 0; n < g.batch; ++n) {
      total += static_cast<double>(plane_sum<V>(gy + (n * g.out_channels + co) * plane, plane));
    }
    gb[co] = static_cast<float>(total);
  }
}

}  // namespace kiln::kernels::conv2d_bias
