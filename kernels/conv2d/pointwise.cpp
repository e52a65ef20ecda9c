// Pointwise convolution (1x1 kernel, stride 1, no padding) as a GEMM straight on the NCHW tensors.
//
// With P = H*W, one image's group slice x_group [Cg, P] is already the matrix im2col would build, so:
//
//   forward          y_group [Cog, P]   = w_group [Cog, Cg]   x x_group [Cg, P]
//   backward-data    gx_group [Cg, P]   = w_group^T [Cg, Cog] x gy_group [Cog, P]
//   backward-weight  gw_group [Cog, Cg] += gy_group [Cog, P]  x x_group^T [P, Cg]
//
// Small images (MobileNet's last pointwise layers run at 2x2: P = 4) would make a useless GEMM of 4
// columns, so images go into chunks (batch_chunks.hpp), each one GEMM: about 1024 columns for the forward
// and backward-data, about 4096 positions of depth for the weight gradient, whose chunks' partial sums fix
// the order of its additions. A chunk's images stay where they lie: its matrix [C, count * P] has each
// image's group slice as a block of P columns (or of the depth), C * P floats after the one before
// (GemmGeometry::column_block, depth_block), which the GEMM packs and stores a block's run at a time. They
// used to be gathered side by side into scratch (and the outputs scattered back); the copies took a quarter
// to a half of a layer's time. Measured, batch 128, 2 threads, ms, forward / backward-data / weight
// gradient, the copies vs blocks in place:
//   64 -> 128 at 16x16    2.68 / 2.29 / 2.59  vs  1.38 / 1.51 / 1.94
//   128 -> 128 at 16x16   4.17 / 4.19 / 4.67  vs  2.90 / 2.88 / 3.96
//   256 -> 256 at 8x8     3.43 / 3.42 / 3.40  vs  2.57 / 2.57 / 3.11
//   512 -> 512 at 4x4     3.39 / 3.40 / 4.57  vs  2.65 / 2.67 / 3.02
//   512 -> 1024 at 2x2    2.65 / 2.44 / 1.85  vs  1.39 / 1.43 / 1.40
//   1024 -> 1024 at 2x2   4.25 / 4.37 / 3.80  vs  2.84 / 2.85 / 2.80
// and a whole MobileNet step a fifth shorter (4 alternating runs on a busy machine: 244 to 257 ms against
// 192 to 208). The micro-kernel sees the same packed operands either way: the bits did not change.
//
// Channels-last activations (Conv2dGeometry::channels_last) are already the whole batch's matrix, rows of
// pixels: x [N*P, C_in], y [N*P, C_out], a group's channels a block of columns. So each direction is one
// GEMM, the same products summed in the same order as the NCHW chunks' (the forward and
// backward-data sum over channels only; the weight gradient takes the NCHW path's chunks of rows and adds
// them in the same order), so the bits are the NCHW bits, moved:
//
//   forward          y [N*P, Cog]   = x [N*P, Cg]  x w_group^T [Cg, Cog]
//   backward-data    gx [N*P, Cg]   = gy [N*P, Cog] x w_group [Cog, Cg]
//   backward-weight  gw_group [Cog, Cg] += gy_chunk^T [Cog, rows] x x_chunk [rows, Cg]
#include "core/error.hpp"
#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/cpu_cache.hpp"
#include "kernels/gemm/gemm.hpp"

