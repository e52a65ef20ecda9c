// GEMM ladder, step 07: 64 x 64 warp tiles, XOR-swizzled shared memory, four stages, grouped block order.
// C[M, N] = alpha * A[M, K] * B[K, N] + beta * C, A and B bfloat16, products exact in float, sums in float.
//
// The idea. Step 06's instructions are right (ldmatrix feeding mma.sync m16n8k16 from a cp.async pipeline);
// this step changes the proportions around them, four ways:
//   - a 64 x 64 warp tile (step 06: 64 x 32), a 4 x 8 grid of 16 x 8 mma tiles. Per k = 16 a warp loads 4 A
//     fragments and 8 B fragments (4 ldmatrix_x4 + 4 ldmatrix_x4_trans) for 32 mma.sync: 0.25 ldmatrix per
//     mma against step 06's 6 for 16 (0.375), a third less shared-memory traffic per multiply. The price is
//     128 float accumulators per lane, so one block of 256 threads per SM (below);
//   - a 128 x 256 block tile (step 06: 128 x 128): each byte copied from global memory feeds twice the
//     multiply-adds along N (a block reads 128 + 256 rows-or-columns of K for 128 x 256 outputs);
//   - XOR-swizzled shared layouts instead of padding: the same conflict-free ldmatrix reads, no wasted bytes,
//     and rows whose length is a power of two. The bytes saved pay for a fourth stage;
//   - grouped block order: consecutive blocks sweep a group of 16 tile rows, column by column, so the blocks
//     resident at one time cover a near-square patch of C and share its A and B panels in L2.
//
// Tiling. The block tile is BM x BN x BK = 128 x 256 x 32, 256 threads (8 warps) in a 2 x 4 grid of warps
// (M by N); warp w owns the 64 x 64 warp tile at rows 64 (w / 4), cols 64 (w % 4) of the block tile, a 4 x 8
// grid of mma tiles: acc[4][8][4], 128 floats per lane. Per k-tile a warp takes two steps of k = 16; each is
// 4 ldmatrix_x4_trans (B: one per pair of 8-column mma tiles), then for each of the 4 mma rows one
// ldmatrix_x4 (A) and 8 mma.sync.
//
// Occupancy: one block per SM, __launch_bounds__(256, 1). 128 accumulators, 16 registers of B fragments, 4 of
// A and the addresses do not fit in the 128 registers a thread may have when two 256-thread blocks share an
// SM's 65,536; so the bound lets the compiler use up to 255 and the SM holds one block (8 warps). With one
// block per SM no other block computes while this one waits at a barrier or on a copy: the deeper pipeline is
// what hides the latency (and 8 warps of independent mma.sync chains keep the tensor cores busy between).
//
// Shared memory (dynamic, 98,304 bytes, over the 48 KiB static limit: the launch seam sets the attribute),
// four stages of
//   As[128][32]  A's tile, [m][k]: 64-byte rows, 4 chunks of 16 bytes (8 bfloat16);  8,192 bytes a stage
//   Bs[32][256]  B's tile, [k][n]: 512-byte rows, 32 chunks each;                  16,384 bytes a stage
// 96 KiB of an SM's 228 KiB: shared memory would allow two blocks, registers allow one.
//
// The swizzle. ldmatrix reads each 8 x 8 matrix as 8 rows of 16 bytes (one chunk of each of 8 consecutive
// tile rows, at the same logical chunk); shared memory serves 128 bytes (32 banks of 4) a cycle, so the 8
// reads are conflict-free exactly when they fall in 8 distinct 16-byte slots modulo 128 bytes. Unswizzled,
//   Bs: 512-byte rows put chunk c of every row in slot c mod 8: all 8 rows in one slot, 8-way conflicts;
//   As: 64-byte rows put chunk c of row r in slot (4 r + c) mod 8: two slots, 4-way conflicts.
// Step 06 padded the rows to an odd number of chunks. Here chunk c of row r is stored at chunk c ^ f(r) of
// the same row instead, f chosen so that the 8 rows' slots differ:
//   Bs: physical chunk = c ^ (r % 8). The XOR touches only c's low three bits, so a chunk stays in its own
//       128-byte segment of the row; slot = (c ^ r) mod 8 takes 8 distinct values over any 8 consecutive
//       rows (r mod 8 does). Row r of the logical chunk 0 lands in slot r: a diagonal.
//   As: physical chunk = c ^ ((r / 2) % 4). Two 64-byte rows share a 128-byte line, so slot = 4 (r % 2) +
//       (c ^ (r / 2) % 4): the row's parity picks the half line, (r / 2) % 4 takes 4 distinct values over the
//       4 rows of either parity among 8 consecutive rows, and XOR with c is a bijection: 8 distinct slots.
// Every 8 x 8 matrix the kernel reads starts on a row that is a multiple of 8 and at one logical chunk, so
// every ldmatrix phase is conflict-free. The writes are too: cp.async stores 16 bytes a thread, served 8
// threads (128 bytes) at a time; thread t copies chunk t % 4 of As row t / 4 and chunk t % 32 of Bs row
// t / 32, so each 8 threads fill one whole 128-byte line (two As rows, or one 128-byte segment of a Bs
// row), only permuted within it. Padding made the reads conflict-free by shifting whole rows; the swizzle
// does it by permuting chunks inside a line, which the writes do not notice.
//
// The pipeline (kStages = 4; one __syncthreads per k-tile; cp_async_wait<kStages - 2>), step 06's with one
// more stage:
//   prologue      copy k-tiles 0, 1, 2 into stages 0, 1, 2, one commit group each (empty past the end)
//   for t = 0 .. tiles-1:
//     cp_async_wait<2>   all but my 2 newest groups have landed: k-tile t is here, t + 1 and t + 2 may fly
//     __syncthreads()    everyone's copies of k-tile t are visible; and every warp has finished k-tile t - 1,
//                        so its stage, (t + 3) % 4, is free
//     copy k-tile t + 3 into stage (t + 3) % 4; commit (an empty group when t + 3 >= tiles)
//     compute on stage t % 4, while k-tiles t + 1, t + 2 and t + 3 land
// Counting: before the wait of iteration t, 3 + t groups are committed (k-tiles 0 .. t + 2); wait<2> leaves
// at most the newest two (t + 1, t + 2) in flight, so k-tile t has landed. A copy now has three k-tiles'
// compute to land, not two.
//
// Block order (grouped_tiles.cuh). Blocks are numbered in groups of kGroupRows = 16 tile rows: block b is
// in group g = b / (16 tiles_n), and inside it consecutive blocks walk down the group's (up to) 16 tile rows,
// then step one tile column right. The 132 blocks an H100 runs at once (one per SM) then cover about 16 x 8
// tiles, a 2,048 x 2,112 patch of C, and read 16 panels of A (128 rows each) and 8.25 of B (256 columns each)
// in a wave; in row order, when N is wide (tiles_n >= 132), they would cover one tile row and read 1 panel of
// A and 132 of B: 128 + 132 x 256 = 33,920 rows-or-columns of K against 16 x 128 + 8.25 x 256 = 4,160, eight
// times the bytes. When tiles_n is small (4096^2 has 16) the two orders differ little.
//
// Edges. Any M, K, N >= 1 with K % 8 == 0 and N % 8 == 0 (alignment 8: each 16-byte copy is 8 bfloat16 of one
// row, all inside the matrix or all outside). Copies outside the matrix write zeros (cp.async, in_bounds
// false), the stores are predicated on row < M and col < N, and beta == 0 never reads C.
#include <climits>
#include <cstdint>

