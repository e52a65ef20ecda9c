// Convolution ladder, step 08 (backward data): the forward step 08's design for gx, by stride phase: the
// tensor memory accelerator gathers gy per tap as one box, one producer thread issues the copies, two
// consumer warpgroups only multiply, mbarriers hand the stages over. Built for sm_90a (H100, H200); elsewhere
// the step refuses (kernels/ladder/hopper.hpp).
//
// The GEMM view of step 07. With gy [N, P, Q, K], w [K, R, S, C] bfloat16, gx [N, H, W, C] float:
//   gx[m, c] = sum over j of A[m, j] B[j, c]       m = (n, h, w),  j = (r, s, k)
//   A[m, j] = gy[n, (h + ph - r dh) / sh, (w + pw - s dw) / sw, k] where both divide exactly and the position
//             lies inside gy, else zero;  B[j, c] = w[k, r, s, c]
//
// Stride phases, as step 06. Whether tap r reaches row h depends only on h mod sh: split gx's rows into the
// sh phases a = h mod sh (and columns likewise, sh sw phases in all), and within phase (a, b) a fixed set of
// taps lands on every position, each reading gy at a constant offset: row h = a + sh i reads gy row
// i + (a + ph - r dh) / sh. So for a phase and a landing tap, the positions of a tile of the phase (a box of
// its (i, j), tma_boxes.hpp) read a box of gy, steps of 1, moved by that offset: A's tile for the tap and 64
// filters k is one tensor copy of gy's rank-4 map, the border's missing outputs arriving as out-of-bounds
// zeros. A phase walks only its landing taps (a quarter of them at stride 2): no zeros multiplied, no tap
// test per position. A phase no tap reaches (a 1x1 filter at stride 2, phases with a = 1) gets zeros. At
// stride 1 there is one phase, every tap lands, and the boxes are the tile's own moved by (pw - s dw,
// ph - r dh).
//
// Lines and k-tiles, as the forward step 08's: a line of gy holds LK filters of a position, 64, or the
// narrowest of 32 and 16 that holds K (in the 64- or 32-byte swizzle), and a k-tile of 64 packs 64 / LK
// (landing tap, filter block) pairs; the last k-tile's missing pairs are boxes wholly past K (zeros).
//
// B runs along c, the GEMM's N: MN-major, as in step 07. For a pair (tap, k0 .. k0 + LK - 1), w's rank-3 map
// [K][R S][C] delivers a box of 64 channels c x 1 tap x LK filters k: LK lines (one per k) of 64 c, placed
// down a 64-wide column of the MN-major operand after the stage's earlier pairs, so a stage's 64 lines make
// one column of 8 KiB whatever LK is. BN = 128 takes two such boxes per pair, the second column 8 KiB on (the
// descriptor's leading byte offset); BN = 16 or 32 reads only the first BN channels of each line.
//
// Stages, ring, registers and epilogue: the forward step 08's (8 stages, 6 at BN = 128; producer 40
// registers, consumers 232), with gx's positions and channels in place of y's: line L of the tile is gx row
// a + sh (h0 + L / BW % BH), column b + sw (w0 + L % BW), image n0 + L / (BW BH). The grid is phase-major:
// (phase, tile of its positions, tile of C), every phase with as many tiles as phase 0, the largest.
#include <cstdint>

#include "core/error.hpp"
#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/conv2d/ladder/tma_boxes.hpp"
#include "kernels/ladder/hopper.hpp"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/stage_ring.cuh"
#include "kernels/ladder/tma.cuh"
#include "kernels/ladder/warpgroup_registers.cuh"
#include "kernels/ladder/wgmma.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace backward_data_tma_wgmma_bf16 {  // this step's names (its ladder compiles as one unit)

using ladder::first_swizzle_atom;
using ladder::k_major_descriptor;
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

constexpr int kBlockM = kTilePositions;           // input positions per tile: one box of gy
constexpr int kBlockK = kTmaBoxColumns;           // reduction per k-tile: 64, 128 bytes a position
constexpr int kConsumers = 2;                     // warpgroups, 64 positions each
constexpr int kThreads = (1 + kConsumers) * 128;  // 384: the producer's warpgroup first
constexpr int kLineBytes = 128;
constexpr int kATileBytes = kBlockM * kLineBytes;                 // 16,384
constexpr int kColumnBytes = kBlockK * kLineBytes;                // 8,192: one 64-wide column of c
constexpr int kProducerRegisters = 40, kConsumerRegisters = 232;  // as GEMM step 09

