// Direct depthwise convolution (groups == C_in == C_out) vectorized along the channels, written once against
// a float vector trait V (simd::FloatVector512 or FloatVector256) and instantiated by avx512_depthwise.cpp
// and avx2_depthwise.cpp.
//
// depthwise_kernel.hpp vectorizes along each channel's output row. That wastes most of every vector once the
// planes are small (a 4x4 plane's rows fill a quarter of a zmm), and pays a per-plane setup (the phase copy,
// the loops) that a 2x2 plane's 36 multiply-adds cannot carry: MobileNet's deep layers, 512 channels at 4x4
// or 1024 at 2x2, took 30 to 90 times what their arithmetic takes at peak. Here a vector holds one pixel of
// V::width channels, every lane useful at any plane size, and each tap is one multiply-add of a pixel vector
// by that tap's vector of V::width channels' weights:
//
//   y[oh, ow][c..] = bias[c..] + sum over taps (kh, kw) of
//                    xs[oh*stride_h + kh*dilation_h][ow*stride_w + kw*dilation_w][c..] * wt[kh, kw][c..]
//
// where xs is one image's block of channels, channels-last, inside a border of pad_h / pad_w zeros: each tap
// is a constant offset into it (`Layout::forward_taps`), for any stride, padding and dilation.
//
// A block is V::width channels of one image. An NCHW block is a [width][H*W] slab (contiguous: its channels
// are neighbours), so it comes in and goes out through one transpose (kernels/simd/transpose_8x8.hpp's
// transpose_matrix, 16 x 16 at a time at AVX-512); a channels-last block is copied pixel by pixel. A unit of
// work takes a group of neighbouring blocks (block_groups), which the channels-last copies walk a pixel at
// a time. Either way the blocks' buffers stay in L1 or L2 while all their taps read them.
//
//   forward          y as above, 4 output pixels at a time so each weight vector is loaded once per 4
//   backward-data    at stride 1, the forward pass of gy through the flipped kernel (depthwise_kernel.hpp's
//                    backward_data_as_forward); otherwise phase by phase: the input pixels of one phase
//                    (ih % stride_h, iw % stride_w fixed) all meet the same taps, each at a constant offset
//                    into gy once gy sits in a border of zeros (PhasePlan), so a phase is the forward's loop
//                    (sum_taps) over gy with its own few taps: 4 pixels per weight load, each input pixel
//                    written once, from registers
//   backward-weight  gw[c, tap] = sum over images, oh, ow of gy[oh, ow][c] * xs[...][c]: lanes are
//                    channels, so each lane's sum is that channel's, no reduction across lanes. Per image
//                    in float (up to 9 taps at a time, one accumulator each), then added into double image
//                    by image within a fixed chunk of kWeightChunkImages images; the chunks' doubles are
//                    added in chunk order
//
// A train-mode batch norm before the convolution (InputNormalization, conv2d.hpp) runs inside the forward
// and backward-weight passes: each gathered block of x is normalized in its buffer (normalize_blocks).
//
// Threads share the units (image x group of blocks; for the weight gradient, chunk x group). Every output
// float is computed by one unit in a fixed order, and the weight gradient's chunks are fixed by the batch,
// so any thread count gives the same bits.
//
// The activations' type T is float, or bfloat16 for channels-last tensors (`--precision bf16`): a block is
// widened exactly as it is gathered into the float buffers and rounded once as it is scattered back, the
// weights and the gradient's sums stay float, so the results are the float kernels' on the widened tensors,
// rounded once, bit for bit, without widening whole tensors first.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/error.hpp"
#include "kernels/contiguous_shares.hpp"
#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/depthwise_kernel.hpp"
#include "kernels/conv2d/input_normalization.hpp"
#include "kernels/cpu_cache.hpp"
#include "kernels/simd/transpose_8x8.hpp"

namespace kiln::kernels::depthwise_channels {

using depthwise::kMaxTaps;

// Images per partial sum of the weight gradient: enough to make a unit worth a thread, few enough that a
// batch of 128 still gives 16 chunks to share out (times the channel blocks).
inline constexpr std::int64_t kWeightChunkImages = 8;
// Output pixels per step of the forward pass, each weight vector loaded once for all of them: 8 (a pixel's
// sum is a chain of multiply-adds, and two units 4 cycles deep need 8 chains to stay busy), whose 8
// accumulators and a weight fit AVX2's 16 registers too. AVX2 had 4, half the chains: at AVX2 on a Xeon,
// channels-last, batch 128, 2 threads, ms, forward / backward-data, 4 vs 8: 32 channels at 32x32 1.57-1.61 /
// 1.61-1.63 vs 1.52 / 1.50-1.52, 128 at 16x16 1.83-1.84 / 1.77-1.84 vs 1.75-1.77 / 1.70-1.75, 512 at 4x4
// 0.41 / 0.42-0.43 vs 0.38-0.40 / 0.40.
inline constexpr int kPixelRun = 8;
// Taps per pass of the weight gradient: one accumulator each, so 3x3 kernels take one pass.
inline constexpr int kTapGroup = 9;

// The taps one output pixel sums, in the order it adds them: where each reads its input, in floats from
// the pixel's base in the input buffer, and where its weights sit, in floats into the block's weights
// [taps][width]. (A template on V, as everything in this file, so the AVX-512 and AVX2 builds never share a
// compiled function.)
template <typename V>
struct TapList {
  std::int64_t count = 0;
  std::int64_t input[kMaxTaps] = {};
  std::int64_t weight[kMaxTaps] = {};