namespace kiln::kernels::pointwise {
namespace {

using batch_chunks::kForwardChunkColumns;
using batch_chunks::kMaxChunkFloats;
using batch_chunks::kWeightChunkColumns;

struct Sizes {
  std::int64_t cg, cog, plane;
  explicit Sizes(const Conv2dGeometry& g)
      : cg(g.in_channels_per_group()), cog(g.out_channels_per_group()), plane(g.in_height * g.in_width) {}
};

// The chunks, their floats bounded as when their images were copied into scratch: nothing is copied now,
// but the bound still fixes the weight gradient's chunks (so its bits) and keeps a chunk's GEMM in cache.
batch_chunks::Chunking chunking(const Conv2dGeometry& g, const Sizes& s, std::int64_t target_columns) {
  return batch_chunks::chunk_batch(g.batch, s.plane, target_columns, (s.cg + s.cog) * s.plane,
                                   kMaxChunkFloats);
}

// `product` (M, K, A's layout) over `count` of the batch's images: op(B) and C are NCHW tensors of b_channels
// and c_channels channels, each image's group slice a block of P columns [rows][P] where it lies
// (GemmGeometry::column_block). B, an activation tensor the layer before wrote, comes from memory when it has
// outgrown the cache (GemmGeometry::b_cold).
GemmGeometry over_images(const Conv2dGeometry& g, const Sizes& s, GemmGeometry product, std::int64_t count,
                         std::int64_t b_channels, std::int64_t c_channels) {
  product.n = count * s.plane;
  product.ldb = product.ldc = s.plane;
  product.b_cold =
      read_from_memory(g.batch * b_channels * s.plane * static_cast<std::int64_t>(sizeof(float)));
  if (count > 1) {
    product.column_block = s.plane;
    product.b_column_block_stride = b_channels * s.plane;
    product.c_column_block_stride = c_channels * s.plane;
  }
  return product;
}

// y[row, c] += bias[c] for every pixel row of a channels-last output (after the sums, as conv2d_add_bias).
void add_bias_channels_last(const Conv2dGeometry& g, const float* bias, float* y) {
  const std::int64_t rows = g.batch * g.out_height() * g.out_width();
  for (std::int64_t row = 0; row < rows; ++row) {
    float* pixel = y + row * g.out_channels;
    for (std::int64_t c = 0; c < g.out_channels; ++c) pixel[c] += bias[c];
  }
}

// One group's channels-last products over `rows` pixel rows (the group's channels a block of columns of each
// tensor; its weights [Cog, Cg] from w + group * Cog * Cg).
GemmGeometry channels_last_forward(const Conv2dGeometry& g, const Sizes& s, std::int64_t rows) {
  return {.m = rows,
          .n = s.cog,
          .k = s.cg,
          .trans_b = true,
          .lda = g.in_channels,
          .ldb = s.cg,
          .ldc = g.out_channels};
}
GemmGeometry channels_last_backward_data(const Conv2dGeometry& g, const Sizes& s, std::int64_t rows) {
  return {.m = rows, .n = s.cg, .k = s.cog, .lda = g.out_channels, .ldb = s.cg, .ldc = g.in_channels};
}
GemmGeometry channels_last_backward_weight(const Conv2dGeometry& g, const Sizes& s, std::int64_t rows) {
  return {.m = s.cog,
          .n = s.cg,
          .k = rows,
          .trans_a = true,
          .lda = g.out_channels,
          .ldb = g.in_channels,
          .ldc = s.cg};
}

void forward_channels_last(const Conv2dGeometry& g, const Sizes& s, const float* x, const float* w,
                           const float* bias, float* y) {
  const GemmGeometry product = channels_last_forward(g, s, g.batch * s.plane);
  for (std::int64_t group = 0; group < g.groups; ++group)
    gemm(Device::cpu(), product, 1.0f, x + group * s.cg, w + group * s.cog * s.cg, 0.0f, y + group * s.cog);
  if (bias) add_bias_channels_last(g, bias, y);
}

void backward_data_channels_last(const Conv2dGeometry& g, const Sizes& s, const float* gy, const float* w,
                                 float* gx) {
  const GemmGeometry product = channels_last_backward_data(g, s, g.batch * s.plane);
  for (std::int64_t group = 0; group < g.groups; ++group)
    gemm(Device::cpu(), product, 1.0f, gy + group * s.cog, w + group * s.cog * s.cg, 0.0f, gx + group * s.cg);
}

void backward_weight_channels_last(const Conv2dGeometry& g, const Sizes& s,
                                   const batch_chunks::Chunking& chunks, const float* gy, const float* x,
                                   float* gw) {
  batch_chunks::sum_over_chunks(
      chunks.chunk_count, g.out_channels * s.cg, 0, gw, [&](std::int64_t chunk, float*, float* gw_chunk) {
        const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
        const std::int64_t first_row = first * s.plane;
        const GemmGeometry product = channels_last_backward_weight(g, s, count * s.plane);
        for (std::int64_t group = 0; group < g.groups; ++group) {
          gemm(Device::cpu(), product, 1.0f, gy + first_row * g.out_channels + group * s.cog,
               x + first_row * g.in_channels + group * s.cg, 0.0f, gw_chunk + group * s.cog * s.cg);
        }
      });
}

}  // namespace

// ---- bfloat16, channels-last, on AVX512-BF16 -------------------------------------------------------------
// The same products as forward_channels_last and backward_data_channels_last above, each group one GEMM on
// the bfloat16 tensors (avx512_bf16::gemm), the bias added to the float sums and every output rounded once.
// The weight gradient is one GEMM over all N*P rows, its float sums kept across the depth blocks.

void conv2d_forward_bf16(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w, const float* bias,
                         bfloat16* y) {
  const Sizes s(g);
  const GemmGeometry product = channels_last_forward(g, s, g.batch * s.plane);
  for (std::int64_t group = 0; group < g.groups; ++group) {
    avx512_bf16::gemm(product, 1.0f, x + group * s.cg, w + group * s.cog * s.cg, 0.0f, y + group * s.cog,
                      bias ? bias + group * s.cog : nullptr);
  }
}

void conv2d_backward_data_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w, bfloat16* gx) {
  const Sizes s(g);
  const GemmGeometry product = channels_last_backward_data(g, s, g.batch * s.plane);
  for (std::int64_t group = 0; group < g.groups; ++group)
    avx512_bf16::gemm(product, 1.0f, gy + group * s.cog, w + group * s.cog * s.cg, 0.0f, gx + group * s.cg);
}

