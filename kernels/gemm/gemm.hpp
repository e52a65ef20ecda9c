// General matrix multiply, row-major, in the BLAS convention:
//
//   C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C[M, N]
//
// op(A) is A, or A transposed when trans_a (A is then stored [K, M]); likewise B. lda, ldb, ldc are the
// row strides (elements between consecutive rows) of A, B and C as stored. beta == 0 overwrites C
// without reading it, so C may start uninitialized (even NaN), as in BLAS.
//
// T is float, double or bfloat16. alpha and beta are opmath_t<T>: T for float and double, float for
// bfloat16 (A, B and C in bfloat16, the products summed in float or wider, C rounded to bfloat16 once).
#pragma once

#include <cstdint>

#include "core/bfloat16.hpp"
#include "core/device.hpp"

namespace kiln::kernels {

struct GemmGeometry {
  std::int64_t m = 1, n = 1, k = 1;
  bool trans_a = false, trans_b = false;
  std::int64_t lda = 1, ldb = 1, ldc = 1;
  // A batch of NCHW images [N, C, P] as one matrix [C, N * P] where it lies, with no copy to set the images
  // side by side (kernels/conv2d/pointwise.cpp): each image's slice a block of P indices along one dimension,
  // the next image's C * P floats on. Along that dimension, index t then sits at
  //   (t / block) * block_stride + (t % block) * step       instead of t * step
  // where step is the operand's own stride along it (1, or its ld). Either of two dimensions can be in
  // blocks, not both:
  //   columns (N) of op(B) and C, column_block > 0: a pointwise forward or backward-data, y [C_out, N*P] =
  //     w [C_out, C_in] x x [C_in, N*P]; needs trans_b false;
  //   depth (K) of op(A) and op(B), depth_block > 0: its weight gradient, gw [C_out, C_in] =
  //     gy [C_out, N*P] x x^T [N*P, C_in].
  // The CPU only, any type (bfloat16 then runs the reference).
  std::int64_t column_block = 0, b_column_block_stride = 0, c_column_block_stride = 0;
  std::int64_t depth_block = 0, a_depth_block_stride = 0, b_depth_block_stride = 0;
  // op(B) comes from memory rather than from cache: an activation tensor read where it lies that has outgrown
  // the cache (kernels/cpu_cache.hpp's read_from_memory), as the pointwise convolution's forward and
  // backward-data and im2col's backward-data read x or gy at training batches (not im2col's columns, written
  // just before the product). The fast GEMM then packs B whatever M is (gemm_driver.hpp, kInPlaceBMaxRows
  // says why). A hint about speed only: C has the same bits either way.
  bool b_cold = false;

