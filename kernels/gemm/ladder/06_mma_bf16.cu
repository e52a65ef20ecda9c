// GEMM ladder, step 06: bfloat16 tensor cores fed by ldmatrix and a three-stage cp.async pipeline.
// C[M, N] = alpha * A[M, K] * B[K, N] + beta * C, A and B bfloat16, products exact in float, sums in float.
//
// The idea. Step 05 made the tensor cores do the multiplies and spent the rest of its effort feeding them.
// This step feeds them better, three ways:
//   - bfloat16 operands: half the bytes of float per element, so every copy (global -> shared) and every
//     fragment load (shared -> registers) moves twice the elements, and mma.sync.m16n8k16 does 2048
//     multiply-adds per instruction (m16n8k8 TF32: 1024) at twice TF32's rate per tensor core;
//   - ldmatrix: one warp instruction loads four 8 x 8 matrices of 16-bit elements from shared memory and
//     hands every lane exactly its fragment registers (mma.cuh). One ldmatrix_x4 gives a whole 16 x 16 A
//     fragment, one ldmatrix_x4_trans the B fragments of two 16 x 8 mma tiles, transposing B's [k][n] rows
//     on the way. Step 05 spent 8 32-bit loads and 8 conversions per lane on the 16 x 16 block of A that one
//     ldmatrix_x4 delivers here;
//   - three buffers, not two: k-tiles t + 1 and t + 2 are in flight while the warps compute on k-tile t, so a
//     copy has two k-tiles' compute time to land, not one; global latency is better hidden.
//
// Tiling. The block tile is BM x BN x BK = 128 x 128 x 32, 256 threads (8 warps) in a 2 x 4 grid of warps
// (M by N); each warp owns a 64 x 32 warp tile of C, a 4 x 4 grid of 16 x 8 mma tiles: 64 float accumulators
// per lane. Per k-tile the warp takes two steps of k = 16, each 4 ldmatrix_x4 (A, one per 16-row mma tile),
// 2 ldmatrix_x4_trans (B, one per pair of 8-column mma tiles) and 16 mma.sync.
//
// Shared memory (dynamic, 56,832 bytes, over the 48 KiB static limit: cudaFuncSetAttribute), three stages of
//   As[128][40]  A's tile, [m][k]: 32 bfloat16 of k + 8 of padding per row (80 bytes; 10,240 per stage)
//   Bs[32][136]  B's tile, [k][n]: 128 of n + 8 of padding per row          (272 bytes; 8,704 per stage)
// Why those pads. ldmatrix reads each 8 x 8 matrix as 8 rows of 16 bytes, named by 8 lanes; shared memory
// serves 128 bytes (32 banks of 4) per cycle, so the 8 rows are conflict-free exactly when they fall in 8
// distinct 16-byte slots modulo 128 bytes. Each matrix is 8 consecutive rows of the tile at one column, so
// slot(r) = (r * row_bytes / 16) mod 8:
//   As, 80-byte rows:  5 r mod 8 = 0, 5, 2, 7, 4, 1, 6, 3 for r = 0..7: distinct (5 is odd).
//     Unpadded, 64-byte rows give 4 r mod 8 = 0, 4, 0, 4...: 4-way conflicts.
//   Bs, 272-byte rows: 17 r mod 8 = r: distinct.
//     Unpadded, 256-byte rows give 16 r mod 8 = 0: 8-way conflicts.
// Row lengths stay multiples of 16 bytes, as cp.async and ldmatrix need. (An XOR swizzle of the 16-byte
// columns does the same without the padding bytes; padding is the simpler to read.)
//
// The pipeline (kStages = 3; one __syncthreads per k-tile; cp_async_wait<kStages - 2>):
//   prologue      copy k-tiles 0 and 1 into stages 0 and 1, one commit group each
//   for t = 0 .. tiles-1 (steady state):
//     cp_async_wait<1>   all but my newest group have landed: k-tile t is here, k-tile t + 1 may still fly
//     __syncthreads()    every thread's copies of k-tile t are visible; and every warp has finished k-tile
//                        t - 1, so its stage, (t + 2) % 3, is free
//     copy k-tile t + 2 into stage (t + 2) % 3; commit (an empty group when t + 2 >= tiles, so the count of
//                        groups, and with it the meaning of wait<1>, stays the same every iteration)
//     compute on stage t % 3, while k-tiles t + 1 and t + 2 land
//   drain         the last two iterations copy nothing (their groups are empty) and compute on what is
//                 already in flight; no copy is outstanding when the kernel ends.
// Counting: before the wait of iteration t, 2 + t groups are committed (k-tiles 0 .. t + 1); wait<1> leaves
// at most the newest (k-tile t + 1) in flight, so k-tile t has landed.
//
// Edges. Any M, K, N >= 1 with K % 8 == 0 and N % 8 == 0 (alignment 8: each 16-byte copy is 8 bfloat16 of one
// row, all inside the matrix or all outside). Copies outside the matrix write zeros (cp.async, in_bounds
// false), the stores are predicated on row < M and col < N, and beta == 0 never reads C.
//
// Blocks. A 1-D grid of ceil(M / 128) * ceil(N / 128) blocks, consecutive blocks along N (they share A's
// row panel in L2); a 2-D grid would cap either count at 65,535.
#include <climits>
#include <cstdint>

