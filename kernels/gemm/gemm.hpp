// General matrix multiply, row-major, in the BLAS convention:
//
//   C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C[M, N]
//
// op(A) is A, or A transposed when trans_a (A is then stored [K, M]); likewise B. lda, ldb, ldc are the
// row strides (elements between consecutive rows) of A, B and C as stored. beta == 0 overwrites C
// without reading it, so C may start uninitialized (even NaN), as in BLAS.
#pragma once

#include <cstdint>

#include "core/device.hpp"

namespace kiln::kernels {

struct GemmGeometry {
  std::int64_t m = 1, n = 1, k = 1;
  bool trans_a = false, trans_b = false;
  std::int64_t lda = 1, ldb = 1, ldc = 1;
};

template <typename T>
void gemm(Device device, const GemmGeometry& g, T alpha, const T* a, const T* b, T beta, T* c);

namespace reference {
template <typename T> void gemm(const GemmGeometry& g, T alpha, const T* a, const T* b, T beta, T* c);
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
// row-major semantics as above, on the current device, on the default stream, asynchronously. T is float or
// double. cuBLAS keeps its default math mode: float runs in pure FP32 (no TF32), so a float result differs
// from the reference's (summed in double, rounded once) by the rounding of a float sum of K products.
//
// cuBLAS wants rows that do not overlap: an ld smaller than a stored row (lda < K for A as [M, K], lda < M
// for A stored [K, M], likewise B, ldc < N) throws a kiln::Error naming gemm, unless the matrix has only one
// stored row (its ld is then never used). k == 0 gives C = beta * C (0 when beta == 0), as the reference.
namespace cuda {
template <typename T>
void gemm(const GemmGeometry& g, T alpha, const T* a, const T* b, T beta, T* c);

// batch_count independent GEMMs of geometry g: C_i = alpha * op(A_i) op(B_i) + beta * C_i, where
// A_i = a + i * stride_a (elements), likewise B_i and C_i. A stride of 0 shares one matrix among all (a
// convolution's weights); the C_i must not overlap. One cuBLAS call (cublas<S|D>gemmStridedBatched).
template <typename T>
void gemm_strided_batched(const GemmGeometry& g, std::int64_t batch_count, std::int64_t stride_a,
                          std::int64_t stride_b, std::int64_t stride_c, T alpha, const T* a, const T* b,
                          T beta, T* c);
}  // namespace cuda

}  // namespace kiln::kernels
