// The epilogue the GEMM ladder's tensor-core steps (05-10) share: two horizontally adjacent accumulators
// into C. Their accumulator layouts (mma.sync's 16 x 8, and wgmma's, which repeats it) give every thread
// pairs of adjacent columns, c[row, col] and c[row, col + 1] with col even; and, for the wgmma steps (08-10),
// a warpgroup's whole accumulator tile. Included by the step files only.
#pragma once

#include <cstdint>

namespace kiln::kernels::gemm_ladder {

// c[row, col] and c[row, col + 1] (where col + 1 < n) = alpha * acc + beta * c_old, c_old read only when
// beta != 0 (BLAS: C may hold NaN then). One 8-byte store when both columns exist and the address allows it
// (n odd puts odd rows off 8 bytes), else one or two scalars. Nothing outside [m, n].
__device__ __forceinline__ void store_pair(float* c, int m, int n, int row, int col, float acc0, float acc1,
                                           float alpha, float beta) {
  if (row >= m || col >= n) return;
  float* out = c + row * n + col;  // row * n + col < M * N < 2^31
  const bool pair = col + 1 < n;
  if (pair && reinterpret_cast<std::uintptr_t>(out) % sizeof(float2) == 0) {
    float2 value = make_float2(alpha * acc0, alpha * acc1);
    if (beta != 0.0f) {
      const float2 old = *reinterpret_cast<const float2*>(out);
      value.x += beta * old.x;
      value.y += beta * old.y;
    }
    *reinterpret_cast<float2*>(out) = value;
    return;
  }
  out[0] = alpha * acc0 + (beta != 0.0f ? beta * out[0] : 0.0f);
  if (pair) out[1] = alpha * acc1 + (beta != 0.0f ? beta * out[1] : 0.0f);
}

// A warpgroup's 64 x 2*N tile of C at rows row0.. and columns col0.., from its two m64nN accumulator halves
// (steps 08-10: N = 128, two halves across a 256-column block tile). acc[h][i] is (row 16 warp + group +
// 8 ((i / 2) % 2), col N h + 8 (i / 4) + 2 quad + i % 2) of the tile (wgmma.cuh), with warp, group and quad
// taken from `thread`, the thread's index in its warpgroup.
template <int N>
__device__ __forceinline__ void store_warpgroup_tile(float* c, int m, int n, int row0, int col0, int thread,
                                                     const float (&acc)[2][N / 2], float alpha, float beta) {
  const int warp = thread / 32, lane = thread % 32;
  const int group = lane / 4, quad = lane % 4;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
#pragma unroll
    for (int i = 0; i < N / 2; i += 2) {
      const int row = row0 + 16 * warp + group + 8 * ((i / 2) % 2);
      const int col = col0 + N * h + 8 * (i / 4) + 2 * quad;
      store_pair(c, m, n, row, col, acc[h][i], acc[h][i + 1], alpha, beta);
    }
  }
}

}  // namespace kiln::kernels::gemm_ladder
