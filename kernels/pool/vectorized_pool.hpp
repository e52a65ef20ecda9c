// Vectorized, threaded pooling, written once over a vector trait V (simd::FloatVector512 or FloatVector256)
// and a storage type T (float, or bfloat16 for `--precision bf16`: loads widen exactly into float lanes,
// stores round once), instantiated by avx512.cpp and avx2.cpp.
//
//   x, gx [N, C, H, W]    y, gy, argmax [N, C, OH, OW]    (NCHW or channels-last, pool.hpp)
//
// Threads split planes, images or output rows, never one element's work, so results are the same for any
// thread count. The pieces, by layout:
//   NCHW global average     one vectorized pass per plane; the sum in float lanes over fixed chunks, then
//                           double
//   NCHW max 2x2 stride 2   (no padding, floor mode; VGG/LeNet downsampling) a vector of outputs at a time,
//                           each from two input rows split into even and odd columns (deinterleave)
//   channels-last           max pooling of any geometry and global average pooling, a vector of channels at
//                           a time (channels_last_pool.hpp)
//   max backward            one image at a time, gy scattered through argmax in each plane's output order,
//                           in either layout (scatter_max_gradients); channels-last with disjoint windows
//                           written densely instead (channels_last_pool.hpp)
//   everything else         the reference kernel, one plane (NCHW) or one image (channels-last) per call
//
// Max pooling only selects, and every sum that must match the reference runs in its order and precision:
// all results but the global average forward are the reference's bit for bit.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/pool/channels_last_pool.hpp"
#include "kernels/pool/pool.hpp"

namespace kiln::kernels::vectorized {
namespace {

// The sum of n contiguous elements: float lanes over chunks of kPoolChunk, chunk totals added in double.
template <class V, typename T>
double plane_sum(const T* x, std::int64_t n) {
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

// g cut down to one plane (NCHW) or one image (channels-last): the reference kernels run on it piece by
// piece, at piece * in_piece of x and gx and piece * out_piece of y, gy and argmax.
struct Pieces {
  Pool2dGeometry piece;
  std::int64_t count, in_piece, out_piece;
};

Pieces pieces(const Pool2dGeometry& g) {
  Pool2dGeometry piece = g;
  piece.batch = 1;
  if (!g.channels_last) piece.channels = 1;
  const std::int64_t per_piece = piece.channels;
  return {piece, g.batch * g.channels / per_piece, per_piece * g.in_height * g.in_width,
          per_piece * g.out_height() * g.out_width()};
}

// Positions ride in float lanes, exact below 2^24: a plane of more (past 4096 x 4096) takes the reference.
inline constexpr std::int64_t kExactPlanePositions = std::int64_t{1} << 24;

// One output row of a 2x2 stride-2 max pool: y[ow] = max of the 2x2 window at (2*oh, 2*ow), and argmax[ow]
// its flat index in the plane. row0 / row1 are input rows 2*oh and 2*oh + 1.
// Window order is (0,0) (0,1) (1,0) (1,1), and a candidate replaces the best only if it beats it (larger,
// or NaN over a number), so ties keep the first position and NaN propagates, as in the reference. The
// winner's index, first_index + 2*ow + its offset in the window, is summed in float lanes (exact: the plane
// has fewer than 2^24 positions) and stored as int32 by the vector.
template <class V, typename T>
void max_pool_2x2_row(const T* row0, const T* row1, std::int64_t out_w, std::int64_t in_w,
                      std::int64_t first_index, T* y, std::int32_t* argmax) {
  using Reg = typename V::Reg;
  const Reg offsets[4] = {V::zero(), V::broadcast(1.0f), V::broadcast(static_cast<float>(in_w)),
                          V::broadcast(static_cast<float>(in_w + 1))};
  alignas(64) float lane_columns[V::width];  // 2 * lane: each lane's window's first column in the step
  for (std::int64_t lane = 0; lane < V::width; ++lane) lane_columns[lane] = 2.0f * static_cast<float>(lane);
  const Reg columns = V::load(lane_columns);
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
    const Reg step_first = V::broadcast(static_cast<float>(first_index + 2 * ow));
    V::store_partial_as_int32(argmax + ow, V::add(V::add(step_first, columns), best_offset), count);
  }
}

// True for the 2x2, stride 2, unpadded, floor-mode pool that max_pool_2x2_row computes.
bool is_plain_2x2_stride_2(const Pool2dGeometry& g) {
  return g.kernel_h == 2 && g.kernel_w == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 0 &&
         g.pad_w == 0 && !g.ceil_mode;
}

// Image n's max-pool gradient: gx[plane, argmax] += gy for every output of every plane, in each plane's
// output order (the reference's), in pool_gradient_sum_t<T>. Where windows are disjoint each input
// receives at most one gradient, 0 + gy, which float already adds exactly (bfloat16's double sum of one
// term is the same number). Where they overlap, float adds into gx itself and bfloat16 into `sums` (a dense
// double copy of the image in gx's layout), rounded once at the end. Reads argmax as the forward wrote it
// (each index inside its own window).
template <class V, typename T>
void scatter_max_gradients(const Pool2dGeometry& g, std::int64_t n, const T* gy, const std::int32_t* argmax,
                           T* gx, std::vector<double>& sums) {
  const std::int64_t channels = g.channels, in_plane = g.in_height * g.in_width;
  const std::int64_t out_plane = g.out_height() * g.out_width(), image = channels * in_plane;
  gy += n * channels * out_plane;
  argmax += n * channels * out_plane;
  gx += n * image;
  const bool disjoint = g.windows_disjoint();
  const bool in_double = !disjoint && !std::is_same_v<pool_gradient_sum_t<T>, T>;
  if (in_double) sums.assign(static_cast<std::size_t>(image), 0.0);
  std::fill(gx, gx + image, T{0});
  const auto add = [&](std::int64_t out, std::int64_t in) {  // out into gy / argmax, in into gx
    if (disjoint)
      gx[in] = static_cast<T>(0.0f + static_cast<float>(gy[out]));  // -0 becomes +0, as in the sum
    else if (in_double)
      sums[static_cast<std::size_t>(in)] += static_cast<double>(gy[out]);
    else
      gx[in] = static_cast<T>(static_cast<float>(gx[in]) + static_cast<float>(gy[out]));  // T is float here
  };
  if (g.channels_last) {  // [OH*OW][C]: positions outer, so each plane still adds in its output order
    for (std::int64_t p = 0; p < out_plane; ++p) {
      for (std::int64_t c = 0; c < channels; ++c)
        add(p * channels + c, argmax[p * channels + c] * channels + c);
    }
  } else {  // [C][OH*OW]
    for (std::int64_t c = 0; c < channels; ++c) {
      for (std::int64_t p = 0; p < out_plane; ++p)
        add(c * out_plane + p, c * in_plane + argmax[c * out_plane + p]);
    }
  }
  if (in_double) std::transform(sums.begin(), sums.end(), gx, [](double sum) { return static_cast<T>(sum); });
}

}  // namespace

// ---- global average pooling --------------------------------------------------------------------------

template <class V, typename T>
void global_avg_pool2d_forward(const GlobalPool2dGeometry& g, const T* x, T* y) {
  if (g.channels_last) return channels_last::global_avg_pool2d_forward<V>(g, x, y);
  const std::int64_t planes = g.planes(), plane_size = g.plane_size;
#pragma omp parallel for schedule(static) if (planes * plane_size >= kPoolThreshold)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    y[plane] =
        static_cast<T>(plane_sum<V>(x + plane * plane_size, plane_size) / static_cast<double>(plane_size));
  }
}