  void add(std::int64_t input_offset, std::int64_t tap) {
    input[count] = input_offset;
    weight[count++] = tap * V::width;
  }
};

// Where a block sits in its scratch buffer: `top` rows and `left` columns of zeros before it, rows of
// `pitch` pixels, `floats` in all (zeros after it too, as far as the taps reach).
struct Border {
  std::int64_t top, left, pitch, floats;
};

// The geometry in the buffers' terms: the padded input block, where the taps read it, the channel blocks.
template <typename V>
struct Layout {
  std::int64_t channels, blocks;  // C, and blocks of V::width channels (the last may be partial)
  std::int64_t in_h, in_w, out_h, out_w;
  std::int64_t padded_h, padded_w;  // the input plus its border of zeros
  std::int64_t taps;
  TapList<V> forward_taps;  // tap (kh, kw) reads xs at (kh * dilation_h, kw * dilation_w) from the pixel

  explicit Layout(const Conv2dGeometry& g)
      : channels(g.in_channels),
        blocks((g.in_channels + V::width - 1) / V::width),
        in_h(g.in_height),
        in_w(g.in_width),
        out_h(g.out_height()),
        out_w(g.out_width()),
        padded_h(g.in_height + 2 * g.pad_h),
        padded_w(g.in_width + 2 * g.pad_w),
        taps(g.kernel_h * g.kernel_w) {
    for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (std::int64_t kw = 0; kw < g.kernel_w; ++kw)
        forward_taps.add((kh * g.dilation_h * padded_w + kw * g.dilation_w) * V::width, kh * g.kernel_w + kw);
    }
  }
  std::int64_t padded_floats() const { return padded_h * padded_w * V::width; }
  // xs: the input inside its border of pad_h / pad_w zeros.
  Border input_border(const Conv2dGeometry& g) const { return {g.pad_h, g.pad_w, padded_w, padded_floats()}; }
  std::int64_t in_floats() const { return in_h * in_w * V::width; }
  std::int64_t out_floats() const { return out_h * out_w * V::width; }
  std::int64_t lanes(std::int64_t block) const { return std::min(V::width, channels - block * V::width); }
};

// ---- moving blocks of channels between a tensor and channels-last buffers -----------------------------

// For each of `count` blocks from `first`, its own buffer `to + i * to_floats` (i < count):
//
//   to[i * to_floats + ((top + r) * pitch + left + col) * width + l] =
//       the tensor's (image, (first + i) * width + l, r, col)
//
// for r < h, col < w, l < lanes; lanes from `lanes` up are zero (channels-last) or hold whatever the
// transpose left there (no output reads them). The tensor is [N, C, h, w] (NCHW) or [N, h, w, C]
// (channels_last). A channels-last pixel's blocks are neighbours in memory, so the walk takes every block of
// the group from one pixel before the next pixel: a few hundred contiguous bytes at a time, where a block
// alone is 32 bytes (bfloat16) out of each pixel's C. An NCHW block is one slab, transposed through
// `slab` (h * w * width floats of scratch) unless its buffer has no border.
template <typename V, typename T>
void gather_blocks(const Layout<V>& layout, bool channels_last, const T* tensor, std::int64_t h,
                   std::int64_t w, std::int64_t image, std::int64_t first, std::int64_t count, float* to,
                   std::int64_t to_floats, std::int64_t top, std::int64_t left, std::int64_t pitch,
                   float* slab) {
  const std::int64_t c = layout.channels;
  if (channels_last) {
    // Every block but the tensor's last is whole: `whole` of the group's blocks load plainly.
    const std::int64_t tail_lanes = layout.lanes(first + count - 1);
    const std::int64_t whole = tail_lanes == V::width ? count : count - 1;
    const T* pixel = tensor + image * h * w * c + first * V::width;
    for (std::int64_t r = 0; r < h; ++r) {
      for (std::int64_t col = 0; col < w; ++col, pixel += c) {
        float* into = to + ((top + r) * pitch + left + col) * V::width;
        for (std::int64_t i = 0; i < whole; ++i)
          V::store(into + i * to_floats, V::load(pixel + i * V::width));
        if (whole < count)
          V::store(into + whole * to_floats, V::load_partial(pixel + whole * V::width, tail_lanes));
      }
    }
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    const bool dense = top == 0 && left == 0 && pitch == w;
    for (std::int64_t i = 0; i < count; ++i) {
      // [lanes][h*w], contiguous in NCHW, into [h*w][width]: straight into the buffer when it has no border;
      // else row by row into the border where rows are whole 16 x 16 blocks of the transpose (the slab's
      // copy into the border was a seventh of a 32-channel weight gradient at 32x32); through the slab
      // otherwise (rows of 8 took longer through 8 x 8 transposes than the slab and its copy).
      float* buffer = to + i * to_floats;
      const float* block = tensor + (image * c + (first + i) * V::width) * h * w;
      if (!dense && w % 16 == 0) {
        for (std::int64_t r = 0; r < h; ++r)
          transpose_matrix(block + r * w, h * w, layout.lanes(first + i), w,
                           buffer + ((top + r) * pitch + left) * V::width, V::width);
        continue;
      }
      float* transposed = dense ? buffer : slab;
      transpose_matrix(block, h * w, layout.lanes(first + i), h * w, transposed, V::width);
      if (dense) continue;
      for (std::int64_t r = 0; r < h; ++r) {
        for (std::int64_t col = 0; col < w; ++col)
          V::store(buffer + ((top + r) * pitch + left + col) * V::width,
                   V::load(transposed + (r * w + col) * V::width));
      }
    }
  } else {
    KILN_CHECK(false, "depthwise_channels: bfloat16 takes channels-last tensors only");
  }
}

