// The shortcut (subsample_pad.hpp) for float and bfloat16, written once over a vector trait V
// (simd::FloatVector512 or FloatVector256) and instantiated by avx512.cpp and avx2.cpp.
//
// Each pass goes over its output once, threads splitting it by rows of pixels (channels-last) or by planes
// (NCHW). Channels-last, a pixel's channels are one contiguous run on both sides: copies, and adds a vector
// at a time. NCHW, a row of y is every s-th value of a row of x: at stride 2 two vectors of x deinterleave
// into one of y, and backward one vector of gy interleaves with zeros into two of gx. bfloat16 values widen
// into float registers and round back on the store: exact for a copy (a signaling NaN comes back quiet), the
// sum rounded once for an add.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/shortcut/subsample_pad.hpp"

namespace kiln::kernels::vectorized {
namespace {

inline constexpr std::int64_t kShortcutParallelThreshold = 65536;  // elements; below, one thread is faster

template <class T>
void copy_run(const T* from, std::int64_t count, T* to) {
  std::memcpy(to, from, static_cast<std::size_t>(count) * sizeof(T));
}
template <class T>
void zero_run(std::int64_t count, T* to) {
  std::memset(to, 0, static_cast<std::size_t>(count) * sizeof(T));  // +0.0 in float and bfloat16
}
// to[i] += from[i], in float, rounded once to T.
template <class V, class T>
void add_run(const T* from, std::int64_t count, T* to) {
  for (std::int64_t i = 0; i < count; i += V::width) {
    const std::int64_t lanes = std::min<std::int64_t>(V::width, count - i);
    V::store_partial(to + i, V::add(V::load_partial(to + i, lanes), V::load_partial(from + i, lanes)), lanes);
  }
}

// y_row[j] = x_row[j stride] for j < out_width, x_row holding `width` values.
template <class V, class T>
void subsample_row(const T* x_row, std::int64_t width, std::int64_t stride, std::int64_t out_width,
                   T* y_row) {
  if (stride == 1) return copy_run(x_row, out_width, y_row);
  if (stride != 2) {
    for (std::int64_t j = 0; j < out_width; ++j) y_row[j] = x_row[j * stride];
    return;
  }
  for (std::int64_t j = 0; j < out_width; j += V::width) {
    const std::int64_t inputs = std::min<std::int64_t>(2 * V::width, width - 2 * j);  // from x_row + 2 j on
    const std::int64_t low = std::min<std::int64_t>(V::width, inputs);
    typename V::Reg even, odd;
    V::deinterleave(V::load_partial(x_row + 2 * j, low),
                    V::load_partial(x_row + 2 * j + V::width, inputs - low), even, odd);
    V::store_partial(y_row + j, even, std::min<std::int64_t>(V::width, out_width - j));
  }
}

// gx_row[j stride] = gy_row[j] (+= when accumulating) for j < out_width, and, when not, zeros between: a row
// of gx that the forward read, `width` values.
template <class V, class T>
void scatter_row(const T* gy_row, std::int64_t out_width, std::int64_t stride, std::int64_t width,
                 bool accumulate, T* gx_row) {
  if (stride == 1) return accumulate ? add_run<V>(gy_row, width, gx_row) : copy_run(gy_row, width, gx_row);
  if (stride != 2) {
    if (!accumulate) zero_run(width, gx_row);
    for (std::int64_t j = 0; j < out_width; ++j) {
      T& to = gx_row[j * stride];
      to = accumulate ? static_cast<T>(static_cast<float>(to) + static_cast<float>(gy_row[j])) : gy_row[j];
    }
    return;
  }
  for (std::int64_t j = 0; j < out_width; j += V::width) {
    const std::int64_t values = std::min<std::int64_t>(V::width, out_width - j);
    const std::int64_t outputs = std::min<std::int64_t>(2 * V::width, width - 2 * j);  // from gx_row + 2 j on
    const std::int64_t low = std::min<std::int64_t>(V::width, outputs), high = outputs - low;
    typename V::Reg first, second;  // gy's values with zeros between: the skipped columns
    V::interleave(V::load_partial(gy_row + j, values), V::zero(), first, second);
    T* const to = gx_row + 2 * j;
    if (accumulate) {  // the skipped columns add +0.0, as the composed ops' sum does
      first = V::add(V::load_partial(to, low), first);
      if (high > 0) second = V::add(V::load_partial(to + V::width, high), second);
    }
    V::store_partial(to, first, low);
    if (high > 0) V::store_partial(to + V::width, second, high);
  }
}

}  // namespace

template <class V, class T>
void subsample_pad_forward(const SubsamplePadGeometry& g, const T* x, T* y) {
  const std::int64_t C = g.channels, H = g.height, W = g.width, s = g.stride;
  const std::int64_t K = g.out_channels(), OH = g.out_height(), OW = g.out_width();
  const bool threaded = g.batch * K * OH * OW >= kShortcutParallelThreshold;
  if (g.channels_last) {
#pragma omp parallel for schedule(static) if (threaded)
    for (std::int64_t row = 0; row < g.batch * OH; ++row) {  // y's pixel rows
      const std::int64_t n = row / OH, i = row % OH;
      const T* const x_row = x + (n * H + i * s) * W * C;
      T* const y_row = y + row * OW * K;
      for (std::int64_t j = 0; j < OW; ++j) {
        T* const pixel = y_row + j * K;
        zero_run(g.pad_before, pixel);
        copy_run(x_row + j * s * C, C, pixel + g.pad_before);
        zero_run(g.pad_after, pixel + g.pad_before + C);
      }
    }
    return;
  }
#pragma omp parallel for schedule(static) if (threaded)
  for (std::int64_t plane = 0; plane < g.batch * K; ++plane) {  // y's planes
    const std::int64_t n = plane / K, c = plane % K - g.pad_before;
    T* const y_plane = y + plane * OH * OW;
    if (c < 0 || c >= C) {
      zero_run(OH * OW, y_plane);
      continue;
    }
    const T* const x_plane = x + (n * C + c) * H * W;
    for (std::int64_t i = 0; i < OH; ++i) subsample_row<V>(x_plane + i * s * W, W, s, OW, y_plane + i * OW);
  }
}

template <class V, class T>
void subsample_pad_backward(const SubsamplePadGeometry& g, const T* gy, T* gx, bool accumulate) {
  const std::int64_t C = g.channels, H = g.height, W = g.width, s = g.stride;
  const std::int64_t K = g.out_channels(), OH = g.out_height(), OW = g.out_width();
  const bool threaded = g.batch * C * H * W >= kShortcutParallelThreshold;
  if (g.channels_last) {
#pragma omp parallel for schedule(static) if (threaded)
    for (std::int64_t row = 0; row < g.batch * H; ++row) {  // gx's pixel rows
      const std::int64_t n = row / H, h = row % H;
      T* const gx_row = gx + row * W * C;
      if (h % s != 0) {
        if (!accumulate) zero_run(W * C, gx_row);
        continue;
      }
      const T* const gy_row = gy + (n * OH + h / s) * OW * K + g.pad_before;
      for (std::int64_t w = 0; w < W; ++w) {
        T* const pixel = gx_row + w * C;
        if (w % s != 0) {
          if (!accumulate) zero_run(C, pixel);
        } else if (accumulate) {
          add_run<V>(gy_row + w / s * K, C, pixel);
        } else {
          copy_run(gy_row + w / s * K, C, pixel);
        }
      }
    }
    return;
  }
#pragma omp parallel for schedule(static) if (threaded)
  for (std::int64_t plane = 0; plane < g.batch * C; ++plane) {  // gx's planes
    const std::int64_t n = plane / C, c = plane % C;
    T* const gx_plane = gx + plane * H * W;
    const T* const gy_plane = gy + (n * K + g.pad_before + c) * OH * OW;
    for (std::int64_t h = 0; h < H; ++h) {
      if (h % s == 0) {
        scatter_row<V>(gy_plane + h / s * OW, OW, s, W, accumulate, gx_plane + h * W);
      } else if (!accumulate) {
        zero_run(W, gx_plane + h * W);
      }
    }
  }
}

}  // namespace kiln::kernels::vectorized
