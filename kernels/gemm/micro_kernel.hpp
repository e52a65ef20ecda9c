// The register-blocked micro-kernel: one MR x NR tile of C from one packed A sliver and one packed B
// sliver (see packing.hpp), written once for any vector width.
//
//   tile[MR, NR] = sum over p < kc of  a_sliver[p][0..MR) (outer product) b_sliver[p][0..NR)
//   C[0..rows, 0..cols) = alpha * tile + beta * C        (beta == 0: C is not read)
//
// The MR x (NR / width) accumulators stay in registers across the whole k loop: each step loads NR /
// width vectors of B, and for each of the MR rows broadcasts one float of A and issues NR / width FMAs.
// Only the final store touches C, masked to `rows` x `cols` for the edge tiles of C.
//
// The B sliver's rows are b_row_stride floats apart: NR when packed, ldb when B is read in place (see
// kInPlaceBMaxRows in gemm_driver.hpp). The A sliver is packed, [kc][MR], unless kARowsInPlace: then it is
// A itself, its MR rows a_row_stride floats apart, each contiguous along the depth (gemm_driver.hpp's
// a_in_place). Either way the tile's sums take the same products in the same order: the same bits.
//
// `Vec` supplies the instruction set: Reg, width, zero, load, store, broadcast, fma, mul, and load_first /
// store_first (the first n lanes only, masked). All loops have compile-time trip counts and are fully
// unrolled, so acc[r][v] is a named register, never memory. Included by avx512.cpp and avx2.cpp only;
// unnamed namespace for the reason given in packing.hpp.
#pragma once

#include <cstdint>

namespace kiln::kernels {
namespace {

template <typename Vec, int MR, int NR, bool kARowsInPlace = false>
void micro_kernel(std::int64_t kc, const float* a_sliver, const float* b_sliver, std::int64_t b_row_stride,
                  float alpha, float beta, float* c, std::int64_t ldc, int rows, int cols,
                  std::int64_t a_row_stride = 0) {
  using Reg = typename Vec::Reg;
  constexpr int kWidth = Vec::width;
  constexpr int kVectors = NR / kWidth;  // vectors per row of the tile
  static_assert(NR % kWidth == 0, "NR must be a whole number of vectors");

  Reg acc[MR][kVectors];
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) acc[r][v] = Vec::zero();
  }

  for (std::int64_t p = 0; p < kc; ++p) {
    Reg b[kVectors];
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) b[v] = Vec::load(b_sliver + v * kWidth);
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) {
      const Reg a = Vec::broadcast(kARowsInPlace ? a_sliver + r * a_row_stride + p : a_sliver + r);
#pragma GCC unroll 8
      for (int v = 0; v < kVectors; ++v) acc[r][v] = Vec::fma(a, b[v], acc[r][v]);
    }
    if (!kARowsInPlace) a_sliver += MR;
    b_sliver += b_row_stride;
  }

  // Store: C = alpha * acc (+ beta * C). Rows past `rows` are skipped; a vector that is partly past
  // `cols` is loaded and stored masked, one wholly past it is skipped.
  const Reg alpha_v = Vec::broadcast(&alpha);
  const Reg beta_v = Vec::broadcast(&beta);
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r) {
    if (r >= rows) break;
    float* c_row = c + r * ldc;
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) {
      const int lanes = cols - v * kWidth;
      if (lanes <= 0) break;
      Reg result = Vec::mul(alpha_v, acc[r][v]);
      if (lanes >= kWidth) {
        if (beta != 0.0f) result = Vec::fma(beta_v, Vec::load(c_row + v * kWidth), result);
        Vec::store(c_row + v * kWidth, result);
      } else {
        if (beta != 0.0f) result = Vec::fma(beta_v, Vec::load_first(c_row + v * kWidth, lanes), result);
        Vec::store_first(c_row + v * kWidth, result, lanes);
      }
    }
  }
}

}  // namespace
}  // namespace kiln::kernels
