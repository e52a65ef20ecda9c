// Vectorized float pooling over NCHW planes, written once over a vector trait V (simd::FloatVector512 or
// FloatVector256) and instantiated by avx512.cpp and avx2.cpp.
//
//   x, gx [N, C, H, W]    y, gy, argmax [N, C, OH, OW]    global: x [planes, plane_size] -> y [planes]
//
// Every (n, c) plane is independent, so threads split the planes: results are the same for any thread
// count. Three pieces:
//   global average   one vectorized pass per plane; the sum in float lanes over fixed chunks, then double
//   max 2x2 stride 2 (no padding, floor mode; ResNet/VGG downsampling): a vector of outputs at a time, each
//                    from two input rows split into even and odd columns (deinterleave)
//   everything else  the reference kernel run plane by plane, threaded over the planes
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/pool/pool.hpp"

namespace kiln::kernels::vectorized {
namespace {

inline constexpr std::int64_t kPoolChunk = 1024;       // floats summed in float before going to double
inline constexpr std::int64_t kPoolThreshold = 32768;  // below this many input elements, one thread

// The sum of n contiguous floats: float lanes over chunks of kPoolChunk, chunk totals added in double.
template <class V>
double plane_sum(const float* x, std::int64_t n) {
  double sum = 0;
  for (std::int64_t start = 0; start < n; start += kPoolChunk) {
    const std::int64_t end = std::min(n, start + kPoolChunk);
    typename V::Reg lanes = V::zero();
    std::int64_t i = start;
    for (; i + V::width <= end; i += V::width) lanes = V::add(lanes, V::load(x + i));
    if (i < end) lanes = V::add(lanes, V::load_partial(x + i, end - i));  // masked-off lanes load 0
    sum += V::sum_in_double(lanes);
  }
  return sum;
}

// A geometry for one plane of g: the reference kernels run on it plane by plane.
Pool2dGeometry single_plane(const Pool2dGeometry& g) {
  Pool2dGeometry plane = g;
  plane.batch = 1;
  plane.channels = 1;
  return plane;
}

// One output row of a 2x2 stride-2 max pool: y[ow] = max of the 2x2 window at (2*oh, 2*ow), and argmax[ow]
// its flat index in the plane. row0 / row1 are input rows 2*oh and 2*oh + 1.
// Window order is (0,0) (0,1) (1,0) (1,1), and a candidate replaces the best only if it beats it (larger,
// or NaN over a number), so ties keep the first position and NaN propagates, as in the reference.
template <class V>
void max_pool_2x2_row(const float* row0, const float* row1, std::int64_t out_w, std::int64_t in_w,
                      std::int64_t first_index, float* y, std::int64_t* argmax) {
  using Reg = typename V::Reg;
  const Reg offsets[4] = {V::zero(), V::broadcast(1.0f), V::broadcast(static_cast<float>(in_w)),
                          V::broadcast(static_cast<float>(in_w + 1))};
  for (std::int64_t ow = 0; ow < out_w; ow += V::width) {
    const std::int64_t count = std::min(V::width, out_w - ow);  // outputs in this step
    const std::int64_t lo_count = std::min(2 * count, V::width), hi_count = 2 * count - lo_count;
    Reg candidates[4];
    V::deinterleave(V::load_partial(row0 + 2 * ow, lo_count),
                    V::load_partial(row0 + 2 * ow + V::width, hi_count), candidates[0], candidates[1]);
    V::deinterleave(V::load_partial(row1 + 2 * ow, lo_count),
                    V::load_partial(row1 + 2 * ow + V::width, hi_count), candidates[2], candidates[3]);
    Reg best = candidates[0], best_offset = offsets[0];
    for (int k = 1; k < 4; ++k) {
      const auto beats =
          V::either(V::greater(candidates[k], best), V::and_not(V::is_nan(candidates[k]), V::is_nan(best)));
      best = V::select(beats, candidates[k], best);
      best_offset = V::select(beats, offsets[k], best_offset);
    }
    V::store_partial(y + ow, best, count);
    // The offsets (0, 1, W, W + 1) are small integers, exact in float; argmax is int64, written per lane.
    alignas(64) float offset_lanes[V::width];
    V::store(offset_lanes, best_offset);
    for (std::int64_t lane = 0; lane < count; ++lane) {
      argmax[ow + lane] = first_index + 2 * (ow + lane) + static_cast<std::int64_t>(offset_lanes[lane]);
    }
  }
}

// True for the 2x2, stride 2, unpadded, floor-mode pool that max_pool_2x2_row computes.
bool is_plain_2x2_stride_2(const Pool2dGeometry& g) {
  return g.kernel_h == 2 && g.kernel_w == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 0 &&
         g.pad_w == 0 && !g.ceil_mode;
}

}  // namespace

// ---- global average pooling --------------------------------------------------------------------------

template <class V>
void global_avg_pool2d_forward(std::int64_t planes, std::int64_t plane_size, const float* x, float* y) {
#pragma omp parallel for schedule(static) if (planes * plane_size >= kPoolThreshold)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    y[plane] = static_cast<float>(plane_sum<V>(x + plane * plane_size, plane_size) /
                                  static_cast<double>(plane_size));
  }
}

