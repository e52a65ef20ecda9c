// Convolution ladder, step 08 (backward weight): step 07's transposed GEMM with both operands delivered by
// the tensor memory accelerator as boxes: x's box per tap, as the forward step 08 reads it, and gy's box
// beside it, over the same 128 output positions; one producer thread, two consumer warpgroups, mbarriers,
// split-K. Built for sm_90a (H100, H200); elsewhere the step refuses (kernels/ladder/hopper.hpp).
//
// The GEMM, as step 07 turns it: with gy [N, P, Q, K], x [N, H, W, C] bfloat16 and gw [K, R, S, C] float,
//   gw^T[j, k] = sum over positions i = (n, p, q) of A[j, i] B[i, k]
//   A[j, i] = x[n, p sh - ph + r dh, q sw - pw + s dw, c]   j = (r, s, c);  B[i, k] = gy[n, p, q, k]
// Both operands arrive position-major: a shared line is one position i and 64 channels (c of x for A, k of
// gy for B), so both are MN-major for wgmma, with the reduction i running down the lines.
//
// The boxes. The reduction walks the output positions 128 at a time, as a box of the output (BW x BH x BI,
// tma_boxes.hpp), k-tile t being box t of the block's split. For that box and a tap (r, s):
//   - x's rank-4 map, boxes of 64 channels x BW every sw-th x BH every sh-th x BI (the forward step 08's
//     box): 128 lines, one per position, of 64 channels from c0: A, one 64-wide column of j, 16 KiB;
//   - gy's rank-4 map, boxes of 64 filters x BW x BH x BI (steps of 1): the same 128 positions in the same
//     order, 64 k from k0 each: B, one 64-wide column of k (two boxes for BN = 128).
// Positions past P, Q or N (a box's overhang) read zeros from gy, so whatever x holds there adds nothing
// (x is finite: an infinity there would make 0 x inf; the reference would not see it).
//
// A block owns 64 j (one tap, 64 channels from c0) by BN k: one m64nBNk16 accumulator per consumer. The two
// consumer warpgroups share every stage, each taking half its positions: warpgroup g issues the wgmma of
// k16 slices 4 g .. 4 g + 3 (positions 64 g .. 64 g + 63, 2048 bytes a slice into each column), so both
// release every stage and the ring (stage_ring.cuh) is the other steps'. At the end the two partial sums
// meet in shared memory: warpgroup 0, its wgmma retired, arrives on `drained`; warpgroup 1 waits there
// (the stages are then free: every copy has landed and every wgmma retired), writes its accumulators into
// stage memory, each thread arrives on `handed`; warpgroup 0 waits there, adds them slot by slot (the two
// share one accumulator layout) and stores.
//
// Split-K as step 07 (split_k.cuh): the boxes are cut into `splits` chunks, block (tile, z) sums chunk z into
// partials[z], and sum_splits_kernel adds the partials in a fixed order. A tap whose 64-channel block runs
// past C (C = 16 or 32) multiplies zeros for the rest: such layers stay with step 07 when the tuning measures
// them. Stages: 16 KiB of x and 16 or 32 KiB of gy; 6 (BN <= 64) or 4 (BN = 128).
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/conv2d/ladder/split_k.cuh"
#include "kernels/conv2d/ladder/tma_boxes.hpp"
#include "kernels/ladder/hopper.hpp"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mbarrier.cuh"
#include "kernels/ladder/stage_ring.cuh"
#include "kernels/ladder/tma.cuh"
#include "kernels/ladder/warpgroup_registers.cuh"
#include "kernels/ladder/wgmma.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace backward_weight_tma_wgmma_bf16 {  // this step's names (its ladder compiles as one unit)

using ladder::first_swizzle_atom;
using ladder::kSwizzleAtomBytes;
using ladder::kTmaBoxColumns;
using ladder::Major;
using ladder::mbarrier_arrive;
using ladder::mbarrier_wait;
using ladder::mn_major_128b_descriptor;
using ladder::TensorMap;
using ladder::tma_load;
using ladder::wgmma_bf16;
using ladder::wgmma_commit_group;
using ladder::wgmma_fence;
using ladder::wgmma_wait;

