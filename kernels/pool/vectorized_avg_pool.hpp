// Average pooling, vectorized and threaded: written once over a vector trait V (simd::FloatVector512 or
// FloatVector256) and a storage type T (float, or bfloat16 widened into float lanes), included by
// vectorized_pool.hpp, whose avg_pool2d_forward and avg_pool2d_backward are these.
//
//   x, gx [N, C, H, W] or channels-last [N, H, W, C]      y, gy [N, C, OH, OW] or [N, OH, OW, C]
//
// Every result is the reference's bit for bit (reference.cpp). An output is its window's sum in double, the
// positions added in row-major order, divided by the window's divisor in double and rounded once to T. An
// input's gradient is the shares gy / divisor of the windows that hold it, added in the windows' output
// order in pool_gradient_sum_t<T>: each share rounded to float and the sum kept in float for float tensors,
// kept in double and rounded once for bfloat16. The lanes only choose which outputs or inputs are worked on
// together, never the order of any one sum:
//
//   channels-last   a lane is a channel (as in channels_last_pool.hpp), so any window, stride and padding
//                   is a walk over the window's positions with one load a position. Threads share (image,
//                   output row) pairs forward; backward they share images, each output's shares added
//                   into its window in output order, into gx (float) or a dense double copy of the image
//                   (bfloat16, rounded into gx at the end)
//   NCHW            a lane is an output column of one row, at column stride 1 or 2 (stride 2 splits two
//                   loads of input columns into the even and the odd ones, as the max pool does); columns
//                   whose window reaches into the padding go one at a time, the reference's loop; threads
//                   share planes. The float backward, at any stride, spreads an output row's shares along
//                   a row and has each input row of its windows gather them (backward_plane). Other
//                   forward column strides, bfloat16's NCHW backward (sums in double: bfloat16 trains
//                   channels-last) and rows narrower than kMinRowColumns take the reference a plane at a
//                   time.
//
// Measured (`pool_bench --benchmark_filter=avg`, 2 threads, a Xeon with AMX, AVX-512 / AVX2, the threaded
// reference before against these kernels, ms): float NCHW [128, 16, 32, 32] 2x2 stride 2 forward 1.03 /
// 1.05 -> 0.31 / 0.32, backward 1.43 / 1.41 -> 0.54 / 0.54; 3x3 stride 1 padded 1 forward 7.1 / 7.1 -> 1.6
// / 1.8, backward 8.1 / 7.8 -> 1.3 / 1.4; bfloat16 channels-last 2x2 forward 1.82 / 1.78 -> 1.06 / 0.88,
// backward 3.1 / 3.4 -> 2.5 / 2.9 (its rounding from double goes a value at a time).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/pool/channels_last_pool.hpp"  // kPoolThreshold
#include "kernels/pool/pool.hpp"

namespace kiln::kernels::vectorized {
namespace average {
namespace {  // internal linkage: avx512.cpp and avx2.cpp, built with different flags, each keep their own

// V::width lanes' sums in double: a float register's worth in two double registers.
template <class V>
struct DoubleLanes {
  typename V::DoubleReg low = V::broadcast_double(0.0), high = V::broadcast_double(0.0);

  void add(typename V::Reg values) {
    typename V::DoubleReg low_values, high_values;
    V::to_doubles(values, low_values, high_values);
    low = V::add(low, low_values);
    high = V::add(high, high_values);
  }

