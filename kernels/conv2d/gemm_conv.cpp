// Convolution as im2col + GEMM, all three directions, any stride / padding / dilation / groups.
//
// Per group (Cg = C_in/groups input channels, Cog = C_out/groups outputs, KK = KH*KW, P = OH*OW), for a
// chunk of `count` images unfolded side by side (batch_chunks.hpp), with columns K = count * P:
//
//   forward          y_chunk [Cog, K]       = w_group [Cog, Cg*KK]      x col [Cg*KK, K]
//   backward-data    col     [Cg*KK, K]     = w_group^T [Cg*KK, Cog]    x gy_chunk [Cog, K],  then col2im
//   backward-weight  gw_group [Cog, Cg*KK] += gy_chunk [Cog, K]          x col^T [K, Cg*KK]
//
// y and gy are never copied: a chunk's images are one matrix [Cog, K] where they lie, each image's slice a
// block of P columns (or of the depth K, for the weight gradient) C_out * P floats after the one before
// (GemmGeometry::column_block, depth_block); col is the same geometry with blocks P apart, its rows K apart
// or a cache line more (col_stride). Scratch per thread: col (Cg*KK rows). The unfolding itself is the im2col
// / col2im_add pair dispatch.cpp chose for the CPU level (`unfold`).
#include <algorithm>

#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/im2col.hpp"
#include "kernels/cpu_cache.hpp"
#include "kernels/gemm/gemm.hpp"

