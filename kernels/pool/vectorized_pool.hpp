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
//   NCHW max, column        any other window, padding and mode (ResNet's 3x3 stride-2 stem pool): a vector
//   stride 1 or 2           of outputs of one row at a time, at stride 2 from input rows split the same way
//   channels-last           max pooling of any geometry and global average pooling, a vector of channels at
//                           a time (channels_last_pool.hpp)
//   max backward            one image at a time, gy scattered through argmax in each plane's output order,
//                           in either layout (scatter_max_gradients); channels-last with disjoint windows
//                           written densely instead (channels_last_pool.hpp)
//   average pooling         vectorized_avg_pool.hpp
//   everything else         the reference kernel, one plane (NCHW) or one image (channels-last) per call
//
// Max pooling only selects, and every sum that must match the reference runs in its order and precision:
// all results but the global average forward are the reference's bit for bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/pool/channels_last_pool.hpp"
#include "kernels/pool/pool.hpp"
#include "kernels/pool/vectorized_avg_pool.hpp"

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

// NCHW max pooling at column stride 1 or 2, any window and padding, floor or ceil mode, one plane at a time
// (the plain 2x2 stride-2 pool has max_pool_2x2_row: this kernel took 1.5 to 2 times as long on it):
// y[oh, ow] = the max of the window at (oh, ow) in x [H, W], argmax[oh, ow] its flat index ih * W + iw.
//
// Columns whose window lies wholly inside the row (the interior: every column but a few at each edge where
// the window reaches into the padding) go a vector of outputs at a time: for each window position (kh, kw),
// one vector of candidates, the input at column ow * stride - pad + kw for each lane's ow. At stride 1 that
// is a plain load; at stride 2 a load of twice the columns split into even and odd ones, which are the
// candidates of two neighbouring window columns, kw and kw + 1, at once. Edge columns take the reference's
// loop one output at a time.
//
// The window is walked in the reference's order, rows then columns, and a candidate replaces the best only
// if it beats it (larger, or NaN over a number): ties keep the first position and NaN propagates, so the
// outputs and argmax are the reference's. Indices ride in float lanes (exact: the plane has fewer than 2^24
// positions) and are stored as int32.
template <class V>
struct MaxPoolRows {
  using Reg = typename V::Reg;
  Pool2dGeometry g;
  std::int64_t out_h, out_w;
  std::int64_t first, end;  // the interior columns [first, end): ow * stride - pad >= 0, + kernel_w <= W
  Reg lane_columns;         // lane * stride: each lane's window's first column, from the step's first
  // kh * W + kw for each window position from the window's first row in the input: a candidate's index less
  // that of the window's first position, kept as a step's best goes and added to that once at the end.
  std::vector<float> window_offsets;

