// Pooling on channels-last tensors, a vector of channels at a time: written once over a vector trait V
// (simd::FloatVector512 or FloatVector256) and a storage type T (float or bfloat16), reached through
// vectorized_pool.hpp, which includes this file and sends channels-last geometries here.
//
//   x [N, H, W, C]    y, argmax [N, OH, OW, C]    global: x [N, H*W, C] -> y [N, C]
//
// In this layout the C planes of an image interleave: the element (ih, iw) of every channel lies in one
// run of C values. A vector lane is a channel, so any window shape is a walk over its taps with one load a
// tap for V::width channels, and nothing is transposed.
//
//   max forward      threads share the (image, output row) pairs; a window's positions in row-major order,
//                    each lane keeping its best value and the position that gave it (in float lanes, exact
//                    below 2^24 positions), under the reference's rule (a strictly larger value or a NaN
//                    over a number replaces the best), so values and argmax are the reference's bit for bit
//   max backward     where windows are disjoint, gx written once in memory order, each position's channels
//                    taking gy where their argmax names it (max_pool2d_backward_disjoint); overlapping
//                    windows take vectorized_pool.hpp's scatter
//   global average   threads share images; a channel block's sum in float lanes over chunks of positions,
//                    chunk totals added in double (as the NCHW kernel sums a plane); the backward writes
//                    each image's row of shares once and copies it to every position
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/pool/pool.hpp"