// An input normalization (InputNormalization, conv2d.hpp: a train-mode batch norm and its activation before
// the convolution) applied in place to the [h, w] pixels of `count` gathered blocks from `first`, each
// block's channels in its lanes (conv2d_input::Normalizer); their borders stay zero, as the normalized
// tensor's padding is.
template <typename V>
void normalize_blocks(const Layout<V>& layout, const InputNormalization& input, std::int64_t first,
                      std::int64_t count, float* buffers, const Border& border, std::int64_t h,
                      std::int64_t w) {
  for (std::int64_t i = 0; i < count; ++i) {
    const auto normalize =
        conv2d_input::Normalizer<V>::for_channels(input, (first + i) * V::width, layout.lanes(first + i));
    float* buffer = buffers + i * border.floats;
    for (std::int64_t r = 0; r < h; ++r)
      normalize.run(buffer + ((border.top + r) * border.pitch + border.left) * V::width, w * V::width);
  }
}

// The inverse for dense buffers: from[i * from_floats + (r * w + col) * width + l] into the tensor, lanes <
// lanes only, pixel by pixel for channels-last as above.
template <typename V, typename T>
void scatter_blocks(const Layout<V>& layout, bool channels_last, const float* from, std::int64_t from_floats,
                    std::int64_t h, std::int64_t w, std::int64_t image, std::int64_t first,
                    std::int64_t count, T* tensor) {
  const std::int64_t c = layout.channels;
  if (channels_last) {
    const std::int64_t tail_lanes = layout.lanes(first + count - 1);
    const std::int64_t whole = tail_lanes == V::width ? count : count - 1;
    T* pixel = tensor + image * h * w * c + first * V::width;
    for (std::int64_t p = 0; p < h * w; ++p, pixel += c) {
      const float* out = from + p * V::width;
      for (std::int64_t i = 0; i < whole; ++i) V::store(pixel + i * V::width, V::load(out + i * from_floats));
      if (whole < count)
        V::store_partial(pixel + whole * V::width, V::load(out + whole * from_floats), tail_lanes);
    }
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    for (std::int64_t i = 0; i < count; ++i)
      transpose_matrix(from + i * from_floats, V::width, h * w, layout.lanes(first + i),
                       tensor + (image * c + (first + i) * V::width) * h * w, h * w);
  } else {
    KILN_CHECK(false, "depthwise_channels: bfloat16 takes channels-last tensors only");
  }
}

// wt[(block * taps + tap) * width + l] = w[(block * width + l) * taps + tap], zero in the lanes past C.
template <typename V>
std::vector<float> weights_by_tap(const Layout<V>& layout, const float* w) {
  std::vector<float> wt(static_cast<std::size_t>(layout.blocks * layout.taps * V::width), 0.0f);
  for (std::int64_t c = 0; c < layout.channels; ++c) {
    for (std::int64_t tap = 0; tap < layout.taps; ++tap)
      wt[static_cast<std::size_t>(((c / V::width) * layout.taps + tap) * V::width + c % V::width)] =
          w[c * layout.taps + tap];
  }
  return wt;
}