template <int BN>
constexpr int columns() {
  return BN > 64 ? BN / 64 : 1;  // 64-wide columns of c a stage holds
}
template <int BN>
constexpr int stage_bytes() {
  return kATileBytes + columns<BN>() * kColumnBytes;
}
// As many stages as fit in 200 KiB, at most 8: 8 for BN up to 64, 6 for 128.
template <int BN>
constexpr int stages() {
  return ladder::stages_that_fit(stage_bytes<BN>());
}
template <int BN>
using Ring = ladder::StageRing<stages<BN>(), kConsumers>;  // the stages' mbarriers (stage_ring.cuh)
template <int BN>
constexpr int dynamic_shared_bytes() {
  return stages<BN>() * stage_bytes<BN>() + Ring<BN>::kBarrierBytes + kSwizzleAtomBytes;
}

// What the kernel needs of the geometry, in int (every tensor holds fewer than 2^31 elements).
struct BackwardDataTiling {
  int batch, height, width, channels;  // N, H, W, C
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int filter_blocks;        // ceil(K / LK): blocks of a tap's filters, one line of gy each
  PositionTiles positions;  // a phase's positions (i, j) in boxes of 128, as phase 0's, the largest, need
  int tiles_c;              // tiles along C
};

// Whether tap `tap` lands on the positions of phase `phase` (those congruent to it modulo `stride`): the
// output it reads, (phase + pad - tap dilation) / stride, is then a whole number.
__device__ bool tap_lands(int phase, int pad, int tap, int dilation, int stride) {
  return ((phase + pad - tap * dilation) % stride + stride) % stride == 0;
}

