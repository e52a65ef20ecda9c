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
// is a constant offset into it (`tap_offsets`), for any stride, padding and dilation.
//
// The unit of work is one block of V::width channels of one image. An NCHW block is a [width][H*W] slab
// (contiguous: its channels are neighbours), so it comes in and goes out through one transpose
// (kernels/simd/transpose_8x8.hpp's transpose_matrix, 16 x 16 at a time at AVX-512); a channels-last block is
// copied pixel by pixel. Either way the block's buffers stay in L1 or L2 while all its taps read them.
//
//   forward          y as above, 4 output pixels at a time so each weight vector is loaded once per 4
//   backward-data    at stride 1, the forward pass of gy through the flipped kernel (depthwise_kernel.hpp's
//                    backward_data_as_forward); otherwise the gather form: gx[ih, iw] = sum over the taps
//                    (kh, kw) whose output (oh, ow) lands on it (ih + pad_h - kh*dilation_h = oh*stride_h,
//                    inside the output; likewise for w) of gy[oh, ow] * w[kh, kw], taps in order. Each input
//                    pixel is written once, from registers (no scatter of load-add-stores into overlapping
//                    addresses)
//   backward-weight  gw[c, tap] = sum over images, oh, ow of gy[oh, ow][c] * xs[...][c]: lanes are
//                    channels, so each lane's sum is that channel's, no reduction across lanes. Per image
//                    in float (up to 9 taps at a time, one accumulator each), then added into double image
//                    by image within a fixed chunk of kWeightChunkImages images; the chunks' doubles are
//                    added in chunk order
//
// Threads share the units (image x block; for the weight gradient, chunk x block). Every output float is
// computed by one unit in a fixed order, and the weight gradient's chunks are fixed by the batch, so any
// thread count gives the same bits.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/depthwise_kernel.hpp"
#include "kernels/simd/transpose_8x8.hpp"

namespace kiln::kernels::depthwise_channels {

using depthwise::kMaxTaps;

// Images per partial sum of the weight gradient: enough to make a unit worth a thread, few enough that a
// batch of 128 still gives 16 chunks to share out (times the channel blocks).
inline constexpr std::int64_t kWeightChunkImages = 8;
// Output pixels per step of the forward pass: 4 accumulators, each weight vector loaded once for all 4.
inline constexpr int kPixelRun = 4;
// Taps per pass of the weight gradient: one accumulator each, so 3x3 kernels take one pass.
inline constexpr int kTapGroup = 9;

// The geometry in the buffers' terms: the padded input block, where the taps read it, the channel blocks.
template <typename V>
struct Layout {
  std::int64_t channels, blocks;  // C, and blocks of V::width channels (the last may be partial)
  std::int64_t in_h, in_w, out_h, out_w;
  std::int64_t padded_h, padded_w;  // the input plus its border of zeros
  std::int64_t taps;
  std::int64_t tap_offsets[kMaxTaps] = {};  // tap (kh, kw) reads xs from here, plus the pixel's base

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
        tap_offsets[kh * g.kernel_w + kw] = (kh * g.dilation_h * padded_w + kw * g.dilation_w) * V::width;
    }
  }
  std::int64_t padded_floats() const { return padded_h * padded_w * V::width; }
  std::int64_t in_floats() const { return in_h * in_w * V::width; }
  std::int64_t out_floats() const { return out_h * out_w * V::width; }
  std::int64_t lanes(std::int64_t block) const { return std::min(V::width, channels - block * V::width); }
};

// ---- moving one block of channels between a tensor and a channels-last buffer --------------------------

