// Direct convolution with no im2col, all three directions: a GEMM whose B operand is never stored,
// because on the strip (direct_strip.hpp) every row of it is the input shifted by a constant.
//
// Per group, with Cg = C_in/groups, Cog = C_out/groups, k = (ci, kh, kw) running over Cg*KH*KW in the
// weight's own order, q over the strip's output positions and offsets[k] = ci * channel_stride +
// tap_offset(kh, kw):
//
//   forward          out[co, q] = sum over k of  w[co, k] * strip_x[offsets[k] + q]
//                    a GEMM [Cog, Cg*KH*KW] x [Cg*KH*KW, positions]: A is the packed weight, B row k is
//                    the strip starting at offsets[k]; then the output positions are gathered into y
//   backward-data    (stride 1) the forward convolution of gy, padded by dilation * (K - 1) - pad, through
//                    the kernel flipped in both axes with C_in and C_out swapped (the transposed convolution)
//   backward-weight  gw[co, k] = sum over the outputs n = (b, oh, ow) of strip_x[offsets[k] + q(n)] *
//                    gy_t[n][co], where gy_t is gy channels-last: the same product with the outputs as the
//                    sum, vectorized along the output channels, visiting real outputs only (no junk)
//
// Against im2col + GEMM this skips writing and re-reading the KH*KW-times larger column matrix (and, in
// backward-data, col2im's scattered adds); the taps re-read the strip from L1 instead.
//
// Tiles are template parameters, chosen per instruction set in avx512_direct.cpp / avx2_direct.cpp:
//   forward          kRows output channels x kVectors vectors of positions of accumulators; each k step
//                    loads kVectors vectors of the strip and broadcasts kRows weights
//   backward-weight  WeightTile: `taps` values of k x `vectors` vectors of output channels; each output
//                    broadcasts `taps` strip values and loads `vectors` vectors of gy_t
//
// Threads: the batch is cut into fixed chunks (batch_chunks.hpp); with at least as many chunks as threads
// each thread takes whole chunks, otherwise (batch 1) the threads share the tiles of each chunk. Every
// output float is computed by one thread in a fixed order, and the weight gradient's chunk sums are added
// in chunk order: the same bits on any thread count.
#pragma once

#include <omp.h>

#include <cstdint>
#include <vector>

#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/direct_strip.hpp"
#include "kernels/parallel.hpp"
#include "kernels/simd/transpose_8x8.hpp"

namespace kiln::kernels::direct {

// Floats of scratch a chunk of images may use: the x strip plus the output tile rows (forward), or the x
// strip plus gy channels-last (weight gradient): 256 KiB and 512 KiB, so a chunk stays in the 1 MiB L2
// while its tiles re-read it. The weight gradient takes more because a bigger chunk means fewer partial
// sums to add. Forward measured at 2 threads, batch 128, 16->16 at 32x32: 32K floats 4.6 ms, 64K 3.8 ms,
// 96K 4.2 ms (a busy machine; the trend held on 64->64 at 8x8).
inline constexpr std::int64_t kForwardChunkFloats = std::int64_t{64} << 10;
inline constexpr std::int64_t kWeightChunkFloats = std::int64_t{128} << 10;

// body(t) for t in [0, count): on every thread when the caller is not already inside a parallel region
// (batch smaller than the thread count), else on the calling thread alone.
template <typename V, typename Body>
void for_each_tile(std::int64_t count, Body body) {
#pragma omp parallel for schedule(static) if (count > 1 && compute_threads() > 1 && !omp_in_parallel())
  for (std::int64_t t = 0; t < count; ++t) body(t);
}

// ---- the two micro-kernels ------------------------------------------------------------------------------

// out[r, 0 .. kVectors * width) for r < kRows = sum over k < depth of panel[k][r] * strip[offsets[k] + ..].
// panel is one packed sliver of weights, [depth][kRows]; out rows are out_stride floats apart.
template <typename V, int kRows, int kVectors>
void forward_tile(std::int64_t depth, const float* panel, const std::int64_t* offsets, const float* strip,
                  float* out, std::int64_t out_stride) {
  using Reg = typename V::Reg;
  Reg acc[kRows][kVectors];
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) acc[r][v] = V::zero();
  }
  for (std::int64_t k = 0; k < depth; ++k) {
    const float* b_row = strip + offsets[k];
    Reg b[kVectors];
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) b[v] = V::load(b_row + v * V::width);
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) {
      const Reg a = V::broadcast(panel[r]);
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) acc[r][v] = V::fmadd(a, b[v], acc[r][v]);
    }
    panel += kRows;
  }
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) V::store(out + r * out_stride + v * V::width, acc[r][v]);
  }
}

