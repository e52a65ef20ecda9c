// GEMM ladder, step 11: TF32 with no transpose pass. Step 09's warp specialization (the copy engine fills
// the stages, mbarriers hand them over, two warpgroups only multiply) in TF32, where B's orientation is the
// problem step 10 solved with an extra pass; here the tensor cores take B from registers instead. Built for
// sm_90a (H100, H200); elsewhere the step refuses (kernels/ladder/hopper.hpp).
// C[M, N] = alpha * A[M, K] * B[K, N] + beta * C, A, B and C float; the tensor cores multiply each operand's
// top 19 bits (TF32) and sum in float.
//
// Why. TF32 wgmma reads shared-memory operands K-major only (its transpose flags exist for 16-bit types), and
// a row-major B ([k][n]) is MN-major. Step 10 pays for that with a pass that writes B^T to scratch: one more
// read and write of B, about a tenth of the multiply's time at 4096^3, and its main loop is step 08's, whose
// bfloat16 form reached only 0.77x cuBLAS on the H200 where step 09's reached 0.94x. But the restriction is
// on shared-memory operands only: wgmma may take its A operand from registers (wgmma.cuh,
// wgmma_tf32_register_a), and registers have no orientation: the threads load them from whatever layout the
// tile has. So this step multiplies the transposed problem,
//     C^T[N, M] = B^T[N, K] A^T[K, M]
// wgmma's A is B^T, loaded from B's tile into registers (B's k-lines, exactly as the copy engine delivers
// them), and wgmma's B is A^T, which is A's tile as it lies: A [m][k] row-major is K-major for the role.
// Each accumulator holds a piece of C^T, which the epilogue stores transposed. (CUTLASS's Hopper kernels do
// the same for TF32 operands that are not K-major: swap the operands and feed one from registers.)
//
// Tiling. Block tile 128 (m) x 256 (n) x 32 (k; a 128-byte line of floats), grouped block order, one
// producer thread and two consumer warpgroups as step 09. In the transposed problem consumer warpgroup c
// owns the 128 n from 128 c, as two 64-n slabs h (wgmma's M is 64), each multiplied by all 128 m (N = 128):
// per k8 slice, two m64n128k8, acc[2][64], 128 floats a thread.
//
// A stage (48 KiB; 4 stages):
//   A    one box of 128 lines (rows m) of 32 k, K-major, 16 KiB: wgmma's B for slice j at start + 32 j.
//   B    eight boxes of 32 lines (k) of 32 n, 4 KiB each: box b holds n 32 b .. 32 b + 31. Never read by the
//        tensor cores: the consumers read it into registers.
// Line r's 16-byte chunk c (4 floats) at 128 r + 16 (c ^ r % 8) in both (the 128-byte swizzle).
//
// The registers of a 64-n slab, and the bank conflicts. wgmma's A layout (wgmma.cuh) gives thread (warp w,
// group g, quad q) the rows 16 w + g and 16 w + g + 8 at k = q and q + 4 of each k8 slice. Which n a row is
// is ours to choose, as long as the epilogue stores it there: rows are labels. The choice makes the loads
// 8-byte and conflict-free and the stores whole sectors:
//   - row 16 w + g + 8 is the n after row 16 w + g: one 8-byte load at (k, n) gives both rows' a[0], a[1],
//     another at k + 4 gives a[2], a[3]; four loads a thread per slice for both slabs;
//   - with g = 4 h' + 2 s + p: n = 32 (w / 2) + 4 (4 s + c0) + 2 p, c0 = 2 (w % 2) + h'. An 8-byte load is
//     served a half-warp (h') at a time: its 16 lanes are 4 quads (k % 8 = q, or q + 4) x 2 chunks (4 s + c0)
//     x 2 pairs (p), and chunk (4 s + c0) ^ (k % 8) runs over all 8 slots of 128 bytes as s and q vary: 16
//     lanes x 8 bytes on 32 distinct banks. Warps 0-1 of the group read box 0 of the slab, warps 2-3 box 1;
//   - a thread's accumulators are (n, m), (n, m + 1), (n + 1, m), (n + 1, m + 1) with m = 8 u + 2 q: it
//     stores 8-byte pairs along n, and a warp's store of one register pair covers 4 rows of C with two
//     32-byte runs each (n from 4 c0, both c0 of the half-warps, and 16 further on): whole sectors.
// register_operand_layout.hpp computes the places; tests/kernels/gemm_register_operand_layout_test.cpp checks
// these claims of them.
//
// The pipeline. The producer is step 09's (stage_ring.cuh): one thread, nine tensor copies a stage. A
// consumer, per k-tile: wait full[s]; per slice j: load the slice's registers, wgmma_fence, two wgmma,
// commit (a group per slice), wgmma_wait<2>. The registers must stay unchanged until their wgmma retires
// (wgmma.cuh), so slice j of every k-tile has its own registers (4 slices x 2 slabs x 4 = 32 a thread): when
// slice j of k-tile t refills them, the wait that came before has retired everything up to slice j - 3,
// in particular slice j of k-tile t - 1. Two groups stay in flight while the next slice's loads run; the
// wait after slice 1 of k-tile t retires k-tile t - 1's last group, and thread 0 of the warpgroup releases
// its stage then.
//
// Edges: any M, N, K >= 1 with K % 4 == 0 and N % 4 == 0 (the tensor maps' row pitch, 16 bytes), operands
// on 16 bytes. The copy engine zero-fills outside the matrix; the stores are predicated on m < M and n < N
// (n even and N % 4 == 0: a pair is inside or outside whole), and beta == 0 never reads C.
#include <climits>
#include <cstdint>