  // The first `count` lanes divided by `divisor`, each rounded once into T. bfloat16 goes through floats
  // rounded to odd (a trip through floats rounded to nearest could round twice).
  template <typename T>
  void store_divided(T* to, double divisor, std::int64_t count) const {
    const typename V::DoubleReg d = V::broadcast_double(divisor);
    const typename V::DoubleReg low_mean = V::div(low, d), high_mean = V::div(high, d);
    if constexpr (std::is_same_v<T, float>)
      V::store_partial(to, V::from_doubles(low_mean, high_mean), count);
    else
      V::store_partial(to, V::from_doubles_to_odd(low_mean, high_mean), count);
  }
};

// Float shares of `count` outputs' gradients: gy / divisor in float, which is the reference's
// float(double(gy) / divisor) (see backward_plane).
template <class V>
typename V::Reg float_shares(const float* gy, std::int64_t divisor, std::int64_t count) {
  return V::div(V::load_partial(gy, count), V::broadcast(static_cast<float>(divisor)));
}

// ---- channels-last -----------------------------------------------------------------------------------

// Output row r = n * OH + oh of every channel, two registers of channels at a time.
template <class V, typename T>
void forward_channels_last_row(const Pool2dGeometry& g, std::int64_t r, const T* x, T* y) {
  const std::int64_t channels = g.channels, out_h = g.out_height(), out_w = g.out_width();
  const std::int64_t n = r / out_h, oh = r % out_h;
  const T* image = x + n * g.in_height * g.in_width * channels;
  const WindowSpan rows = g.row_span(oh);
  for (std::int64_t ow = 0; ow < out_w; ++ow) {
    const WindowSpan cols = g.col_span(ow);
    const double divisor = static_cast<double>(g.avg_divisor(rows, cols));
    T* out = y + (r * out_w + ow) * channels;
    for (std::int64_t c = 0; c < channels; c += 2 * V::width) {
      const std::int64_t count = std::min(V::width, channels - c), more = channels - c - V::width;
      DoubleLanes<V> first, second;  // channels [c, c + width) and, where `more` > 0, the next register's
      for (std::int64_t ih = rows.begin; ih < rows.end; ++ih) {
        for (std::int64_t iw = cols.begin; iw < cols.end; ++iw) {
          const T* at = image + (ih * g.in_width + iw) * channels + c;
          first.add(V::load_partial(at, count));
          if (more > 0) second.add(V::load_partial(at + V::width, std::min(V::width, more)));
        }
      }
      first.store_divided(out + c, divisor, count);
      if (more > 0) second.store_divided(out + c + V::width, divisor, std::min(V::width, more));
    }
  }
}

// Image n's input gradient. Float: shares added into gx itself. bfloat16: into `sums`, the image in double
// with each pixel's channels padded to whole registers (so every load and store is a full one), rounded
// into gx at the end.
template <class V, typename T>
void backward_channels_last_image(const Pool2dGeometry& g, std::int64_t n, const T* gy, T* gx,
                                  std::vector<double>& sums) {
  const std::int64_t channels = g.channels, out_h = g.out_height(), out_w = g.out_width();
  const std::int64_t positions = g.in_height * g.in_width;
  const std::int64_t padded = (channels + V::width - 1) / V::width * V::width;  // a pixel's doubles
  gy += n * out_h * out_w * channels;
  gx += n * positions * channels;
  constexpr bool kInFloat = std::is_same_v<pool_gradient_sum_t<T>, float>;
  if constexpr (kInFloat) {
    std::fill(gx, gx + positions * channels, T{0});
  } else {
    sums.assign(static_cast<std::size_t>(positions * padded), 0.0);
  }
  for (std::int64_t oh = 0; oh < out_h; ++oh) {
    const WindowSpan rows = g.row_span(oh);
    for (std::int64_t ow = 0; ow < out_w; ++ow) {
      const WindowSpan cols = g.col_span(ow);
      const std::int64_t divisor = g.avg_divisor(rows, cols);
      for (std::int64_t c = 0; c < channels; c += V::width) {
        const std::int64_t count = std::min(V::width, channels - c);
        const T* from = gy + (oh * out_w + ow) * channels + c;
        if constexpr (kInFloat) {
          const typename V::Reg share = float_shares<V>(from, divisor, count);
          for (std::int64_t ih = rows.begin; ih < rows.end; ++ih) {
            for (std::int64_t iw = cols.begin; iw < cols.end; ++iw) {
              T* at = gx + (ih * g.in_width + iw) * channels + c;
              V::store_partial(at, V::add(V::load_partial(at, count), share), count);
            }
          }
        } else {
          typename V::DoubleReg low, high;  // the unrounded double shares
          V::to_doubles(V::load_partial(from, count), low, high);
          const typename V::DoubleReg d = V::broadcast_double(static_cast<double>(divisor));
          low = V::div(low, d);
          high = V::div(high, d);
          for (std::int64_t ih = rows.begin; ih < rows.end; ++ih) {
            for (std::int64_t iw = cols.begin; iw < cols.end; ++iw) {
              double* at = sums.data() + (ih * g.in_width + iw) * padded + c;
              V::store(at, V::add(V::load(at), low));
              V::store(at + V::double_width, V::add(V::load(at + V::double_width), high));
            }
          }
        }
      }
    }
  }
  if constexpr (!kInFloat) {
    for (std::int64_t p = 0; p < positions; ++p) {
      for (std::int64_t c = 0; c < channels; ++c)
        gx[p * channels + c] = static_cast<T>(sums[static_cast<std::size_t>(p * padded + c)]);
    }
  }
}

// ---- NCHW --------------------------------------------------------------------------------------------

// NCHW rows of fewer input columns take the reference a plane at a time: a row of [128, 512, 4, 4] holds
// two outputs of a 2x2 pool, and a vector step's set-up costs more than its loads save. Measured, 2x2
// stride 2 and 3x3 stride 1, 2 threads, AVX-512, forward / backward, the reference against these rows:
// [128, 512, 4, 4] 0.72 / 0.94 ms against 1.09 / 1.66, and 2.83 / 3.35 against 3.57 / 4.22.
inline constexpr std::int64_t kMinRowColumns = 8;

// The output columns [first, end) of a row whose windows lie wholly inside the input row (the interior):
// the others reach into the padding, or past the row in ceil mode.
struct InteriorColumns {
  std::int64_t first, end;
};

InteriorColumns interior_columns(const Pool2dGeometry& g) {
  const std::int64_t out_w = g.out_width(), stride = g.stride_w, reach = g.in_width + g.pad_w - g.kernel_w;
  const std::int64_t first = std::min((g.pad_w + stride - 1) / stride, out_w);
  return {first, std::clamp(reach < 0 ? 0 : reach / stride + 1, first, out_w)};
}

// Output (oh, ow) of one plane, the reference's way.
template <typename T>
T one_average(const Pool2dGeometry& g, const T* plane, const WindowSpan& rows, std::int64_t ow) {
  const WindowSpan cols = g.col_span(ow);
  double sum = 0;
  for (std::int64_t ih = rows.begin; ih < rows.end; ++ih) {
    for (std::int64_t iw = cols.begin; iw < cols.end; ++iw) sum += plane[ih * g.in_width + iw];
  }
  return static_cast<T>(sum / static_cast<double>(g.avg_divisor(rows, cols)));
}

// One plane, at column stride kStride (1 or 2).
template <class V, int kStride, typename T>
void forward_plane(const Pool2dGeometry& g, const InteriorColumns& interior, const T* x, T* y) {
  const std::int64_t out_h = g.out_height(), out_w = g.out_width(), kernel_w = g.kernel_w;
  const T* plane_end = x + g.in_height * g.in_width;
  // A full load where it stays inside the plane (lanes past the step's outputs are never stored), a
  // masked one near its end (as MaxPoolRows loads).
  const auto load = [&](const T* from, std::int64_t columns) {
    return from + V::width <= plane_end ? V::load(from) : V::load_partial(from, columns);
  };
  for (std::int64_t oh = 0; oh < out_h; ++oh) {
    const WindowSpan rows = g.row_span(oh);
    T* y_row = y + oh * out_w;
    for (std::int64_t ow = 0; ow < interior.first; ++ow) y_row[ow] = one_average(g, x, rows, ow);
    if (interior.first < interior.end) {
      // Every interior window covers kernel_w columns: one divisor for the row's interior.
      const double divisor = static_cast<double>(g.avg_divisor(rows, g.col_span(interior.first)));
      for (std::int64_t ow = interior.first; ow < interior.end; ow += V::width) {
        const std::int64_t count = std::min(V::width, interior.end - ow);
        DoubleLanes<V> sums;
        for (std::int64_t ih = rows.begin; ih < rows.end; ++ih) {
          const T* row = x + ih * g.in_width + ow * kStride - g.pad_w;  // the first lane's window's row
          if constexpr (kStride == 1) {
            for (std::int64_t kw = 0; kw < kernel_w; ++kw) sums.add(load(row + kw, count));
          } else {
            // Columns kw, kw + 2, ... (even) and kw + 1, kw + 3, ... (odd): window columns kw and kw + 1
            // of every lane, added in that order.
            for (std::int64_t kw = 0; kw < kernel_w; kw += 2) {
              const bool pair = kw + 1 < kernel_w;
              const std::int64_t columns = 2 * count - (pair ? 0 : 1);
              const std::int64_t low = std::min(columns, V::width);
              typename V::Reg even, odd;
              V::deinterleave(load(row + kw, low), load(row + kw + V::width, columns - low), even, odd);
              sums.add(even);
              if (pair) sums.add(odd);
            }
          }
        }
        sums.store_divided(y_row + ow, divisor, count);
      }
    }
    for (std::int64_t ow = interior.end; ow < out_w; ++ow) y_row[ow] = one_average(g, x, rows, ow);
  }
}

// One float plane's input gradient, at any stride: gx zeroed, then output row by output row, its shares
// placed every stride_w-th float of `spread` (zeros between them and around them: an input's sum starts at
// +0, which adding +0 leaves as it is), and each input row of the row's windows gathering them a vector of
// input columns at a time: gx[ih][iw] += u[iw + pad_w - kw], u the shares' row spread, for kw from
// kernel_w - 1 down to 0. An input column meets its windows in output order (kw falls as ow rises), and its
// row's windows output row by output row: the reference's order, each vector of gx loaded and stored once an
// output row. (A scatter, a window column at a time, stored and reloaded each vector kernel_w times over,
// with each masked store's bytes read back by the next load, which the store buffer cannot forward from a
// masked store: [128, 512, 4, 4] at 3x3 stride 1 took 2.6x the reference's time.)
//
// A share is gy / divisor in float: float(double(gy) / divisor), the reference's, is the same number
// (double's 53 bits are more than 2 * 24 + 2, so rounding the double quotient to float rounds correctly,
// Figueroa 1995, and the divisor is exact in float).
template <class V>
void backward_plane(const Pool2dGeometry& g, const InteriorColumns& interior, const float* gy, float* gx,
                    std::vector<float>& spread) {
  const std::int64_t out_h = g.out_height(), out_w = g.out_width(), in_w = g.in_width;
  const std::int64_t kernel_w = g.kernel_w, stride = g.stride_w, pad = g.pad_w;
  // u(j) at spread[j + kernel_w]: reads reach j = iw + pad - kw from 1 - kernel_w to in_w + V::width - 1
  // + pad; shares land at j = ow * stride <= in_w + 2 * pad + stride - kernel_w, and the stride-2 vectors'
  // stores reach 2 * V::width - 1 past their first output's.
  const std::int64_t spread_floats = in_w + 2 * pad + stride + 2 * kernel_w + 2 * V::width;
  spread.resize(static_cast<std::size_t>(spread_floats));
  float* u = spread.data() + kernel_w;
  std::fill(gx, gx + g.in_height * in_w, 0.0f);
  for (std::int64_t oh = 0; oh < out_h; ++oh) {
    const WindowSpan rows = g.row_span(oh);
    const float* gy_row = gy + oh * out_w;
    std::fill(spread.begin(), spread.end(), 0.0f);
    const auto one_share = [&](std::int64_t ow) {
      u[ow * stride] = gy_row[ow] / static_cast<float>(g.avg_divisor(rows, g.col_span(ow)));
    };
    for (std::int64_t ow = 0; ow < interior.first; ++ow) one_share(ow);
    if (interior.first < interior.end) {  // the interior's shares: one divisor, in vectors
      const std::int64_t divisor = g.avg_divisor(rows, g.col_span(interior.first));
      for (std::int64_t ow = interior.first; ow < interior.end; ow += V::width) {
        const std::int64_t count = std::min(V::width, interior.end - ow);
        const typename V::Reg share = float_shares<V>(gy_row + ow, divisor, count);
        if (stride == 1) {
          V::store_partial(u + ow, share, count);
        } else if (stride == 2) {  // the shares at even floats, zeros at odd
          typename V::Reg first, second;
          V::interleave(share, V::zero(), first, second);
          V::store(u + 2 * ow, first);
          V::store(u + 2 * ow + V::width, second);
        } else {
          alignas(64) float shares[V::width];
          V::store(shares, share);
          for (std::int64_t i = 0; i < count; ++i) u[(ow + i) * stride] = shares[i];
        }
      }
    }
    for (std::int64_t ow = interior.end; ow < out_w; ++ow) one_share(ow);
    for (std::int64_t ih = rows.begin; ih < rows.end; ++ih) {
      float* gx_row = gx + ih * in_w;
      for (std::int64_t iw = 0; iw < in_w; iw += V::width) {
        const std::int64_t count = std::min(V::width, in_w - iw);
        typename V::Reg sum = V::load_partial(gx_row + iw, count);
        for (std::int64_t kw = kernel_w - 1; kw >= 0; --kw) sum = V::add(sum, V::load(u + iw + pad - kw));
        V::store_partial(gx_row + iw, sum, count);
      }
    }
  }
}

}  // namespace
}  // namespace average

template <class V, typename T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y) {
  using namespace average;
  const std::int64_t in_plane = g.in_height * g.in_width, out_plane = g.out_height() * g.out_width();
  const bool threaded = g.batch * g.channels * in_plane >= kPoolThreshold;
  if (g.channels_last) {
#pragma omp parallel for schedule(static) if (threaded)
    for (std::int64_t r = 0; r < g.batch * g.out_height(); ++r) forward_channels_last_row<V>(g, r, x, y);
    return;
  }
  const InteriorColumns interior = interior_columns(g);
  Pool2dGeometry plane = g;
  plane.batch = plane.channels = 1;
  const bool by_rows = g.in_width >= kMinRowColumns && (g.stride_w == 1 || g.stride_w == 2);
#pragma omp parallel for schedule(static) if (threaded)
  for (std::int64_t p = 0; p < g.batch * g.channels; ++p) {
    const T* from = x + p * in_plane;
    T* to = y + p * out_plane;
    if (!by_rows) {
      reference::avg_pool2d_forward(plane, from, to);
    } else if (g.stride_w == 1) {
      forward_plane<V, 1>(g, interior, from, to);
    } else {
      forward_plane<V, 2>(g, interior, from, to);
    }
  }
}

