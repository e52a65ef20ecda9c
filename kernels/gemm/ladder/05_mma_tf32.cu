// GEMM ladder, step 05: tensor cores. C[M, N] = alpha * A[M, K] * B[K, N] + beta * C, A and B float read as
// TF32, sums in float.
//
// The idea. Steps 01-04 multiply on the SIMT cores, one fused multiply-add per thread per instruction. A
// tensor core multiplies whole tiles: one warp-wide mma.sync.m16n8k8 does 16 x 8 x 8 = 1024 multiply-adds
// from registers the warp holds as "fragments" (kernels/ladder/mma.cuh writes out which lane holds which
// element). On an H100 the TF32 tensor cores have several times the float throughput of the SIMT cores, so
// once the multiplies are cheap the kernel's job becomes feeding them: the global -> shared copies and the
// shared -> register fragment loads must keep up. Two changes from step 04 do that:
//   - the copies are asynchronous (cp.async, 16 bytes, kernels/ladder/cp_async.cuh) and double-buffered:
//     while the warps compute on k-tile t in one shared buffer, the copies of k-tile t + 1 land in the
//     other, so global latency hides behind the math and no registers stage the copy;
//   - the shared arrays are padded so that every fragment load of a warp hits 32 distinct banks.
//
// Tiling. The block tile is BM x BN x BK = 128 x 128 x 32, 256 threads (8 warps) in a 2 x 4 grid of warps
// (M by N); each warp owns a 64 x 32 warp tile of C, a 4 x 4 grid of 16 x 8 mma tiles, so every lane holds
// 4 x 4 x 4 = 64 float accumulators. Per k-tile the warp walks BK in four steps of 8: it loads 4 A fragments
// (4 registers each) and 4 B fragments (2 each), and issues 16 mma.sync.
//
// Shared memory (dynamic, 71,680 bytes: over the 48 KiB static limit, hence cudaFuncSetAttribute), two
// buffers of
//   As[128][36]  A's tile, [m][k], 32 floats of k + 4 of padding per row  (18,432 bytes)
//   Bs[32][136]  B's tile, [k][n], 128 floats of n + 8 of padding per row (17,408 bytes)
// Why those pads. Shared memory has 32 banks of 4 bytes; a float at index i sits in bank i % 32. From the
// layouts in mma.cuh (group = lane / 4, thread = lane % 4):
//   A fragment a[0] = (row group, col thread): float index group * 36 + thread; 36 = 4 (mod 32), so the
//     bank is 4 group + thread, and group 0..7, thread 0..3 give 32 distinct banks (with 32 floats per row,
//     all 8 groups would hit the same 4 banks: 8-way conflicts). a[1..3] add 8 rows or 4 columns: the same.
//   B fragment b[0] = (row thread, col group): index thread * 136 + group; 136 = 8 (mod 32), so the bank is
//     8 thread + group: 32 distinct banks again (with 128 per row, 4-way conflicts). b[1] adds 4 rows.
// The pads keep each row a multiple of 16 bytes (144 and 544 bytes), as the 16-byte cp.async needs.
//
// Fragments are read with plain 32-bit loads: ldmatrix moves 16-bit elements, and B's fragment would need
// 32-bit elements transposed, which it cannot do. Each value is rounded to TF32 on its way into the fragment
// (to_tf32, round to nearest). Why round: fed raw float bits, the tensor core ignores the low 13 mantissa
// bits, a truncation toward zero of up to one TF32 unit (2^-10 relative) whose sign follows the operand's:
// over a dot product of K like-signed terms that bias adds up in proportion to K. Rounded, the error is at
// most half a unit (2^-11) and unbiased, so it grows only like sqrt(K).
//
// Pipeline (two buffers, one __syncthreads per k-tile):
//   copy k-tile 0 into buffer 0
//   for t = 0 .. tiles-1:
//     wait for my copies; __syncthreads()      k-tile t has landed, every thread's part of it; and every
//                                              warp has finished computing on k-tile t - 1
//     copy k-tile t + 1 into buffer (t + 1) % 2  the buffer k-tile t - 1 was read from: free, by the barrier
//     compute on buffer t % 2                  while those copies fly
//
// Edges. Any M, K, N >= 1 with K % 4 == 0 and N % 4 == 0 (alignment 4: each 16-byte copy is 4 floats of one
// row that lie all inside the matrix or all outside). A copy outside the matrix writes zeros instead of
// reading (cp.async with in_bounds false), so a tile hanging over M, N or K computes with zeros, and the
// stores are predicated on row < M, col < N. beta == 0 never reads C.
//
// Blocks. A 1-D grid of ceil(M / 128) * ceil(N / 128) blocks, consecutive blocks along N (they share A's
// row panel in L2); a 2-D grid would cap either count at 65,535.
#include <climits>
#include <cstdint>