namespace kiln::kernels::vectorized {

// Shared with vectorized_pool.hpp.
inline constexpr std::int64_t kPoolChunk = 1024;       // elements summed in float before going to double
inline constexpr std::int64_t kPoolThreshold = 32768;  // below this many input elements, one thread

namespace channels_last {

// Positions ride in float lanes, exact below 2^24; a plane of more positions (past 4096 x 4096) takes the
// reference, image by image.
inline constexpr std::int64_t kExactFloatPositions = std::int64_t{1} << 24;

namespace {  // internal linkage: avx512.cpp and avx2.cpp, built with different flags, each keep their own

// The input rows and columns [begin, end) of output (oh, ow)'s window inside the input: the window clipped
// to the input (padding is never the maximum). Validated geometry leaves at least one position.
struct Window {
  std::int64_t row_begin, row_end, col_begin, col_end;
};

Window window(const Pool2dGeometry& g, std::int64_t oh, std::int64_t ow) {
  const std::int64_t row_start = oh * g.stride_h - g.pad_h, col_start = ow * g.stride_w - g.pad_w;
  return {std::max<std::int64_t>(row_start, 0), std::min(row_start + g.kernel_h, g.in_height),
          std::max<std::int64_t>(col_start, 0), std::min(col_start + g.kernel_w, g.in_width)};
}

// One output pixel's `count` (<= V::width) channels: x_image is the image's [H*W][C] at the block's first
// channel, y and argmax the pixel's at that channel. The window's positions in row-major order; a
// candidate replaces a lane's best when it beats it, and the lane keeps its position alongside.
template <class V, typename T>
void max_pool_pixel_block(const Pool2dGeometry& g, const Window& w, const T* x_image, std::int64_t count,
                          T* y, std::int32_t* argmax) {
  using Reg = typename V::Reg;
  const std::int64_t channels = g.channels, first = w.row_begin * g.in_width + w.col_begin;
  Reg best = V::load_partial(x_image + first * channels, count);
  Reg best_position = V::broadcast(static_cast<float>(first));
  for (std::int64_t ih = w.row_begin; ih < w.row_end; ++ih) {
    for (std::int64_t iw = ih == w.row_begin ? w.col_begin + 1 : w.col_begin; iw < w.col_end; ++iw) {
      const std::int64_t position = ih * g.in_width + iw;
      const Reg candidate = V::load_partial(x_image + position * channels, count);
      const auto beats =
          V::either(V::greater(candidate, best), V::and_not(V::is_nan(candidate), V::is_nan(best)));
      best = V::select(beats, candidate, best);
      best_position = V::select(beats, V::broadcast(static_cast<float>(position)), best_position);
    }
  }
  V::store_partial(y, best, count);
  V::store_partial_as_int32(argmax, best_position, count);
}

}  // namespace

template <class V, typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax) {
  const std::int64_t channels = g.channels, out_h = g.out_height(), out_w = g.out_width();
  const std::int64_t image = g.in_height * g.in_width * channels, out_image = out_h * out_w * channels;
  if (g.in_height * g.in_width >= kExactFloatPositions) {
    Pool2dGeometry one_image = g;
    one_image.batch = 1;
#pragma omp parallel for schedule(static)
    for (std::int64_t n = 0; n < g.batch; ++n) {
      reference::max_pool2d_forward(one_image, x + n * image, y + n * out_image, argmax + n * out_image);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (g.batch * image >= kPoolThreshold)
  for (std::int64_t row = 0; row < g.batch * out_h; ++row) {  // row = n * OH + oh
    const std::int64_t n = row / out_h, oh = row % out_h;
    for (std::int64_t ow = 0; ow < out_w; ++ow) {
      const Window w = window(g, oh, ow);
      const std::int64_t out = (row * out_w + ow) * channels;
      for (std::int64_t c = 0; c < channels; c += V::width) {
        max_pool_pixel_block<V>(g, w, x + n * image + c, std::min(V::width, channels - c), y + out + c,
                                argmax + out + c);
      }
    }
  }
}

// The max-pool gradient where windows are disjoint (Pool2dGeometry::windows_disjoint: each input position
// in at most one window), written once, densely, in memory order: an input position inside window (oh, ow)
// gets 0 + gy (-0 becoming +0, as the scattered sum makes it) in the channels whose argmax names it and zero
// in the others; a position no window covers (the rows and columns floor mode leaves out) gets zero. The
// scatter (vectorized_pool.hpp) clears gx and then writes each gradient one element at a time: the VGG-style
// net's bf16 2x2 pools took 1.07 ms a call in training that way, 0.48 this way (its step 41.9 -> 38.8 ms).
template <class V, typename T>
void max_pool2d_backward_disjoint(const Pool2dGeometry& g, const T* gy, const std::int32_t* argmax, T* gx) {
  const std::int64_t channels = g.channels, out_h = g.out_height(), out_w = g.out_width();
  const std::int64_t in_h = g.in_height, in_w = g.in_width;
  // The output index along one axis whose window holds input index i, or -1.
  const auto window_of = [](std::int64_t i, std::int64_t pad, std::int64_t stride, std::int64_t kernel,
                            std::int64_t outputs) {
    const std::int64_t o = (i + pad) / stride;
    return o < outputs && i + pad - o * stride < kernel ? o : std::int64_t{-1};
  };
#pragma omp parallel for schedule(static) if (g.batch * in_h * in_w * channels >= kPoolThreshold)
  for (std::int64_t row = 0; row < g.batch * in_h; ++row) {  // row = n * H + ih
    const std::int64_t n = row / in_h, ih = row % in_h;
    const std::int64_t oh = window_of(ih, g.pad_h, g.stride_h, g.kernel_h, out_h);
    for (std::int64_t iw = 0; iw < in_w; ++iw) {
      T* out = gx + (row * in_w + iw) * channels;
      const std::int64_t ow = oh < 0 ? -1 : window_of(iw, g.pad_w, g.stride_w, g.kernel_w, out_w);
      if (ow < 0) {
        std::fill_n(out, channels, T{0});
        continue;
      }
      const std::int64_t at = ((n * out_h + oh) * out_w + ow) * channels;
      const typename V::Reg position = V::broadcast(static_cast<float>(ih * in_w + iw)),
                            half = V::broadcast(0.5f);
      for (std::int64_t c = 0; c < channels; c += V::width) {
        const std::int64_t count = std::min(V::width, channels - c);
        const typename V::Reg named = V::load_partial_int32_as_float(argmax + at + c, count);
        // Whole numbers: equal where they differ by less than a half. (Lanes past `count` are not stored.)
        const auto here = V::less(V::abs(V::sub(named, position)), half);
        V::store_partial(out + c,
                         V::select(here, V::add(V::zero(), V::load_partial(gy + at + c, count)), V::zero()),
                         count);
      }
    }
  }
}

template <class V, typename T>
void global_avg_pool2d_forward(const GlobalPool2dGeometry& g, const T* x, T* y) {
  const std::int64_t channels = g.channels, positions = g.plane_size;
#pragma omp parallel for schedule(static) if (g.planes() * positions >= kPoolThreshold)
  for (std::int64_t n = 0; n < g.batch; ++n) {
    const T* x_image = x + n * positions * channels;  // [positions][C]
    for (std::int64_t c = 0; c < channels; c += V::width) {
      const std::int64_t count = std::min(V::width, channels - c);
      double sums[V::width] = {};
      for (std::int64_t start = 0; start < positions; start += kPoolChunk) {
        typename V::Reg lanes = V::zero();
        for (std::int64_t p = start; p < std::min(positions, start + kPoolChunk); ++p) {
          lanes = V::add(lanes, V::load_partial(x_image + p * channels + c, count));
        }
        alignas(64) float chunk[V::width];
        V::store(chunk, lanes);
        for (std::int64_t lane = 0; lane < count; ++lane) sums[lane] += chunk[lane];
      }
      for (std::int64_t lane = 0; lane < count; ++lane) {
        y[n * channels + c + lane] = static_cast<T>(sums[lane] / static_cast<double>(positions));
      }
    }
  }
}

// gx[n, p, c] = gy[n, c] / positions, the share rounded exactly as the reference rounds it; accumulating,
// gx[n, p, c] + that share in float lanes, rounded once to T, as the vectorized add adds.
template <class V, typename T>
void global_avg_pool2d_backward(const GlobalPool2dGeometry& g, const T* gy, T* gx, bool accumulate) {
  const std::int64_t channels = g.channels, positions = g.plane_size;
#pragma omp parallel for schedule(static) if (g.planes() * positions >= kPoolThreshold)
  for (std::int64_t n = 0; n < g.batch; ++n) {
    T* gx_image = gx + n * positions * channels;                    // [positions][C]
    std::vector<float> shares(static_cast<std::size_t>(channels));  // T -> float -> T is exact
    for (std::int64_t c = 0; c < channels; ++c) {
      shares[static_cast<std::size_t>(c)] = static_cast<float>(
          static_cast<T>(static_cast<double>(gy[n * channels + c]) / static_cast<double>(positions)));
    }
    for (std::int64_t p = 0; p < positions; ++p) {
      T* row = gx_image + p * channels;
      for (std::int64_t c0 = 0; c0 < channels; c0 += V::width) {
        const std::int64_t lanes = std::min<std::int64_t>(V::width, channels - c0);
        const auto share = V::load_partial(shares.data() + c0, lanes);
        V::store_partial(row + c0, accumulate ? V::add(V::load_partial(row + c0, lanes), share) : share,
                         lanes);
      }
    }
  }
}

}  // namespace channels_last
}  // namespace kiln::kernels::vectorized
