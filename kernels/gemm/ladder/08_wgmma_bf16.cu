// GEMM ladder, step 08: Hopper's warpgroup multiply (wgmma), operands read by the tensor cores straight from
// 128-byte-swizzled shared memory, one group of multiplies always in flight. Built for sm_90a (H100, H200);
// elsewhere the step refuses (kernels/ladder/hopper.hpp).
// C[M, N] = alpha * A[M, K] * B[K, N] + beta * C, A and B bfloat16, products exact in float, sums in float.
//
// Why a new instruction. Step 07 keeps 8 warps issuing ldmatrix and mma.sync m16n8k16, 16 x 8 x 16 each;
// on an H100 that instruction cannot reach the tensor cores' rate however it is fed (README: about two
// thirds), and cuBLAS does not use it there. wgmma (kernels/ladder/wgmma.cuh) is issued by a warpgroup, four
// warps together, and is large: here m64n128k16, 64 x 128 x 16, 64 times an mma.sync. Its operands are not
// in registers at all: the tensor cores read A and B from shared memory through 64-bit descriptors. And it
// is asynchronous: a warpgroup issues a batch, commits it as a group, and waits for it later, so the
// barrier, the next copies' issue and the loop's bookkeeping run while the tensor cores work.
//
// Tiling. The block tile is BM x BN x BK = 128 x 256 x 64, 256 threads: two warpgroups, warpgroup g owning
// rows 64 g .. 64 g + 63 of the block tile and all 256 columns, as two m64n128k16 per 16-wide slice of K
// (columns 0-127 and 128-255): acc[2][64], 128 floats per thread, and 8 wgmma per warpgroup per k-tile.
// __launch_bounds__(256, 1): one block per SM, up to 255 registers a thread.
//
// Shared memory (dynamic, 4 stages of 48 KiB, plus 1 KiB to align the first atom on 1024 bytes: 197,632
// bytes), every tile in wgmma.cuh's 128-byte swizzle (line r's chunk c at 128 r + 16 (c ^ r % 8)):
//   A  K-major: 128 lines (rows m) of 64 k, 16 KiB. Warpgroup g's slice j: start + 64 g x 128 + 32 j bytes;
//      8-row atoms 1024 bytes apart.
//   B  MN-major (B is [k][n] in memory, so a line is one k and 64 n: wgmma's "transposed" B): four 64-wide
//      columns of n, each a stack of 8 atoms along k (1024 bytes apart), the columns 8 KiB apart; 32 KiB.
//      Half h's slice j: start + 2 h x 8 KiB + 2048 j bytes, the leading byte offset 8 KiB (column to
//      column).
//
// Copies. 16 bytes per cp.async, each a whole chunk of a 128-byte line. A: thread t copies chunk t % 8 of
// rows t / 8 + 32 i (i < 4): eight consecutive lanes fill one row's line (128 bytes of A's row in global
// memory). B: thread t copies chunk t % 8 of column (t / 8) % 4 of k-lines t / 32 + 8 i (i < 8): a warp reads
// one k-row's 512 contiguous bytes of B and fills four lines. Lines are filled whole, so the swizzle's
// permutation inside a line costs the writes nothing.
//
// The pipeline (kStages = 4), with one wgmma group in flight across iterations:
//   prologue   copy k-tiles 0 and 1 (one commit group each, empty past the end)
//   for t:
//     cp_async_wait<1>; fence_proxy_async_shared; __syncthreads
//                 k-tile t has landed, everyone's copies are visible to the async proxy; and every thread
//                 has passed iteration t - 1's wgmma_wait<1>, so group t - 2 is done in both warpgroups
//     wgmma_fence; 8 wgmma on stage t % 4; commit                      (group t)
//     copy k-tile t + 2 into stage (t + 2) % 4, k-tile t - 2's, free; commit
//     wgmma_wait<1>                                                    (group t - 1 done; t may run on)
// So at any time: group t executing, t - 1 possibly finishing, k-tiles t + 1 and t + 2 landing. The stage
// being overwritten is always two k-tiles behind the newest wgmma: the barrier is what makes that true for
// the other warpgroup's wgmma too, since B's tile is shared by both.
//
// Block order: grouped, as step 07 (kGroupRows tile rows, column by column), for L2 reuse.
//
// Edges. Any M, K, N >= 1 with K % 8 == 0 and N % 8 == 0 (each 16-byte copy is 8 bfloat16 of one row, all
// inside the matrix or all outside). Copies outside the matrix write zeros, the stores are predicated on
// row < M and col < N, and beta == 0 never reads C.
#include <climits>
#include <cstdint>

