// GEMM ladder, step 02: tiles of A and B staged in shared memory. A block of 32 x 32 threads computes a
// 32 x 32 tile of C, still one element per thread, but it walks K in slices of 32: the block copies a
// 32 x 32 tile of A and one of B into shared memory (each thread one element of each), waits, and every
// thread then runs 32 steps of its dot product out of shared memory.
//
// What changes from step 01: there, every thread read its own row of A and column of B from global
// memory, so each value was requested once by every thread that used it (32 times in a 32-wide tile).
// Here each value is read from global memory once per block and then 32 times from shared memory,
// which is roughly as fast as a register file: global traffic per flop drops by the tile width, 32x, and
// the kernel leaves the memory bound behind for the shared-memory bound that step 03 attacks.
//
// Thread (ty, tx) = (threadIdx.y, threadIdx.x), tx along N as in step 01:
//   loads  As[ty][tx] = A[block_row + ty, k0 + tx]   a warp (one ty) reads 32 contiguous floats of a row of A
//          Bs[ty][tx] = B[k0 + ty, block_col + tx]   and of a row of B: coalesced
//   sums   acc += As[ty][kk] * Bs[kk][tx], kk < 32
//   writes C[block_row + ty, block_col + tx]
// Bank conflicts: shared memory has 32 banks of 4 bytes, float x lands in bank x % 32. In the inner loop
// a warp reads As[ty][kk], one address (a broadcast), and Bs[kk][tx], 32 consecutive floats in 32
// different banks; the stores As[ty][tx] and Bs[ty][tx] are consecutive too. So the plain [32][32] layout
// is conflict-free for this mapping and needs no padding (it would if a warp ran down a column of a tile).
//
// Edges: a tile that runs past M, N or K is zero-filled in shared memory (zeros add nothing to the sums),
// and only threads inside C write. Every thread, inside C or not, takes part in the copies and barriers.
// Block 32 x 32 = 1024 threads, shared memory 2 x 32 x 32 x 4 = 8 KiB. Grid: 1-D, one block per tile of C
// (gridDim.y would stop at 65535).
#include <cstdint>

#include "kernels/gemm/ladder/ladder.hpp"
#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::gemm_ladder {
namespace {
namespace shared_tiled {  // this step's names (its ladder compiles as one unit)

constexpr int kTile = 32;  // BM = BN = BK = 32, and the block is kTile x kTile threads
constexpr int kThreads = kTile * kTile;

// a: A[M, K], b: B[K, N], c: C[M, N], all row-major and dense.
__global__ void __launch_bounds__(kThreads)
    shared_tiled_kernel(int m, int n, int k, float alpha, float beta, const float* __restrict__ a,
                        const float* __restrict__ b, float* __restrict__ c) {
  __shared__ float a_tile[kTile][kTile];  // A[block_row + r, k0 + kk] at a_tile[r][kk]
  __shared__ float b_tile[kTile][kTile];  // B[k0 + kk, block_col + col] at b_tile[kk][col]

  const int tiles_n = (n - 1) / kTile + 1;  // ceil(N / 32), without N + 31 overflowing
  const int block_row = static_cast<int>(blockIdx.x) / tiles_n * kTile;
  const int block_col = static_cast<int>(blockIdx.x) % tiles_n * kTile;
  const int ty = static_cast<int>(threadIdx.y), tx = static_cast<int>(threadIdx.x);
  // Offsets inside the tile are compared with what is left of C, so no index ever passes M or N.
  const int rows_left = m - block_row, cols_left = n - block_col;  // >= 1
  const bool row_inside = ty < rows_left, col_inside = tx < cols_left;

  float acc = 0.0f;
  const int k_tiles = (k - 1) / kTile + 1;
  for (int t = 0; t < k_tiles; ++t) {
    const int k0 = t * kTile, k_left = k - k0;  // k_left >= 1
    // Each thread copies one element of each tile; an index is formed only when it is inside its matrix.
    a_tile[ty][tx] = row_inside && tx < k_left ? a[(block_row + ty) * k + k0 + tx] : 0.0f;
    b_tile[ty][tx] = ty < k_left && col_inside ? b[(k0 + ty) * n + block_col + tx] : 0.0f;
    __syncthreads();  // the tiles have landed before anyone reads them

#pragma unroll
    for (int kk = 0; kk < kTile; ++kk) acc += a_tile[ty][kk] * b_tile[kk][tx];
    __syncthreads();  // everyone has finished reading before the next copy overwrites the tiles
  }

  if (!row_inside || !col_inside) return;
  const int index = (block_row + ty) * n + block_col + tx;
  float result = alpha * acc;
  if (beta != 0.0f) result += beta * c[index];  // beta == 0 never reads C: it may hold NaN
  c[index] = result;
}

}  // namespace shared_tiled
}  // namespace

void launch_02_shared_tiled(const Problem& problem, const float* a, const float* b, float* c) {
  using namespace shared_tiled;
  require_supported("02_shared_tiled", problem, 1);
  // tiles_m * tiles_n <= M * N < 2^31: within gridDim.x's limit of 2^31 - 1.
  const std::int64_t tiles_m = (std::int64_t{problem.m} + kTile - 1) / kTile;
  const std::int64_t tiles_n = (std::int64_t{problem.n} + kTile - 1) / kTile;
  const dim3 block(kTile, kTile);
  ladder::launch("gemm ladder 02_shared_tiled", shared_tiled_kernel, static_cast<unsigned>(tiles_m * tiles_n),
                 block, 0, problem.m, problem.n, problem.k, problem.alpha, problem.beta, a, b, c);
}

}  // namespace kiln::kernels::gemm_ladder