// ---- the three passes of one block ---------------------------------------------------------------------

// A grid of output pixels, each the sum of the taps over its own base in the input buffer: for r < rows,
// col < columns,
//
//   out[r * out_row + col * out_pixel][..] =
//       bias + sum over j < taps.count, in order, of in[r * in_row + col * in_pixel + taps.input[j]][..]
//                                                    * wt[taps.weight[j]][..]
//
// kPixelRun pixels at a time, each weight vector loaded once for all of them; a run goes on into the next
// row where a row ends (a 4x4 plane's rows are 4 pixels). The forward pass is one grid (all taps, in at the
// stride, out dense); a strided backward-data is one grid per phase (PhasePlan).
template <typename V>
void sum_taps(const TapList<V>& taps, const float* wt, typename V::Reg bias, const float* in,
              std::int64_t in_row, std::int64_t in_pixel, std::int64_t rows, std::int64_t columns, float* out,
              std::int64_t out_row, std::int64_t out_pixel) {
  using Reg = typename V::Reg;
  constexpr int kRun = kPixelRun;
  std::int64_t r = 0, col = 0;  // the next pixel
  const auto next = [&](const float*& from, float*& to) {
    from = in + r * in_row + col * in_pixel;
    to = out + r * out_row + col * out_pixel;
    if (++col == columns) col = 0, ++r;
  };
  const std::int64_t pixels = rows * columns;
  std::int64_t done = 0;
  for (; done + kRun <= pixels; done += kRun) {
    const float* from[kRun];
    float* to[kRun];
    Reg acc[kRun];
#pragma GCC unroll 8
    for (int k = 0; k < kRun; ++k) next(from[k], to[k]), acc[k] = bias;
    for (std::int64_t j = 0; j < taps.count; ++j) {
      const Reg weight = V::load(wt + taps.weight[j]);
      const std::int64_t offset = taps.input[j];
#pragma GCC unroll 8
      for (int k = 0; k < kRun; ++k) acc[k] = V::fmadd(V::load(from[k] + offset), weight, acc[k]);
    }
#pragma GCC unroll 8
    for (int k = 0; k < kRun; ++k) V::store(to[k], acc[k]);
  }
  for (; done < pixels; ++done) {
    const float* from;
    float* to;
    next(from, to);
    Reg acc = bias;
    for (std::int64_t j = 0; j < taps.count; ++j)
      acc = V::fmadd(V::load(from + taps.input[j]), V::load(wt + taps.weight[j]), acc);
    V::store(to, acc);
  }
}

// ys [OH*OW][width] from xs (padded) and the block's weights wt [taps][width].
template <typename V>
void forward_block(const Conv2dGeometry& g, const Layout<V>& layout, const float* xs, const float* wt,
                   typename V::Reg bias, float* ys) {
  sum_taps(layout.forward_taps, wt, bias, xs, g.stride_h * layout.padded_w * V::width, g.stride_w * V::width,
           layout.out_h, layout.out_w, ys, layout.out_w * V::width, V::width);
}

// Strided backward-data, phase by phase. Input row ih meets kernel row kh when ih + pad_h - kh * dilation_h
// is a multiple of stride_h, at output row oh = (ih + pad_h - kh * dilation_h) / stride_h: a condition on
// ih % stride_h alone. So the rows ih = a + m * stride_h of phase a all meet the same kernel rows, kh at
// oh = m + (a + pad_h - kh * dilation_h) / stride_h, a constant offset from m; likewise the columns. A phase
// (a_h, a_w) is then a grid of input pixels each summing the same taps at constant offsets into gy, which
// sum_taps runs, once gy sits inside a border of zeros deep enough that every offset stays in the buffer:
// a tap whose oh falls outside [0, OH) reads a zero there and adds nothing, where it has no output.
//
//   gx[a_h + m_h * stride_h, a_w + m_w * stride_w] = sum over the phase's taps (kh, kw), in kernel order,
//       of gyp[top + m_h + off_h(kh)][left + m_w + off_w(kw)] * w[kh, kw]
//
// where gyp is gy with `top` rows and `left` columns of zeros before it (and enough after).
//
// It replaced a gather that looked up, for each input pixel, the taps landing on it (one, two or four at
// stride 2: short loops of varying length). Measured, AVX-512, batch 128, ms, 1 thread / 2 threads, that
// gather vs phase by phase (the forward pass for scale):
//   64 at 32x32    4.52 / 2.76  vs  2.94 / 1.76   (forward 2.65 / 1.67)
//   128 at 16x16   1.99 / 1.19  vs  1.17 / 0.65   (forward 1.17 / 0.61)
//   256 at 8x8     0.79 / 0.49  vs  0.41 / 0.26   (forward 0.38 / 0.23)
//   512 at 4x4     0.49 / 0.32  vs  0.47 / 0.29   (forward 0.38 / 0.24)
template <typename V>
struct PhasePlan {
  struct Phase {
    std::int64_t first_h, first_w;  // the phase's first input row and column
    std::int64_t rows, columns;     // its input rows and columns
    TapList<V> taps;
  };
  std::vector<Phase> phases;
  std::int64_t top = 0, left = 0;    // gy's first row and column in gyp
  std::int64_t rows = 0, pitch = 0;  // gyp's rows and columns