// The weight gradient's tile shape: `taps` values of k (broadcast from the x strip) by `vectors` vectors of
// output channels (loaded from gy_t), taps x vectors accumulators.
template <int Taps, int Vectors>
struct WeightTile {
  static constexpr int taps = Taps, vectors = Vectors;
};

// out[j][lane] = sum over the chunk's outputs (b, oh, ow), in that order, of x_rows[j][q] * gy_t[n][lane],
// where q is the output's strip index (StridedOutputs), n counts the outputs 0, 1, 2, ... and gy_t rows are
// gy_t_stride floats apart (gy_t is gy channels-last: [outputs][channels]). Only real outputs are visited,
// never junk.
template <typename V, typename Tile>
void weight_tile(const StridedOutputs& outputs, std::int64_t count, const float* const* x_rows,
                 const float* gy_t, std::int64_t gy_t_stride, float* out) {
  using Reg = typename V::Reg;
  constexpr int kTaps = Tile::taps, kVectors = Tile::vectors;
  Reg acc[kTaps][kVectors];
#pragma GCC unroll 16
  for (int j = 0; j < kTaps; ++j) {
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) acc[j][v] = V::zero();
  }
  const float* x[kTaps];
#pragma GCC unroll 16
  for (int j = 0; j < kTaps; ++j) x[j] = x_rows[j];
  const std::int64_t step = outputs.column_step;
  for (std::int64_t b = 0; b < count; ++b) {
    for (std::int64_t oh = 0; oh < outputs.out_height; ++oh) {
      std::int64_t q = outputs.first(b, oh);
      for (std::int64_t ow = 0; ow < outputs.out_width; ++ow, q += step) {
        Reg grad[kVectors];
#pragma GCC unroll 4
        for (int v = 0; v < kVectors; ++v) grad[v] = V::load(gy_t + v * V::width);
#pragma GCC unroll 16
        for (int j = 0; j < kTaps; ++j) {
          const Reg input = V::broadcast(x[j][q]);
#pragma GCC unroll 4
          for (int v = 0; v < kVectors; ++v) acc[j][v] = V::fmadd(input, grad[v], acc[j][v]);
        }
        gy_t += gy_t_stride;
      }
    }
  }
#pragma GCC unroll 16
  for (int j = 0; j < kTaps; ++j) {
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) V::store(out + (j * kVectors + v) * V::width, acc[j][v]);
  }
}

// ---- shared set-up ---------------------------------------------------------------------------------------

// offsets[k] for k = (ci, kh, kw) < Cg*KH*KW, then `extra` more zeros (a tile's columns past the end).
template <typename V>
std::vector<std::int64_t> tap_offsets(const Conv2dGeometry& g, const Strip<V>& strip, std::int64_t extra) {
  std::vector<std::int64_t> offsets;
  for (std::int64_t ci = 0; ci < g.in_channels_per_group(); ++ci) {
    for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (std::int64_t kw = 0; kw < g.kernel_w; ++kw)
        offsets.push_back(ci * strip.channel_stride + strip.tap_offset(kh, kw));
    }
  }
  offsets.resize(offsets.size() + static_cast<std::size_t>(extra), 0);
  return offsets;
}

// Fixed chunks of images whose scratch (`floats_per_image` each) fits `chunk_floats`; at least one image.
template <typename V>
batch_chunks::Chunking chunk_images(const Conv2dGeometry& g, std::int64_t floats_per_image,
                                    std::int64_t chunk_floats) {
  return batch_chunks::chunk_batch(g.batch, 1, g.batch, floats_per_image, chunk_floats);
}

// ---- the three directions --------------------------------------------------------------------------------