#include "core/bfloat16.hpp"
#include "core/error.hpp"
#include "kernels/gemm/ladder/ladder.hpp"
#include "kernels/gemm/ladder/store_pair.cuh"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mma.cuh"

namespace kiln::kernels::gemm_ladder {
namespace {
namespace mma_bf16 {  // this step's names (its ladder compiles as one unit)

using ladder::cp_async_16;
using ladder::cp_async_commit;
using ladder::cp_async_wait;
using ladder::ldmatrix_x4;
using ladder::ldmatrix_x4_trans;
using ladder::mma_m16n8k16_bf16;

constexpr int kBlockM = 128, kBlockN = 128, kBlockK = 32;  // the block tile
constexpr int kWarpsM = 2, kWarpsN = 4;                    // 8 warps, 2 x 4 over the block tile
constexpr int kThreads = kWarpsM * kWarpsN * 32;           // 256
constexpr int kWarpM = kBlockM / kWarpsM;                  // 64: the warp tile
constexpr int kWarpN = kBlockN / kWarpsN;                  // 32
constexpr int kMmaM = 16, kMmaN = 8, kMmaK = 16;           // one mma.sync.m16n8k16
constexpr int kTilesM = kWarpM / kMmaM;                    // 4 mma tiles down the warp tile
constexpr int kTilesN = kWarpN / kMmaN;                    // 4 across
constexpr int kStages = 3;                                 // k-tiles t, t + 1, t + 2 resident

constexpr int kStrideA = kBlockK + 8;                // 40 bfloat16 (80 bytes) per As row
constexpr int kStrideB = kBlockN + 8;                // 136 bfloat16 (272 bytes) per Bs row
constexpr int kStageElementsA = kBlockM * kStrideA;  // 5,120
constexpr int kStageElementsB = kBlockK * kStrideB;  // 4,352
constexpr int kSharedBytes =
    kStages * (kStageElementsA + kStageElementsB) * static_cast<int>(sizeof(bfloat16));  // 56,832

// The 16-byte copies (8 bfloat16) of one k-tile, spread over the block's threads.
constexpr int kChunksPerRowA = kBlockK / 8;                    // 4 per row of As
constexpr int kChunksPerRowB = kBlockN / 8;                    // 16 per row of Bs
constexpr int kCopiesA = kBlockM * kChunksPerRowA / kThreads;  // 2 per thread
constexpr int kCopiesB = kBlockK * kChunksPerRowB / kThreads;  // 2 per thread
static_assert(sizeof(bfloat16) == 2);
static_assert(kBlockM * kChunksPerRowA % kThreads == 0 && kBlockK * kChunksPerRowB % kThreads == 0);
static_assert(kStrideA % 8 == 0 && kStrideB % 8 == 0, "rows of 16 bytes, for cp.async and ldmatrix");
static_assert((kStrideA / 8) % 2 == 1 && (kStrideB / 8) % 2 == 1, "odd 16-byte slots per row: see the top");
static_assert(kBlockK % kMmaK == 0 && kTilesN % 2 == 0 && kStages >= 2);

// One block computes the 128 x 128 tile of C at (tile_m, tile_n), tile = tile_m * tiles_n + tile_n.
// a [m, k], b [k, n] bfloat16, c [m, n] float, row-major, k % 8 == 0, n % 8 == 0, a and b 16-byte aligned.
// __launch_bounds__(256, 2): at most 128 registers a thread, so that two blocks (16 warps) share an SM.
__global__ void __launch_bounds__(kThreads, 2)
    mma_bf16_kernel(int m, int n, int k, float alpha, const bfloat16* __restrict__ a,
                    const bfloat16* __restrict__ b, float beta, float* __restrict__ c, int tiles_n) {
  KILN_DYNAMIC_SHARED_MEMORY(shared_bytes);
  bfloat16* const as = reinterpret_cast<bfloat16*>(shared_bytes);  // [kStages][kBlockM][kStrideA]
  bfloat16* const bs = as + kStages * kStageElementsA;             // [kStages][kBlockK][kStrideB]

  const int block_row = (static_cast<int>(blockIdx.x) / tiles_n) * kBlockM;
  const int block_col = (static_cast<int>(blockIdx.x) % tiles_n) * kBlockN;
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32, lane = tid % 32;
  const int warp_row = (warp / kWarpsN) * kWarpM;  // the warp tile's origin in the block tile
  const int warp_col = (warp % kWarpsN) * kWarpN;

  // Copies k-tile [k0, k0 + 32) of A's rows and B's columns into stage `stage`. Thread tid copies
  //   As rows tid / 4 + 64 i (i < 2), elements 8 (tid % 4) .. + 7: 4 threads per 64-byte row segment;
  //   Bs rows tid / 16 + 16 i (i < 2), elements 8 (tid % 16) .. + 7: 16 threads per 256-byte row segment.
  // Chunks outside the matrix are zero-filled; their source is the matrix's base, never read.
  const auto copy_tile = [&](int stage, int k0) {
    bfloat16* const as_stage = as + stage * kStageElementsA;
    bfloat16* const bs_stage = bs + stage * kStageElementsB;
#pragma unroll
    for (int i = 0; i < kCopiesA; ++i) {
      const int row = tid / kChunksPerRowA + i * (kThreads / kChunksPerRowA),
                col = 8 * (tid % kChunksPerRowA);
      const int global_row = block_row + row, global_col = k0 + col;
      const bool inside = global_row < m && global_col < k;
      cp_async_16(as_stage + row * kStrideA + col, inside ? a + global_row * k + global_col : a, inside);
    }
#pragma unroll
    for (int i = 0; i < kCopiesB; ++i) {
      const int row = tid / kChunksPerRowB + i * (kThreads / kChunksPerRowB),
                col = 8 * (tid % kChunksPerRowB);
      const int global_row = k0 + row, global_col = block_col + col;
      const bool inside = global_row < k && global_col < n;
      cp_async_16(bs_stage + row * kStrideB + col, inside ? b + global_row * n + global_col : b, inside);
    }
  };

  // acc[i][j]: the 16 x 8 mma tile at rows warp_row + 16 i, cols warp_col + 8 j; c[0..3] as in mma.cuh.
  float acc[kTilesM][kTilesN][4] = {};

  // The rows this lane names to ldmatrix (mma.cuh), as offsets in a stage:
  //   A, ldmatrix_x4 of the 16 x 16 block at (row r0, col k0): lane l names row r0 + l % 16, columns from
  //     k0 + 8 (l / 16); its r[0..3] are a[0..3] of m16n8k16.
  //   B, ldmatrix_x4_trans of the 16 x 16 block at (row k0, col n0): lane l names row k0 + l % 16, columns
  //     from n0 + 8 (l / 16); r[0], r[1] are b[0], b[1] of the mma tile of cols n0 .. n0 + 7, r[2], r[3]
  //     those of cols n0 + 8 .. n0 + 15.
  // Both addresses are multiples of 16 bytes: rows of 80 and 272 bytes, columns multiples of 8 elements.
  const int a_lane_offset = (warp_row + lane % 16) * kStrideA + 8 * (lane / 16);  // + (16 i) rows, + kk cols
  const int b_lane_offset = (lane % 16) * kStrideB + warp_col + 8 * (lane / 16);  // + kk rows, + (16 p) cols

  const int k_tiles = (k + kBlockK - 1) / kBlockK;

  // Prologue: k-tiles 0 .. kStages - 2 in flight, one group each (empty where the tile does not exist).
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) copy_tile(s, s * kBlockK);
    cp_async_commit();
  }