  PhasePlan(const Conv2dGeometry& g, const Layout<V>& layout) {
    // (kernel index, output offset) pairs of phase a along one axis.
    struct Hit {
      std::int64_t k, offset;
    };
    const auto hits = [](std::int64_t a, std::int64_t pad, std::int64_t kernel, std::int64_t dilation,
                         std::int64_t stride) {
      std::vector<Hit> found;
      for (std::int64_t k = 0; k < kernel; ++k) {
        const std::int64_t t = a + pad - k * dilation;
        if (((t % stride) + stride) % stride == 0) found.push_back({k, t / stride});
      }
      return found;
    };
    const auto count = [](std::int64_t a, std::int64_t inputs, std::int64_t stride) {
      return a < inputs ? (inputs - a + stride - 1) / stride : 0;
    };
    // The border: deep enough before gy for the most negative offset, after it for the last row's largest.
    std::int64_t bottom = 0, right = 0;
    for (std::int64_t a = 0; a < g.stride_h; ++a) {
      for (const Hit& hit : hits(a, g.pad_h, g.kernel_h, g.dilation_h, g.stride_h)) {
        top = std::max(top, -hit.offset);
        bottom = std::max(bottom, count(a, layout.in_h, g.stride_h) - 1 + hit.offset - (layout.out_h - 1));
      }
    }
    for (std::int64_t a = 0; a < g.stride_w; ++a) {
      for (const Hit& hit : hits(a, g.pad_w, g.kernel_w, g.dilation_w, g.stride_w)) {
        left = std::max(left, -hit.offset);
        right = std::max(right, count(a, layout.in_w, g.stride_w) - 1 + hit.offset - (layout.out_w - 1));
      }
    }
    rows = top + layout.out_h + bottom;
    pitch = left + layout.out_w + right;
    for (std::int64_t a_h = 0; a_h < g.stride_h; ++a_h) {
      for (std::int64_t a_w = 0; a_w < g.stride_w; ++a_w) {
        Phase phase{a_h, a_w, count(a_h, layout.in_h, g.stride_h), count(a_w, layout.in_w, g.stride_w), {}};
        if (phase.rows == 0 || phase.columns == 0) continue;
        // The taps in reverse kernel order, as the stride-1 pass (the flipped kernel's forward) and
        // depthwise_kernel.hpp's NCHW passes add them: channels-last and NCHW give the same bits.
        const std::vector<Hit> rows_hit = hits(a_h, g.pad_h, g.kernel_h, g.dilation_h, g.stride_h);
        const std::vector<Hit> columns_hit = hits(a_w, g.pad_w, g.kernel_w, g.dilation_w, g.stride_w);
        for (auto h = rows_hit.rbegin(); h != rows_hit.rend(); ++h) {
          for (auto w = columns_hit.rbegin(); w != columns_hit.rend(); ++w)
            phase.taps.add(((top + h->offset) * pitch + left + w->offset) * V::width,
                           h->k * g.kernel_w + w->k);
        }
        phases.push_back(phase);
      }
    }
  }
  Border border() const { return {top, left, pitch, rows * pitch * V::width}; }
};

// gxs [H*W][width] from gyp (gy in the plan's border of zeros) and wt [taps][width], phase by phase. A
// phase without taps (no output reads its pixels) gets zeros.
template <typename V>
void backward_data_block(const Conv2dGeometry& g, const Layout<V>& layout, const PhasePlan<V>& plan,
                         const float* gyp, const float* wt, float* gxs) {
  for (const auto& phase : plan.phases) {
    sum_taps(phase.taps, wt, V::zero(), gyp, plan.pitch * V::width, V::width, phase.rows, phase.columns,
             gxs + (phase.first_h * layout.in_w + phase.first_w) * V::width,
             g.stride_h * layout.in_w * V::width, g.stride_w * V::width);
  }
}