// gx [N, H, W, C] float; gy_map: gy's rank-4 map, boxes of LK x BW x BH x BI; w_map: w's rank-3 map
// [K][R S][C], boxes of 64 c x 1 x LK k. LK: a line's filters, 64, or 32 or 16 for narrow layers (top).
template <int BN, int LK>
__global__ void __launch_bounds__(kThreads, 1)
    backward_data_tma_wgmma_kernel(const __grid_constant__ TensorMap gy_map,
                                   const __grid_constant__ TensorMap w_map, BackwardDataTiling g,
                                   float* __restrict__ gx) {
  constexpr int kStages = stages<BN>();
  constexpr int kPairsPerTile = kBlockK / LK;  // (tap, filter block) pairs a stage holds
  constexpr int kLine = 2 * LK;                // bytes of a line of gy: the swizzle's width
  constexpr int kABoxBytes = kBlockM * kLine;  // one pair's box of gy; its box of w: LK lines per column
  static_assert(stage_bytes<BN>() % kSwizzleAtomBytes == 0, "every box of every stage starts on 1024 bytes");
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const tiles = first_swizzle_atom(shared);  // the launch asked for the slack
  const Ring<BN> ring = Ring<BN>::at(tiles + kStages * stage_bytes<BN>());

  // The tile: channels fastest, so that consecutive blocks read the same box of gy; then the phase's
  // positions; the phase (a, b) last. (h0, w0) count the phase's rows and columns: gx's h = a + sh (h0 + ..).
  const int block = static_cast<int>(blockIdx.x);
  const int c0 = block % g.tiles_c * BN;
  const int tile_m = block / g.tiles_c % g.positions.tiles;
  const int phase = block / (g.tiles_c * g.positions.tiles);
  const int phase_h = phase / g.stride_w, phase_w = phase % g.stride_w;
  const Position corner = g.positions.corner(tile_m);
  const int w0 = corner.w, h0 = corner.h, n0 = corner.n;

  // The phase's k-tiles: every (r, s) that lands on it, times the filter blocks (none: gx is zero there).
  int taps_r = 0, taps_s = 0;
  for (int r = 0; r < g.kernel_h; ++r) taps_r += tap_lands(phase_h, g.pad_h, r, g.dilation_h, g.stride_h);
  for (int s = 0; s < g.kernel_w; ++s) taps_s += tap_lands(phase_w, g.pad_w, s, g.dilation_w, g.stride_w);
  const int k_tiles = (taps_r * taps_s * g.filter_blocks + kPairsPerTile - 1) / kPairsPerTile;

  const int tid = static_cast<int>(threadIdx.x);
  const int warpgroup = tid / 128;
  if (tid == 0) ring.init();
  __syncthreads();  // the last block-wide barrier: from here on the roles meet only at mbarriers

  if (warpgroup == 0) {
    ladder::warpgroup_release_registers<kProducerRegisters>();
    if (tid != 0) return;
    // The phase's pairs in order: landing taps (r, s), each with its filter blocks. r == kernel_h: past the
    // last, where the boxes are wholly past K (zeros), so that the consumers multiply every slot without a
    // branch between their wgmma.
    const auto lands_r = [&](int r) { return tap_lands(phase_h, g.pad_h, r, g.dilation_h, g.stride_h); };
    const auto lands_s = [&](int s) { return tap_lands(phase_w, g.pad_w, s, g.dilation_w, g.stride_w); };
    int first_s = 0;
    while (first_s < g.kernel_w && !lands_s(first_s)) ++first_s;
    int r = 0, s = first_s, block_k = 0;
    while (r < g.kernel_h && !lands_r(r)) ++r;
    const auto advance = [&] {
      if (++block_k < g.filter_blocks) return;
      block_k = 0;
      do ++s;
      while (s < g.kernel_w && !lands_s(s));
      if (s < g.kernel_w) return;
      s = first_s;
      do ++r;
      while (r < g.kernel_h && !lands_r(r));
    };
    for (int t = 0; t < k_tiles; ++t) {
      // Once k-tile t - kStages's readers are done: the barrier the stage's copies complete on.
      std::uint64_t* const landed = ring.produce(t, stage_bytes<BN>());
      unsigned char* const a = tiles + Ring<BN>::stage(t) * stage_bytes<BN>();
      unsigned char* const b = a + kATileBytes;
      for (int pair = 0; pair < kPairsPerTile; ++pair) {
        const bool real = r < g.kernel_h;
        const int k = real ? block_k * LK : g.filter_blocks * LK;
        // gy's corner for this tap: exact when the tap lands (any corner serves the zero boxes).
        const int p0 = h0 + (phase_h + g.pad_h - r * g.dilation_h) / g.stride_h;
        const int q0 = w0 + (phase_w + g.pad_w - s * g.dilation_w) / g.stride_w;
        // Coordinates innermost first: (k, q, p, n) of gy, (c, tap, k) of w.
        tma_load(a + pair * kABoxBytes, gy_map, {k, q0, p0, n0}, landed);
#pragma unroll
        for (int column = 0; column < columns<BN>(); ++column)
          tma_load(b + column * kColumnBytes + pair * LK * kLineBytes, w_map,
                   {c0 + 64 * column, r * g.kernel_w + s, k}, landed);
        if (real) advance();
      }
    }
  } else {
    ladder::warpgroup_claim_registers<kConsumerRegisters>();
    const int consumer = warpgroup - 1;
    float acc[BN / 2] = {};  // this warpgroup's 64 positions x BN channels
    for (int t = 0; t < k_tiles; ++t) {
      ring.consume(t);  // k-tile t has landed
      const unsigned char* const a = tiles + Ring<BN>::stage(t) * stage_bytes<BN>();
      const unsigned char* const b = a + kATileBytes;
      wgmma_fence(acc);
#pragma unroll
      for (int k16 = 0; k16 < kBlockK / 16; ++k16) {
        // Slice k16: pair k16 / (LK / 16)'s box of gy, 32 bytes per slice into its lines; and 16 lines of
        // B's columns, 2048 bytes in (the pairs' LK lines lie one after another down each column).
        const int pair = k16 / (LK / 16), slice = k16 % (LK / 16);
        wgmma_bf16<BN, Major::K, Major::MN>(
            acc, k_major_descriptor(a + pair * kABoxBytes + consumer * 64 * kLine + 32 * slice, kLine),
            mn_major_128b_descriptor(b + 2048 * k16, kColumnBytes), true);
      }
      wgmma_commit_group();
      wgmma_wait<1>(acc);  // group t - 1 is done: k-tile t - 1's stage may be refilled
      if (t > 0 && tid % 128 == 0) ring.release(t - 1);
    }
    wgmma_wait<0>(acc);  // the last k-tile's stage is never refilled: no release owed

    // The accumulators (wgmma.cuh): acc[i] is (row 16 warp + group + 8 ((i / 2) % 2), channel 8 (i / 4) +
    // 2 quad + i % 2) of this warpgroup's 64 positions; a row is a line of gy's box: w fastest, then h, n.
    // C % 8 == 0, so a pair of channels is whole and 8-byte aligned.
    const int warp = tid % 128 / 32, lane = tid % 32;
    const int group = lane / 4, quad = lane % 4;
#pragma unroll
    for (int i = 0; i < BN / 2; i += 2) {
      const int line = 64 * consumer + 16 * warp + group + 8 * ((i / 2) % 2);
      const Position in_box = g.positions.line(line);
      const int w = phase_w + g.stride_w * (w0 + in_box.w);
      const int h = phase_h + g.stride_h * (h0 + in_box.h);
      const int n = n0 + in_box.n;
      const int c = c0 + 8 * (i / 4) + 2 * quad;
      if (w >= g.width || h >= g.height || n >= g.batch || c >= g.channels) continue;
      float* out = gx + (((n * g.height + h) * g.width + w) * g.channels + c);  // < N H W C < 2^31
      *reinterpret_cast<float2*>(out) = make_float2(acc[i], acc[i + 1]);
    }
  }
}