  for (int t = 0; t < k_tiles; ++t) {
    cp_async_wait<kStages - 2>();  // my copies of k-tile t have landed (see the counting at the top)
    __syncthreads();               // everyone's have; and everyone is done with k-tile t - 1's stage
    const int next = t + kStages - 1;
    if (next < k_tiles) copy_tile(next % kStages, next * kBlockK);  // into k-tile t - 1's stage
    cp_async_commit();                                              // empty in the drain: keeps the count

    const bfloat16* const as_stage = as + (t % kStages) * kStageElementsA;
    const bfloat16* const bs_stage = bs + (t % kStages) * kStageElementsB;
#pragma unroll
    for (int kk = 0; kk < kBlockK; kk += kMmaK) {
      // B fragments of the 4 mma tiles across, two per ldmatrix_x4_trans: pair p covers cols
      // warp_col + 16 p .. + 15, rows kk .. kk + 15.
      std::uint32_t b_frag[kTilesN][2];
#pragma unroll
      for (int p = 0; p < kTilesN / 2; ++p) {
        std::uint32_t r[4];
        ldmatrix_x4_trans(r, bs_stage + b_lane_offset + kk * kStrideB + p * 2 * kMmaN);
        b_frag[2 * p][0] = r[0];      // mma tile 2p:     rows kk + 2 thread + {0, 1}, col group
        b_frag[2 * p][1] = r[1];      //                  rows kk + 8 + 2 thread + {0, 1}
        b_frag[2 * p + 1][0] = r[2];  // mma tile 2p + 1: the same, cols 8 further
        b_frag[2 * p + 1][1] = r[3];
      }
      // A fragment of mma tile i (rows warp_row + 16 i .. + 15, cols kk .. kk + 15), one ldmatrix_x4 each,
      // used at once by the row of 4 mma.sync: 4 registers live, not 16.
#pragma unroll
      for (int i = 0; i < kTilesM; ++i) {
        std::uint32_t a_frag[4];
        ldmatrix_x4(a_frag, as_stage + a_lane_offset + i * kMmaM * kStrideA + kk);
#pragma unroll
        for (int j = 0; j < kTilesN; ++j) mma_m16n8k16_bf16(acc[i][j], a_frag, b_frag[j]);
      }
    }
  }