constexpr int kBlockPositions = kTilePositions;   // positions per k-tile: one box
constexpr int kBlockJ = kTmaBoxColumns;           // columns j of gw^T per block: one tap, 64 channels
constexpr int kConsumers = 2;                     // warpgroups, half of each stage's positions each
constexpr int kThreads = (1 + kConsumers) * 128;  // 384: the producer's warpgroup first
constexpr int kLineBytes = 128;
constexpr int kColumnBytes = kBlockPositions * kLineBytes;        // 16,384: one box, a 64-wide column
constexpr int kSliceBytes = 16 * kLineBytes;                      // 2,048: one k16 slice of a column
constexpr int kProducerRegisters = 40, kConsumerRegisters = 232;  // as GEMM step 09

template <int BN>
constexpr int b_columns() {
  return BN > 64 ? BN / 64 : 1;
}
template <int BN>
constexpr int stage_bytes() {
  return (1 + b_columns<BN>()) * kColumnBytes;
}
// As many stages as fit in 200 KiB, at most 8: 6 for BN up to 64, 4 for 128.
template <int BN>
constexpr int stages() {
  return ladder::stages_that_fit(stage_bytes<BN>());
}
template <int BN>
using Ring = ladder::StageRing<stages<BN>(), kConsumers>;  // the stages' mbarriers (stage_ring.cuh)
// The stages, the ring's barriers, `drained` and `handed`, and the alignment's slack.
template <int BN>
constexpr int dynamic_shared_bytes() {
  return stages<BN>() * stage_bytes<BN>() + Ring<BN>::kBarrierBytes +
         2 * static_cast<int>(sizeof(std::uint64_t)) + kSwizzleAtomBytes;
}

// What the kernel needs of the geometry, in int (every tensor holds fewer than 2^31 elements).
struct BackwardWeightTiling {
  int channels, out_channels, kernel_w, taps;  // C, K, S, R S
  int stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int channel_blocks;       // ceil(C / 64): blocks of j per tap
  PositionTiles positions;  // gy's positions in boxes of 128, the reduction's k-tiles (tma_boxes.hpp)
  int chunk;                // boxes per split; the last split may have fewer
  int tiles_k;              // tiles along K
};