#include "core/error.hpp"
#include "kernels/gemm/ladder/ladder.hpp"
#include "kernels/gemm/ladder/store_pair.cuh"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mma.cuh"

namespace kiln::kernels::gemm_ladder {
namespace {
namespace mma_tf32 {  // this step's names (its ladder compiles as one unit)

using ladder::cp_async_16;
using ladder::cp_async_commit;
using ladder::cp_async_wait;
using ladder::mma_m16n8k8_tf32;
using ladder::to_tf32;

constexpr int kBlockM = 128, kBlockN = 128, kBlockK = 32;  // the block tile
constexpr int kWarpsM = 2, kWarpsN = 4;                    // 8 warps, 2 x 4 over the block tile
constexpr int kThreads = kWarpsM * kWarpsN * 32;           // 256
constexpr int kWarpM = kBlockM / kWarpsM;                  // 64: the warp tile
constexpr int kWarpN = kBlockN / kWarpsN;                  // 32
constexpr int kMmaM = 16, kMmaN = 8, kMmaK = 8;            // one mma.sync.m16n8k8
constexpr int kTilesM = kWarpM / kMmaM;                    // 4 mma tiles down the warp tile
constexpr int kTilesN = kWarpN / kMmaN;                    // 4 across
constexpr int kStages = 2;                                 // double buffering

constexpr int kStrideA = kBlockK + 4;              // 36 floats per As row (padding: see the top)
constexpr int kStrideB = kBlockN + 8;              // 136 floats per Bs row
constexpr int kStageFloatsA = kBlockM * kStrideA;  // 4,608
constexpr int kStageFloatsB = kBlockK * kStrideB;  // 4,352
constexpr int kSharedBytes = kStages * (kStageFloatsA + kStageFloatsB) * static_cast<int>(sizeof(float));

// The 16-byte copies of one k-tile, spread over the block's threads.
constexpr int kChunksPerRowA = kBlockK / 4;                    // 8 per row of As
constexpr int kChunksPerRowB = kBlockN / 4;                    // 32 per row of Bs
constexpr int kCopiesA = kBlockM * kChunksPerRowA / kThreads;  // 4 per thread
constexpr int kCopiesB = kBlockK * kChunksPerRowB / kThreads;  // 4 per thread
static_assert(kBlockM * kChunksPerRowA % kThreads == 0 && kBlockK * kChunksPerRowB % kThreads == 0);
static_assert(kStrideA % 4 == 0 && kStrideB % 4 == 0, "rows of 16 bytes, for cp.async");
static_assert(kStrideA % 32 == 4 && kStrideB % 32 == 8, "the bank arithmetic of the top comment");
static_assert(kBlockK % kMmaK == 0);

// One block computes the 128 x 128 tile of C at (tile_m, tile_n), tile = tile_m * tiles_n + tile_n.
// a [m, k], b [k, n], c [m, n], row-major, k % 4 == 0, n % 4 == 0, a and b 16-byte aligned.
// __launch_bounds__(256, 2): at most 128 registers a thread, so that two blocks (16 warps) share an SM.
__global__ void __launch_bounds__(kThreads, 2)
    mma_tf32_kernel(int m, int n, int k, float alpha, const float* __restrict__ a,
                    const float* __restrict__ b, float beta, float* __restrict__ c, int tiles_n) {
  KILN_DYNAMIC_SHARED_MEMORY(shared_bytes);
  float* const as = reinterpret_cast<float*>(shared_bytes);  // [kStages][kBlockM][kStrideA]
  float* const bs = as + kStages * kStageFloatsA;            // [kStages][kBlockK][kStrideB]

  const int block_row = (static_cast<int>(blockIdx.x) / tiles_n) * kBlockM;
  const int block_col = (static_cast<int>(blockIdx.x) % tiles_n) * kBlockN;
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32, lane = tid % 32;
  const int warp_row = (warp / kWarpsN) * kWarpM;  // the warp tile's origin in the block tile
  const int warp_col = (warp % kWarpsN) * kWarpN;
  const int group = lane / 4, thread = lane % 4;  // mma.cuh's names

  // Copies k-tile [k0, k0 + 32) of A's rows and B's columns into buffer `stage`. Thread tid copies
  //   As rows tid / 8 + 32 i (i < 4), floats 4 (tid % 8) .. + 3: 8 threads per 128-byte row segment;
  //   Bs rows tid / 32 + 8 i (i < 4), floats 4 (tid % 32) .. + 3: a warp copies one 512-byte row segment.
  // Chunks outside the matrix are zero-filled; their source is the matrix's base, never read.
  const auto copy_tile = [&](int stage, int k0) {
    float* const as_stage = as + stage * kStageFloatsA;
    float* const bs_stage = bs + stage * kStageFloatsB;
#pragma unroll
    for (int i = 0; i < kCopiesA; ++i) {
      const int row = tid / kChunksPerRowA + i * (kThreads / kChunksPerRowA),
                col = 4 * (tid % kChunksPerRowA);
      const int global_row = block_row + row, global_col = k0 + col;
      const bool inside = global_row < m && global_col < k;
      cp_async_16(as_stage + row * kStrideA + col, inside ? a + global_row * k + global_col : a, inside);
    }
#pragma unroll
    for (int i = 0; i < kCopiesB; ++i) {
      const int row = tid / kChunksPerRowB + i * (kThreads / kChunksPerRowB),
                col = 4 * (tid % kChunksPerRowB);
      const int global_row = k0 + row, global_col = block_col + col;
      const bool inside = global_row < k && global_col < n;
      cp_async_16(bs_stage + row * kStrideB + col, inside ? b + global_row * n + global_col : b, inside);
    }
  };

  // acc[i][j]: the 16 x 8 mma tile at rows warp_row + 16 i, cols warp_col + 8 j; c[0..3] as in mma.cuh.
  float acc[kTilesM][kTilesN][4] = {};

  const int k_tiles = (k + kBlockK - 1) / kBlockK;
  copy_tile(0, 0);
  cp_async_commit();

  for (int t = 0; t < k_tiles; ++t) {
    cp_async_wait<0>();  // my copies of k-tile t (the only group in flight) have landed
    __syncthreads();     // everyone's have; and everyone is done reading buffer (t + 1) % 2 (k-tile t - 1)
    if (t + 1 < k_tiles) copy_tile((t + 1) % kStages, (t + 1) * kBlockK);
    cp_async_commit();

    const float* const as_warp = as + (t % kStages) * kStageFloatsA + warp_row * kStrideA;  // As[warp_row][0]
    const float* const bs_warp = bs + (t % kStages) * kStageFloatsB + warp_col;             // Bs[0][warp_col]
#pragma unroll
    for (int kk = 0; kk < kBlockK; kk += kMmaK) {
      // B fragment of mma tile j, from mma.cuh: b[0] = (row thread, col group), b[1] = (row thread + 4,
      // col group), rows from kk, cols from warp_col + 8 j.
      std::uint32_t b_frag[kTilesN][2];
#pragma unroll
      for (int j = 0; j < kTilesN; ++j) {
        const float* const q = bs_warp + (kk + thread) * kStrideB + j * kMmaN + group;  // (thread, group)
        b_frag[j][0] = to_tf32(q[0]);
        b_frag[j][1] = to_tf32(q[4 * kStrideB]);  // (thread + 4, group)
      }
      // A fragment of mma tile i, from mma.cuh: a[0] = (group, thread), a[1] = (group + 8, thread),
      // a[2] = (group, thread + 4), a[3] = (group + 8, thread + 4), rows from warp_row + 16 i, cols from kk.
      // One at a time, used by the row of 4 mma.sync at once: 4 registers live, not 16.
#pragma unroll
      for (int i = 0; i < kTilesM; ++i) {
        const float* const p = as_warp + (i * kMmaM + group) * kStrideA + kk + thread;  // (group, thread)
        std::uint32_t a_frag[4];
        a_frag[0] = to_tf32(p[0]);
        a_frag[1] = to_tf32(p[8 * kStrideA]);      // (group + 8, thread)
        a_frag[2] = to_tf32(p[4]);                 // (group, thread + 4)
        a_frag[3] = to_tf32(p[8 * kStrideA + 4]);  // (group + 8, thread + 4)
#pragma unroll
        for (int j = 0; j < kTilesN; ++j) mma_m16n8k8_tf32(acc[i][j], a_frag, b_frag[j]);
      }
    }
  }

  // The accumulators, from mma.cuh: c[0], c[1] = (row group, cols 2 thread + {0, 1}), c[2], c[3] = (row
  // group + 8, same cols), in the 16 x 8 tile at (warp_row + 16 i, warp_col + 8 j) of the block tile.
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

}  // namespace mma_tf32
}  // namespace

void launch_05_mma_tf32(const Problem& problem, const float* a, const float* b, float* c) {
  using namespace mma_tf32;
  require_supported("05_mma_tf32", problem, 4);
  require_16_byte_operands("05_mma_tf32", a, b, c);
  const std::int64_t tiles_m = (problem.m + kBlockM - 1) / kBlockM,
                     tiles_n = (problem.n + kBlockN - 1) / kBlockN;
  KILN_CHECK(tiles_m * tiles_n <= INT_MAX, "gemm ladder 05_mma_tf32: too many tiles");  // < M * N, never
  ladder::launch("gemm ladder 05_mma_tf32", mma_tf32_kernel, dim3(static_cast<unsigned>(tiles_m * tiles_n)),
                 dim3(kThreads), kSharedBytes, problem.m, problem.n, problem.k, problem.alpha, a, b,
                 problem.beta, c, static_cast<int>(tiles_n));
}

}  // namespace kiln::kernels::gemm_ladder
