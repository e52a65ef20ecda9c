// Convolution as im2col + GEMM, all three directions, any stride / padding / dilation / groups.
//
// Per group (Cg = C_in/groups input channels, Cog = C_out/groups outputs, KK = KH*KW, P = OH*OW), for a
// chunk of `count` images unfolded side by side (batch_chunks.hpp), with columns K = count * P:
//
//   forward          y_chunk [Cog, K]       = w_group [Cog, Cg*KK]      x col [Cg*KK, K]
//   backward-data    col     [Cg*KK, K]     = w_group^T [Cg*KK, Cog]    x gy_chunk [Cog, K],  then col2im
//   backward-weight  gw_group [Cog, Cg*KK] += gy_chunk [Cog, K]          x col^T [K, Cg*KK]
//
// A chunk of one image needs no gathering: y and gy of one image already are [C_out, P] matrices.
// Scratch per thread: col (Cg*KK x K) plus one [Cog, K] chunk of y or gy. The unfolding itself is the
// im2col / col2im_add pair dispatch.cpp chose for the CPU level (`unfold`).
#include <algorithm>

#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/im2col.hpp"
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

// Unfold images [first, first + count) of group `group` side by side into col [col_rows, count * P].
void unfold_chunk(const Im2colKernels& unfold, const Conv2dGeometry& g, const Sizes& s, const float* x,
                  std::int64_t first, std::int64_t count, std::int64_t group, float* col) {
  for (std::int64_t b = 0; b < count; ++b) {
    const float* x_group = x + ((first + b) * g.in_channels + group * s.cg) * s.plane_in;
    unfold.im2col(g, x_group, s.cg, col + b * s.plane_out, count * s.plane_out);
  }
}

}  // namespace

void conv2d_forward(const Im2colKernels& unfold, const Conv2dGeometry& g, const float* x, const float* w,
                    const float* bias, float* y) {
  const Sizes s(g);
  const batch_chunks::Chunking chunks = batch_chunks::chunk_batch(g.batch, s.plane_out, kForwardChunkColumns,
                                                                  s.col_rows * s.plane_out, kMaxChunkFloats);
  const std::int64_t max_columns = chunks.images_per_chunk * s.plane_out;
  batch_chunks::for_each_chunk(
      chunks.chunk_count, (s.col_rows + s.cog) * max_columns, [&](std::int64_t chunk, float* scratch) {
        const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
        const std::int64_t columns = count * s.plane_out;
        float* col = scratch;
        float* y_chunk = scratch + s.col_rows * max_columns;
        for (std::int64_t group = 0; group < g.groups; ++group) {
          unfold_chunk(unfold, g, s, x, first, count, group, col);
          float* y_group = y + (first * g.out_channels + group * s.cog) * s.plane_out;
          const bool direct = count == 1;  // one image's y_group already is the [Cog, P] result matrix
          const GemmGeometry product{
              .m = s.cog, .n = columns, .k = s.col_rows, .lda = s.col_rows, .ldb = columns, .ldc = columns};
          gemm(Device::cpu(), product, 1.0f, w + group * s.cog * s.col_rows, col, 0.0f,
               direct ? y_group : y_chunk);
          if (!direct) {
            batch_chunks::scatter_images(y_chunk, count, s.cog, s.plane_out, y_group,
                                         g.out_channels * s.plane_out);
          }
        }
      });
  if (bias) conv2d_add_bias(g, bias, y);
}

void conv2d_backward_data(const Im2colKernels& unfold, const Conv2dGeometry& g, const float* gy,
                          const float* w, float* gx) {
  const Sizes s(g);
  const batch_chunks::Chunking chunks = batch_chunks::chunk_batch(g.batch, s.plane_out, kForwardChunkColumns,
                                                                  s.col_rows * s.plane_out, kMaxChunkFloats);
  const std::int64_t max_columns = chunks.images_per_chunk * s.plane_out;
  batch_chunks::for_each_chunk(
      chunks.chunk_count, (s.col_rows + s.cog) * max_columns, [&](std::int64_t chunk, float* scratch) {
        const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
        const std::int64_t columns = count * s.plane_out;
        float* col = scratch;
        float* gy_chunk = scratch + s.col_rows * max_columns;
        float* gx_chunk = gx + first * g.in_channels * s.plane_in;
        std::fill(gx_chunk, gx_chunk + count * g.in_channels * s.plane_in, 0.0f);
        for (std::int64_t group = 0; group < g.groups; ++group) {
          const float* gy_group = gy + (first * g.out_channels + group * s.cog) * s.plane_out;
          if (count > 1) {
            batch_chunks::gather_images(gy_group, g.out_channels * s.plane_out, count, s.cog, s.plane_out,
                                        gy_chunk);
          }
          const GemmGeometry product{.m = s.col_rows,
                                     .n = columns,
                                     .k = s.cog,
                                     .trans_a = true,
                                     .lda = s.col_rows,
                                     .ldb = columns,
                                     .ldc = columns};
          gemm(Device::cpu(), product, 1.0f, w + group * s.cog * s.col_rows, count > 1 ? gy_chunk : gy_group,
               0.0f, col);
          for (std::int64_t b = 0; b < count; ++b) {
            unfold.col2im_add(g, col + b * s.plane_out, s.cg, columns,
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
  const std::int64_t max_columns = chunks.images_per_chunk * s.plane_out;
  const std::int64_t weight_size = g.out_channels * s.col_rows;
  batch_chunks::sum_over_chunks(
      chunks.chunk_count, weight_size, (s.col_rows + s.cog) * max_columns, gw,
      [&](std::int64_t chunk, float* scratch, float* gw_chunk) {
        const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
        const std::int64_t columns = count * s.plane_out;
        float* col = scratch;
        float* gy_chunk = scratch + s.col_rows * max_columns;
        for (std::int64_t group = 0; group < g.groups; ++group) {
          unfold_chunk(unfold, g, s, x, first, count, group, col);
          const float* gy_group = gy + (first * g.out_channels + group * s.cog) * s.plane_out;
          if (count > 1) {
            batch_chunks::gather_images(gy_group, g.out_channels * s.plane_out, count, s.cog, s.plane_out,
                                        gy_chunk);
          }
          const GemmGeometry product{.m = s.cog,
                                     .n = s.col_rows,
                                     .k = columns,
                                     .trans_b = true,
                                     .lda = columns,
                                     .ldb = columns,
                                     .ldc = s.col_rows};
          gemm(Device::cpu(), product, 1.0f, count > 1 ? gy_chunk : gy_group, col, 0.0f,
               gw_chunk + group * s.cog * s.col_rows);
        }
      });
}

}  // namespace kiln::kernels::im2col_gemm
