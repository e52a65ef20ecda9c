// Convolution on a CUDA device as im2col + cuBLAS GEMM, all three directions, any stride, padding,
// dilation and groups (conv2d.hpp, namespace cuda; dispatch.cpp sends depthwise geometries to
// cuda_depthwise.cu instead).
//
// Per group (Cg = C_in/groups input channels, Cog = C_out/groups outputs, R = Cg*KH*KW, P = OH*OW), with the
// batch cut into chunks of images so the column matrix fits the workspace:
//
//   forward          y_img_group [Cog, P]   = w_group [Cog, R]     x col_img_group [R, P]
//   backward-data    col_img_group [R, P]   = w_group^T [R, Cog]   x gy_img_group [Cog, P],  then col2im
//   backward-weight  gw_group [Cog, R]     += gy_chunk_group [Cog, count*P] x col_chunk_group^T [count*P, R]
//
// Forward and backward-data keep one [C_in*KH*KW, P] column matrix per image, so y and gy, [C_out, P] per
// image in NCHW, are the GEMM's C and B where they lie: one strided-batched GEMM per group and chunk (batch
// = the chunk's images, the weights shared with stride 0) writes y, or reads gy, with no permute. With a
// bias, y is first filled with it and the forward GEMMs add to it (beta = 1), so the bias joins the sum
// before its one rounding. The weight gradient is a sum over images, so there the chunk's images go side by
// side instead ([C_in*KH*KW, count*P]; gy gathered to [C_out, count*P] to match) and one GEMM per group sums
// over all count*P positions; chunks accumulate into gw with beta = 1 after the first (beta = 0), in chunk
// order, so the result is the same bits on every run.
//
// bfloat16 (T = bfloat16, opmath_t<T> = float): the columns and the gathered gy stay bfloat16 (copies,
// exact), and cuBLAS sums in float. What must not be rounded to bfloat16 midway stays float: backward-data's
// columns (the GEMM writes float, col2im folds them in float and rounds gx once) and backward-weight's sum
// over chunks (a float accumulator [C_out, R], rounded to gw once after the last chunk). For float and double
// both are T itself and the GEMMs write in place, as before.
//
// A 1x1, stride-1, unpadded convolution needs no im2col: an image's NCHW channels already are the [Cg, P]
// operand (P = H*W), so forward and backward-data run one strided-batched GEMM per group over the whole
// batch, with no scratch. Its weight gradient still gathers a chunk of images side by side (a copy, not an
// unfolding), except for chunks of one image, which are used in place.
//
// Calls to the other CUDA kernels are qualified (kernels::cuda::im2col, ...): unqualified, argument-dependent
// lookup would also find the CPU functions of the same name in kiln::kernels, and a non-template CPU overload
// (conv2d_add_bias for float) beats the template.
//
// Scratch comes from the caching allocator (kiln::Storage) and is released when the call returns, while its
// kernels may still be queued. That is safe: every kernel and GEMM runs on the compute stream, so whatever
// reuses the block later is ordered after them.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "core/cuda_runtime.hpp"
#include "core/error.hpp"
#include "core/storage.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/gemm/gemm.hpp"