template <typename V, int kRows, int kVectors>
void forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  constexpr std::int64_t kBlock = kVectors * V::width;
  const std::int64_t cg = g.in_channels_per_group(), cog = g.out_channels_per_group();
  const std::int64_t depth = cg * g.kernel_h * g.kernel_w;
  const std::int64_t panels = (cog + kRows - 1) / kRows;
  const std::int64_t plane_in = g.in_height * g.in_width, plane_out = g.out_height() * g.out_width();

  const Strip<V> probe(g, 1, kBlock);
  const batch_chunks::Chunking chunks =
      chunk_images<V>(g, (cg + panels * kRows) * probe.image_stride, kForwardChunkFloats);
  const Strip<V> strip(g, chunks.images_per_chunk, kBlock);
  const std::int64_t out_stride = strip.positions(chunks.images_per_chunk);

  // packed[group][panel][k][r] = w[group * Cog + panel * kRows + r, k]: each panel one A sliver, rows past
  // Cog zero (their outputs are computed and never gathered).
  const std::int64_t packed_floats = g.groups * panels * depth * kRows;
  const CpuScratch packed = cpu_scratch(packed_floats);
  std::fill(packed.get(), packed.get() + packed_floats, 0.0f);
  for (std::int64_t co = 0; co < g.out_channels; ++co) {
    const std::int64_t group = co / cog, panel = co % cog / kRows, r = co % cog % kRows;
    float* sliver = packed.get() + (group * panels + panel) * depth * kRows;
    for (std::int64_t k = 0; k < depth; ++k) sliver[k * kRows + r] = w[co * depth + k];
  }
  const std::vector<std::int64_t> offsets = tap_offsets<V>(g, strip, 0);

  batch_chunks::for_each_chunk(
      chunks.chunk_count, strip.floats(cg) + panels * kRows * out_stride,
      [&](std::int64_t chunk, float* scratch) {
        const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
        float* x_strip = scratch;
        float* out = scratch + strip.floats(cg);
        const std::int64_t blocks = strip.positions(count) / kBlock;
        for (std::int64_t group = 0; group < g.groups; ++group) {
          strip.fill_input(x + (first * g.in_channels + group * cg) * plane_in, g.in_channels * plane_in,
                           count, cg, x_strip);
          const float* group_panels = packed.get() + group * panels * depth * kRows;
          for_each_tile<V>(blocks * panels, [&](std::int64_t tile) {
            const std::int64_t block = tile / panels, panel = tile % panels;
            forward_tile<V, kRows, kVectors>(depth, group_panels + panel * depth * kRows, offsets.data(),
                                             x_strip + block * kBlock,
                                             out + panel * kRows * out_stride + block * kBlock, out_stride);
          });
          strip.gather_output(out, out_stride, count, cog, bias ? bias + group * cog : nullptr,
                              y + (first * g.out_channels + group * cog) * plane_out,
                              g.out_channels * plane_out);
        }
      });
}

// gx = the forward convolution of gy through the transposed kernel wt[ci, co, kh, kw] =
// w[co, ci, KH-1-kh, KW-1-kw] (within each group), padding dilation * (K - 1) - pad: output position
// (ih, iw) then reads gy[ih + pad - kh'*d ...], exactly the outputs input (ih, iw) fed in the forward pass.
// (winograd_kernel.hpp's backward-data is built from the same two pieces.)

// wt above, [C_in][C_out / groups][KH][KW].
template <typename V>
CpuScratch flipped_weights(const Conv2dGeometry& g, const float* w) {
  const std::int64_t cg = g.in_channels_per_group(), cog = g.out_channels_per_group();
  const std::int64_t taps = g.kernel_h * g.kernel_w;
  CpuScratch flipped = cpu_scratch(g.out_channels * cg * taps);
  for (std::int64_t group = 0; group < g.groups; ++group) {
    for (std::int64_t co = 0; co < cog; ++co) {
      for (std::int64_t ci = 0; ci < cg; ++ci) {
        const float* from = w + ((group * cog + co) * cg + ci) * taps;
        float* to = flipped.get() + ((group * cg + ci) * cog + co) * taps;
        for (std::int64_t tap = 0; tap < taps; ++tap) to[tap] = from[taps - 1 - tap];
      }
    }
  }
  return flipped;
}

template <typename V, int kRows, int kVectors>
void backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  const CpuScratch flipped = flipped_weights<V>(g, w);
  forward<V, kRows, kVectors>(transposed_convolution(g), gy, flipped.get(), nullptr, gx);
}

