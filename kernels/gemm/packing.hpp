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

#include <algorithm>
#include <cstdint>

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

// Packs columns [j0, j0 + cols) x depth [p0, p0 + kc) of op(B) = B [K, N] whose columns are in blocks
// (GemmGeometry::column_block; trans_b false) into dst[kc][R], zero-filling columns >= `cols`. A sliver
// may cross from one block into the next (R = 32 columns of 16-pixel images are two images): it goes a run of
// consecutive columns of one block at a time, each run contiguous in every row of B.
template <int R>
void pack_blocked_sliver(const float* b, const GemmGeometry& g, std::int64_t j0, int cols, std::int64_t p0,
                         std::int64_t kc, float* dst) {
  for (int r = 0; r < cols;) {
    const std::int64_t j = j0 + r;
    const int run = static_cast<int>(
        std::min<std::int64_t>(cols - r, g.column_block - j % g.column_block));  // to the block's end
    const float* from = b + p0 * g.ldb + g.b_column(j);
    for (std::int64_t p = 0; p < kc; ++p) {
      for (int i = 0; i < run; ++i) dst[p * R + r + i] = from[p * g.ldb + i];
    }
    r += run;
  }
  for (std::int64_t p = 0; p < kc; ++p) {
    for (int r = cols; r < R; ++r) dst[p * R + r] = 0.0f;
  }
}

}  // namespace
}  // namespace kiln::kernels