#include "core/bfloat16.hpp"
#include "core/error.hpp"
#include "kernels/gemm/ladder/grouped_tiles.cuh"
#include "kernels/gemm/ladder/ladder.hpp"
#include "kernels/gemm/ladder/store_pair.cuh"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/hopper.hpp"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/wgmma.cuh"

namespace kiln::kernels::gemm_ladder {
namespace {
namespace wgmma_bf16 {  // this step's names (its ladder compiles as one unit)

using ladder::cp_async_16;
using ladder::cp_async_commit;
using ladder::cp_async_wait;
using ladder::fence_proxy_async_shared;
using ladder::first_swizzle_atom;
using ladder::k_major_128b_descriptor;
using ladder::kSwizzleAtomBytes;
using ladder::Major;
using ladder::mn_major_128b_descriptor;
using ladder::swizzled_128b;
using ladder::wgmma_bf16;
using ladder::wgmma_commit_group;
using ladder::wgmma_fence;
using ladder::wgmma_wait;

constexpr int kBlockM = 128, kBlockN = 256, kBlockK = 64;  // the block tile
constexpr int kWarpgroups = 2;                             // each 64 rows x 256 columns
constexpr int kThreads = kWarpgroups * 128;                // 256
constexpr int kWgmmaN = 128;                               // two m64n128k16 across the 256 columns
constexpr int kStages = 4;

constexpr int kLineBytes = 128;                          // 64 bfloat16: one swizzled line
constexpr int kStageBytesA = kBlockM * kLineBytes;       // 16,384
constexpr int kColumnBytesB = kBlockK * kLineBytes;      // 8,192: one 64-wide column of n, 64 k-lines
constexpr int kColumnsB = kBlockN / 64;                  // 4
constexpr int kStageBytesB = kColumnsB * kColumnBytesB;  // 32,768
constexpr int kStageBytes = kStageBytesA + kStageBytesB;
// 197,632 bytes, with the slack that aligning the first atom may take.
constexpr int kSharedBytes = kStages * kStageBytes + kSwizzleAtomBytes;

constexpr int kCopiesA = kBlockM * 8 / kThreads;   // 4 chunks a thread per k-tile
constexpr int kCopiesB = kBlockK * 32 / kThreads;  // 8
static_assert(kStageBytesA % kSwizzleAtomBytes == 0 && kStageBytes % kSwizzleAtomBytes == 0,
              "every atom on 1024 bytes");
static_assert(kBlockM == 64 * kWarpgroups && kBlockN == 2 * kWgmmaN && kBlockK % 16 == 0);

// One block computes the 128 x 256 tile of C that the grouped block order gives blockIdx.x.
// a [m, k], b [k, n] bfloat16, c [m, n] float, row-major, k % 8 == 0, n % 8 == 0, all 16-byte aligned.
__global__ void __launch_bounds__(kThreads, 1)
    wgmma_bf16_kernel(int m, int n, int k, float alpha, const bfloat16* __restrict__ a,
                      const bfloat16* __restrict__ b, float beta, float* __restrict__ c, int tiles_m,
                      int tiles_n) {
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const tiles = first_swizzle_atom(shared);  // the launch asked for the slack

  // The grouped block order (grouped_tiles.cuh; step 07's top says why).
  const TileIndex tile = grouped_tile(static_cast<int>(blockIdx.x), tiles_m, tiles_n);
  const int block_row = tile.row * kBlockM, block_col = tile.column * kBlockN;

  const int tid = static_cast<int>(threadIdx.x);

  // Copies k-tile [k0, k0 + 64) of A's rows and B's columns into stage `stage` (the top says who copies
  // what). Chunks outside the matrix are zero-filled; their source is the matrix's base, never read.
  const auto copy_tile = [&](int stage, int k0) {
    unsigned char* const a_stage = tiles + stage * kStageBytes;
    unsigned char* const b_stage = a_stage + kStageBytesA;
    const int chunk = tid % 8;
#pragma unroll
    for (int i = 0; i < kCopiesA; ++i) {
      const int row = tid / 8 + i * (kThreads / 8);
      const int global_row = block_row + row, global_col = k0 + 8 * chunk;
      const bool inside = global_row < m && global_col < k;
      cp_async_16(a_stage + swizzled_128b(row, chunk), inside ? a + global_row * k + global_col : a, inside);
    }
    const int column = tid / 8 % kColumnsB;
#pragma unroll
    for (int i = 0; i < kCopiesB; ++i) {
      const int line = tid / 32 + i * (kThreads / 32);  // the k of the line
      const int global_row = k0 + line, global_col = block_col + 64 * column + 8 * chunk;
      const bool inside = global_row < k && global_col < n;
      cp_async_16(b_stage + column * kColumnBytesB + swizzled_128b(line, chunk),
                  inside ? b + global_row * n + global_col : b, inside);
    }
  };

  const int warpgroup = tid / 128;
  float acc[2][kWgmmaN / 2] = {};  // columns 0-127 and 128-255 of this warpgroup's 64 rows

  const int k_tiles = (k + kBlockK - 1) / kBlockK;
#pragma unroll
  for (int s = 0; s < 2; ++s) {
    if (s < k_tiles) copy_tile(s, s * kBlockK);
    cp_async_commit();
  }

  for (int t = 0; t < k_tiles; ++t) {
    cp_async_wait<1>();          // my copies of k-tile t have landed (t + 1 may fly)...
    fence_proxy_async_shared();  // ...and are ordered before the tensor cores' reads...
    __syncthreads();             // ...and so are everyone's; groups up to t - 2 are done in both warpgroups
    const unsigned char* const a_stage = tiles + (t % kStages) * kStageBytes;
    const unsigned char* const b_stage = a_stage + kStageBytesA;
    wgmma_fence(acc);
#pragma unroll
    for (int j = 0; j < kBlockK / 16; ++j) {
      const std::uint64_t a_slice = k_major_128b_descriptor(a_stage + warpgroup * 64 * kLineBytes + 32 * j);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const std::uint64_t b_slice =
            mn_major_128b_descriptor(b_stage + h * 2 * kColumnBytesB + 2048 * j, kColumnBytesB);
        wgmma_bf16<kWgmmaN, Major::K, Major::MN>(acc[h], a_slice, b_slice, true);
      }
    }
    wgmma_commit_group();
    if (t + 2 < k_tiles) copy_tile((t + 2) % kStages, (t + 2) * kBlockK);  // k-tile t - 2's stage
    cp_async_commit();  // empty in the drain: keeps the count
    wgmma_wait<1>(acc);
  }
  wgmma_wait<0>(acc);