namespace kiln::kernels::im2col_gemm {
namespace {

using batch_chunks::kForwardChunkColumns;
using batch_chunks::kMaxChunkFloats;
using batch_chunks::kWeightChunkColumns;

struct Sizes {
  std::int64_t cg, cog, col_rows, plane_in, plane_out;
  explicit Sizes(const Conv2dGeometry& g)
      : cg(g.in_channels_per_group()),
        cog(g.out_channels_per_group()),
        col_rows(cg * g.kernel_h * g.kernel_w),
        plane_in(g.in_height * g.in_width),
        plane_out(g.out_height() * g.out_width()) {}
};

// The distance between col's rows for `columns` columns: one cache line more when the rows would lie a
// multiple of 2 KiB apart. A chunk is about kForwardChunkColumns = 1024 columns, and with power-of-two
// planes exactly that: rows 4 KiB apart, which the L1 maps to one set, so a GEMM reading col's K rows in
// place (M <= 32: ResNet-20's 16 -> 16 forward, its 3-channel stem) evicts them from L1 before the next
// tile of M reuses them. Measured, 1 thread, the GEMM alone, us, rows 1024 / 1040 floats apart:
// 16 x 1024 x 27 6.7 / 4.3, 16 x 1024 x 144 29.5 / 22.3, 32 x 1024 x 64 28.8 / 19.8; whole convolutions,
// batch 128, 2 threads, ms: ResNet-20's 3 -> 16 stem forward 0.54 -> 0.51, 16 -> 16's backward-data 4.77
// -> 4.20, weight gradients unchanged.
std::int64_t col_stride(std::int64_t columns) {
  constexpr std::int64_t kAliasFloats = 512, kLineFloats = 16;
  return columns % kAliasFloats == 0 ? columns + kLineFloats : columns;
}

// Unfold images [first, first + count) of group `group` side by side into col [col_rows, count * P], its rows
// col_stride(count * P) apart.
void unfold_chunk(const Im2colKernels& unfold, const Conv2dGeometry& g, const Sizes& s, const float* x,
                  std::int64_t first, std::int64_t count, std::int64_t group, float* col) {
  for (std::int64_t b = 0; b < count; ++b) {
    const float* x_group = x + ((first + b) * g.in_channels + group * s.cg) * s.plane_in;
    unfold.im2col(g, x_group, s.cg, col + b * s.plane_out, col_stride(count * s.plane_out));
  }
}

// The chunk's product with its columns (forward, backward-data) or depth (weight gradient) in blocks of P:
// y or gy where they lie, C_out * P floats from image to image; col dense, its blocks P apart.
GemmGeometry columns_in_blocks(GemmGeometry product, const Conv2dGeometry& g, const Sizes& s, bool col_is_b) {
  product.column_block = s.plane_out;
  const std::int64_t images = g.out_channels * s.plane_out, dense = s.plane_out;
  product.b_column_block_stride = col_is_b ? dense : images;
  product.c_column_block_stride = col_is_b ? images : dense;
  return product;
}

}  // namespace

void conv2d_forward(const Im2colKernels& unfold, const Conv2dGeometry& g, const float* x, const float* w,
                    const float* bias, float* y) {
  const Sizes s(g);
  const batch_chunks::Chunking chunks = batch_chunks::chunk_batch(g.batch, s.plane_out, kForwardChunkColumns,
                                                                  s.col_rows * s.plane_out, kMaxChunkFloats);
  const std::int64_t max_columns = col_stride(chunks.images_per_chunk * s.plane_out);
  batch_chunks::for_each_chunk(
      chunks.chunk_count, s.col_rows * max_columns, [&](std::int64_t chunk, float* col) {
        const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
        const std::int64_t columns = count * s.plane_out;
        // y_chunk [Cog, count * P] = w_group x col, y's images where they lie.
        const GemmGeometry product = columns_in_blocks({.m = s.cog,
                                                        .n = columns,
                                                        .k = s.col_rows,
                                                        .lda = s.col_rows,
                                                        .ldb = col_stride(columns),
                                                        .ldc = s.plane_out},
                                                       g, s, true);
        for (std::int64_t group = 0; group < g.groups; ++group) {
          unfold_chunk(unfold, g, s, x, first, count, group, col);
          gemm(Device::cpu(), product, 1.0f, w + group * s.cog * s.col_rows, col, 0.0f,
               y + (first * g.out_channels + group * s.cog) * s.plane_out);
        }
      });
  if (bias) conv2d_add_bias(g, bias, y);
}

void conv2d_backward_data(const Im2colKernels& unfold, const Conv2dGeometry& g, const float* gy,
                          const float* w, float* gx) {
  const Sizes s(g);
  const batch_chunks::Chunking chunks = batch_chunks::chunk_batch(g.batch, s.plane_out, kForwardChunkColumns,
                                                                  s.col_rows * s.plane_out, kMaxChunkFloats);
  const std::int64_t max_columns = col_stride(chunks.images_per_chunk * s.plane_out);
  const bool gy_from_memory =
      read_from_memory(g.batch * g.out_channels * s.plane_out * static_cast<std::int64_t>(sizeof(float)));
  batch_chunks::for_each_chunk(
      chunks.chunk_count, s.col_rows * max_columns, [&](std::int64_t chunk, float* col) {
        const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
        const std::int64_t columns = count * s.plane_out;
        float* gx_chunk = gx + first * g.in_channels * s.plane_in;
        std::fill(gx_chunk, gx_chunk + count * g.in_channels * s.plane_in, 0.0f);
        // col [Cg*KK, count * P] = w_group^T x gy_chunk, gy's images where they lie (b_cold: from memory,
        // when gy has outgrown the cache).
        const GemmGeometry product = columns_in_blocks({.m = s.col_rows,
                                                        .n = columns,
                                                        .k = s.cog,
                                                        .trans_a = true,
                                                        .lda = s.col_rows,
                                                        .ldb = s.plane_out,
                                                        .ldc = col_stride(columns),
                                                        .b_cold = gy_from_memory},
                                                       g, s, false);
        for (std::int64_t group = 0; group < g.groups; ++group) {
          gemm(Device::cpu(), product, 1.0f, w + group * s.cog * s.col_rows,
               gy + (first * g.out_channels + group * s.cog) * s.plane_out, 0.0f, col);
          for (std::int64_t b = 0; b < count; ++b) {
            unfold.col2im_add(g, col + b * s.plane_out, s.cg, col_stride(columns),
                              gx_chunk + (b * g.in_channels + group * s.cg) * s.plane_in);
          }
        }
      });
}

void conv2d_backward_weight(const Im2colKernels& unfold, const Conv2dGeometry& g, const float* gy,
                            const float* x, float* gw) {
  const Sizes s(g);
  const batch_chunks::Chunking chunks = batch_chunks::chunk_batch(g.batch, s.plane_out, kWeightChunkColumns,
                                                                  s.col_rows * s.plane_out, kMaxChunkFloats);
  const std::int64_t max_columns = col_stride(chunks.images_per_chunk * s.plane_out);
  const std::int64_t weight_size = g.out_channels * s.col_rows;
  batch_chunks::sum_over_chunks(
      chunks.chunk_count, weight_size, s.col_rows * max_columns, gw,
      [&](std::int64_t chunk, float* col, float* gw_chunk) {
        const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
        const std::int64_t columns = count * s.plane_out;
        // gw_group = gy_chunk [Cog, count * P] x col^T, the depth in blocks: gy's images where they lie.
        const GemmGeometry product{.m = s.cog,
                                   .n = s.col_rows,
                                   .k = columns,
                                   .trans_b = true,
                                   .lda = s.plane_out,
                                   .ldb = col_stride(columns),
                                   .ldc = s.col_rows,
                                   .depth_block = s.plane_out,
                                   .a_depth_block_stride = g.out_channels * s.plane_out,
                                   .b_depth_block_stride = s.plane_out};
        for (std::int64_t group = 0; group < g.groups; ++group) {
          unfold_chunk(unfold, g, s, x, first, count, group, col);
          gemm(Device::cpu(), product, 1.0f, gy + (first * g.out_channels + group * s.cog) * s.plane_out, col,
               0.0f, gw_chunk + group * s.cog * s.col_rows);
        }
      });
}

}  // namespace kiln::kernels::im2col_gemm