// sums[tap * width + l] = sum over oh, ow (in order) of gys[oh, ow][l] * xs[oh, ow's tap pixel][l], in float.
template <typename V>
void weight_sums_block(const Conv2dGeometry& g, const Layout<V>& layout, const float* gys, const float* xs,
                       float* sums) {
  using Reg = typename V::Reg;
  const std::int64_t pixel_step = g.stride_w * V::width;
  for (std::int64_t t0 = 0; t0 < layout.taps; t0 += kTapGroup) {
    // Every group sums kTapGroup taps, a short last group (a 5x5 kernel's third) repeating its last tap
    // in the spare accumulators, which are not stored: the loop over the pixels then has no test per tap,
    // and the offsets sit in registers rather than being read back from the tap list at every pixel. With
    // both, a 3x3 kernel's pixel took 9 loads of offsets and 9 compare-and-branches beside its 9 FMAs.
    // Channels-last, batch 128, 2 threads, ms: 32 channels at 32x32 1.30-1.58 -> 1.20-1.26, 64 at stride 2
    // 1.25-1.28 -> 1.14-1.22, 128 at 16x16 1.59-1.63 -> 1.48-1.51 (NCHW gains less: its transposes in
    // take most of the time).
    const std::int64_t n = std::min<std::int64_t>(kTapGroup, layout.taps - t0);
    std::int64_t offsets[kTapGroup];
#pragma GCC unroll 9
    for (int j = 0; j < kTapGroup; ++j)
      offsets[j] = layout.forward_taps.input[t0 + std::min<std::int64_t>(j, n - 1)];
    Reg acc[kTapGroup];
#pragma GCC unroll 9
    for (int j = 0; j < kTapGroup; ++j) acc[j] = V::zero();
    for (std::int64_t oh = 0; oh < layout.out_h; ++oh) {
      const float* row = xs + oh * g.stride_h * layout.padded_w * V::width;
      const float* grad = gys + oh * layout.out_w * V::width;
      for (std::int64_t ow = 0; ow < layout.out_w; ++ow) {
        const Reg gv = V::load(grad + ow * V::width);
        const float* base = row + ow * pixel_step;
#pragma GCC unroll 9
        for (int j = 0; j < kTapGroup; ++j) acc[j] = V::fmadd(gv, V::load(base + offsets[j]), acc[j]);
      }
    }
#pragma GCC unroll 9
    for (int j = 0; j < kTapGroup; ++j) {
      if (j < n) V::store(sums + (t0 + j) * V::width, acc[j]);
    }
  }
}

// ---- whole tensors -------------------------------------------------------------------------------------

// body(unit, scratch) for unit < units, threads sharing them when the call is worth it
// (depthwise_kernel.hpp's worth_threads), each thread with `scratch_floats` of its own scratch whose first
// `zeroed_floats` are zero. Units go in runs, about kGrabsPerThread runs a thread: a unit of a 2x2 plane is a
// fraction of a microsecond, less than handing units out one at a time costs (1024 channels at 2x2 ran twice
// as long on 2 threads as on 1 that way). Each thread takes a contiguous share of the runs and then steals
// from the back of the others' (contiguous_shares.hpp), so its units stay one stretch of the tensor: handed
// out as threads came free (schedule(dynamic)), 2 threads, batch 128, forward / backward-data / weight
// gradient took 1.77 / 2.06 / 1.56 ms against 1.52 / 2.00 / 1.56 for 64 channels at stride 2 on 32x32, and
// 0.34 / 0.35 / 0.51 against 0.28 / 0.30 / 0.43 for 512 channels at 4x4.
inline constexpr std::int64_t kGrabsPerThread = 16;

template <typename V, typename Body>
void for_each_unit(const Conv2dGeometry& g, std::int64_t units, std::int64_t scratch_floats,
                   std::int64_t zeroed_floats, Body body) {
  const bool threaded = depthwise::worth_threads<V>(g) && units > 1;
  const std::int64_t run = std::max<std::int64_t>(1, units / (kGrabsPerThread * compute_threads()));
  ContiguousShares runs((units + run - 1) / run, compute_threads());
#pragma omp parallel if (threaded)
  {
    const CpuScratch own = cpu_scratch(scratch_floats);
    std::fill_n(own.get(), zeroed_floats, 0.0f);
    const int thread = omp_get_thread_num();
    for (std::int64_t r; (r = runs.next(thread)) >= 0;) {
      for (std::int64_t unit = r * run; unit < std::min(units, (r + 1) * run); ++unit) body(unit, own.get());
    }
  }
}

// Channel blocks per unit of work. On channels-last tensors a unit takes a group of neighbouring blocks, so
// that gather_blocks and scatter_blocks walk kGroupBytes of a pixel's channels at a time (all of them when
// there are fewer), within a quarter of the core's L2 for the group's buffers (`block_floats` each); halved
// while the units (`batches` times the groups) are too few to give every thread several. NCHW blocks are
// separate slabs, a block a unit (grouped, they measured the same or 2% slower).
//
// A block alone is 32 bytes of bfloat16 out of each pixel's C: a unit per block read MobileNet's 512-channel
// tensors 32 bytes out of every 1 KiB, the thread coming back for the next 32 bytes a unit later. Where the
// tensor was not in cache (in training, most layers' inputs), the lines came from memory on a stride the
// prefetchers do not follow. The MobileNet-style bf16 channels-last step's depthwise convolutions (all
// three passes, 20 steps on 2 threads, --profile): 33.0 ms a step with a block a unit, 30.2 with 128 bytes
// a group, 28.3 with 256, 29.0 with every block of the pixel (more buffers than L1 holds at 4x4); in fp32
// channels-last, 56.3 -> 43.6 ms with 256.
inline constexpr std::int64_t kGroupBytes = 256;