// gy_t[n][co] = gy[b, co, oh, ow] for the n-th output (b, oh, ow) of a chunk of `count` images, rows of
// `stride` floats whose channels past `channels` are zero (through transpose_matrix,
// kernels/simd/transpose_8x8.hpp).
template <typename V>
void transpose_gradient(const float* gy, std::int64_t image_floats, std::int64_t count, std::int64_t channels,
                        std::int64_t plane, std::int64_t stride, float* gy_t) {
  for (std::int64_t b = 0; b < count; ++b) {
    float* rows = gy_t + b * plane * stride;
    if (channels < stride) {
      for (std::int64_t p = 0; p < plane; ++p)
        std::fill(rows + p * stride + channels, rows + (p + 1) * stride, 0.0f);
    }
    transpose_matrix(gy + b * image_floats, plane, channels, plane, rows, stride);
  }
}

template <typename V, typename Tile>
void backward_weight_tiled(const Conv2dGeometry& g, const float* gy, const float* x, float* gw) {
  constexpr std::int64_t kTileChannels = Tile::vectors * V::width;
  const std::int64_t cg = g.in_channels_per_group(), cog = g.out_channels_per_group();
  const std::int64_t depth = cg * g.kernel_h * g.kernel_w;
  const std::int64_t channel_tiles = (cog + kTileChannels - 1) / kTileChannels;
  const std::int64_t tap_tiles = (depth + Tile::taps - 1) / Tile::taps;
  const std::int64_t gy_t_stride = channel_tiles * kTileChannels;
  const std::int64_t plane_in = g.in_height * g.in_width, plane_out = g.out_height() * g.out_width();

  // The tiles broadcast the strip one float at a time, so a strided layer needs no phases: they walk the
  // stride-1 strip `stride` floats at a time, and the fill is a plain padded copy.
  const Conv2dGeometry dense = unit_stride(g);
  const Strip<V> probe(dense, 1, 1);
  const batch_chunks::Chunking chunks =
      chunk_images<V>(g, cg * probe.image_stride + plane_out * gy_t_stride, kWeightChunkFloats);
  const Strip<V> strip(dense, chunks.images_per_chunk, 1);
  const StridedOutputs outputs(g, strip);
  const std::vector<std::int64_t> offsets = tap_offsets<V>(dense, strip, Tile::taps);

  batch_chunks::sum_over_chunks(
      chunks.chunk_count, g.out_channels * depth,
      strip.floats(cg) + chunks.images_per_chunk * plane_out * gy_t_stride, gw,
      [&](std::int64_t chunk, float* scratch, float* gw_chunk) {
        const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
        float* x_strip = scratch;
        float* gy_t = scratch + strip.floats(cg);
        for (std::int64_t group = 0; group < g.groups; ++group) {
          strip.fill_input(x + (first * g.in_channels + group * cg) * plane_in, g.in_channels * plane_in,
                           count, cg, x_strip);
          transpose_gradient<V>(gy + (first * g.out_channels + group * cog) * plane_out,
                                g.out_channels * plane_out, count, cog, plane_out, gy_t_stride, gy_t);
          float* gw_group = gw_chunk + group * cog * depth;
          for_each_tile<V>(channel_tiles * tap_tiles, [&](std::int64_t tile) {
            const std::int64_t co0 = tile / tap_tiles * kTileChannels, k0 = tile % tap_tiles * Tile::taps;
            const float* x_rows[Tile::taps];
            for (int j = 0; j < Tile::taps; ++j)
              x_rows[j] = x_strip + offsets[static_cast<std::size_t>(k0 + j)];
            float sums[Tile::taps * kTileChannels];
            weight_tile<V, Tile>(outputs, count, x_rows, gy_t + co0, gy_t_stride, sums);
            const std::int64_t channels = std::min(kTileChannels, cog - co0),
                               taps = std::min<std::int64_t>(Tile::taps, depth - k0);
            for (std::int64_t lane = 0; lane < channels; ++lane) {
              for (std::int64_t j = 0; j < taps; ++j)
                gw_group[(co0 + lane) * depth + k0 + j] = sums[j * kTileChannels + lane];
            }
          });
        }
      });
}

// Narrow is the tile for groups of at most V::width output channels (one vector of them), Wide for more:
// both keep enough independent accumulators to hide the FMA latency without running out of registers for
// the taps' row pointers.
template <typename V, typename Narrow, typename Wide>
void backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw) {
  if (g.out_channels_per_group() <= Narrow::vectors * V::width)
    return backward_weight_tiled<V, Narrow>(g, gy, x, gw);
  backward_weight_tiled<V, Wide>(g, gy, x, gw);
}

}  // namespace kiln::kernels::direct