  constexpr bool blocked_columns() const { return column_block > 0; }
  constexpr bool blocked_depth() const { return depth_block > 0; }
  // Where op(A)[i, p], op(B)[p, j] and C[i, j] sit, from the matrices' starts.
  constexpr std::int64_t a_offset(std::int64_t i, std::int64_t p) const {
    return trans_a ? i + depth_offset(p, lda, a_depth_block_stride)
                   : i * lda + depth_offset(p, 1, a_depth_block_stride);
  }
  constexpr std::int64_t b_offset(std::int64_t p, std::int64_t j) const {
    return trans_b ? j * ldb + depth_offset(p, 1, b_depth_block_stride)
                   : depth_offset(p, ldb, b_depth_block_stride) + b_column(j);
  }
  constexpr std::int64_t c_offset(std::int64_t i, std::int64_t j) const { return i * ldc + c_column(j); }
  // Column j's place in a row of op(B) (untransposed) and of C.
  constexpr std::int64_t b_column(std::int64_t j) const {
    return in_blocks(j, 1, column_block, b_column_block_stride);
  }
  constexpr std::int64_t c_column(std::int64_t j) const {
    return in_blocks(j, 1, column_block, c_column_block_stride);
  }
  constexpr std::int64_t depth_offset(std::int64_t p, std::int64_t step, std::int64_t block_stride) const {
    return in_blocks(p, step, depth_block, block_stride);
  }
  static constexpr std::int64_t in_blocks(std::int64_t t, std::int64_t step, std::int64_t block,
                                          std::int64_t block_stride) {
    return block > 0 ? (t / block) * block_stride + (t % block) * step : t * step;
  }
};

// Dispatch. bfloat16 on the CPU runs the AVX512-BF16 kernel below where the CPU has it; elsewhere it widens
// A and B (and C when beta != 0) to float scratch, runs the fast float GEMM below and rounds C to bfloat16
// once (at the Reference CPU level it runs reference::gemm instead).
template <typename T>
void gemm(Device device, const GemmGeometry& g, opmath_t<T> alpha, const T* a, const T* b, opmath_t<T> beta,
          T* c);

// The oracle: every dot product summed in double, the result rounded to T once (bfloat16 included).
namespace reference {
template <typename T>
void gemm(const GemmGeometry& g, opmath_t<T> alpha, const T* a, const T* b, opmath_t<T> beta, T* c);
}  // namespace reference

// The fast float GEMM (BLIS-style five loops, packing, register-blocked micro-kernel; see gemm_driver.hpp
// and blocking.hpp), one per instruction set. Same semantics as reference::gemm, float only.
namespace avx512 {
void gemm(const GemmGeometry& g, float alpha, const float* a, const float* b, float beta, float* c);
}  // namespace avx512
namespace avx2 {
void gemm(const GemmGeometry& g, float alpha, const float* a, const float* b, float beta, float* c);
}  // namespace avx2

// bfloat16 A and B multiplied by AVX512-BF16's pair dot products (avx512_bf16.cpp says how), the products
// summed in float: C float, or C bfloat16 rounded once, plus a float bias per column of C when column_bias
// is not null (a convolution's or a linear layer's, before that one rounding). Any transposes and leading
// dimensions; no images in blocks. Only where avx512_bf16_usable() (kernels/cpu_level.hpp).
namespace avx512_bf16 {
void gemm(const GemmGeometry& g, float alpha, const bfloat16* a, const bfloat16* b, float beta, float* c);
void gemm(const GemmGeometry& g, float alpha, const bfloat16* a, const bfloat16* b, float beta, bfloat16* c,
          const float* column_bias = nullptr);
}  // namespace avx512_bf16

// GEMM on a CUDA device through cuBLAS (cuda_gemm.cu, built when CMake finds a CUDA compiler): the same
// row-major semantics as above, on the current device, on the compute stream, asynchronously. T is float,
// double or bfloat16. cuBLAS keeps its default math mode: float runs in pure FP32 (no TF32), so a float
// result differs from the reference's (summed in double, rounded once) by the rounding of a float sum of K
// products. bfloat16 runs cublasGemmEx with CUDA_R_16BF A, B and C and CUBLAS_COMPUTE_32F: the products
// (exact in float) are summed in float and C is rounded to bfloat16 once.
//
// cuBLAS wants rows that do not overlap: an ld smaller than a stored row (lda < K for A as [M, K], lda < M
// for A stored [K, M], likewise B, ldc < N) throws a kiln::Error naming gemm, unless the matrix has only one
// stored row (its ld is then never used). k == 0 gives C = beta * C (0 when beta == 0), as the reference.
namespace cuda {
template <typename T>
void gemm(const GemmGeometry& g, opmath_t<T> alpha, const T* a, const T* b, opmath_t<T> beta, T* c);

// batch_count independent GEMMs of geometry g: C_i = alpha * op(A_i) op(B_i) + beta * C_i, where
// A_i = a + i * stride_a (elements), likewise B_i and C_i. A stride of 0 shares one matrix among all (a
// convolution's weights); the C_i must not overlap. One cuBLAS call (cublas<S|D>gemmStridedBatched,
// cublasGemmStridedBatchedEx for bfloat16).
template <typename T>
void gemm_strided_batched(const GemmGeometry& g, std::int64_t batch_count, std::int64_t stride_a,
                          std::int64_t stride_b, std::int64_t stride_c, opmath_t<T> alpha, const T* a,
                          const T* b, opmath_t<T> beta, T* c);

// bfloat16 A and B, float C (cublasGemmEx with CUDA_R_32F C, CUBLAS_COMPUTE_32F): for sums that go on past
// one GEMM and must not be rounded to bfloat16 in between, like a convolution's weight gradient summed over
// chunks of images (beta = 1) or backward-data's columns before col2im folds them.
void gemm_into_float(const GemmGeometry& g, float alpha, const bfloat16* a, const bfloat16* b, float beta,
                     float* c);
void gemm_strided_batched_into_float(const GemmGeometry& g, std::int64_t batch_count, std::int64_t stride_a,
                                     std::int64_t stride_b, std::int64_t stride_c, float alpha,
                                     const bfloat16* a, const bfloat16* b, float beta, float* c);
}  // namespace cuda

}  // namespace kiln::kernels
