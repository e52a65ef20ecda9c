// GEMM ladder, step 09: warp specialization. The tensor memory accelerator fills the stages, one producer
// thread issues it, and two consumer warpgroups do nothing but multiply; mbarriers, not __syncthreads, say
// when a stage is full and when it is free. Built for sm_90a (H100, H200); elsewhere the step refuses
// (kernels/ladder/hopper.hpp).
// C[M, N] = alpha * A[M, K] * B[K, N] + beta * C, A and B bfloat16, products exact in float, sums in float.
//
// What step 08 still spends. Every thread there computes addresses and issues cp.async copies, waits for
// its own, fences them to the async proxy, and meets the whole block at a __syncthreads every k-tile: the
// warps that feed the tensor cores are the warps that copy, and the slowest warp sets everyone's pace. Here
// the roles are split (what CUTLASS calls a warp-specialized kernel, and what cuBLAS's Hopper kernels do):
//   - the copies are made by the copy engine (kernels/ladder/tma.cuh): one instruction moves a whole
//     128 x 64 box of A, already in the 128-byte swizzle the wgmma descriptors read, with out-of-bounds
//     rows and columns filled with zeros. Five instructions fill a stage; one thread issues them;
//   - each stage has two mbarriers (kernels/ladder/mbarrier.cuh; the ring, stage_ring.cuh): `full`, which
//     completes when the stage's 49,152 bytes have landed, and `empty`, which completes when both consumer
//     warpgroups have finished reading it. Each side waits only for the other's signal on that one stage,
//     never for the block;
//   - the producer's warpgroup returns its registers to the pool (setmaxnreg,
//     kernels/ladder/warpgroup_registers.cuh) and the consumers take them: 40 against 232 a thread, where
//     the launch's 384 threads alone would give each 168.
//
// Tiling, shared memory and the wgmma are step 08's: block tile BM x BN x BK = 128 x 256 x 64, consumer
// warpgroup g owning rows 64 g .. 64 g + 63 and all 256 columns as two m64n128k16 per k16 slice (acc[2][64],
// 128 floats a thread). A stage: A K-major (128 lines of 64 k, 16 KiB: one box of 128 rows), then B MN-major
// (four 64-wide columns of n, each 64 k-lines, 8 KiB apart: four boxes of 64 rows of B). A box lands in
// exactly the layout step 08's copies built by hand, so the descriptors do not change.
//
// Dynamic shared memory: 4 stages of 48 KiB, then the 8 barriers (64 bytes), plus 1 KiB of slack to put the
// first atom on 1024 bytes: 197,696 bytes.
//
// The pipeline, stage s = t % 4 serving k-tile t on lap L = t / 4:
//   producer (thread 0)                               consumer warpgroup (both)
//   wait empty[s], parity (L - 1) % 2   (L >= 1)       wait full[s], parity L % 2
//   expect 49,152 bytes on full[s], arriving           wgmma_fence; 8 wgmma on stage s; commit   (group t)
//   5 tensor copies into stage s, completing full[s]   wgmma_wait<1>: group t - 1 is done, so
//                                                        thread 0 of the warpgroup arrives on empty[s - 1]
// `empty` expects 2 arrivals (one per consumer warpgroup): a stage is refilled only after both have
// retired their last wgmma on it. The producer runs up to 4 k-tiles ahead of the slower consumer; one
// wgmma group is in flight across iterations, as in step 08.
//
// Block order: grouped, as steps 07 and 08, for L2 reuse.
//
// Edges. Any M, K, N >= 1 with K % 8 == 0 and N % 8 == 0 (a tensor map's row pitch is a multiple of 16
// bytes), operands on 16 bytes. The copy engine zero-fills outside the matrix; the stores are predicated on
// row < M and col < N, and beta == 0 never reads C.
#include <climits>
#include <cstdint>

#include "core/bfloat16.hpp"
#include "core/error.hpp"
#include "kernels/gemm/ladder/grouped_tiles.cuh"
#include "kernels/gemm/ladder/ladder.hpp"
#include "kernels/gemm/ladder/store_pair.cuh"
#include "kernels/ladder/hopper.hpp"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/stage_ring.cuh"
#include "kernels/ladder/tma.cuh"
#include "kernels/ladder/warpgroup_registers.cuh"
#include "kernels/ladder/wgmma.cuh"