  explicit MaxPoolRows(const Pool2dGeometry& geometry)
      : g(geometry), out_h(geometry.out_height()), out_w(geometry.out_width()) {
    const std::int64_t stride = g.stride_w, reach = g.in_width + g.pad_w - g.kernel_w;
    first = std::min((g.pad_w + stride - 1) / stride, out_w);
    end = std::clamp(reach < 0 ? 0 : reach / stride + 1, first, out_w);
    alignas(64) float offsets[V::width];
    for (std::int64_t lane = 0; lane < V::width; ++lane) offsets[lane] = static_cast<float>(lane * stride);
    lane_columns = V::load(offsets);
    for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (std::int64_t kw = 0; kw < g.kernel_w; ++kw)
        window_offsets.push_back(static_cast<float>(kh * g.in_width + kw));
    }
  }

  // kStride: the column stride, 1 or 2. kKernelW: the window's width, or 0 for g.kernel_w (a width known to
  // the compiler unrolls a step's loops over the window, whose bookkeeping is a large part of a step's
  // work when the window has few candidates).
  template <int kStride, int kKernelW, typename T>
  void plane(const T* x, T* y, std::int32_t* argmax) const {
    for (std::int64_t oh = 0; oh < out_h; ++oh) {
      const std::int64_t row_begin = std::max<std::int64_t>(oh * g.stride_h - g.pad_h, 0);
      const std::int64_t row_end = std::min(oh * g.stride_h - g.pad_h + g.kernel_h, g.in_height);
      T* y_row = y + oh * out_w;
      std::int32_t* argmax_row = argmax + oh * out_w;
      for (std::int64_t ow = 0; ow < first; ++ow) one_output(x, row_begin, row_end, ow, y_row, argmax_row);
      for (std::int64_t ow = first; ow < end; ow += V::width)
        interior_step<kStride, kKernelW>(x, row_begin, row_end, ow, y_row, argmax_row);
      for (std::int64_t ow = end; ow < out_w; ++ow) one_output(x, row_begin, row_end, ow, y_row, argmax_row);
    }
  }

  // The reference's loop for one output: window columns [ow * stride - pad, + kernel_w) clipped to the row.
  template <typename T>
  void one_output(const T* x, std::int64_t row_begin, std::int64_t row_end, std::int64_t ow, T* y_row,
                  std::int32_t* argmax_row) const {
    const std::int64_t col_begin = std::max<std::int64_t>(ow * g.stride_w - g.pad_w, 0);
    const std::int64_t col_end = std::min(ow * g.stride_w - g.pad_w + g.kernel_w, g.in_width);
    std::int64_t best_index = -1;
    float best = 0.0f;
    for (std::int64_t ih = row_begin; ih < row_end; ++ih) {
      for (std::int64_t iw = col_begin; iw < col_end; ++iw) {
        const float candidate = static_cast<float>(x[ih * g.in_width + iw]);
        if (best_index < 0 || candidate > best || (std::isnan(candidate) && !std::isnan(best))) {
          best_index = ih * g.in_width + iw;
          best = candidate;
        }
      }
    }
    y_row[ow] = static_cast<T>(best);
    argmax_row[ow] = static_cast<std::int32_t>(best_index);
  }

  // Outputs [ow, ow + V::width) of the interior, or as many as are left of it.
  template <int kStride, int kKernelW, typename T>
  void interior_step(const T* x, std::int64_t row_begin, std::int64_t row_end, std::int64_t ow, T* y_row,
                     std::int32_t* argmax_row) const {
    const std::int64_t kernel_w = kKernelW > 0 ? kKernelW : g.kernel_w;
    const std::int64_t count = std::min(V::width, end - ow);  // outputs in this step
    const std::int64_t column = ow * kStride - g.pad_w;       // the first lane's window's first column
    // The window's first candidate starts the best; each later one replaces it where it beats it.
    Reg best, best_offset = V::zero();
    const auto consider = [&](Reg candidate, float offset) {
      const auto beats =
          V::either(V::greater(candidate, best), V::and_not(V::is_nan(candidate), V::is_nan(best)));
      best = V::select(beats, candidate, best);
      best_offset = V::select(beats, V::broadcast(offset), best_offset);
    };
    // Full-width loads where they stay inside the plane (the lanes past `count` are never stored), masked
    // ones near its end: masked loads whose masked-off lanes reached into the next row took half the time.
    const T* plane_end = x + g.in_height * g.in_width;
    const auto load = [&](const T* from, std::int64_t columns) {
      return from + V::width <= plane_end ? V::load(from) : V::load_partial(from, columns);
    };
    // One window row's candidates, in the window's order; kFirst: the window's first row, whose first
    // candidate starts the best.
    const auto row_candidates = [&]<bool kFirst>(std::int64_t ih) {
      const T* row = x + ih * g.in_width + column;
      const float* offsets = window_offsets.data() + (ih - row_begin) * kernel_w;
      if constexpr (kStride == 1) {
        std::int64_t kw = 0;
        if constexpr (kFirst) best = load(row, count), kw = 1;
        for (; kw < kernel_w; ++kw) consider(load(row + kw, count), offsets[kw]);
        return;
      }
      for (std::int64_t kw = 0; kw < kernel_w; kw += 2) {
        // Columns kw, kw + 2, ... (even) and kw + 1, kw + 3, ... (odd): 2 * count - 1 of them inside the
        // window's row, one more where the odd ones are used.
        const bool pair = kw + 1 < kernel_w;
        const std::int64_t columns = 2 * count - (pair ? 0 : 1);
        const std::int64_t lo = std::min(columns, V::width), hi = columns - lo;
        Reg even, odd;
        V::deinterleave(load(row + kw, lo), load(row + kw + V::width, hi), even, odd);
        if (kFirst && kw == 0) {
          best = even;
        } else {
          consider(even, offsets[kw]);
        }
        if (pair) consider(odd, offsets[kw + 1]);
      }
    };
    row_candidates.template operator()<true>(row_begin);
    for (std::int64_t ih = row_begin + 1; ih < row_end; ++ih) row_candidates.template operator()<false>(ih);
    const Reg first_position = V::broadcast(static_cast<float>(row_begin * g.in_width + column));
    const Reg best_index = V::add(V::add(first_position, lane_columns), best_offset);
    V::store_partial(y_row + ow, best, count);
    V::store_partial_as_int32(argmax_row + ow, best_index, count);
  }
};

// Which kernel pools one NCHW plane: max_pool_2x2_row's rows for the plain 2x2 stride-2 pool, MaxPoolRows
// for the others at column stride 1 or 2 (compiled for 3-wide windows, the commonest, and for any width),
// the reference for the rest.
template <class V, typename T>
using MaxPoolPlane = void (*)(const MaxPoolRows<V>& rows, const T* x, T* y, std::int32_t* argmax);