void conv2d_backward_weight_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x, float* gw) {
  const Sizes s(g);
  const GemmGeometry product = channels_last_backward_weight(g, s, g.batch * s.plane);
  for (std::int64_t group = 0; group < g.groups; ++group)
    avx512_bf16::gemm(product, 1.0f, gy + group * s.cog, x + group * s.cg, 0.0f, gw + group * s.cog * s.cg);
}

// With `normalization`, each chunk's outputs are finished (bias, then normalization) as soon as its products
// are done, while the cache still holds them; without, the bias goes on in one pass at the end.
void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                    const OutputNormalization* normalization) {
  const Sizes s(g);
  KILN_CHECK(!normalization || !g.channels_last, "pointwise forward: output normalization takes NCHW only");
  if (g.channels_last) return forward_channels_last(g, s, x, w, bias, y);
  const batch_chunks::Chunking chunks = chunking(g, s, kForwardChunkColumns);
  batch_chunks::for_each_chunk(chunks.chunk_count, 0, [&](std::int64_t chunk, float*) {
    const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
    for (std::int64_t group = 0; group < g.groups; ++group) {
      const GemmGeometry product =
          over_images(g, s, {.m = s.cog, .k = s.cg, .lda = s.cg}, count, g.in_channels, g.out_channels);
      gemm(Device::cpu(), product, 1.0f, w + group * s.cog * s.cg,
           x + (first * g.in_channels + group * s.cg) * s.plane, 0.0f,
           y + (first * g.out_channels + group * s.cog) * s.plane);
    }
    if (!normalization) return;
    Conv2dGeometry images = g;  // the chunk's
    images.batch = count;
    const std::int64_t offset = first * g.out_channels * s.plane;
    if (bias) conv2d_add_bias(images, bias, y + offset);
    OutputNormalization chunk_normalization = *normalization;
    if (chunk_normalization.residual) chunk_normalization.residual += offset;
    conv2d_normalize_outputs(images, chunk_normalization, y + offset);
  });
  if (bias && !normalization) conv2d_add_bias(g, bias, y);
}

void conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  const Sizes s(g);
  if (g.channels_last) return backward_data_channels_last(g, s, gy, w, gx);
  const batch_chunks::Chunking chunks = chunking(g, s, kForwardChunkColumns);
  batch_chunks::for_each_chunk(chunks.chunk_count, 0, [&](std::int64_t chunk, float*) {
    const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
    for (std::int64_t group = 0; group < g.groups; ++group) {
      const GemmGeometry product = over_images(g, s, {.m = s.cg, .k = s.cog, .trans_a = true, .lda = s.cg},
                                               count, g.out_channels, g.in_channels);
      gemm(Device::cpu(), product, 1.0f, w + group * s.cog * s.cg,
           gy + (first * g.out_channels + group * s.cog) * s.plane, 0.0f,
           gx + (first * g.in_channels + group * s.cg) * s.plane);
    }
  });
}

void conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw) {
  const Sizes s(g);
  const batch_chunks::Chunking chunks = chunking(g, s, kWeightChunkColumns);
  if (g.channels_last) return backward_weight_channels_last(g, s, chunks, gy, x, gw);
  batch_chunks::sum_over_chunks(
      chunks.chunk_count, g.out_channels * s.cg, 0, gw, [&](std::int64_t chunk, float*, float* gw_chunk) {
        const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
        // gy [Cog, count * P] x x^T [count * P, Cg], each image's slice a block of the depth where it lies.
        GemmGeometry product{.m = s.cog,
                             .n = s.cg,
                             .k = count * s.plane,
                             .trans_b = true,
                             .lda = s.plane,
                             .ldb = s.plane,
                             .ldc = s.cg};
        if (count > 1) {
          product.depth_block = s.plane;
          product.a_depth_block_stride = g.out_channels * s.plane;
          product.b_depth_block_stride = g.in_channels * s.plane;
        }
        for (std::int64_t group = 0; group < g.groups; ++group) {
          gemm(Device::cpu(), product, 1.0f, gy + (first * g.out_channels + group * s.cog) * s.plane,
               x + (first * g.in_channels + group * s.cg) * s.plane, 0.0f, gw_chunk + group * s.cog * s.cg);
        }
      });
}

}  // namespace kiln::kernels::pointwise