  // The accumulators, from mma.cuh: c[0], c[1] = (row group, cols 2 thread + {0, 1}), c[2], c[3] = (row
  // group + 8, same cols), in the 16 x 8 tile at (warp_row + 16 i, warp_col + 8 j) of the block tile.
  const int group = lane / 4, thread = lane % 4;
#pragma unroll
  for (int i = 0; i < kTilesM; ++i) {
    const int row = block_row + warp_row + i * kMmaM + group;
#pragma unroll
    for (int j = 0; j < kTilesN; ++j) {
      const int col = block_col + warp_col + j * kMmaN + 2 * thread;
      store_pair(c, m, n, row, col, acc[i][j][0], acc[i][j][1], alpha, beta);
      store_pair(c, m, n, row + 8, col, acc[i][j][2], acc[i][j][3], alpha, beta);
    }
  }
}

}  // namespace mma_bf16
}  // namespace

void launch_06_mma_bf16(const Problem& problem, const bfloat16* a, const bfloat16* b, float* c) {
  using namespace mma_bf16;
  require_supported("06_mma_bf16", problem, 8);
  require_16_byte_operands("06_mma_bf16", a, b, c);
  const std::int64_t tiles_m = (problem.m + kBlockM - 1) / kBlockM,
                     tiles_n = (problem.n + kBlockN - 1) / kBlockN;
  KILN_CHECK(tiles_m * tiles_n <= INT_MAX, "gemm ladder 06_mma_bf16: too many tiles");  // < M * N, never
  ladder::launch("gemm ladder 06_mma_bf16", mma_bf16_kernel, dim3(static_cast<unsigned>(tiles_m * tiles_n)),
                 dim3(kThreads), kSharedBytes, problem.m, problem.n, problem.k, problem.alpha, a, b,
                 problem.beta, c, static_cast<int>(tiles_n));
}

}  // namespace kiln::kernels::gemm_ladder
