// An 8 x 8 float transpose in eight ymm registers (AVX, so usable from both the AVX2 and the AVX-512
// files), and a whole matrix transposed through it (in the AVX-512 files, through transpose_16x16.hpp's
// 16 x 16 one first). The GEMM packs with it a sliver whose source lines run
// along K (op(B) when trans_b, op(A) when not trans_a): the micro-kernel wants the R values of one k
// together, the source has the kc values of one line together. The direct convolution's weight gradient and
// Winograd's channels-last copies go between NCHW and channels-last with transpose_matrix.
//
//   in:  rows[i * row_stride + j], i, j < 8      out: out[j * out_stride + i] = rows[i * row_stride + j]
//
// Three shuffle stages (interleave pairs of rows, then pairs of pairs, then swap 128-bit halves), 24
// shuffles for 64 floats, against 64 scalar loads and 64 scalar stores for the plain loop.
#pragma once

#include <cstdint>

#include "kernels/simd/intrinsics.hpp"  // <immintrin.h>
#include "kernels/simd/transpose_16x16.hpp"

namespace kiln::kernels {
namespace {

// The transpose itself, in registers: columns[j] holds element j of r[0], ..., r[7]. (The bfloat16 GEMM
// transposes 32-bit pairs of bfloat16 through it, as floats.)
inline void transpose_8x8(const __m256 r[8], __m256 columns[8]) {
  // t: (r0 r1) and (r2 r3) interleaved within each 128-bit half: t0 = a0 b0 a1 b1 | a4 b4 a5 b5, ...
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  // u: four rows' element j side by side in each half: u0 = a0 b0 c0 d0 | a4 b4 c4 d4, ...
  __m256 u[8];
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  // Lower halves of rows 0-3 and 4-7 give columns 0-3, upper halves columns 4-7.
  for (int j = 0; j < 4; ++j) {
    columns[j] = _mm256_permute2f128_ps(u[j], u[j + 4], 0x20);
    columns[j + 4] = _mm256_permute2f128_ps(u[j], u[j + 4], 0x31);
  }
}

inline void transpose_8x8(const float* rows, std::int64_t row_stride, float* out, std::int64_t out_stride) {
  __m256 r[8], columns[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(rows + i * row_stride);
  transpose_8x8(r, columns);
  for (int j = 0; j < 8; ++j) _mm256_storeu_ps(out + j * out_stride, columns[j]);
}

// out[j * out_stride + i] = rows[i * row_stride + j] for i < 8, j < 4: eight rows of 4 into four of 8, two
// 4 x 4 register transposes side by side. (The GEMM packs a 2x2 image's run of 4 depth indices so.)
inline void transpose_8x4(const float* rows, std::int64_t row_stride, float* out, std::int64_t out_stride) {
  __m128 low[4], high[4];  // rows 0-3 and 4-7
  for (int i = 0; i < 4; ++i) {
    low[i] = _mm_loadu_ps(rows + i * row_stride);
    high[i] = _mm_loadu_ps(rows + (i + 4) * row_stride);
  }
  _MM_TRANSPOSE4_PS(low[0], low[1], low[2], low[3]);  // low[j] = rows 0-3's element j
  _MM_TRANSPOSE4_PS(high[0], high[1], high[2], high[3]);
  for (int j = 0; j < 4; ++j) {
    _mm_storeu_ps(out + j * out_stride, low[j]);
    _mm_storeu_ps(out + j * out_stride + 4, high[j]);
  }
}

// out[j * out_stride + i] = in[i * in_stride + j] for i < count, first_column <= j < width: 8 x 8 blocks
// through the register transpose, the ragged edges one float at a time.
inline void transpose_by_8(const float* in, std::int64_t in_stride, std::int64_t count,
                           std::int64_t first_column, std::int64_t width, float* out,
                           std::int64_t out_stride) {
  const std::int64_t block_count = count / 8 * 8;
  const std::int64_t block_end = first_column + (width - first_column) / 8 * 8;
  for (std::int64_t i = 0; i < block_count; i += 8) {
    for (std::int64_t j = first_column; j < block_end; j += 8)
      transpose_8x8(in + i * in_stride + j, in_stride, out + j * out_stride + i, out_stride);
  }
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t first_j = i < block_count ? block_end : first_column;
    for (std::int64_t j = first_j; j < width; ++j) out[j * out_stride + i] = in[i * in_stride + j];
  }
}

// out[j * out_stride + i] = in[i * in_stride + j] for i < count, j < width. Compiled with AVX-512, whole
// 16 x 16 blocks go through transpose_16x16.hpp's transpose and what is left by 8 x 8; otherwise all by 8.
inline void transpose_matrix(const float* in, std::int64_t in_stride, std::int64_t count, std::int64_t width,
                             float* out, std::int64_t out_stride) {
#ifdef __AVX512F__
  const std::int64_t block_count = count / 16 * 16, block_width = width / 16 * 16;
  for (std::int64_t i = 0; i < block_count; i += 16) {
    for (std::int64_t j = 0; j < block_width; j += 16)
      transpose_16x16(in + i * in_stride + j, in_stride, out + j * out_stride + i, out_stride);
  }
  // The columns right of the blocks in their rows, then every column of the rows below them.
  transpose_by_8(in, in_stride, block_count, block_width, width, out, out_stride);
  transpose_by_8(in + block_count * in_stride, in_stride, count - block_count, 0, width, out + block_count,
                 out_stride);
#else
  transpose_by_8(in, in_stride, count, 0, width, out, out_stride);
#endif
}

}  // namespace
}  // namespace kiln::kernels