// out [K][R S C] float (gw, or split z's partials at out + z K R S C); x_map: x's rank-4 map, boxes of 64
// c x BW x BH x BI with the strides as steps; gy_map: gy's rank-4 map, boxes of 64 k x BW x BH x BI.
template <int BN>
__global__ void __launch_bounds__(kThreads, 1)
    backward_weight_tma_wgmma_kernel(const __grid_constant__ TensorMap x_map,
                                     const __grid_constant__ TensorMap gy_map, BackwardWeightTiling g,
                                     float* __restrict__ out) {
  constexpr int kStages = stages<BN>();
  static_assert(stage_bytes<BN>() % kSwizzleAtomBytes == 0, "every box of every stage starts on 1024 bytes");
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const tiles = first_swizzle_atom(shared);  // the launch asked for the slack
  const Ring<BN> ring = Ring<BN>::at(tiles + kStages * stage_bytes<BN>());
  auto* const drained =
      reinterpret_cast<std::uint64_t*>(tiles + kStages * stage_bytes<BN>() + Ring<BN>::kBarrierBytes);
  std::uint64_t* const handed = drained + 1;

  // The tile: k fastest; then the 64 j of (tap, channel block); the split along blockIdx.y.
  const int tile_j = static_cast<int>(blockIdx.x) / g.tiles_k;
  const int k0 = static_cast<int>(blockIdx.x) % g.tiles_k * BN;
  const int tap = tile_j / g.channel_blocks;
  const int c0 = tile_j % g.channel_blocks * kBlockJ;
  const int tap_r = tap / g.kernel_w, tap_s = tap % g.kernel_w;
  const int first_box = static_cast<int>(blockIdx.y) * g.chunk;
  const int k_tiles = min(g.chunk, g.positions.tiles - first_box);  // >= 1: every split has a box

  const int tid = static_cast<int>(threadIdx.x);
  const int warpgroup = tid / 128;
  if (tid == 0) {
    ring.init();
    ladder::mbarrier_init(drained, 1);   // warpgroup 0's thread 0, once its wgmma have retired
    ladder::mbarrier_init(handed, 128);  // every thread of warpgroup 1, its accumulators stored
    ladder::fence_mbarrier_init();
  }
  __syncthreads();  // the last block-wide barrier: from here on the roles meet only at mbarriers

  if (warpgroup == 0) {
    ladder::warpgroup_release_registers<kProducerRegisters>();
    if (tid != 0) return;
    for (int t = 0; t < k_tiles; ++t) {
      // k-tile t: box first_box + t of the positions, from its first position (n, p, q).
      const Position corner = g.positions.corner(first_box + t);
      const int q0 = corner.w, p0 = corner.h, n0 = corner.n;
      // Once k-tile t - kStages's readers are done: the barrier the stage's copies complete on.
      std::uint64_t* const landed = ring.produce(t, stage_bytes<BN>());
      unsigned char* const a = tiles + Ring<BN>::stage(t) * stage_bytes<BN>();
      // Coordinates innermost first: (c, w, h, n) of x, (k, q, p, n) of gy.
      tma_load(a, x_map,
               {c0, q0 * g.stride_w - g.pad_w + tap_s * g.dilation_w,
                p0 * g.stride_h - g.pad_h + tap_r * g.dilation_h, n0},
               landed);
#pragma unroll
      for (int column = 0; column < b_columns<BN>(); ++column)
        tma_load(a + (1 + column) * kColumnBytes, gy_map, {k0 + 64 * column, q0, p0, n0}, landed);
    }
    return;
  }

  ladder::warpgroup_claim_registers<kConsumerRegisters>();
  const int consumer = warpgroup - 1;
  float acc[BN / 2] = {};  // D[64 j][BN k] over this warpgroup's half of every box
  for (int t = 0; t < k_tiles; ++t) {
    ring.consume(t);  // k-tile t has landed
    const unsigned char* const a = tiles + Ring<BN>::stage(t) * stage_bytes<BN>();
    const unsigned char* const b = a + kColumnBytes;
    wgmma_fence(acc);
#pragma unroll
    for (int half_slice = 0; half_slice < 4; ++half_slice) {  // this warpgroup's 64 positions
      const int slice = 4 * consumer + half_slice;
      wgmma_bf16<BN, Major::MN, Major::MN>(
          acc, mn_major_128b_descriptor(a + kSliceBytes * slice, kColumnBytes),
          mn_major_128b_descriptor(b + kSliceBytes * slice, kColumnBytes), true);
    }
    wgmma_commit_group();
    wgmma_wait<1>(acc);  // group t - 1 is done: k-tile t - 1's stage may be refilled
    if (t > 0 && tid % 128 == 0) ring.release(t - 1);
  }
  wgmma_wait<0>(acc);  // the last k-tile's stage is never refilled: no release owed

  // The two halves meet (top). Slot i of thread t: float t + 128 i of the first stage.
  auto* const handoff = reinterpret_cast<float*>(tiles);
  const int thread = tid % 128;
  if (consumer == 0) {
    if (thread == 0) mbarrier_arrive(drained);
    mbarrier_wait(handed, 0);
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) acc[i] += handoff[thread + 128 * i];
  } else {
    mbarrier_wait(drained, 0);
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) handoff[thread + 128 * i] = acc[i];
    mbarrier_arrive(handed);
    return;
  }

  // acc[i] is D(j = 16 warp + group + 8 ((i / 2) % 2), k = 8 (i / 4) + 2 quad + i % 2) (wgmma.cuh), stored to
  // gw[k][tap][c0 + j]: the eight groups of a warp write 8 consecutive channels of one k, 32 bytes.
  const int warp = thread / 32, lane = tid % 32;
  const int group = lane / 4, quad = lane % 4;
  float* const split_out = out + static_cast<std::int64_t>(blockIdx.y) * g.out_channels * g.taps * g.channels;