template <class V, typename T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx) {
  using namespace average;
  const std::int64_t in_plane = g.in_height * g.in_width, out_plane = g.out_height() * g.out_width();
  const bool threaded = g.batch * g.channels * in_plane >= kPoolThreshold;
  if (g.channels_last) {
#pragma omp parallel if (threaded)
    {
      std::vector<double> sums;  // each thread's, reused image after image (bfloat16)
#pragma omp for schedule(static)
      for (std::int64_t n = 0; n < g.batch; ++n) backward_channels_last_image<V>(g, n, gy, gx, sums);
    }
    return;
  }
  const InteriorColumns interior = interior_columns(g);
  Pool2dGeometry plane = g;
  plane.batch = plane.channels = 1;
#pragma omp parallel if (threaded)
  {
    std::vector<float> spread;  // each thread's, reused plane after plane
#pragma omp for schedule(static)
    for (std::int64_t p = 0; p < g.batch * g.channels; ++p) {
      const T* from = gy + p * out_plane;
      T* to = gx + p * in_plane;
      if constexpr (std::is_same_v<T, float>) {
        if (g.in_width >= kMinRowColumns) {
          backward_plane<V>(g, interior, from, to, spread);
          continue;
        }
      }
      reference::avg_pool2d_backward(plane, from, to);
    }
  }
}

}  // namespace kiln::kernels::vectorized