// gx[plane, :] = gy[plane] / plane_size, the share rounded exactly as the reference rounds it.
template <class V>
void global_avg_pool2d_backward(std::int64_t planes, std::int64_t plane_size, const float* gy, float* gx) {
#pragma omp parallel for schedule(static) if (planes * plane_size >= kPoolThreshold)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const auto share =
        V::broadcast(static_cast<float>(static_cast<double>(gy[plane]) / static_cast<double>(plane_size)));
    float* out = gx + plane * plane_size;
    std::int64_t i = 0;
    for (; i + V::width <= plane_size; i += V::width) V::store(out + i, share);
    if (i < plane_size) V::store_partial(out + i, share, plane_size - i);
  }
}

// ---- max and average pooling -------------------------------------------------------------------------

template <class V>
void max_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y, std::int64_t* argmax) {
  const std::int64_t planes = g.batch * g.channels, in_plane = g.in_height * g.in_width;
  const std::int64_t out_h = g.out_height(), out_w = g.out_width(), out_plane = out_h * out_w;
  const Pool2dGeometry one_plane = single_plane(g);
  const bool plain = is_plain_2x2_stride_2(g);
#pragma omp parallel for schedule(static) if (planes * in_plane >= kPoolThreshold)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const float* x_plane = x + plane * in_plane;
    float* y_plane = y + plane * out_plane;
    std::int64_t* argmax_plane = argmax + plane * out_plane;
    if (!plain) {
      reference::max_pool2d_forward(one_plane, x_plane, y_plane, argmax_plane);
      continue;
    }
    for (std::int64_t oh = 0; oh < out_h; ++oh) {
      const float* row0 = x_plane + 2 * oh * g.in_width;
      max_pool_2x2_row<V>(row0, row0 + g.in_width, out_w, g.in_width, 2 * oh * g.in_width,
                          y_plane + oh * out_w, argmax_plane + oh * out_w);
    }
  }
}

template <class V>
void max_pool2d_backward(const Pool2dGeometry& g, const float* gy, const std::int64_t* argmax, float* gx) {
  const std::int64_t planes = g.batch * g.channels, in_plane = g.in_height * g.in_width;
  const std::int64_t out_plane = g.out_height() * g.out_width();
  const Pool2dGeometry one_plane = single_plane(g);
#pragma omp parallel for schedule(static) if (planes * in_plane >= kPoolThreshold)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    reference::max_pool2d_backward(one_plane, gy + plane * out_plane, argmax + plane * out_plane,
                                   gx + plane * in_plane);
  }
}

template <class V>
void avg_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y) {
  const std::int64_t planes = g.batch * g.channels, in_plane = g.in_height * g.in_width;
  const std::int64_t out_plane = g.out_height() * g.out_width();
  const Pool2dGeometry one_plane = single_plane(g);
#pragma omp parallel for schedule(static) if (planes * in_plane >= kPoolThreshold)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    reference::avg_pool2d_forward(one_plane, x + plane * in_plane, y + plane * out_plane);
  }
}

template <class V>
void avg_pool2d_backward(const Pool2dGeometry& g, const float* gy, float* gx) {
  const std::int64_t planes = g.batch * g.channels, in_plane = g.in_height * g.in_width;
  const std::int64_t out_plane = g.out_height() * g.out_width();
  const Pool2dGeometry one_plane = single_plane(g);
#pragma omp parallel for schedule(static) if (planes * in_plane >= kPoolThreshold)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    reference::avg_pool2d_backward(one_plane, gy + plane * out_plane, gx + plane * in_plane);
  }
}

}  // namespace kiln::kernels::vectorized
