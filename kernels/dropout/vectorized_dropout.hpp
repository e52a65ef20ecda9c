// Threaded inverted dropout over float tensors, written once over a vector trait V
// (simd::FloatVector512 or FloatVector256) and instantiated by avx512.cpp and avx2.cpp.
//
//   x, y, mask [n];  u_i = philox_uniform(state, i);  mask_i = (u_i >= p) ? 1 / (1 - p) : 0;  y_i = x_i *
//   mask_i
//
// Element i draws lane i % 4 of Philox block i / 4, exactly as the reference does, so the mask is bitwise
// the reference's for any thread count. The speedup: one Philox block yields four uniforms (the reference
// computes a block per element and keeps one lane), threads split the elements in fixed chunks, and the
// compare, select and scale run on whole vectors.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/dropout/dropout.hpp"
#include "kernels/random/philox.hpp"

namespace kiln::kernels::vectorized {
namespace {

inline constexpr std::int64_t kParallelThreshold = 16384;  // below this many elements, threads cost more
inline constexpr std::int64_t kDropoutChunk = 4096;        // elements per thread task; a multiple of 4 and 16

}  // namespace

template <class V>
void dropout_forward(std::int64_t n, float p, const PhiloxState& state, const float* x, float* y,
                     float* mask) {
  static_assert(V::width % 4 == 0, "a vector holds whole Philox blocks");
  // As in the reference: when p == 1 nothing is kept (u < 1 always), so the scale is never used.
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const typename V::Reg keep = V::broadcast(keep_scale), drop = V::zero(), threshold = V::broadcast(p);
  const std::int64_t chunks = (n + kDropoutChunk - 1) / kDropoutChunk;
#pragma omp parallel for schedule(static) if (n >= kParallelThreshold)
  for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
    const std::int64_t chunk_end = std::min(n, (chunk + 1) * kDropoutChunk);
    for (std::int64_t i = chunk * kDropoutChunk; i < chunk_end; i += V::width) {
      const std::int64_t count = std::min<std::int64_t>(V::width, chunk_end - i);
      // u for elements i .. i + width - 1: i is a multiple of 4, so lanes 4b .. 4b + 3 are block i / 4 + b.
      float uniforms[V::width];
      for (std::int64_t b = 0; b < V::width / 4; ++b) {
        const PhiloxBlock block = philox_block(state, static_cast<std::uint64_t>(i / 4 + b));
        for (int lane = 0; lane < 4; ++lane) uniforms[4 * b + lane] = uniform_open01<float>(block[lane]);
      }
      // mask = (u >= p) ? keep_scale : 0, written as (u < p) ? 0 : keep_scale (u is never NaN).
      const typename V::Reg m = V::select(V::less(V::load(uniforms), threshold), drop, keep);
      V::store_partial(mask + i, m, count);
      V::store_partial(y + i, V::mul(V::load_partial(x + i, count), m), count);
    }
  }
}

}  // namespace kiln::kernels::vectorized