namespace kiln::kernels::cuda {
namespace {

// The sizes every direction uses.
struct Sizes {
  std::int64_t cg, cog, taps, col_rows, group_rows, plane_in, plane_out;
  explicit Sizes(const Conv2dGeometry& g)
      : cg(g.in_channels_per_group()),
        cog(g.out_channels_per_group()),
        taps(g.kernel_h * g.kernel_w),
        col_rows(g.in_channels * taps),  // an image's column matrix, every group
        group_rows(cg * taps),           // R: one group's rows of it
        plane_in(g.in_height * g.in_width),
        plane_out(g.out_height() * g.out_width()) {}
};

bool is_pointwise(const Conv2dGeometry& g) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 &&
         g.pad_w == 0;
}

// The batch cut into chunk_count chunks of images_per_chunk images (the last may hold fewer), the most
// images whose `elements_per_image` scratch elements fit in workspace_bytes, one at least. The chunk count
// is the fewest that fit; the chunks are then evened out (9 images, 8 fitting: 5 + 4 rather than 8 + 1).
struct Chunks {
  std::int64_t images_per_chunk = 1, chunk_count = 0;
  std::int64_t first_image(std::int64_t chunk) const { return chunk * images_per_chunk; }
  std::int64_t images_in(std::int64_t chunk, std::int64_t batch) const {
    return std::min(images_per_chunk, batch - first_image(chunk));
  }
};

Chunks chunk_batch(std::int64_t batch, std::int64_t elements_per_image, std::size_t element_bytes,
                   std::size_t workspace_bytes) {
  const std::size_t image_bytes =
      element_bytes * static_cast<std::size_t>(std::max<std::int64_t>(elements_per_image, 1));
  const auto fit =
      static_cast<std::int64_t>(std::min(workspace_bytes / image_bytes, static_cast<std::size_t>(batch)));
  const std::int64_t widest = std::max<std::int64_t>(fit, 1);
  const std::int64_t chunk_count = (batch + widest - 1) / widest;
  return {(batch + chunk_count - 1) / chunk_count, chunk_count};
}

// `elements` of T on the current device (see the top of the file for when it may be released).
template <typename T>
std::shared_ptr<Storage> scratch(std::int64_t elements) {
  return Storage::allocate(static_cast<std::size_t>(elements) * sizeof(T),
                           Device::cuda(kiln::cuda::current_device()));
}

// True when T's sums are kept in a wider type than T (bfloat16): the GEMMs then write float scratch.
template <typename T>
constexpr bool accumulates_wider = !std::is_same_v<T, opmath_t<T>>;

// The strided-batched GEMM C = op(A) op(B) (beta = 0) writing opmath_t<T>: T's own, or for bfloat16 the
// one writing float.
template <typename T>
void gemm_strided_batched_wide(const GemmGeometry& g, std::int64_t batch_count, std::int64_t stride_a,
                               std::int64_t stride_b, std::int64_t stride_c, const T* a, const T* b,
                               opmath_t<T>* c) {
  if constexpr (accumulates_wider<T>) {
    kernels::cuda::gemm_strided_batched_into_float(g, batch_count, stride_a, stride_b, stride_c, 1.0f, a, b,
                                                   0.0f, c);
  } else {
    kernels::cuda::gemm_strided_batched(g, batch_count, stride_a, stride_b, stride_c, T(1), a, b, T(0), c);
  }
}

// C = op(A) op(B) + beta C writing opmath_t<T>, as above.
template <typename T>
void gemm_wide(const GemmGeometry& g, const T* a, const T* b, opmath_t<T> beta, opmath_t<T>* c) {
  if constexpr (accumulates_wider<T>) {
    kernels::cuda::gemm_into_float(g, 1.0f, a, b, beta, c);
  } else {
    kernels::cuda::gemm(g, T(1), a, b, beta, c);
  }
}

}  // namespace

template <typename T>
void gemm_conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y,
                         std::size_t workspace_bytes) {
  const Sizes s(g);
  if (g.batch * g.out_channels * s.plane_out == 0) return;
  const std::int64_t x_image = g.in_channels * s.plane_in, y_image = g.out_channels * s.plane_out;
  // y starts as the bias, which the GEMMs add to (beta = 1), or is overwritten (beta = 0) when there is none.
  if (bias) kernels::cuda::conv2d_fill_bias(g, bias, y);
  const opmath_t<T> beta = bias ? 1 : 0;
  if (is_pointwise(g)) {  // y_img_group [Cog, P] = w_group [Cog, Cg] x x_img_group [Cg, P], every image
    const GemmGeometry product{
        .m = s.cog, .n = s.plane_out, .k = s.cg, .lda = s.cg, .ldb = s.plane_in, .ldc = s.plane_out};
    for (std::int64_t group = 0; group < g.groups; ++group) {
      kernels::cuda::gemm_strided_batched(product, g.batch, 0, x_image, y_image, 1, w + group * s.cog * s.cg,
                                          x + group * s.cg * s.plane_in, beta,
                                          y + group * s.cog * s.plane_out);
    }
  } else {
    const std::int64_t col_image = s.col_rows * s.plane_out;  // one image's [C_in*KH*KW, P] columns
    const Chunks chunks = chunk_batch(g.batch, col_image, sizeof(T), workspace_bytes);
    const auto workspace = scratch<T>(chunks.images_per_chunk * col_image);
    T* col = static_cast<T*>(workspace->data());
    const GemmGeometry product{.m = s.cog,
                               .n = s.plane_out,
                               .k = s.group_rows,
                               .lda = s.group_rows,
                               .ldb = s.plane_out,
                               .ldc = s.plane_out};
    for (std::int64_t chunk = 0; chunk < chunks.chunk_count; ++chunk) {
      const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
      kernels::cuda::im2col(g, x + first * x_image, count, col_image, s.plane_out, col);
      for (std::int64_t group = 0; group < g.groups; ++group) {
        kernels::cuda::gemm_strided_batched(product, count, 0, col_image, y_image, 1,
                                            w + group * s.cog * s.group_rows,
                                            col + group * s.group_rows * s.plane_out, beta,
                                            y + first * y_image + group * s.cog * s.plane_out);
      }
    }
  }
}

