// gemm_testing: the plain (unblocked) GEMM geometries the GEMM tests draw, and the elements each operand
// spans, so that a test sizes its buffers as the kernel reads them.
//
//   const GemmGeometry g = testing::padded_gemm_geometry(7, 33, 129, /*trans_a=*/true, false, /*extra=*/3);
//   const std::vector<float> a = random_values<float>(testing::a_elements(g), seed);
#pragma once

#include <cstdint>

#include "kernels/gemm/gemm.hpp"

namespace kiln::testing {

// C = op(A) op(B), [m, n] = [m, k] x [k, n], with every leading dimension `extra` elements wider than a
// stored row (so that a kernel reading or writing past a row's end is seen).
inline kernels::GemmGeometry padded_gemm_geometry(std::int64_t m, std::int64_t n, std::int64_t k,
                                                  bool trans_a, bool trans_b, std::int64_t extra) {
  return {.m = m,
          .n = n,
          .k = k,
          .trans_a = trans_a,
          .trans_b = trans_b,
          .lda = (trans_a ? m : k) + extra,
          .ldb = (trans_b ? k : n) + extra,
          .ldc = n + extra};
}

// The elements a row-major [rows, cols] matrix with row stride ld spans (its last row ends at cols).
inline std::int64_t matrix_span(std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  return rows == 0 ? 0 : (rows - 1) * ld + cols;
}

// The elements A, B and C of a plain geometry span, as stored (A is [k, m] when transposed, B [n, k]).
inline std::int64_t a_elements(const kernels::GemmGeometry& g) {
  return g.trans_a ? matrix_span(g.k, g.m, g.lda) : matrix_span(g.m, g.k, g.lda);
}
inline std::int64_t b_elements(const kernels::GemmGeometry& g) {
  return g.trans_b ? matrix_span(g.n, g.k, g.ldb) : matrix_span(g.k, g.n, g.ldb);
}
inline std::int64_t c_elements(const kernels::GemmGeometry& g) { return matrix_span(g.m, g.n, g.ldc); }

}  // namespace kiln::testing
