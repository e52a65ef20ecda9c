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
  // The columns of op(B) and C in blocks, when column_block > 0: column j of B sits at
  //   (j / column_block) * b_block_stride + j % column_block
  // from its row's start instead of at j, and likewise in C with c_block_stride (ldb and ldc still step from
  // row to row within a block). A batch of NCHW images [N, C, P] is then one matrix [C, N * P] as it lies,
  // each image a block of P columns C * P floats after the one before, with no copy to set the images side
  // by side (kernels/conv2d/pointwise.cpp). Needs trans_b false; the CPU only, any type (bfloat16 then runs
  // the reference).
  std::int64_t column_block = 0, b_block_stride = 0, c_block_stride = 0;

  bool blocked_columns() const { return column_block > 0; }
  // Where column j starts, from its row's start, in op(B) and in C.
  std::int64_t b_column(std::int64_t j) const { return blocked(j, b_block_stride); }
  std::int64_t c_column(std::int64_t j) const { return blocked(j, c_block_stride); }
  std::int64_t blocked(std::int64_t j, std::int64_t block_stride) const {
    return blocked_columns() ? (j / column_block) * block_stride + j % column_block : j;
  }
};

// Dispatch. bfloat16 on the CPU widens A and B (and C when beta != 0) to float scratch, runs the fast float
// GEMM below and rounds C to bfloat16 once (at the Reference CPU level it runs reference::gemm instead).
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