struct BlockGroups {
  std::int64_t size, count;  // blocks per group (the last may hold fewer), groups
};

template <typename V, typename T>
BlockGroups block_groups(const Conv2dGeometry& g, const Layout<V>& layout, std::int64_t batches,
                         std::int64_t block_floats) {
  if (!g.channels_last) return {1, layout.blocks};
  const std::int64_t block_bytes = V::width * static_cast<std::int64_t>(sizeof(T));
  const std::int64_t budget_floats = per_core_l2_bytes() / 4 / static_cast<std::int64_t>(sizeof(float));
  const std::int64_t wanted =
      std::min((kGroupBytes + block_bytes - 1) / block_bytes, budget_floats / block_floats);
  std::int64_t size = std::clamp<std::int64_t>(wanted, 1, layout.blocks);
  const auto groups = [&](std::int64_t each) { return (layout.blocks + each - 1) / each; };
  while (size > 1 && batches * groups(size) < 4 * compute_threads()) size = (size + 1) / 2;
  return {size, groups(size)};
}

// The shape of the forward pass and of backward-data: for every unit (image x group of channel blocks),
// each block of `in` [in_h, in_w] into its buffer inside `border` (zero: each thread clears its buffers once,
// and units write only the blocks' places in them), compute(block, buffer, result) into the block's result
// [out_h * out_w][width], and the results back into `out`. With `input`, each gathered block normalized
// first (normalize_blocks).
template <typename V, typename T, typename Compute>
void through_blocks(const Conv2dGeometry& g, const Layout<V>& layout, const T* in, std::int64_t in_h,
                    std::int64_t in_w, const Border& border, std::int64_t out_h, std::int64_t out_w, T* out,
                    Compute compute, const InputNormalization* input = nullptr) {
  const std::int64_t result_floats = out_h * out_w * V::width;
  const BlockGroups groups = block_groups<V, T>(g, layout, g.batch, border.floats + result_floats);
  // Scratch: the group's bordered buffers (first: they are what is zeroed), its results, and a slab for the
  // NCHW transpose.
  const std::int64_t bordered_floats = groups.size * border.floats;
  for_each_unit<V>(
      g, g.batch * groups.count, bordered_floats + groups.size * result_floats + in_h * in_w * V::width,
      bordered_floats, [&](std::int64_t unit, float* scratch) {
        const std::int64_t image = unit / groups.count, first = unit % groups.count * groups.size;
        const std::int64_t count = std::min(groups.size, layout.blocks - first);
        float* bordered = scratch;
        float* results = bordered + bordered_floats;
        float* slab = results + groups.size * result_floats;
        gather_blocks(layout, g.channels_last, in, in_h, in_w, image, first, count, bordered, border.floats,
                      border.top, border.left, border.pitch, slab);
        if (input) normalize_blocks(layout, *input, first, count, bordered, border, in_h, in_w);
        for (std::int64_t i = 0; i < count; ++i)
          compute(first + i, bordered + i * border.floats, results + i * result_floats);
        scatter_blocks(layout, g.channels_last, results, result_floats, out_h, out_w, image, first, count,
                       out);
      });
}

// The forward pass with the weights already by tap (weights_by_tap, or flipped for backward-data).
template <typename V, typename T>
void forward_by_tap(const Conv2dGeometry& g, const T* x, const std::vector<float>& wt, const float* bias,
                    T* y, const InputNormalization* input = nullptr) {
  const Layout<V> layout(g);
  through_blocks(
      g, layout, x, layout.in_h, layout.in_w, layout.input_border(g), layout.out_h, layout.out_w, y,
      [&](std::int64_t block, const float* xs, float* ys) {
        const auto bias_vector =
            bias ? V::load_partial(bias + block * V::width, layout.lanes(block)) : V::zero();
        forward_block(g, layout, xs, wt.data() + block * layout.taps * V::width, bias_vector, ys);
      },
      input);
}

// The entry points: activations T (float, or bfloat16 channels-last), weights and bias float; `input`, the
// input normalization of a batch norm before the convolution (float only).
template <typename V, typename T>
void forward(const Conv2dGeometry& g, const T* x, const float* w, const float* bias, T* y,
             const InputNormalization* input = nullptr) {
  forward_by_tap<V>(g, x, weights_by_tap(Layout<V>(g), w), bias, y, input);
}