// to[((top + r) * pitch + left + col) * width + l] = the tensor's (image, channel block * width + l, r, col)
// for r < h, col < w, l < lanes; lanes from `lanes` up hold whatever they held (no output reads them). The
// tensor is [N, C, h, w] (NCHW) or [N, h, w, C] (channels_last). `slab` is h * w * width floats of scratch
// for the NCHW transpose.
template <typename V>
void gather_block(const Layout<V>& layout, bool channels_last, const float* tensor, std::int64_t h,
                  std::int64_t w, std::int64_t image, std::int64_t block, float* to, std::int64_t top,
                  std::int64_t left, std::int64_t pitch, float* slab) {
  const std::int64_t c0 = block * V::width, lanes = layout.lanes(block), c = layout.channels;
  const bool dense = top == 0 && left == 0 && pitch == w;
  if (channels_last) {
    for (std::int64_t r = 0; r < h; ++r) {
      const float* pixel = tensor + ((image * h + r) * w) * c + c0;
      float* out = to + ((top + r) * pitch + left) * V::width;
      for (std::int64_t col = 0; col < w; ++col, pixel += c, out += V::width)
        V::store(out, lanes == V::width ? V::load(pixel) : V::load_partial(pixel, lanes));
    }
    return;
  }
  // [lanes][h*w], contiguous in NCHW, into [h*w][width]: straight into `to` when it has no border.
  float* transposed = dense ? to : slab;
  transpose_matrix(tensor + (image * c + c0) * h * w, h * w, lanes, h * w, transposed, V::width);
  if (dense) return;
  for (std::int64_t r = 0; r < h; ++r) {
    for (std::int64_t col = 0; col < w; ++col)
      V::store(to + ((top + r) * pitch + left + col) * V::width,
               V::load(transposed + (r * w + col) * V::width));
  }
}

