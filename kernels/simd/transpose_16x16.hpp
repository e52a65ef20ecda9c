// A 16 x 16 float transpose in sixteen zmm registers, for the AVX-512 objects only: transpose_8x8.hpp's
// transpose_matrix takes it for whole 16 x 16 blocks where it is compiled with AVX-512.
//
//   in:  rows[i * row_stride + j], i, j < 16      out: out[j * out_stride + i] = rows[i * row_stride + j]
//
// Four shuffle stages, 64 shuffles for 256 floats where four 8 x 8 transposes take 96, and every load and
// store a whole 64-byte row of 16 floats where the 8 x 8 one moves half-lines:
//   1. unpacklo/hi_ps on rows (2k, 2k + 1): in each 128-bit lane L, elements 4L..4L+1 and 4L+2..4L+3 of the
//      two rows interleaved;
//   2. unpacklo/hi_pd (pairs of floats) on those of rows 4k..4k+3: u[4k + c] holds, in lane L, column
//      4L + c of rows 4k..4k+3;
//   3, 4. for each c, the 4 x 4 transpose of 128-bit lanes of u[c], u[4 + c], u[8 + c], u[12 + c]
//      (shuffle_f32x4): lane L of each is one quarter of output row 4L + c.
// Measured, 1 thread, batch 128, ms, 8 x 8 blocks vs 16 x 16 where they fit: ResNet-20's 16->16 forward at
// 32x32 2.88 vs 2.70, the stride-2 16->32 backward-data 2.86 vs 2.56, all 15 Winograd passes 29.6 vs 28.9;
// a training step moves within the noise (1 thread 149 vs 145, 2 threads 91.6 vs 90.2, means of three
// alternating runs).
#pragma once

#ifdef __AVX512F__

#include <cstdint>

#include "kernels/simd/intrinsics.hpp"  // <immintrin.h>

namespace kiln::kernels {
namespace {

inline void transpose_16x16(const float* rows, std::int64_t row_stride, float* out, std::int64_t out_stride) {
  __m512 r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(rows + i * row_stride);
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  __m512 u[16];
  for (int i = 0; i < 16; i += 4) {
    const __m512d t0 = _mm512_castps_pd(t[i]), t1 = _mm512_castps_pd(t[i + 1]);
    const __m512d t2 = _mm512_castps_pd(t[i + 2]), t3 = _mm512_castps_pd(t[i + 3]);
    u[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int c = 0; c < 4; ++c) {
    // Lanes (0, 1) and (2, 3) of rows 0-3 with rows 4-7's, and of rows 8-11 with rows 12-15's ...
    const __m512 low_front = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);
    const __m512 high_front = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
    const __m512 low_back = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
    const __m512 high_back = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
    // ... then the even and the odd lanes of each pair: output rows c, 4 + c, 8 + c, 12 + c.
    _mm512_storeu_ps(out + c * out_stride, _mm512_shuffle_f32x4(low_front, low_back, 0x88));
    _mm512_storeu_ps(out + (4 + c) * out_stride, _mm512_shuffle_f32x4(low_front, low_back, 0xDD));
    _mm512_storeu_ps(out + (8 + c) * out_stride, _mm512_shuffle_f32x4(high_front, high_back, 0x88));
    _mm512_storeu_ps(out + (12 + c) * out_stride, _mm512_shuffle_f32x4(high_front, high_back, 0xDD));
  }
}

}  // namespace
}  // namespace kiln::kernels

#endif  // __AVX512F__
