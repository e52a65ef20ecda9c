// Packing: copying a block of op(A) or op(B) into the order the micro-kernel reads it.
//
// The micro-kernel walks k = 0 .. KC-1 and at each k reads MR consecutive floats of A (one per row of
// the C tile) and NR consecutive floats of B (one per column). Packing lays each operand out in exactly
// that order, as slivers:
//
//   A sliver [KC][MR]: element (p, r) = op(A)[i0 + r, p0 + p]       (MR rows of the A block)
//   B sliver [KC][NR]: element (p, j) = op(B)[p0 + p, j0 + j]       (NR columns of the B panel)
//
// so the kernel's loads are unit-stride and never cross a page or a cache line it does not use. Both are
// the same operation, "gather R lines of length KC and interleave them", which is `pack_sliver` below.
// Transposes and leading dimensions only change the two source strides, so they cost nothing here:
//
//   op(A)[i, p] = a[i * lda + p]       or, when trans_a,   a[p * lda + i]
//   op(B)[p, j] = b[p * ldb + j]       or, when trans_b,   b[j * ldb + p]
//
// Rows (columns) past the end of the matrix are packed as zeros, so the kernel always computes a full
// MR x NR tile and only its stores are trimmed.
//
// This header (which uses AVX through transpose_8x8.hpp) is included by avx512.cpp and avx2.cpp, each
// compiled for its own instruction set. Its functions are in an unnamed namespace so that each file keeps its
// own copy: with external linkage the linker would keep one of the two, possibly the AVX-512 one, for both.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/gemm/gemm.hpp"
#include "kernels/simd/transpose_8x8.hpp"