template <class V, typename T, int kStride, int kKernelW>
void max_pool_plane_by_rows(const MaxPoolRows<V>& rows, const T* x, T* y, std::int32_t* argmax) {
  rows.template plane<kStride, kKernelW>(x, y, argmax);
}

template <class V, typename T>
void max_pool_plane_2x2(const MaxPoolRows<V>& rows, const T* x, T* y, std::int32_t* argmax) {
  const std::int64_t in_w = rows.g.in_width, out_w = rows.out_w;
  for (std::int64_t oh = 0; oh < rows.out_h; ++oh) {
    const T* row0 = x + 2 * oh * in_w;
    max_pool_2x2_row<V>(row0, row0 + in_w, out_w, in_w, 2 * oh * in_w, y + oh * out_w, argmax + oh * out_w);
  }
}

template <class V, typename T>
void max_pool_plane_reference(const MaxPoolRows<V>& rows, const T* x, T* y, std::int32_t* argmax) {
  Pool2dGeometry plane = rows.g;
  plane.batch = plane.channels = 1;
  reference::max_pool2d_forward(plane, x, y, argmax);
}

template <class V, typename T>
MaxPoolPlane<V, T> max_pool_plane_kernel(const Pool2dGeometry& g) {
  if (g.in_height * g.in_width >= kExactPlanePositions) return max_pool_plane_reference<V, T>;
  if (is_plain_2x2_stride_2(g)) return max_pool_plane_2x2<V, T>;
  if (g.stride_w == 2) {
    return g.kernel_w == 3 ? max_pool_plane_by_rows<V, T, 2, 3> : max_pool_plane_by_rows<V, T, 2, 0>;
  }
  if (g.stride_w == 1) {
    return g.kernel_w == 3 ? max_pool_plane_by_rows<V, T, 1, 3> : max_pool_plane_by_rows<V, T, 1, 0>;
  }
  return max_pool_plane_reference<V, T>;
}

// Double sums rounded once into bfloat16, a register at a time (from_doubles_to_odd, then the bfloat16
// store's rounding), the tail lane by lane. The ResNet-18 stem's 3x3 stride-2 pool on 64 channels at 16x16,
// batch 128, two threads of a Xeon: its backward 2.4 -> 0.9 ms (one bfloat16(double) a lane before: about
// 25 instructions).
template <class V>
void round_sums(const double* sums, std::int64_t count, bfloat16* out) {
  std::int64_t i = 0;
  for (; i + V::width <= count; i += V::width)
    V::store(out + i, V::from_doubles_to_odd(V::load(sums + i), V::load(sums + i + V::double_width)));
  for (; i < count; ++i) out[i] = bfloat16(sums[i]);
}
template <class V>
void round_sums(const double*, std::int64_t, float*) {}  // float sums in gx itself: nothing to round

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
  if (in_double) round_sums<V>(sums.data(), image, gx);
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

// gx[plane, :] = gy[plane] / plane_size, the share rounded exactly as the reference rounds it; accumulating,
// gx[plane, :] + that share in float lanes, rounded once to T, as the vectorized add adds.
template <class V, typename T>
void global_avg_pool2d_backward(const GlobalPool2dGeometry& g, const T* gy, T* gx, bool accumulate) {
  if (g.channels_last) return channels_last::global_avg_pool2d_backward<V>(g, gy, gx, accumulate);
  const std::int64_t planes = g.planes(), plane_size = g.plane_size;
#pragma omp parallel for schedule(static) if (planes * plane_size >= kPoolThreshold)
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const T rounded = static_cast<T>(static_cast<double>(gy[plane]) / static_cast<double>(plane_size));
    const auto share = V::broadcast(static_cast<float>(rounded));  // T -> float -> T is exact
    T* out = gx + plane * plane_size;
    for (std::int64_t i = 0; i < plane_size; i += V::width) {
      const std::int64_t lanes = std::min<std::int64_t>(V::width, plane_size - i);
      V::store_partial(out + i, accumulate ? V::add(V::load_partial(out + i, lanes), share) : share, lanes);
    }
  }
}

// ---- max and average pooling -------------------------------------------------------------------------

template <class V, typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax) {
  if (g.channels_last) return channels_last::max_pool2d_forward<V>(g, x, y, argmax);
  const Pieces planes = pieces(g);
  const MaxPoolRows<V> rows(g);
  const MaxPoolPlane<V, T> pool_plane = max_pool_plane_kernel<V, T>(g);
#pragma omp parallel for schedule(static) if (planes.count * planes.in_piece >= kPoolThreshold)
  for (std::int64_t plane = 0; plane < planes.count; ++plane) {
    pool_plane(rows, x + plane * planes.in_piece, y + plane * planes.out_piece,
               argmax + plane * planes.out_piece);
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

}  // namespace kiln::kernels::vectorized