template <typename T>
void gemm_conv2d_backward_data(const Conv2dGeometry& g, const T* gy, const T* w, T* gx,
                               std::size_t workspace_bytes) {
  const Sizes s(g);
  if (g.batch * g.in_channels * s.plane_in == 0) return;
  const std::int64_t x_image = g.in_channels * s.plane_in, y_image = g.out_channels * s.plane_out;
  if (is_pointwise(g)) {  // gx_img_group [Cg, P] = w_group^T [Cg, Cog] x gy_img_group [Cog, P], every image
    const GemmGeometry product{.m = s.cg,
                               .n = s.plane_in,
                               .k = s.cog,
                               .trans_a = true,
                               .lda = s.cg,
                               .ldb = s.plane_out,
                               .ldc = s.plane_in};
    for (std::int64_t group = 0; group < g.groups; ++group) {
      kernels::cuda::gemm_strided_batched(product, g.batch, 0, y_image, x_image, 1, w + group * s.cog * s.cg,
                                          gy + group * s.cog * s.plane_out, 0,
                                          gx + group * s.cg * s.plane_in);
    }
    return;
  }
  // The columns in opmath_t<T> (float for bfloat16), folded by col2im before any rounding to T.
  const std::int64_t col_image = s.col_rows * s.plane_out;
  const Chunks chunks = chunk_batch(g.batch, col_image, sizeof(opmath_t<T>), workspace_bytes);
  const auto workspace = scratch<opmath_t<T>>(chunks.images_per_chunk * col_image);
  opmath_t<T>* col = static_cast<opmath_t<T>*>(workspace->data());
  const GemmGeometry product{.m = s.group_rows,
                             .n = s.plane_out,
                             .k = s.cog,
                             .trans_a = true,
                             .lda = s.group_rows,
                             .ldb = s.plane_out,
                             .ldc = s.plane_out};
  for (std::int64_t chunk = 0; chunk < chunks.chunk_count; ++chunk) {
    const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
    for (std::int64_t group = 0; group < g.groups; ++group) {
      gemm_strided_batched_wide<T>(product, count, 0, y_image, col_image, w + group * s.cog * s.group_rows,
                                   gy + first * y_image + group * s.cog * s.plane_out,
                                   col + group * s.group_rows * s.plane_out);
    }
    kernels::cuda::col2im(g, col, count, col_image, s.plane_out, gx + first * x_image);
  }
}