  // This warpgroup's 64 rows of the block tile, both 128-column halves (store_pair.cuh).
  store_warpgroup_tile<kWgmmaN>(c, m, n, block_row + 64 * warpgroup, block_col, tid % 128, acc, alpha, beta);
}

}  // namespace wgmma_bf16
}  // namespace

void launch_08_wgmma_bf16(const Problem& problem, const bfloat16* a, const bfloat16* b, float* c) {
  using namespace wgmma_bf16;
  require_supported("08_wgmma_bf16", problem, 8);
  KILN_CHECK(ladder::wgmma_available(),
             "gemm ladder 08_wgmma_bf16: needs an H100 or H200 and a build for sm_90a (wgmma)");
  require_16_byte_operands("08_wgmma_bf16", a, b, c);
  const std::int64_t tiles_m = (problem.m + kBlockM - 1) / kBlockM,
                     tiles_n = (problem.n + kBlockN - 1) / kBlockN;
  KILN_CHECK(tiles_m * tiles_n <= INT_MAX, "gemm ladder 08_wgmma_bf16: too many tiles");  // < M * N
  ladder::launch("gemm ladder 08_wgmma_bf16", wgmma_bf16_kernel,
                 dim3(static_cast<unsigned>(tiles_m * tiles_n)), dim3(kThreads), kSharedBytes, problem.m,
                 problem.n, problem.k, problem.alpha, a, b, problem.beta, c, static_cast<int>(tiles_m),
                 static_cast<int>(tiles_n));
}

}  // namespace kiln::kernels::gemm_ladder