namespace kiln::kernels::gemm_ladder {
namespace {
namespace tma_wgmma_bf16 {  // this step's names (its ladder compiles as one unit)

using ladder::first_swizzle_atom;
using ladder::k_major_128b_descriptor;
using ladder::kSwizzleAtomBytes;
using ladder::kTmaBoxColumns;
using ladder::Major;
using ladder::mn_major_128b_descriptor;
using ladder::TensorMap;
using ladder::tma_load;
using ladder::wgmma_bf16;
using ladder::wgmma_commit_group;
using ladder::wgmma_fence;
using ladder::wgmma_wait;

constexpr int kBlockM = 128, kBlockN = 256, kBlockK = 64;  // the block tile
constexpr int kConsumers = 2;                              // warpgroups, each 64 rows x 256 columns
constexpr int kThreads = (1 + kConsumers) * 128;           // 384: the producer's warpgroup first
constexpr int kWgmmaN = 128;                               // two m64n128k16 across the 256 columns
constexpr int kStages = 4;
// setmaxnreg's budgets (warpgroup_registers.cuh): 128 x 40 + 256 x 232 = 64,512 of the SM's 65,536.
constexpr int kProducerRegisters = 40, kConsumerRegisters = 232;

constexpr int kLineBytes = 128;                          // 64 bfloat16: one swizzled line
constexpr int kStageBytesA = kBlockM * kLineBytes;       // 16,384: one box of 128 rows of A
constexpr int kColumnBytesB = kBlockK * kLineBytes;      // 8,192: one box of 64 rows (k) of B
constexpr int kColumnsB = kBlockN / 64;                  // 4
constexpr int kStageBytesB = kColumnsB * kColumnBytesB;  // 32,768
constexpr int kStageBytes = kStageBytesA + kStageBytesB;
using Ring = ladder::StageRing<kStages, kConsumers>;  // the stages' mbarriers (stage_ring.cuh)
// 197,696 bytes, with the slack that aligning the first atom may take.
constexpr int kSharedBytes = kStages * kStageBytes + Ring::kBarrierBytes + kSwizzleAtomBytes;

static_assert(kStageBytesA % kSwizzleAtomBytes == 0 && kStageBytes % kSwizzleAtomBytes == 0,
              "every box on 1024 bytes");
static_assert(kBlockM == 64 * kConsumers && kBlockN == 2 * kWgmmaN && kBlockK == kTmaBoxColumns);
static_assert(128 * kProducerRegisters + 128 * kConsumers * kConsumerRegisters <= 65536);

// One block computes the 128 x 256 tile of C that the grouped block order gives blockIdx.x.
// a_map: A [m][k], boxes of 128 rows; b_map: B [k][n], boxes of 64 rows (tma.cuh); c [m, n] float.
__global__ void __launch_bounds__(kThreads, 1)
    tma_wgmma_bf16_kernel(const __grid_constant__ TensorMap a_map, const __grid_constant__ TensorMap b_map,
                          int m, int n, int k, float alpha, float beta, float* __restrict__ c, int tiles_m,
                          int tiles_n) {
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const tiles = first_swizzle_atom(shared);  // the launch asked for the slack
  const Ring ring = Ring::at(tiles + kStages * kStageBytes);

  // The grouped block order (grouped_tiles.cuh; step 07's top says why).
  const TileIndex tile = grouped_tile(static_cast<int>(blockIdx.x), tiles_m, tiles_n);
  const int block_row = tile.row * kBlockM, block_col = tile.column * kBlockN;

  const int tid = static_cast<int>(threadIdx.x);
  const int warpgroup = tid / 128;
  if (tid == 0) ring.init();
  __syncthreads();  // the last block-wide barrier: from here on the roles meet only at mbarriers

  const int k_tiles = (k + kBlockK - 1) / kBlockK;
  if (warpgroup == 0) {
    // The producer. Its other 127 threads have nothing to do; they return (the block lives on).
    ladder::warpgroup_release_registers<kProducerRegisters>();
    if (tid != 0) return;
    for (int t = 0; t < k_tiles; ++t) {
      std::uint64_t* const landed = ring.produce(t, kStageBytes);  // k-tile t - 4's readers are done
      unsigned char* const a_stage = tiles + Ring::stage(t) * kStageBytes;
      unsigned char* const b_stage = a_stage + kStageBytesA;
      tma_load(a_stage, a_map, {t * kBlockK, block_row}, landed);  // coordinates innermost first: (k, m)
#pragma unroll
      for (int column = 0; column < kColumnsB; ++column)
        tma_load(b_stage + column * kColumnBytesB, b_map, {block_col + 64 * column, t * kBlockK}, landed);
    }
  } else {
    ladder::warpgroup_claim_registers<kConsumerRegisters>();
    const int consumer = warpgroup - 1;
    float acc[2][kWgmmaN / 2] = {};  // columns 0-127 and 128-255 of this warpgroup's 64 rows
    for (int t = 0; t < k_tiles; ++t) {
      ring.consume(t);  // k-tile t has landed
      const unsigned char* const a_stage = tiles + Ring::stage(t) * kStageBytes;
      const unsigned char* const b_stage = a_stage + kStageBytesA;
      wgmma_fence(acc);
#pragma unroll
      for (int j = 0; j < kBlockK / 16; ++j) {
        const std::uint64_t a_slice = k_major_128b_descriptor(a_stage + consumer * 64 * kLineBytes + 32 * j);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const std::uint64_t b_slice =
              mn_major_128b_descriptor(b_stage + h * 2 * kColumnBytesB + 2048 * j, kColumnBytesB);
          wgmma_bf16<kWgmmaN, Major::K, Major::MN>(acc[h], a_slice, b_slice, true);
        }
      }
      wgmma_commit_group();
      wgmma_wait<1>(acc);  // group t - 1 is done: k-tile t - 1's stage may be refilled
      if (t > 0 && tid % 128 == 0) ring.release(t - 1);
    }
    wgmma_wait<0>(acc);  // the last k-tile's stage is never refilled: no release owed

    // This warpgroup's 64 rows of the block tile, both 128-column halves (store_pair.cuh).
    store_warpgroup_tile<kWgmmaN>(c, m, n, block_row + 64 * consumer, block_col, tid % 128, acc, alpha, beta);
  }
}

}  // namespace tma_wgmma_bf16
}  // namespace

