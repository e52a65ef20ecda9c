// Reference GEMM: the textbook triple loop, the oracle every optimized GEMM is tested against, so clarity
// beats speed here.
//
//   C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C[M, N]      (row-major, BLAS convention)
//
// Each dot product is accumulated in double and the result rounded to T once, so the float (and bfloat16)
// reference is as accurate as its type can hold and does not depend on the order of the K terms.
#include <cstdint>

#include "kernels/gemm/gemm.hpp"

namespace kiln::kernels::reference {
namespace {

// op(M)[row, col] for a matrix stored row-major with `ld` elements between stored rows. When transposed,
// the stored matrix is op(M)'s transpose, so the roles of row and col swap.
// `columns` places op(B)'s columns when they are in blocks (GemmGeometry::b_column).
template <typename T>
struct OperandView {
  const T* data;
  std::int64_t ld;
  bool transposed;
  const GemmGeometry* columns = nullptr;

  double at(std::int64_t row, std::int64_t col) const {
    if (columns) return data[row * ld + columns->b_column(col)];
    return transposed ? data[col * ld + row] : data[row * ld + col];
  }
};

}  // namespace

template <typename T>
void gemm(const GemmGeometry& g, opmath_t<T> alpha, const T* a, const T* b, opmath_t<T> beta, T* c) {
  const OperandView<T> op_a{a, g.lda, g.trans_a};                                      // op(A) [M, K]
  const OperandView<T> op_b{b, g.ldb, g.trans_b, g.blocked_columns() ? &g : nullptr};  // op(B) [K, N]
  for (std::int64_t i = 0; i < g.m; ++i) {
    for (std::int64_t j = 0; j < g.n; ++j) {
      double dot = 0.0;  // (op(A) op(B))[i, j]
      for (std::int64_t p = 0; p < g.k; ++p) dot += op_a.at(i, p) * op_b.at(p, j);
      T& c_ij = c[i * g.ldc + g.c_column(j)];
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
