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

}  // namespace kiln::kernels