#pragma unroll
  for (int i = 0; i < BN / 2; ++i) {
    const int c = c0 + 16 * warp + group + 8 * ((i / 2) % 2);
    const int k = k0 + 8 * (i / 4) + 2 * quad + i % 2;
    if (c >= g.channels || k >= g.out_channels) continue;
    split_out[(k * g.taps + tap) * g.channels + c] = acc[i];  // < K R S C < 2^31
  }
}

template <int BN>
void launch_tiles(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x, float* gw) {
  const auto as_int = [](std::int64_t value) { return static_cast<int>(value); };
  const std::int64_t P = g.out_height(), Q = g.out_width();
  const int stride_h = as_int(g.stride_h), stride_w = as_int(g.stride_w);
  const PositionTiles positions = position_tiles(g.batch, P, Q, stride_h, stride_w);  // (tma_boxes.hpp)
  const TensorMap x_map =
      ladder::bf16_tensor_map_128b(x, nhwc_box_shape(g.batch, g.in_height, g.in_width, g.in_channels, kBlockJ,
                                                     positions.box, stride_h, stride_w));
  const TensorMap gy_map = ladder::bf16_tensor_map_128b(
      gy, nhwc_box_shape(g.batch, P, Q, g.out_channels, kTmaBoxColumns, positions.box, 1, 1));

  BackwardWeightTiling t{};
  t.channels = as_int(g.in_channels);
  t.out_channels = as_int(g.out_channels);
  t.kernel_w = as_int(g.kernel_w);
  t.taps = as_int(g.kernel_h * g.kernel_w);
  t.stride_h = stride_h;
  t.stride_w = stride_w;
  t.pad_h = as_int(g.pad_h);
  t.pad_w = as_int(g.pad_w);
  t.dilation_h = as_int(g.dilation_h);
  t.dilation_w = as_int(g.dilation_w);
  t.channel_blocks = as_int((g.in_channels + kBlockJ - 1) / kBlockJ);
  t.positions = positions;
  t.tiles_k = as_int((g.out_channels + BN - 1) / BN);
  const std::int64_t tiles = std::int64_t{t.taps} * t.channel_blocks * t.tiles_k;
  constexpr const char* kName = "conv2d ladder 08_backward_weight_tma_wgmma_bf16";
  run_split_k("conv2d ladder 08_backward_weight_tma_wgmma_bf16 (sum of splits)", tiles,
              std::int64_t{positions.tiles} * kBlockPositions, kBlockPositions,
              g.out_channels * g.kernel_h * g.kernel_w * g.in_channels, gw,
              [&](dim3 grid, int chunk, float* out) {
                t.chunk = chunk / kBlockPositions;  // split_k.cuh keeps chunks whole boxes
                ladder::launch(kName, backward_weight_tma_wgmma_kernel<BN>, grid, dim3(kThreads),
                               dynamic_shared_bytes<BN>(), x_map, gy_map, t, out);
              });
}

}  // namespace backward_weight_tma_wgmma_bf16
}  // namespace

void launch_08_backward_weight_tma_wgmma_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                              float* gw) {
  using namespace backward_weight_tma_wgmma_bf16;
  require_supported(
      "08_backward_weight_tma_wgmma_bf16", g,
      g.groups == 1 && g.in_channels % 8 == 0 && g.out_channels % 8 == 0 && g.stride_h <= 8 &&
          g.stride_w <= 8 && ladder::wgmma_available(),
      "groups 1, C % 8 == 0, K % 8 == 0, strides up to 8, an H100 or H200 and a build for sm_90a");
  require_16_byte_operands("08_backward_weight_tma_wgmma_bf16", gy, x, gw);
  with_tile_width(g.out_channels, [&]<int BN>() { launch_tiles<BN>(g, gy, x, gw); });  // BN holds K
}

}  // namespace kiln::kernels::conv2d_ladder