template <typename T>
void gemm_conv2d_backward_weight(const Conv2dGeometry& g, const T* gy, const T* x, T* gw,
                                 std::size_t workspace_bytes) {
  const Sizes s(g);
  const std::int64_t weights = g.out_channels * s.group_rows;
  if (weights == 0) return;
  if (g.batch * s.plane_out == 0) {  // an empty sum: gw = 0 (all-zero bytes are 0.0)
    const cudaError_t status =
        cudaMemsetAsync(gw, 0, static_cast<std::size_t>(weights) * sizeof(T),
                        static_cast<cudaStream_t>(kiln::cuda::current_compute_stream()));
    if (status != cudaSuccess) {
      cudaGetLastError();
      fail("conv2d backward_weight on CUDA: cudaMemsetAsync failed: ", cudaGetErrorString(status));
    }
    return;
  }
  const std::int64_t x_image = g.in_channels * s.plane_in, y_image = g.out_channels * s.plane_out;
  const bool pointwise = is_pointwise(g);
  // Per image of a chunk: its columns [C_in*KH*KW, P] and its gy [C_out, P], side by side with the others'.
  const Chunks chunks =
      chunk_batch(g.batch, (s.col_rows + g.out_channels) * s.plane_out, sizeof(T), workspace_bytes);
  const bool single_images = chunks.images_per_chunk == 1;  // every chunk used in place but for im2col
  const std::int64_t col_elements =
      single_images && pointwise ? 0 : chunks.images_per_chunk * s.col_rows * s.plane_out;
  const std::int64_t gy_elements = single_images ? 0 : chunks.images_per_chunk * y_image;
  const auto workspace = scratch<T>(col_elements + gy_elements);
  T* col = static_cast<T*>(workspace->data());
  T* gy_chunk = col + col_elements;
  // The sum over chunks: gw itself, or for bfloat16 a float accumulator rounded to gw after the last chunk.
  std::shared_ptr<Storage> accumulator;
  opmath_t<T>* gw_sum = nullptr;
  if constexpr (accumulates_wider<T>) {
    accumulator = scratch<opmath_t<T>>(weights);
    gw_sum = static_cast<opmath_t<T>*>(accumulator->data());
  } else {
    gw_sum = gw;
  }
  for (std::int64_t chunk = 0; chunk < chunks.chunk_count; ++chunk) {
    const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
    const std::int64_t columns = count * s.plane_out;
    // A chunk of one image needs no side-by-side copies: its gy is [C_out, P] and, 1x1, its x is [C_in, P].
    const T* gy_matrix = gy + first * y_image;  // [C_out, columns]
    if (count > 1) {
      kernels::cuda::gather_images(gy + first * y_image, count, g.out_channels, s.plane_out, gy_chunk);
      gy_matrix = gy_chunk;
    }
    const T* col_matrix = x + first * x_image;  // [C_in*KH*KW, columns]
    if (count > 1 || !pointwise) {
      kernels::cuda::im2col(g, x + first * x_image, count, s.plane_out, columns, col);
      col_matrix = col;
    }
    const GemmGeometry product{.m = s.cog,
                               .n = s.group_rows,
                               .k = columns,
                               .trans_b = true,
                               .lda = columns,
                               .ldb = columns,
                               .ldc = s.group_rows};
    for (std::int64_t group = 0; group < g.groups; ++group) {
      gemm_wide<T>(product, gy_matrix + group * s.cog * columns, col_matrix + group * s.group_rows * columns,
                   chunk == 0 ? 0 : 1, gw_sum + group * s.cog * s.group_rows);
    }
  }
  if constexpr (accumulates_wider<T>) kernels::cuda::round_to_bfloat16(gw_sum, weights, gw);
}

template void gemm_conv2d_forward<float>(const Conv2dGeometry&, const float*, const float*, const float*,
                                         float*, std::size_t);
template void gemm_conv2d_forward<double>(const Conv2dGeometry&, const double*, const double*, const double*,
                                          double*, std::size_t);
template void gemm_conv2d_backward_data<float>(const Conv2dGeometry&, const float*, const float*, float*,
                                               std::size_t);
template void gemm_conv2d_backward_data<double>(const Conv2dGeometry&, const double*, const double*, double*,
                                                std::size_t);
template void gemm_conv2d_backward_weight<float>(const Conv2dGeometry&, const float*, const float*, float*,
                                                 std::size_t);
template void gemm_conv2d_backward_weight<double>(const Conv2dGeometry&, const double*, const double*,
                                                  double*, std::size_t);
template void gemm_conv2d_forward<bfloat16>(const Conv2dGeometry&, const bfloat16*, const bfloat16*,
                                            const bfloat16*, bfloat16*, std::size_t);
template void gemm_conv2d_backward_data<bfloat16>(const Conv2dGeometry&, const bfloat16*, const bfloat16*,
                                                  bfloat16*, std::size_t);
template void gemm_conv2d_backward_weight<bfloat16>(const Conv2dGeometry&, const bfloat16*, const bfloat16*,
                                                    bfloat16*, std::size_t);

}  // namespace kiln::kernels::cuda
