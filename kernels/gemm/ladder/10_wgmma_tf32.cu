// GEMM ladder, step 10: step 08's warpgroup multiply in TF32. Built for sm_90a (H100, H200); elsewhere the
// step refuses (kernels/ladder/hopper.hpp).
// C[M, N] = alpha * A[M, K] * B[K, N] + beta * C, A, B and C float; the tensor cores multiply each operand's
// top 19 bits (TF32: 10 mantissa bits, the low 13 truncated) and sum in float.
//
// Why. On an H200 (bench/results/h200-2026-12-04) step 05, TF32 on mma.sync, reached 131 TFLOP/s at 4096^3,
// 0.32x cuBLAS's 416: cuBLAS's TF32 runs on wgmma, whose rate mma.sync cannot reach however it is fed (the
// measured mma.sync TF32 peak was 326 TFLOP/s). This step is step 08 with the TF32 instruction,
// m64n128k8: the same 128 x 256 block tile, two warpgroups, four cp.async stages and one wgmma group in
// flight, and the same 128-byte swizzle: a k8 slice of floats is 32 bytes, as a k16 slice of bfloat16 is, so
// a line holds BK = 32 k and the descriptors and offsets are step 08's, counted in bytes.
//
// What TF32 changes: wgmma transposes 16-bit operands only, so both of its operands must be K-major. A
// ([m][k]) is; a row-major B ([k][n]) is MN-major, the layout step 08 let wgmma read transposed. So the
// launcher first writes B^T [n][k] to scratch (transpose_kernel: 32 x 32 tiles through shared memory, one
// read and one write of B, part of the step's time: at 4096^3 about a tenth of the multiply's), and the main
// kernel reads B^T exactly as it reads A. cuBLAS, facing the same constraint, transposes inside its kernel;
// doing it there, while the tensor cores multiply, is this step's next move.
//
// Shared memory (dynamic, 4 stages of 48 KiB, plus 1 KiB to align the first atom on 1024 bytes: 197,632
// bytes), every tile in wgmma.cuh's 128-byte swizzle (line r's chunk c at 128 r + 16 (c ^ r % 8)):
//   A    K-major: 128 lines (rows m) of 32 k, 16 KiB. Warpgroup g's slice j: start + 64 g x 128 + 32 j bytes.
//   B^T  K-major: 256 lines (columns n) of 32 k, 32 KiB. Half h's slice j: start + 128 h x 128 + 32 j bytes.
// Copies: 16 bytes (4 floats) per cp.async, a whole chunk of a line; thread t copies chunk t % 8 of lines
// t / 8 + 32 i (A: i < 4; B^T: i < 8), eight consecutive lanes filling one line from 128 contiguous bytes.
//
// The pipeline, block order and epilogue are step 08's (its top comment). Edges: any M, N, K >= 1 with
// K % 4 == 0 and N % 4 == 0 (16-byte chunks of A's and B^T's rows; the ladder's TF32 alignment); copies
// outside the matrix write zeros, stores are predicated, and beta == 0 never reads C.
#include <climits>
#include <cstdint>

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
namespace wgmma_tf32 {  // this step's names (its ladder compiles as one unit)

using ladder::cp_async_16;
using ladder::cp_async_commit;
using ladder::cp_async_wait;
using ladder::fence_proxy_async_shared;
using ladder::first_swizzle_atom;
using ladder::k_major_128b_descriptor;
using ladder::kSwizzleAtomBytes;
using ladder::swizzled_128b;
using ladder::wgmma_commit_group;
using ladder::wgmma_fence;
using ladder::wgmma_tf32;
using ladder::wgmma_wait;

constexpr int kBlockM = 128, kBlockN = 256, kBlockK = 32;  // the block tile; 32 floats: one 128-byte line
constexpr int kWarpgroups = 2;                             // each 64 rows x 256 columns
constexpr int kThreads = kWarpgroups * 128;                // 256
constexpr int kWgmmaN = 128;                               // two m64n128k8 across the 256 columns
constexpr int kWgmmaK = 8;
constexpr int kStages = 4;

constexpr int kLineBytes = 128;
constexpr int kStageBytesA = kBlockM * kLineBytes;  // 16,384
constexpr int kStageBytesB = kBlockN * kLineBytes;  // 32,768
constexpr int kStageBytes = kStageBytesA + kStageBytesB;
// 197,632 bytes, with the slack that aligning the first atom may take.
constexpr int kSharedBytes = kStages * kStageBytes + kSwizzleAtomBytes;

constexpr int kCopiesA = kBlockM * 8 / kThreads;  // 4 chunks a thread per k-tile
constexpr int kCopiesB = kBlockN * 8 / kThreads;  // 8
static_assert(kStageBytesA % kSwizzleAtomBytes == 0 && kStageBytes % kSwizzleAtomBytes == 0,
              "every atom on 1024 bytes");
static_assert(kBlockM == 64 * kWarpgroups && kBlockN == 2 * kWgmmaN && kBlockK * 4 == kLineBytes);

// B [k, n] -> bt [n, k]: a 32 x 32 tile per block of 256 threads (a warp per row of the tile at a time),
// read along n and written along k, both coalesced, through shared memory (a column of padding, so the
// transposed reads hit 32 banks).
constexpr int kTransposeTile = 32, kTransposeRows = 8;  // 8 warps
__global__ void __launch_bounds__(kTransposeTile* kTransposeRows)
    transpose_kernel(int k, int n, const float* __restrict__ b, float* __restrict__ bt) {
  __shared__ float tile[kTransposeTile][kTransposeTile + 1];
  const int n0 = static_cast<int>(blockIdx.x) * kTransposeTile,
            k0 = static_cast<int>(blockIdx.y) * kTransposeTile;
  const int tx = static_cast<int>(threadIdx.x) % kTransposeTile,
            ty = static_cast<int>(threadIdx.x) / kTransposeTile;
  for (int r = ty; r < kTransposeTile; r += kTransposeRows) {
    if (k0 + r < k && n0 + tx < n) tile[r][tx] = b[(k0 + r) * n + n0 + tx];  // < K * N < 2^31
  }
  __syncthreads();
  for (int r = ty; r < kTransposeTile; r += kTransposeRows) {
    if (n0 + r < n && k0 + tx < k) bt[(n0 + r) * k + k0 + tx] = tile[tx][r];
  }
}

// One block computes the 128 x 256 tile of C that the grouped block order gives blockIdx.x.
// a [m, k], bt [n, k], c [m, n] float, row-major, k % 4 == 0, n % 4 == 0, all 16-byte aligned.
__global__ void __launch_bounds__(kThreads, 1)
    wgmma_tf32_kernel(int m, int n, int k, float alpha, const float* __restrict__ a,
                      const float* __restrict__ bt, float beta, float* __restrict__ c, int tiles_m,
                      int tiles_n) {
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const tiles = first_swizzle_atom(shared);  // the launch asked for the slack

  const TileIndex tile = grouped_tile(static_cast<int>(blockIdx.x), tiles_m, tiles_n);
  const int block_row = tile.row * kBlockM, block_col = tile.column * kBlockN;
  const int tid = static_cast<int>(threadIdx.x);

  // Copies k-tile [k0, k0 + 32) of A's rows and B^T's rows into stage `stage`. Chunks outside the matrix
  // are zero-filled; their source is the matrix's base, never read.
  const auto copy_tile = [&](int stage, int k0) {
    unsigned char* const a_stage = tiles + stage * kStageBytes;
    unsigned char* const b_stage = a_stage + kStageBytesA;
    const int chunk = tid % 8, global_col = k0 + 4 * chunk;
#pragma unroll
    for (int i = 0; i < kCopiesA; ++i) {
      const int row = tid / 8 + i * (kThreads / 8);
      const int global_row = block_row + row;
      const bool inside = global_row < m && global_col < k;
      cp_async_16(a_stage + swizzled_128b(row, chunk), inside ? a + global_row * k + global_col : a, inside);
    }
#pragma unroll
    for (int i = 0; i < kCopiesB; ++i) {
      const int line = tid / 8 + i * (kThreads / 8);  // the n of the line
      const int global_n = block_col + line;
      const bool inside = global_n < n && global_col < k;
      cp_async_16(b_stage + swizzled_128b(line, chunk), inside ? bt + global_n * k + global_col : bt, inside);
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
    for (int j = 0; j < kBlockK / kWgmmaK; ++j) {
      const std::uint64_t a_slice = k_major_128b_descriptor(a_stage + warpgroup * 64 * kLineBytes + 32 * j);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const std::uint64_t b_slice = k_major_128b_descriptor(b_stage + h * kWgmmaN * kLineBytes + 32 * j);
        wgmma_tf32<kWgmmaN>(acc[h], a_slice, b_slice, true);
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

}  // namespace wgmma_tf32
}  // namespace

void launch_10_wgmma_tf32(const Problem& problem, const float* a, const float* b, float* c) {
  using namespace wgmma_tf32;
  require_supported("10_wgmma_tf32", problem, 4);
  KILN_CHECK(ladder::wgmma_available(),
             "gemm ladder 10_wgmma_tf32: needs an H100 or H200 and a build for sm_90a (wgmma)");
  require_16_byte_operands("10_wgmma_tf32", a, b, c);
  const std::int64_t tiles_m = (problem.m + kBlockM - 1) / kBlockM,
                     tiles_n = (problem.n + kBlockN - 1) / kBlockN;
  KILN_CHECK(tiles_m * tiles_n <= INT_MAX, "gemm ladder 10_wgmma_tf32: too many tiles");  // < M * N

  // B^T in scratch, 16-byte aligned as the allocator's blocks are; the transpose runs first on the stream.
  const ladder::Scratch transposed(static_cast<std::size_t>(problem.k) * problem.n * sizeof(float));
  float* const bt = transposed.as<float>();
  ladder::launch("gemm ladder 10_wgmma_tf32 (transpose B)", transpose_kernel,
                 dim3(static_cast<unsigned>((problem.n + kTransposeTile - 1) / kTransposeTile),
                      static_cast<unsigned>((problem.k + kTransposeTile - 1) / kTransposeTile)),
                 dim3(kTransposeTile * kTransposeRows), 0, problem.k, problem.n, b, bt);
  ladder::launch("gemm ladder 10_wgmma_tf32", wgmma_tf32_kernel,
                 dim3(static_cast<unsigned>(tiles_m * tiles_n)), dim3(kThreads), kSharedBytes, problem.m,
                 problem.n, problem.k, problem.alpha, a, static_cast<const float*>(bt), problem.beta, c,
                 static_cast<int>(tiles_m), static_cast<int>(tiles_n));
}

}  // namespace kiln::kernels::gemm_ladder