#include "core/error.hpp"
#include "kernels/gemm/ladder/grouped_tiles.cuh"
#include "kernels/gemm/ladder/ladder.hpp"
#include "kernels/gemm/ladder/register_operand_layout.hpp"
#include "kernels/gemm/ladder/store_pair.cuh"
#include "kernels/ladder/hopper.hpp"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/stage_ring.cuh"
#include "kernels/ladder/tma.cuh"
#include "kernels/ladder/warpgroup_registers.cuh"
#include "kernels/ladder/wgmma.cuh"

namespace kiln::kernels::gemm_ladder {
namespace {
namespace tma_wgmma_tf32 {  // this step's names (its ladder compiles as one unit)

using ladder::first_swizzle_atom;
using ladder::k_major_128b_descriptor;
using ladder::kSwizzleAtomBytes;
using ladder::TensorMap;
using ladder::tma_load;
using ladder::TmaElement;
using ladder::wgmma_commit_group;
using ladder::wgmma_fence;
using ladder::wgmma_tf32_register_a;
using ladder::wgmma_wait;
using register_operand::slab_place;
using register_operand::SlabPlace;

constexpr int kBlockM = 128, kBlockN = 256, kBlockK = 32;  // the block tile; 32 floats: one 128-byte line
constexpr int kConsumers = 2;                              // warpgroups, each 128 n x all 128 m
constexpr int kThreads = (1 + kConsumers) * 128;           // 384: the producer's warpgroup first
constexpr int kSlabN = register_operand::kSlabColumns;     // n per wgmma (its M): two slabs a warpgroup
constexpr int kWgmmaN = kBlockM;                           // m per wgmma (its N): 128
constexpr int kWgmmaK = 8;
constexpr int kSlices = kBlockK / kWgmmaK;  // 4 k8 slices a k-tile, one wgmma group each
constexpr int kGroupsInFlight = 2;          // what each slice's wgmma_wait leaves running
constexpr int kStages = 4;
// setmaxnreg's budgets (warpgroup_registers.cuh), as step 09's: 128 x 40 + 256 x 232 = 64,512.
constexpr int kProducerRegisters = 40, kConsumerRegisters = 232;

constexpr int kLineBytes = 128;
constexpr int kStageBytesA = kBlockM * kLineBytes;  // 16,384: one box of 128 lines (m)
constexpr int kBoxColumnsB = register_operand::kBoxColumns;  // 32 n a box of B
constexpr int kBoxBytesB = register_operand::kBoxBytes;      // 4,096: 32 lines (k)
constexpr int kBoxesB = kBlockN / kBoxColumnsB;              // 8
constexpr int kStageBytes = kStageBytesA + kBoxesB * kBoxBytesB;
constexpr int kSliceBytesB = register_operand::kSliceBytes;  // 1,024: a k8 slice is 8 lines of B's boxes
using Ring = ladder::StageRing<kStages, kConsumers>;
// 197,696 bytes, with the slack that aligning the first atom may take.
constexpr int kSharedBytes = kStages * kStageBytes + Ring::kBarrierBytes + kSwizzleAtomBytes;

static_assert(kStageBytesA % kSwizzleAtomBytes == 0 && kBoxBytesB % kSwizzleAtomBytes == 0,
              "every box on 1024 bytes");
static_assert(kBlockN == kConsumers * 2 * kSlabN && kBlockK == register_operand::kBoxLines &&
              kBlockK * 4 == kLineBytes && kSliceBytesB == kWgmmaK * kLineBytes);
// A slice's registers are refilled one k-tile after they were issued: by then at most kGroupsInFlight of
// the kSlices - 1 groups in between may still run.
static_assert(kGroupsInFlight <= kSlices - 1);
static_assert(128 * kProducerRegisters + 128 * kConsumers * kConsumerRegisters <= 65536);

// One block computes the 128 x 256 tile of C that the grouped block order gives blockIdx.x.
// a_map: A [m][k], boxes of 128 rows; b_map: B [k][n], boxes of 32 rows (k) of 32 n (tma.cuh); c [m, n].
__global__ void __launch_bounds__(kThreads, 1)
    tma_wgmma_tf32_kernel(const __grid_constant__ TensorMap a_map, const __grid_constant__ TensorMap b_map,
                          int m, int n, int k, float alpha, float beta, float* __restrict__ c, int tiles_m,
                          int tiles_n) {
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const tiles = first_swizzle_atom(shared);  // the launch asked for the slack
  const Ring ring = Ring::at(tiles + kStages * kStageBytes);

  const TileIndex tile = grouped_tile(static_cast<int>(blockIdx.x), tiles_m, tiles_n);
  const int block_row = tile.row * kBlockM, block_col = tile.column * kBlockN;

  const int tid = static_cast<int>(threadIdx.x);
  const int warpgroup = tid / 128;
  if (tid == 0) ring.init();
  __syncthreads();  // the last block-wide barrier: from here on the roles meet only at mbarriers

  const int k_tiles = (k + kBlockK - 1) / kBlockK;
  if (warpgroup == 0) {
    // The producer, step 09's: its other 127 threads return (the block lives on).
    ladder::warpgroup_release_registers<kProducerRegisters>();
    if (tid != 0) return;
    for (int t = 0; t < k_tiles; ++t) {
      std::uint64_t* const landed = ring.produce(t, kStageBytes);  // k-tile t - 4's readers are done
      unsigned char* const a_stage = tiles + Ring::stage(t) * kStageBytes;
      unsigned char* const b_stage = a_stage + kStageBytesA;
      tma_load(a_stage, a_map, {t * kBlockK, block_row}, landed);  // coordinates innermost first: (k, m)
#pragma unroll
      for (int box = 0; box < kBoxesB; ++box)
        tma_load(b_stage + box * kBoxBytesB, b_map, {block_col + kBoxColumnsB * box, t * kBlockK}, landed);
    }
    return;
  }

  ladder::warpgroup_claim_registers<kConsumerRegisters>();
  const int consumer = warpgroup - 1, thread = tid % 128;
  const SlabPlace place = slab_place(thread);
  float acc[2][kWgmmaN / 2] = {};          // slab h: this thread's piece of C^T's rows 128 consumer + 64 h ..
  std::uint32_t registers[kSlices][2][4];  // wgmma's A (B^T) per slice and slab, float bits
  for (int t = 0; t < k_tiles; ++t) {
    ring.consume(t);  // k-tile t has landed
    const unsigned char* const a_stage = tiles + Ring::stage(t) * kStageBytes;
    const unsigned char* const b_slabs = a_stage + kStageBytesA + consumer * 2 * 2 * kBoxBytesB;
#pragma unroll
    for (int j = 0; j < kSlices; ++j) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const unsigned char* const slice = b_slabs + h * 2 * kBoxBytesB + j * kSliceBytesB;
        const uint2 low = *reinterpret_cast<const uint2*>(slice + place.low);
        const uint2 high = *reinterpret_cast<const uint2*>(slice + place.high);
        registers[j][h][0] = low.x;   // (row n, k)
        registers[j][h][1] = low.y;   // (row n + 1, k)
        registers[j][h][2] = high.x;  // (row n, k + 4)
        registers[j][h][3] = high.y;  // (row n + 1, k + 4)
      }
      wgmma_fence(acc);  // the registers just loaded, before the wgmma that read them
      const std::uint64_t a_slice = k_major_128b_descriptor(a_stage + 32 * j);  // all 128 lines (m)
#pragma unroll
      for (int h = 0; h < 2; ++h) wgmma_tf32_register_a<kWgmmaN>(acc[h], registers[j][h], a_slice, true);
      wgmma_commit_group();
      wgmma_wait<kGroupsInFlight>(acc);
      // This wait retired every group up to kGroupsInFlight before slice j; at j = kGroupsInFlight - 1 that
      // is k-tile t - 1's last, and its stage may be refilled.
      if (j == kGroupsInFlight - 1 && t > 0 && thread == 0) ring.release(t - 1);
    }
  }
  wgmma_wait<0>(acc);  // the last k-tile's stage is never refilled: no release owed

