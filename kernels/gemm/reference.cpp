// Reference GEMM: the textbook triple loop, the oracle every optimized GEMM is tested against, so clarity
// beats speed here.
//
//   C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C[M, N]      (row-major, BLAS convention)
//
// Each dot product is accumulated in double and the result rounded to T once, so the float (and bfloat16)
// reference is as accurate as its type can hold and does not depend on the order of the K terms. Where each
// element sits (transposes, leading dimensions, images in blocks) is GemmGeometry's a_offset, b_offset and
// c_offset.
#include <cstdint>

#include "kernels/gemm/gemm.hpp"

namespace kiln::kernels::reference {
template <typename T>
void gemm(const GemmGeometry& g, opmath_t<T> alpha, const T* a, const T* b, opmath_t<T> beta, T* c) {
  for (std::int64_t i = 0; i < g.m; ++i) {
    for (std::int64_t j = 0; j < g.n; ++j) {
      double dot = 0.0;  // (op(A) op(B))[i, j]
      for (std::int64_t p = 0; p < g.k; ++p)
        dot += static_cast<double>(a[g.a_offset(i, p)]) * static_cast<double>(b[g.b_offset(p, j)]);
      T& c_ij = c[g.c_offset(i, j)];
      // beta == 0 must not read C: it may hold NaN, and 0 * NaN would be NaN.
      const double scaled_c = beta == 0 ? 0.0 : static_cast<double>(beta) * static_cast<double>(c_ij);
      c_ij = static_cast<T>(static_cast<double>(alpha) * dot + scaled_c);
    }
  }
}

template void gemm<float>(const GemmGeometry&, float, const float*, const float*, float, float*);
template void gemm<double>(const GemmGeometry&, double, const double*, const double*, double, double*);
template void gemm<bfloat16>(const GemmGeometry&, float, const bfloat16*, const bfloat16*, float, bfloat16*);

}  // namespace kiln::kernels::reference