void launch_09_tma_wgmma_bf16(const Problem& problem, const bfloat16* a, const bfloat16* b, float* c) {
  using namespace tma_wgmma_bf16;
  require_supported("09_tma_wgmma_bf16", problem, 8);
  KILN_CHECK(ladder::wgmma_available(),
             "gemm ladder 09_tma_wgmma_bf16: needs an H100 or H200 and a build for sm_90a (wgmma, TMA)");
  require_16_byte_operands("09_tma_wgmma_bf16", a, b, c);
  const std::int64_t tiles_m = (problem.m + kBlockM - 1) / kBlockM,
                     tiles_n = (problem.n + kBlockN - 1) / kBlockN;
  KILN_CHECK(tiles_m * tiles_n <= INT_MAX, "gemm ladder 09_tma_wgmma_bf16: too many tiles");  // < M * N
  const TensorMap a_map =
      ladder::bf16_tensor_map_128b(a, ladder::matrix_shape(problem.m, problem.k, kBlockM));
  const TensorMap b_map =
      ladder::bf16_tensor_map_128b(b, ladder::matrix_shape(problem.k, problem.n, kBlockK));
  ladder::launch("gemm ladder 09_tma_wgmma_bf16", tma_wgmma_bf16_kernel,
                 dim3(static_cast<unsigned>(tiles_m * tiles_n)), dim3(kThreads), kSharedBytes, a_map, b_map,
                 problem.m, problem.n, problem.k, problem.alpha, problem.beta, c, static_cast<int>(tiles_m),
                 static_cast<int>(tiles_n));
}

}  // namespace kiln::kernels::gemm_ladder