// gx[plane, :] = gy[plane] / plane_size, the share rounded exactly as the reference rounds it.
template <class V, typename T>
void global_avg_pool2d_backward(const GlobalPool2dGeometry& g, const T* gy, T* gx) {
  if (g.channels_last) return channels_last::global_avg_pool2d_backward<V>(g, gy, gx);
  const std::int64_t planes = g.planes(), plane_size = g.plane_size;
#pragma omp parallel for schedule(static) if (planes * plane_size >= kPoolThreshold)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const T rounded = static_cast<T>(static_cast<double>(gy[plane]) / static_cast<double>(plane_size));
    const auto share = V::broadcast(static_cast<float>(rounded));  // T -> float -> T is exact
    T* out = gx + plane * plane_size;
    std::int64_t i = 0;
    for (; i + V::width <= plane_size; i += V::width) V::store(out + i, share);
    if (i < plane_size) V::store_partial(out + i, share, plane_size - i);
  }
}

// ---- max and average pooling -------------------------------------------------------------------------

template <class V, typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax) {
  if (g.channels_last) return channels_last::max_pool2d_forward<V>(g, x, y, argmax);
  const Pieces planes = pieces(g);
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  const bool plain = is_plain_2x2_stride_2(g) && g.in_height * g.in_width < kExactPlanePositions;
#pragma omp parallel for schedule(static) if (planes.count * planes.in_piece >= kPoolThreshold)
  for (std::int64_t plane = 0; plane < planes.count; ++plane) {
    const T* x_plane = x + plane * planes.in_piece;
    T* y_plane = y + plane * planes.out_piece;
    std::int32_t* argmax_plane = argmax + plane * planes.out_piece;
    if (!plain) {
      reference::max_pool2d_forward(planes.piece, x_plane, y_plane, argmax_plane);
      continue;
    }
    for (std::int64_t oh = 0; oh < out_h; ++oh) {
      const T* row0 = x_plane + 2 * oh * g.in_width;
      max_pool_2x2_row<V>(row0, row0 + g.in_width, out_w, g.in_width, 2 * oh * g.in_width,
                          y_plane + oh * out_w, argmax_plane + oh * out_w);
    }
  }
}

template <class V, typename T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* gy, const std::int32_t* argmax, T* gx) {
  if (g.channels_last && g.windows_disjoint() &&
      g.in_height * g.in_width < channels_last::kExactFloatPositions)
    return channels_last::max_pool2d_backward_disjoint<V>(g, gy, argmax, gx);
#pragma omp parallel if (g.batch * g.channels * g.in_height * g.in_width >= kPoolThreshold)
  {
    std::vector<double> sums;  // each thread's, reused image after image
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < g.batch; ++n) scatter_max_gradients<V>(g, n, gy, argmax, gx, sums);
  }
}

template <class V, typename T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y) {
  const Pieces p = pieces(g);
#pragma omp parallel for schedule(static) if (p.count * p.in_piece >= kPoolThreshold)
  for (std::int64_t i = 0; i < p.count; ++i) {
    reference::avg_pool2d_forward(p.piece, x + i * p.in_piece, y + i * p.out_piece);
  }
}

template <class V, typename T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx) {
  const Pieces p = pieces(g);
#pragma omp parallel for schedule(static) if (p.count * p.in_piece >= kPoolThreshold)
  for (std::int64_t i = 0; i < p.count; ++i) {
    reference::avg_pool2d_backward(p.piece, gy + i * p.out_piece, gx + i * p.in_piece);
  }
}

}  // namespace kiln::kernels::vectorized