// The inverse for a dense buffer: from[(r * w + col) * width + l] into the tensor, lanes < lanes only.
template <typename V>
void scatter_block(const Layout<V>& layout, bool channels_last, const float* from, std::int64_t h,
                   std::int64_t w, std::int64_t image, std::int64_t block, float* tensor) {
  const std::int64_t c0 = block * V::width, lanes = layout.lanes(block), c = layout.channels;
  if (channels_last) {
    float* pixel = tensor + image * h * w * c + c0;
    for (std::int64_t p = 0; p < h * w; ++p, pixel += c)
      V::store_partial(pixel, V::load(from + p * V::width), lanes);
    return;
  }
  transpose_matrix(from, V::width, h * w, lanes, tensor + (image * c + c0) * h * w, h * w);
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

// ys [OH*OW][width] from xs (padded) and the block's weights wt [taps][width].
template <typename V>
void forward_block(const Conv2dGeometry& g, const Layout<V>& layout, const float* xs, const float* wt,
                   typename V::Reg bias, float* ys) {
  using Reg = typename V::Reg;
  const std::int64_t pixel_step = g.stride_w * V::width;
  for (std::int64_t oh = 0; oh < layout.out_h; ++oh) {
    const float* row = xs + oh * g.stride_h * layout.padded_w * V::width;
    float* out = ys + oh * layout.out_w * V::width;
    std::int64_t ow = 0;
    for (; ow + kPixelRun <= layout.out_w; ow += kPixelRun) {
      Reg acc[kPixelRun];
#pragma GCC unroll 4
      for (int k = 0; k < kPixelRun; ++k) acc[k] = bias;
      const float* base = row + ow * pixel_step;
      for (std::int64_t tap = 0; tap < layout.taps; ++tap) {
        const Reg weight = V::load(wt + tap * V::width);
        const float* at = base + layout.tap_offsets[tap];
#pragma GCC unroll 4
        for (int k = 0; k < kPixelRun; ++k) acc[k] = V::fmadd(V::load(at + k * pixel_step), weight, acc[k]);
      }
#pragma GCC unroll 4
      for (int k = 0; k < kPixelRun; ++k) V::store(out + (ow + k) * V::width, acc[k]);
    }
    for (; ow < layout.out_w; ++ow) {
      Reg acc = bias;
      const float* base = row + ow * pixel_step;
      for (std::int64_t tap = 0; tap < layout.taps; ++tap)
        acc = V::fmadd(V::load(base + layout.tap_offsets[tap]), V::load(wt + tap * V::width), acc);
      V::store(out + ow * V::width, acc);
    }
  }
}

// The taps whose output lands on one input row (or column): `count` pairs of kernel index and output index,
// in kernel order. An input index i (unpadded) meets kernel index k at output o when
// i + pad - k * dilation = o * stride with 0 <= o < outputs. (A template on V, as everything in this file,
// so the AVX-512 and AVX2 builds never share a compiled function.)
template <typename V>
struct Landings {
  std::int64_t count = 0;
  std::int64_t kernel[kMaxTaps] = {}, output[kMaxTaps] = {};
};
template <typename V>
Landings<V> landings(std::int64_t i, std::int64_t pad, std::int64_t kernel, std::int64_t dilation,
                     std::int64_t stride, std::int64_t outputs) {
  Landings<V> found;
  for (std::int64_t k = 0; k < kernel; ++k) {
    const std::int64_t t = i + pad - k * dilation;
    if (t < 0 || t % stride != 0 || t / stride >= outputs) continue;
    found.kernel[found.count] = k;
    found.output[found.count++] = t / stride;
  }
  return found;
}

// landings(i, ...) for every input index i < inputs: the same for every image and block, so computed once.
template <typename V>
std::vector<Landings<V>> all_landings(std::int64_t inputs, std::int64_t pad, std::int64_t kernel,
                                      std::int64_t dilation, std::int64_t stride, std::int64_t outputs) {
  std::vector<Landings<V>> found(static_cast<std::size_t>(inputs));
  for (std::int64_t i = 0; i < inputs; ++i)
    found[static_cast<std::size_t>(i)] = landings<V>(i, pad, kernel, dilation, stride, outputs);
  return found;
}

// gxs [H*W][width] from gys [OH*OW][width] and wt [taps][width]; `rows_of` and `columns` hold each input
// row's and column's landings.
template <typename V>
void backward_data_block(const Conv2dGeometry& g, const Layout<V>& layout, const float* gys, const float* wt,
                         const std::vector<Landings<V>>& rows_of, const std::vector<Landings<V>>& columns,
                         float* gxs) {
  using Reg = typename V::Reg;
  for (std::int64_t ih = 0; ih < layout.in_h; ++ih) {
    const Landings<V>& rows = rows_of[static_cast<std::size_t>(ih)];
    for (std::int64_t iw = 0; iw < layout.in_w; ++iw) {
      const Landings<V>& across = columns[static_cast<std::size_t>(iw)];
      Reg acc = V::zero();
      for (std::int64_t i = 0; i < rows.count; ++i) {
        const float* gy_row = gys + rows.output[i] * layout.out_w * V::width;
        const float* w_row = wt + rows.kernel[i] * g.kernel_w * V::width;
        for (std::int64_t j = 0; j < across.count; ++j) {
          acc = V::fmadd(V::load(gy_row + across.output[j] * V::width),
                         V::load(w_row + across.kernel[j] * V::width), acc);
        }
      }
      V::store(gxs + (ih * layout.in_w + iw) * V::width, acc);
    }
  }
}

// sums[tap * width + l] = sum over oh, ow (in order) of gys[oh, ow][l] * xs[oh, ow's tap pixel][l], in float.
template <typename V>
void weight_sums_block(const Conv2dGeometry& g, const Layout<V>& layout, const float* gys, const float* xs,
                       float* sums) {
  using Reg = typename V::Reg;
  const std::int64_t pixel_step = g.stride_w * V::width;
  for (std::int64_t t0 = 0; t0 < layout.taps; t0 += kTapGroup) {
    const std::int64_t n = std::min<std::int64_t>(kTapGroup, layout.taps - t0);
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
        for (int j = 0; j < kTapGroup; ++j) {
          if (j < n) acc[j] = V::fmadd(gv, V::load(base + layout.tap_offsets[t0 + j]), acc[j]);
        }
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
// `zeroed_floats` are zero. Threads take runs of units as they come free, about kGrabsPerThread runs each: a
// unit of a 2x2 plane is a fraction of a microsecond, less than handing units out one at a time costs (1024
// channels at 2x2 ran twice as long on 2 threads as on 1 that way).
inline constexpr std::int64_t kGrabsPerThread = 16;

template <typename V, typename Body>
void for_each_unit(const Conv2dGeometry& g, std::int64_t units, std::int64_t scratch_floats,
                   std::int64_t zeroed_floats, Body body) {
  const bool threaded = depthwise::worth_threads<V>(g) && units > 1;
  const std::int64_t run = std::max<std::int64_t>(1, units / (kGrabsPerThread * compute_threads()));
#pragma omp parallel if (threaded)
  {
    const batch_chunks::Scratch own = batch_chunks::scratch(scratch_floats);
    std::fill_n(own.get(), zeroed_floats, 0.0f);
#pragma omp for schedule(dynamic, run)
    for (std::int64_t unit = 0; unit < units; ++unit) body(unit, own.get());
  }
}

// The forward pass with the weights already by tap (weights_by_tap, or flipped for backward-data).
template <typename V>
void forward_by_tap(const Conv2dGeometry& g, const float* x, const std::vector<float>& wt, const float* bias,
                    float* y) {
  const Layout<V> layout(g);
  // Scratch: xs (padded; its border stays zero, every unit writes only the interior), ys, the slab.
  const std::int64_t xs_floats = layout.padded_floats();
  for_each_unit<V>(g, g.batch * layout.blocks, xs_floats + layout.out_floats() + layout.in_floats(),
                   xs_floats, [&](std::int64_t unit, float* scratch) {
                     const std::int64_t image = unit / layout.blocks, block = unit % layout.blocks;
                     float* xs = scratch;
                     float* ys = xs + xs_floats;
                     float* slab = ys + layout.out_floats();
                     gather_block(layout, g.channels_last, x, layout.in_h, layout.in_w, image, block, xs,
                                  g.pad_h, g.pad_w, layout.padded_w, slab);
                     const auto bias_vector =
                         bias ? V::load_partial(bias + block * V::width, layout.lanes(block)) : V::zero();
                     forward_block(g, layout, xs, wt.data() + block * layout.taps * V::width, bias_vector,
                                   ys);
                     scatter_block(layout, g.channels_last, ys, layout.out_h, layout.out_w, image, block, y);
                   });
}

template <typename V>
void forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  forward_by_tap<V>(g, x, weights_by_tap(Layout<V>(g), w), bias, y);
}

template <typename V>
void backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
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
    return forward_by_tap<V>(depthwise::transposed_geometry<V>(g), gy, flipped, nullptr, gx);
  }
  const std::vector<Landings<V>> rows =
      all_landings<V>(layout.in_h, g.pad_h, g.kernel_h, g.dilation_h, g.stride_h, layout.out_h);
  const std::vector<Landings<V>> columns =
      all_landings<V>(layout.in_w, g.pad_w, g.kernel_w, g.dilation_w, g.stride_w, layout.out_w);
  for_each_unit<V>(g, g.batch * layout.blocks, layout.out_floats() + layout.in_floats(), 0,
                   [&](std::int64_t unit, float* scratch) {
                     const std::int64_t image = unit / layout.blocks, block = unit % layout.blocks;
                     float* gys = scratch;
                     float* gxs = gys + layout.out_floats();
                     gather_block(layout, g.channels_last, gy, layout.out_h, layout.out_w, image, block, gys,
                                  0, 0, layout.out_w, nullptr);
                     backward_data_block(g, layout, gys, wt.data() + block * layout.taps * V::width, rows,
                                         columns, gxs);
                     scatter_block(layout, g.channels_last, gxs, layout.in_h, layout.in_w, image, block, gx);
                   });
}