template <typename V, typename T>
void backward_data(const Conv2dGeometry& g, const T* gy, const float* w, T* gx) {
  const Layout<V> layout(g);
  const std::vector<float> wt = weights_by_tap(layout, w);
  if (depthwise::backward_data_as_forward<V>(g)) {
    // At stride 1, the forward pass over gy padded by dilation * (K - 1) - pad, through the kernel flipped in
    // both axes (taps in reverse order): every tap a constant offset again, 4 pixels per weight load.
    std::vector<float> flipped(wt.size());
    for (std::int64_t block = 0; block < layout.blocks; ++block) {
      for (std::int64_t tap = 0; tap < layout.taps; ++tap)
        std::copy_n(wt.begin() + (block * layout.taps + layout.taps - 1 - tap) * V::width, V::width,
                    flipped.begin() + (block * layout.taps + tap) * V::width);
    }
    return forward_by_tap<V>(transposed_convolution(g), gy, flipped, nullptr, gx);
  }
  const PhasePlan<V> plan(g, layout);
  through_blocks(g, layout, gy, layout.out_h, layout.out_w, plan.border(), layout.in_h, layout.in_w, gx,
                 [&](std::int64_t block, const float* gyp, float* gxs) {
                   backward_data_block(g, layout, plan, gyp, wt.data() + block * layout.taps * V::width, gxs);
                 });
}

// gw in float, as the weights are kept (the caller rounds it for bfloat16 weights).
template <typename V, typename T>
void backward_weight(const Conv2dGeometry& g, const T* gy, const T* x, float* gw,
                     const InputNormalization* input = nullptr) {
  const Layout<V> layout(g);
  const std::int64_t chunks = (g.batch + kWeightChunkImages - 1) / kWeightChunkImages;
  const std::int64_t block_sums = layout.taps * V::width;
  // partials[(chunk * blocks + block) * block_sums + tap * width + l]: one chunk's double sum per (chunk,
  // block), from zero (each unit adds into its own blocks' slices only).
  std::vector<double> partials(static_cast<std::size_t>(chunks * layout.blocks * block_sums));
  const Border border = layout.input_border(g);
  const BlockGroups groups = block_groups<V, T>(g, layout, chunks, border.floats + layout.out_floats());
  // Scratch: the group's bordered x buffers (first: they are what is zeroed), its gy buffers, a slab for the
  // NCHW transpose, and one block's float sums.
  const std::int64_t xs_floats = groups.size * border.floats, gys_floats = groups.size * layout.out_floats();
  for_each_unit<V>(
      g, chunks * groups.count, xs_floats + gys_floats + layout.in_floats() + block_sums, xs_floats,
      [&](std::int64_t unit, float* scratch) {
        const std::int64_t chunk = unit / groups.count, first = unit % groups.count * groups.size;
        const std::int64_t count = std::min(groups.size, layout.blocks - first);
        float* xs = scratch;
        float* gys = xs + xs_floats;
        float* slab = gys + gys_floats;
        float* sums = slab + layout.in_floats();
        const std::int64_t end = std::min(g.batch, (chunk + 1) * kWeightChunkImages);
        for (std::int64_t image = chunk * kWeightChunkImages; image < end; ++image) {
          gather_blocks(layout, g.channels_last, x, layout.in_h, layout.in_w, image, first, count, xs,
                        border.floats, border.top, border.left, border.pitch, slab);
          if (input) normalize_blocks(layout, *input, first, count, xs, border, layout.in_h, layout.in_w);
          gather_blocks(layout, g.channels_last, gy, layout.out_h, layout.out_w, image, first, count, gys,
                        layout.out_floats(), 0, 0, layout.out_w, nullptr);
          for (std::int64_t i = 0; i < count; ++i) {
            weight_sums_block(g, layout, gys + i * layout.out_floats(), xs + i * border.floats, sums);
            double* total = partials.data() + (chunk * layout.blocks + first + i) * block_sums;
            for (std::int64_t j = 0; j < block_sums; ++j) total[j] += static_cast<double>(sums[j]);
          }
        }
      });
  for (std::int64_t c = 0; c < layout.channels; ++c) {
    const std::int64_t block = c / V::width, lane = c % V::width;
    for (std::int64_t tap = 0; tap < layout.taps; ++tap) {
      double sum = 0.0;
      for (std::int64_t chunk = 0; chunk < chunks; ++chunk)
        sum += partials[static_cast<std::size_t>((chunk * layout.blocks + block) * block_sums +
                                                 tap * V::width + lane)];
      gw[c * layout.taps + tap] = static_cast<float>(sum);
    }
  }
}

}  // namespace kiln::kernels::depthwise_channels