template <int BN, int LK>
void launch_tiles(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w, float* gx) {
  const auto as_int = [](std::int64_t value) { return static_cast<int>(value); };
  // A phase's positions: at most ceil(H / sh) x ceil(W / sw) (phase 0's); the tile is a box of them.
  const std::int64_t phase_height = (g.in_height + g.stride_h - 1) / g.stride_h;
  const std::int64_t phase_width = (g.in_width + g.stride_w - 1) / g.stride_w;
  const PositionTiles positions =
      position_tiles(g.batch, phase_height, phase_width, 1, 1);  // (tma_boxes.hpp)
  const TensorMap gy_map = ladder::bf16_tensor_map_128b(
      gy, nhwc_box_shape(g.batch, g.out_height(), g.out_width(), g.out_channels, LK, positions.box, 1, 1));
  const TensorMap w_map = ladder::bf16_tensor_map_128b(
      w, filter_box_shape(g.out_channels, g.kernel_h * g.kernel_w, g.in_channels, kBlockK, LK));

  BackwardDataTiling t{};
  t.batch = as_int(g.batch);
  t.height = as_int(g.in_height);
  t.width = as_int(g.in_width);
  t.channels = as_int(g.in_channels);
  t.kernel_h = as_int(g.kernel_h);
  t.kernel_w = as_int(g.kernel_w);
  t.stride_h = as_int(g.stride_h);
  t.stride_w = as_int(g.stride_w);
  t.pad_h = as_int(g.pad_h);
  t.pad_w = as_int(g.pad_w);
  t.dilation_h = as_int(g.dilation_h);
  t.dilation_w = as_int(g.dilation_w);
  t.filter_blocks = as_int((g.out_channels + LK - 1) / LK);
  t.positions = positions;
  t.tiles_c = as_int((g.in_channels + BN - 1) / BN);
  // Each phase has as many tiles as phase 0, the largest: blocks <= sh sw N H W C, checked against
  // gridDim.x's limit.
  const std::int64_t blocks = g.stride_h * g.stride_w * std::int64_t{positions.tiles} * t.tiles_c;
  KILN_CHECK(blocks <= 2147483647, "conv2d ladder 08_backward_data_tma_wgmma_bf16: too many tiles");
  ladder::launch("conv2d ladder 08_backward_data_tma_wgmma_bf16", backward_data_tma_wgmma_kernel<BN, LK>,
                 dim3(static_cast<unsigned>(blocks)), dim3(kThreads), dynamic_shared_bytes<BN>(), gy_map,
                 w_map, t, gx);
}

}  // namespace backward_data_tma_wgmma_bf16
}  // namespace

void launch_08_backward_data_tma_wgmma_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w,
                                            float* gx) {
  using namespace backward_data_tma_wgmma_bf16;
  require_supported(
      "08_backward_data_tma_wgmma_bf16", g,
      g.groups == 1 && g.in_channels % 8 == 0 && g.out_channels % 8 == 0 && ladder::wgmma_available(),
      "groups 1, C % 8 == 0, K % 8 == 0, an H100 or H200 and a build for sm_90a");
  require_16_byte_operands("08_backward_data_tma_wgmma_bf16", gy, w, gx);
  // BN: the smallest tile that holds C; LK: the narrowest line that holds K (top).
  with_tile_and_line_width(g.in_channels, g.out_channels,
                           [&]<int BN, int LK>() { launch_tiles<BN, LK>(g, gy, w, gx); });
}

}  // namespace kiln::kernels::conv2d_ladder