namespace kiln::kernels {
namespace {

// A strided view of a matrix operand: element (line, p) is at data[line * line_stride + p * depth_stride],
// where `line` runs along M (for A) or N (for B) and p along K. With the depth in blocks
// (GemmGeometry::depth_block > 0), p * depth_stride becomes (p / depth_block) * depth_block_stride +
// (p % depth_block) * depth_stride.
struct OperandLayout {
  const float* data;
  std::int64_t line_stride;
  std::int64_t depth_stride;
  std::int64_t depth_block = 0, depth_block_stride = 0;
};

inline OperandLayout layout_of_a(const float* a, const GemmGeometry& g) {
  return g.trans_a ? OperandLayout{a, 1, g.lda, g.depth_block, g.a_depth_block_stride}
                   : OperandLayout{a, g.lda, 1, g.depth_block, g.a_depth_block_stride};
}

inline OperandLayout layout_of_b(const float* b, const GemmGeometry& g) {
  return g.trans_b ? OperandLayout{b, g.ldb, 1, g.depth_block, g.b_depth_block_stride}
                   : OperandLayout{b, 1, g.ldb, g.depth_block, g.b_depth_block_stride};
}

// Packs lines [line0, line0 + lines) x depth [p0, p0 + kc) into dst[kc][R], zero-filling lines >= `lines`
// (lines <= R). The loop order follows the source's unit stride, so reads are always contiguous.
//
// With the depth in blocks, a run of one block's depth at a time: each is a plain strided piece from its
// block's start, packed into its rows of dst, so dst holds what packing the images side by side would give.
template <int R>
void pack_sliver(const OperandLayout& src, std::int64_t line0, int lines, std::int64_t p0, std::int64_t kc,
                 float* dst) {
  if (src.depth_block > 0) {
    for (std::int64_t p = p0; p < p0 + kc;) {
      const std::int64_t within = p % src.depth_block, run = std::min(p0 + kc - p, src.depth_block - within);
      const OperandLayout block{src.data + (p / src.depth_block) * src.depth_block_stride, src.line_stride,
                                src.depth_stride};
      pack_sliver<R>(block, line0, lines, within, run, dst + (p - p0) * R);
      p += run;
    }
    return;
  }
  const float* origin = src.data + line0 * src.line_stride + p0 * src.depth_stride;
  if (src.line_stride == 1 && lines == R) {
    // The R values of one k are contiguous in the source: a straight copy of R floats per k.
    for (std::int64_t p = 0; p < kc; ++p) {
      const float* from = origin + p * src.depth_stride;
      float* to = dst + p * R;
      for (int r = 0; r < R; ++r) to[r] = from[r];
    }
    return;
  }
  if (src.line_stride == 1) {
    for (std::int64_t p = 0; p < kc; ++p) {
      const float* from = origin + p * src.depth_stride;
      float* to = dst + p * R;
      for (int r = 0; r < lines; ++r) to[r] = from[r];
      for (int r = lines; r < R; ++r) to[r] = 0.0f;
    }
    return;
  }
  // Each line is contiguous along k: transpose 8 lines x 8 k at a time in registers. This is the packing
  // of op(B) for backward-weight (gW = gy col^T, B stored [N, K]), where M = 16 uses each packed B
  // element only 16 times, so a scalar transpose would cost as much as the multiply.
  int r = 0;
  if (src.depth_stride == 1) {
    for (; r + 8 <= lines; r += 8) {
      const float* from = origin + r * src.line_stride;
      std::int64_t p = 0;
      for (; p + 8 <= kc; p += 8) transpose_8x8(from + p, src.line_stride, dst + p * R + r, R);
      // A run of 4 to 7 (a 2x2 image's block of the depth, GemmGeometry::depth_block): 4 at a time.
      for (; p + 4 <= kc; p += 4) transpose_8x4(from + p, src.line_stride, dst + p * R + r, R);
      for (; p < kc; ++p) {
        for (int i = 0; i < 8; ++i) dst[p * R + r + i] = from[i * src.line_stride + p];
      }
    }
  }
  // The remaining lines (or a general stride): read a line, write it with stride R into the sliver.
  for (; r < lines; ++r) {
    const float* from = origin + r * src.line_stride;
    for (std::int64_t p = 0; p < kc; ++p) dst[p * R + r] = from[p * src.depth_stride];
  }
  for (int padding = lines; padding < R; ++padding) {
    for (std::int64_t p = 0; p < kc; ++p) dst[p * R + padding] = 0.0f;
  }
}

// to[0..n) = from[0..n) when beta == 0 (to is not read), else fma(beta, to, from): the micro-kernel's own
// store, in whole vectors, then 4 floats at a time (SSE), then one.
template <typename Vec>
[[gnu::always_inline]] inline void move_run(const float* from, float* to, int n, float beta) {
  int i = 0;
  for (; i + Vec::width <= n; i += Vec::width) {
    typename Vec::Reg r = Vec::load(from + i);
    if (beta != 0.0f) r = Vec::fma(Vec::broadcast(&beta), Vec::load(to + i), r);
    Vec::store(to + i, r);
  }
  for (; i + 4 <= n; i += 4) {
    __m128 r = _mm_loadu_ps(from + i);
    if (beta != 0.0f) r = _mm_fmadd_ps(_mm_set1_ps(beta), _mm_loadu_ps(to + i), r);
    _mm_storeu_ps(to + i, r);
  }
  for (; i < n; ++i) to[i] = beta == 0.0f ? from[i] : std::fma(beta, to[i], from[i]);
}

// move_run on `rows` runs of n floats, from_stride and to_stride apart. The runs of the common blocks (4
// floats: a 2x2 image; 8; 16: a 4x4) get a loop with n fixed, which the compiler turns into bare vector
// moves; with n variable the loop's bookkeeping outweighed the moves (1024 x 512 x 1024 in blocks of 4, 2
// threads: 308 GFLOP/s so, 378 with n fixed, 383 in plain columns).
template <typename Vec>
void move_runs(const float* from, std::int64_t from_stride, float* to, std::int64_t to_stride,
               std::int64_t rows, int n, float beta) {
  const auto each = [&](auto run) {
    for (std::int64_t r = 0; r < rows; ++r)
      move_run<Vec>(from + r * from_stride, to + r * to_stride, run, beta);
  };
  switch (n) {
    case 4:
      return each(std::integral_constant<int, 4>{});
    case 8:
      return each(std::integral_constant<int, 8>{});
    case 16:
      return each(std::integral_constant<int, 16>{});
    default:
      return each(n);
  }
}

// Packs columns [j0, j0 + cols) x depth [p0, p0 + kc) of op(B) = B [K, N] whose columns are in blocks
// (GemmGeometry::column_block; trans_b false) into dst[kc][R], zero-filling columns >= `cols`. A sliver
// may cross from one block into the next (R = 32 columns of 16-pixel images are two images): it goes a run of
// consecutive columns of one block at a time, each run contiguous in every row of B.
template <typename Vec, int R>
void pack_blocked_sliver(const float* b, const GemmGeometry& g, std::int64_t j0, int cols, std::int64_t p0,
                         std::int64_t kc, float* dst) {
  std::int64_t block = j0 / g.column_block, within = j0 % g.column_block;  // then block by block
  for (int r = 0; r < cols; ++block, within = 0) {
    const int run = static_cast<int>(std::min<std::int64_t>(cols - r, g.column_block - within));
    const float* from = b + p0 * g.ldb + block * g.b_column_block_stride + within;
    move_runs<Vec>(from, g.ldb, dst + r, R, kc, run, 0.0f);
    r += run;
  }
  for (std::int64_t p = 0; p < kc; ++p) {
    for (int r = cols; r < R; ++r) dst[p * R + r] = 0.0f;
  }
}

}  // namespace
}  // namespace kiln::kernels