template <typename V>
void backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw) {
  const Layout<V> layout(g);
  const std::int64_t chunks = (g.batch + kWeightChunkImages - 1) / kWeightChunkImages;
  const std::int64_t block_sums = layout.taps * V::width;
  // partials[(chunk * blocks + block) * block_sums + tap * width + l]: one chunk's double sum per unit, from
  // zero (each unit adds into its own slice only).
  std::vector<double> partials(static_cast<std::size_t>(chunks * layout.blocks * block_sums));
  const std::int64_t xs_floats = layout.padded_floats();
  for_each_unit<V>(g, chunks * layout.blocks,
                   xs_floats + layout.out_floats() + layout.in_floats() + block_sums, xs_floats,
                   [&](std::int64_t unit, float* scratch) {
                     const std::int64_t chunk = unit / layout.blocks, block = unit % layout.blocks;
                     float* xs = scratch;
                     float* gys = xs + xs_floats;
                     float* slab = gys + layout.out_floats();
                     float* sums = slab + layout.in_floats();
                     double* total = partials.data() + unit * block_sums;
                     const std::int64_t end = std::min(g.batch, (chunk + 1) * kWeightChunkImages);
                     for (std::int64_t image = chunk * kWeightChunkImages; image < end; ++image) {
                       gather_block(layout, g.channels_last, x, layout.in_h, layout.in_w, image, block, xs,
                                    g.pad_h, g.pad_w, layout.padded_w, slab);
                       gather_block(layout, g.channels_last, gy, layout.out_h, layout.out_w, image, block,
                                    gys, 0, 0, layout.out_w, nullptr);
                       weight_sums_block(g, layout, gys, xs, sums);
                       for (std::int64_t i = 0; i < block_sums; ++i) total[i] += static_cast<double>(sums[i]);
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