#include "core/bfloat16.hpp"
#include "core/error.hpp"
#include "kernels/gemm/ladder/grouped_tiles.cuh"
#include "kernels/gemm/ladder/ladder.hpp"
#include "kernels/gemm/ladder/store_pair.cuh"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mma.cuh"

namespace kiln::kernels::gemm_ladder {
namespace {
namespace mma_bf16_swizzled {  // this step's names (its ladder compiles as one unit)

using ladder::cp_async_16;
using ladder::cp_async_commit;
using ladder::cp_async_wait;
using ladder::ldmatrix_x4;
using ladder::ldmatrix_x4_trans;
using ladder::mma_m16n8k16_bf16;

constexpr int kBlockM = 128, kBlockN = 256, kBlockK = 32;  // the block tile
constexpr int kWarpsM = 2, kWarpsN = 4;                    // 8 warps, 2 x 4 over the block tile
constexpr int kThreads = kWarpsM * kWarpsN * 32;           // 256
constexpr int kWarpM = kBlockM / kWarpsM;                  // 64: the warp tile
constexpr int kWarpN = kBlockN / kWarpsN;                  // 64
constexpr int kMmaM = 16, kMmaN = 8, kMmaK = 16;           // one mma.sync.m16n8k16
constexpr int kTilesM = kWarpM / kMmaM;                    // 4 mma tiles down the warp tile
constexpr int kTilesN = kWarpN / kMmaN;                    // 8 across
constexpr int kStages = 4;                                 // k-tiles t .. t + 3 resident

constexpr int kChunk = 8;                           // bfloat16 per 16-byte chunk
constexpr int kChunksPerRowA = kBlockK / kChunk;    // 4 per As row (64 bytes)
constexpr int kChunksPerRowB = kBlockN / kChunk;    // 32 per Bs row (512 bytes)
constexpr int kStageElementsA = kBlockM * kBlockK;  // 4,096: no padding
constexpr int kStageElementsB = kBlockK * kBlockN;  // 8,192
constexpr int kSharedBytes =
    kStages * (kStageElementsA + kStageElementsB) * static_cast<int>(sizeof(bfloat16));  // 98,304

// The 16-byte copies of one k-tile, spread over the block's threads.
constexpr int kCopiesA = kBlockM * kChunksPerRowA / kThreads;  // 2 per thread
constexpr int kCopiesB = kBlockK * kChunksPerRowB / kThreads;  // 4 per thread
static_assert(sizeof(bfloat16) == 2);
static_assert(kBlockM * kChunksPerRowA % kThreads == 0 && kBlockK * kChunksPerRowB % kThreads == 0);
static_assert(kChunksPerRowA == 4, "As's swizzle is written for 64-byte rows (two to a 128-byte line)");
static_assert(kChunksPerRowB % 8 == 0, "Bs's swizzle permutes the 8 chunks of each 128-byte segment");
static_assert(kBlockK % kMmaK == 0 && kTilesN % 2 == 0 && kWarpN % 64 == 0 && kStages >= 2);

// Where chunk `chunk` (of 8 bfloat16) of row `row` of a tile lives, as an element offset in its stage (the
// swizzles at the top). Both results are multiples of 8 elements: 16-byte aligned, as cp.async and ldmatrix
// need.
__device__ __forceinline__ int swizzled_a(int row, int chunk) {
  return row * kBlockK + kChunk * (chunk ^ ((row / 2) % 4));
}
__device__ __forceinline__ int swizzled_b(int row, int chunk) {
  return row * kBlockN + kChunk * (chunk ^ (row % 8));
}

// One block computes the 128 x 256 tile of C that the grouped block order (top) gives blockIdx.x.
// a [m, k], b [k, n] bfloat16, c [m, n] float, row-major, k % 8 == 0, n % 8 == 0, a and b 16-byte aligned.
// __launch_bounds__(256, 1): up to 255 registers a thread, one block per SM (see the top).
__global__ void __launch_bounds__(kThreads, 1)
    mma_bf16_swizzled_kernel(int m, int n, int k, float alpha, const bfloat16* __restrict__ a,
                             const bfloat16* __restrict__ b, float beta, float* __restrict__ c, int tiles_m,
                             int tiles_n) {
  KILN_DYNAMIC_SHARED_MEMORY(shared_bytes);
  bfloat16* const as = reinterpret_cast<bfloat16*>(shared_bytes);  // [kStages][kBlockM][kBlockK], swizzled
  bfloat16* const bs = as + kStages * kStageElementsA;             // [kStages][kBlockK][kBlockN], swizzled

  // The grouped block order (grouped_tiles.cuh; the top says why).
  const TileIndex tile = grouped_tile(static_cast<int>(blockIdx.x), tiles_m, tiles_n);
  const int block_row = tile.row * kBlockM, block_col = tile.column * kBlockN;

  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32, lane = tid % 32;
  const int warp_row = (warp / kWarpsN) * kWarpM;  // the warp tile's origin in the block tile
  const int warp_col = (warp % kWarpsN) * kWarpN;

  // Copies k-tile [k0, k0 + 32) of A's rows and B's columns into stage `stage`. Thread tid copies
  //   As rows tid / 4 + 64 i (i < 2), chunk tid % 4 (elements k0 + 8 (tid % 4) .. + 7);
  //   Bs rows tid / 32 + 8 i (i < 4), chunk tid % 32 (elements block_col + 8 (tid % 32) .. + 7);
  // each to its swizzled place. Chunks outside the matrix are zero-filled; their source is the matrix's
  // base, never read.
  const auto copy_tile = [&](int stage, int k0) {
    bfloat16* const as_stage = as + stage * kStageElementsA;
    bfloat16* const bs_stage = bs + stage * kStageElementsB;
#pragma unroll
    for (int i = 0; i < kCopiesA; ++i) {
      const int row = tid / kChunksPerRowA + i * (kThreads / kChunksPerRowA), chunk = tid % kChunksPerRowA;
      const int global_row = block_row + row, global_col = k0 + kChunk * chunk;
      const bool inside = global_row < m && global_col < k;
      cp_async_16(as_stage + swizzled_a(row, chunk), inside ? a + global_row * k + global_col : a, inside);
    }
#pragma unroll
    for (int i = 0; i < kCopiesB; ++i) {
      const int row = tid / kChunksPerRowB + i * (kThreads / kChunksPerRowB), chunk = tid % kChunksPerRowB;
      const int global_row = k0 + row, global_col = block_col + kChunk * chunk;
      const bool inside = global_row < k && global_col < n;
      cp_async_16(bs_stage + swizzled_b(row, chunk), inside ? b + global_row * n + global_col : b, inside);
    }
  };

  // acc[i][j]: the 16 x 8 mma tile at rows warp_row + 16 i, cols warp_col + 8 j; c[0..3] as in mma.cuh.
  float acc[kTilesM][kTilesN][4] = {};

  // The rows this lane names to ldmatrix (mma.cuh), at logical chunks that the swizzle then moves:
  //   A, ldmatrix_x4 of the 16 x 16 block at (row warp_row + 16 i, col kk): lane l names row warp_row +
  //     16 i + l % 16, logical chunk kk / 8 + l / 16; r[0..3] are a[0..3] of m16n8k16. warp_row + 16 i is a
  //     multiple of 16, so the row's swizzle term (row / 2) % 4 = (l % 16 / 2) % 4 is the lane's own.
  //   B, ldmatrix_x4_trans of the 16 x 16 block at (row kk, col warp_col + 16 p): lane l names row
  //     kk + l % 16, logical chunk warp_col / 8 + 2 p + l / 16; r[0], r[1] are b[0], b[1] of mma tile 2 p,
  //     r[2], r[3] those of mma tile 2 p + 1. kk is a multiple of 16, so the row's swizzle term is l % 8.
  const int lane_row = lane % 16, lane_chunk = lane / 16;

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
      // B fragments of the 8 mma tiles across, two per ldmatrix_x4_trans: pair p covers cols
      // warp_col + 16 p .. + 15, rows kk .. kk + 15.
      std::uint32_t b_frag[kTilesN][2];
#pragma unroll
      for (int p = 0; p < kTilesN / 2; ++p) {
        std::uint32_t r[4];
        ldmatrix_x4_trans(r, bs_stage + swizzled_b(kk + lane_row, warp_col / kChunk + 2 * p + lane_chunk));
        b_frag[2 * p][0] = r[0];      // mma tile 2p:     rows kk + 2 thread + {0, 1}, col group
        b_frag[2 * p][1] = r[1];      //                  rows kk + 8 + 2 thread + {0, 1}
        b_frag[2 * p + 1][0] = r[2];  // mma tile 2p + 1: the same, cols 8 further
        b_frag[2 * p + 1][1] = r[3];
      }
      // A fragment of mma tile row i (rows warp_row + 16 i .. + 15, cols kk .. kk + 15), one ldmatrix_x4
      // each, used at once by the row of 8 mma.sync: 4 registers live, not 16.
#pragma unroll
      for (int i = 0; i < kTilesM; ++i) {
        std::uint32_t a_frag[4];
        ldmatrix_x4(a_frag, as_stage + swizzled_a(warp_row + i * kMmaM + lane_row, kk / kChunk + lane_chunk));
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

}  // namespace mma_bf16_swizzled
}  // namespace

void launch_07_mma_bf16_swizzled(const Problem& problem, const bfloat16* a, const bfloat16* b, float* c) {
  using namespace mma_bf16_swizzled;
  require_supported("07_mma_bf16_swizzled", problem, 8);
  require_16_byte_operands("07_mma_bf16_swizzled", a, b, c);
  const std::int64_t tiles_m = (problem.m + kBlockM - 1) / kBlockM,
                     tiles_n = (problem.n + kBlockN - 1) / kBlockN;
  KILN_CHECK(tiles_m * tiles_n <= INT_MAX, "gemm ladder 07_mma_bf16_swizzled: too many tiles");  // < M * N
  ladder::launch("gemm ladder 07_mma_bf16_swizzled", mma_bf16_swizzled_kernel,
                 dim3(static_cast<unsigned>(tiles_m * tiles_n)), dim3(kThreads), kSharedBytes, problem.m,
                 problem.n, problem.k, problem.alpha, a, b, problem.beta, c, static_cast<int>(tiles_m),
                 static_cast<int>(tiles_n));
}

}  // namespace kiln::kernels::gemm_ladder