  // acc[h][4 u + v] is C^T's (row n + v / 2, column m + v % 2) with m = 8 u + 2 quad (wgmma.cuh's accumulator
  // layout, rows relabelled by slab_place): C's rows m and m + 1 get 8-byte pairs at columns n, n + 1.
  const int quad = thread % 4;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int col = block_col + (2 * consumer + h) * kSlabN + place.n;
#pragma unroll
    for (int u = 0; u < kWgmmaN / 8; ++u) {
      const int row = block_row + 8 * u + 2 * quad;
      store_pair(c, m, n, row, col, acc[h][4 * u], acc[h][4 * u + 2], alpha, beta);
      store_pair(c, m, n, row + 1, col, acc[h][4 * u + 1], acc[h][4 * u + 3], alpha, beta);
    }
  }
}

}  // namespace tma_wgmma_tf32
}  // namespace

void launch_11_tma_wgmma_tf32(const Problem& problem, const float* a, const float* b, float* c) {
  using namespace tma_wgmma_tf32;
  require_supported("11_tma_wgmma_tf32", problem, 4);
  KILN_CHECK(ladder::wgmma_available(),
             "gemm ladder 11_tma_wgmma_tf32: needs an H100 or H200 and a build for sm_90a (wgmma, TMA)");
  require_16_byte_operands("11_tma_wgmma_tf32", a, b, c);
  const std::int64_t tiles_m = (problem.m + kBlockM - 1) / kBlockM,
                     tiles_n = (problem.n + kBlockN - 1) / kBlockN;
  KILN_CHECK(tiles_m * tiles_n <= INT_MAX, "gemm ladder 11_tma_wgmma_tf32: too many tiles");  // < M * N
  const TensorMap a_map = ladder::float_tensor_map_128b(
      a, ladder::matrix_shape(problem.m, problem.k, kBlockM, TmaElement::Float));
  const TensorMap b_map = ladder::float_tensor_map_128b(
      b, ladder::matrix_shape(problem.k, problem.n, kBlockK, TmaElement::Float));
  ladder::launch("gemm ladder 11_tma_wgmma_tf32", tma_wgmma_tf32_kernel,
                 dim3(static_cast<unsigned>(tiles_m * tiles_n)), dim3(kThreads), kSharedBytes, a_map, b_map,
                 problem.m, problem.n, problem.k, problem.alpha, problem.beta, c, static_cast<int>(tiles_m),
                 static_cast<int>(tiles_n));
}

}  // namespace kiln::kernels::gemm_ladder
