// Convolution ladder, step 08 (forward): warp specialization, as GEMM step 09, with the im2col gather done
// by the tensor memory accelerator. One producer thread issues two tensor copies per k-tile, two consumer
// warpgroups only multiply, and mbarriers hand each stage from one side to the other. Built for sm_90a
// (H100, H200); elsewhere the step refuses (kernels/ladder/hopper.hpp).
//
// The GEMM view of step 07: x [N, H, W, C], w [K, R, S, C] bfloat16, y [N, P, Q, K] float,
//   y[m, k] = sum over j of A[m, j] B[k, j]      m = (n, p, q),  j = (r, s, c)
//   A[m, j] = x[n, p sh - ph + r dh, q sw - pw + s dw, c], zero in the padding;  B[k, j] = w[k, r, s, c]
//
// The gather as a box. Step 07's 128 threads each worked out, for every row of A, which input pixel a tap
// reads and whether it lies in the padding, and issued a 16-byte cp.async per chunk. Here the tile's 128
// output positions are a box of the output, BW columns x BH rows x BI images (BW BH BI = 128, powers of two
// chosen per layer, below), and for a fixed tap (r, s) the input pixels they read form a box of x too: BW
// columns every sw-th, from q0 sw - pw + s dw; BH rows every sh-th, from p0 sh - ph + r dh; BI images. x's
// rank-4 tensor map (tma.cuh: dimensions C, W, H, N innermost first, with steps sw and sh) describes exactly
// that, so one tensor copy gathers A's tile for one tap and 64 channels: the engine takes every sw-th column
// and sh-th row, and fills whatever lies outside x (the padding, and the tile's overhang past P, Q or N)
// with zeros. The box's lines land in the order q fastest, then p, then n: line L is the output position
// (n0 + L / (BW BH), p0 + L / BW % BH, q0 + L % BW), which the epilogue undoes. Dilation is only where the
// boxes start.
//
// Lines and k-tiles. A box line holds LC channels of one position: 64 (128 bytes, the 128-byte swizzle) when
// C > 32, else 32 or 16, the narrowest that holds C (64- or 32-byte lines in their own swizzles, wgmma.cuh's
// swizzled(line, chunk, line_bytes), and K-major descriptors of that width). The reduction runs over pairs
// (tap, channel block of LC), tap = r S + s, and a k-tile of 64 packs 64 / LC pairs: at C = 16 four taps
// share a stage, each its own box of x and of w, so a 16-channel layer multiplies no zeros (with 64-channel
// lines it would multiply three of every four). C need not be a multiple of LC: a block's channels past C are
// zeros in both operands (x's and w's maps stop at C), and the last k-tile's missing pairs are boxes wholly
// past C, zeros, so that the consumers issue every slot's wgmma without a branch between them (a branch there
// makes ptxas insert warpgroup fences: its C7519). w is read through a rank-3 map [K][R S][C] in boxes of LC
// channels x 1 tap x BN filters: B's tile, K-major, as in step 07.
//
// Output tile shapes (position_box, tma_boxes.hpp). BW = the power of two at or above Q, at most 128 and at
// most 256 / sw (a box spans at most 256 elements); BH likewise from P, at most 128 / BW; BI = 128 / (BW BH).
// ResNet's layers: 32 x 32 outputs take 32 x 4 x 1 tiles, 16 x 16 take 16 x 8 x 1, 8 x 8 take 8 x 8 x 2,
// nothing wasted. A Q or P between powers of two wastes the overhang (7 x 7: 8 x 8 x 2, 49 of every 64
// positions used).
//
// Tiles, stages and the pipeline are GEMM step 09's: BM = 128 positions, BN = 16, 32, 64 or 128 filters (the
// smallest that holds K), BK = 64; consumer warpgroup g owns positions 64 g .. 64 g + 63, one m64nBNk16 per
// k16 slice; 8 stages (6 at BN = 128), each 16 KiB of x's boxes then BN x 128 bytes of w's; `full[s]`
// completes on the stage's bytes, `empty[s]` on both consumers' release after their wgmma on it retired
// (kernels/ladder/stage_ring.cuh).
// setmaxnreg: producer 40, consumers 232.
#include <cstdint>

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
namespace forward_tma_wgmma_bf16 {  // this step's names (its ladder compiles as one unit)

using ladder::first_swizzle_atom;
using ladder::k_major_descriptor;
using ladder::kSwizzleAtomBytes;
using ladder::kTmaBoxColumns;
using ladder::TensorMap;
using ladder::tma_load;
using ladder::wgmma_bf16;
using ladder::wgmma_commit_group;
using ladder::wgmma_fence;
using ladder::wgmma_wait;

constexpr int kBlockM = kTilePositions;           // output positions per tile: one box of x (tma_boxes.hpp)
constexpr int kBlockK = kTmaBoxColumns;           // reduction per k-tile: 64, 128 bytes a position
constexpr int kConsumers = 2;                     // warpgroups, 64 positions each
constexpr int kThreads = (1 + kConsumers) * 128;  // 384: the producer's warpgroup first
constexpr int kLineBytes = 128;
constexpr int kATileBytes = kBlockM * kLineBytes;                 // 16,384
constexpr int kProducerRegisters = 40, kConsumerRegisters = 232;  // as GEMM step 09

template <int BN>
constexpr int stage_bytes() {
  return kATileBytes + BN * kLineBytes;
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
struct ForwardTiling {
  int batch, out_h, out_w, out_channels;  // N, P, Q, K
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int channel_blocks;       // ceil(C / LC): blocks of a tap's channels, one line each
  int k_tiles;              // (tap, channel block) pairs, R S channel_blocks of them, 64 / LC to a k-tile
  PositionTiles positions;  // y's positions in boxes of 128: the output tiles (tma_boxes.hpp)
  int tiles_k;              // tiles along K
};

// y [N, P, Q, K] = [M, K] float; x_map: x's rank-4 map, boxes of LC x BW x BH x BI; w_map: w's rank-3 map
// [K][R S][C], boxes of LC x 1 x BN. LC: a line's channels, 64, or 32 or 16 for narrow layers (top).
template <int BN, int LC>
__global__ void __launch_bounds__(kThreads, 1)
    forward_tma_wgmma_kernel(const __grid_constant__ TensorMap x_map, const __grid_constant__ TensorMap w_map,
                             ForwardTiling g, float* __restrict__ y) {
  constexpr int kStages = stages<BN>();
  constexpr int kUnitsPerTile = kBlockK / LC;  // (tap, channel block) pairs a stage holds
  constexpr int kLine = 2 * LC;                // bytes a line: the swizzle's width
  constexpr int kABoxBytes = kBlockM * kLine, kBBoxBytes = BN * kLine;  // one pair's boxes
  static_assert(kUnitsPerTile * (kABoxBytes + kBBoxBytes) == stage_bytes<BN>());
  static_assert(stage_bytes<BN>() % kSwizzleAtomBytes == 0, "every box of every stage starts on 1024 bytes");
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const tiles = first_swizzle_atom(shared);  // the launch asked for the slack
  const Ring<BN> ring = Ring<BN>::at(tiles + kStages * stage_bytes<BN>());

  // The tile: filters fastest, so that consecutive blocks read the same box of x.
  const int block = static_cast<int>(blockIdx.x);
  const int tile_m = block / g.tiles_k;
  const int k0 = block % g.tiles_k * BN;
  const Position corner = g.positions.corner(tile_m);
  const int q0 = corner.w, p0 = corner.h, n0 = corner.n;

  const int tid = static_cast<int>(threadIdx.x);
  const int warpgroup = tid / 128;
  if (tid == 0) ring.init();
  __syncthreads();  // the last block-wide barrier: from here on the roles meet only at mbarriers

  if (warpgroup == 0) {
    ladder::warpgroup_release_registers<kProducerRegisters>();
    if (tid != 0) return;
    int tap_r = 0, tap_s = 0, block_c = 0;  // the next pair's tap and channel block
    for (int t = 0; t < g.k_tiles; ++t) {
      // Once k-tile t - kStages's readers are done: the barrier the stage's copies complete on.
      std::uint64_t* const landed = ring.produce(t, stage_bytes<BN>());
      unsigned char* const a = tiles + Ring<BN>::stage(t) * stage_bytes<BN>();
      unsigned char* const b = a + kATileBytes;
      for (int unit = 0; unit < kUnitsPerTile; ++unit) {
        // Past the last pair (the last k-tile may hold fewer), boxes wholly past C: zeros, so that the
        // consumers multiply every slot without a branch between their wgmma.
        const int c = tap_r < g.kernel_h ? block_c * LC : g.channel_blocks * LC;
        // Coordinates innermost first: (c, w, h, n) of x, (c, tap, k) of w.
        tma_load(a + unit * kABoxBytes, x_map,
                 {c, q0 * g.stride_w - g.pad_w + tap_s * g.dilation_w,
                  p0 * g.stride_h - g.pad_h + tap_r * g.dilation_h, n0},
                 landed);
        tma_load(b + unit * kBBoxBytes, w_map, {c, tap_r * g.kernel_w + tap_s, k0}, landed);
        if (++block_c == g.channel_blocks) {
          block_c = 0;
          if (++tap_s == g.kernel_w) {
            tap_s = 0;
            ++tap_r;
          }
        }
      }
    }
  } else {
    ladder::warpgroup_claim_registers<kConsumerRegisters>();
    const int consumer = warpgroup - 1;
    float acc[BN / 2] = {};  // this warpgroup's 64 positions x BN filters
    for (int t = 0; t < g.k_tiles; ++t) {
      ring.consume(t);  // k-tile t has landed
      const unsigned char* const a = tiles + Ring<BN>::stage(t) * stage_bytes<BN>();
      const unsigned char* const b = a + kATileBytes;
      wgmma_fence(acc);
#pragma unroll
      for (int unit = 0; unit < kUnitsPerTile; ++unit) {
#pragma unroll
        for (int k16 = 0; k16 < LC / 16; ++k16)  // slice k16 of a line starts 32 k16 bytes in
          wgmma_bf16<BN>(acc,
                         k_major_descriptor(a + unit * kABoxBytes + consumer * 64 * kLine + 32 * k16, kLine),
                         k_major_descriptor(b + unit * kBBoxBytes + 32 * k16, kLine), true);
      }
      wgmma_commit_group();
      wgmma_wait<1>(acc);  // group t - 1 is done: k-tile t - 1's stage may be refilled
      if (t > 0 && tid % 128 == 0) ring.release(t - 1);
    }
    wgmma_wait<0>(acc);  // the last k-tile's stage is never refilled: no release owed

    // The accumulators (wgmma.cuh): acc[i] is (row 16 warp + group + 8 ((i / 2) % 2), filter 8 (i / 4) +
    // 2 quad + i % 2) of this warpgroup's 64 positions; a row is a line of x's box: q fastest, then p, n.
    const int warp = tid % 128 / 32, lane = tid % 32;
    const int group = lane / 4, quad = lane % 4;
    const bool even_k = g.out_channels % 2 == 0;  // then every (m, even k) is 8-byte aligned: float2 stores
#pragma unroll
    for (int i = 0; i < BN / 2; i += 2) {
      const int line = 64 * consumer + 16 * warp + group + 8 * ((i / 2) % 2);
      const Position in_box = g.positions.line(line);
      const int q = q0 + in_box.w, p = p0 + in_box.h, n = n0 + in_box.n;
      const int k = k0 + 8 * (i / 4) + 2 * quad;
      if (q >= g.out_w || p >= g.out_h || n >= g.batch || k >= g.out_channels) continue;
      float* out = y + (((n * g.out_h + p) * g.out_w + q) * g.out_channels + k);  // < N P Q K < 2^31
      if (k + 1 >= g.out_channels) {
        out[0] = acc[i];
      } else if (even_k) {
        *reinterpret_cast<float2*>(out) = make_float2(acc[i], acc[i + 1]);
      } else {
        out[0] = acc[i];
        out[1] = acc[i + 1];
      }
    }
  }
}

template <int BN, int LC>
void launch_tiles(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w, float* y) {
  const auto as_int = [](std::int64_t value) { return static_cast<int>(value); };
  const std::int64_t P = g.out_height(), Q = g.out_width();
  const int stride_h = as_int(g.stride_h), stride_w = as_int(g.stride_w);
  const PositionTiles positions = position_tiles(g.batch, P, Q, stride_h, stride_w);  // the output tiles
  const TensorMap x_map = ladder::bf16_tensor_map_128b(
      x,
      nhwc_box_shape(g.batch, g.in_height, g.in_width, g.in_channels, LC, positions.box, stride_h, stride_w));
  const TensorMap w_map = ladder::bf16_tensor_map_128b(
      w, filter_box_shape(g.out_channels, g.kernel_h * g.kernel_w, g.in_channels, LC, BN));

  ForwardTiling t{};
  t.batch = as_int(g.batch);
  t.out_h = as_int(P);
  t.out_w = as_int(Q);
  t.out_channels = as_int(g.out_channels);
  t.kernel_h = as_int(g.kernel_h);
  t.kernel_w = as_int(g.kernel_w);
  t.stride_h = stride_h;
  t.stride_w = stride_w;
  t.pad_h = as_int(g.pad_h);
  t.pad_w = as_int(g.pad_w);
  t.dilation_h = as_int(g.dilation_h);
  t.dilation_w = as_int(g.dilation_w);
  t.channel_blocks = as_int((g.in_channels + LC - 1) / LC);
  const int pairs = as_int(g.kernel_h * g.kernel_w) * t.channel_blocks;
  t.k_tiles = (pairs + kBlockK / LC - 1) / (kBlockK / LC);
  t.positions = positions;
  t.tiles_k = as_int((g.out_channels + BN - 1) / BN);
  // Every tile holds at least one output of y, so blocks <= N P Q K < 2^31: within gridDim.x's limit.
  const std::int64_t blocks = std::int64_t{positions.tiles} * t.tiles_k;
  ladder::launch("conv2d ladder 08_forward_tma_wgmma_bf16", forward_tma_wgmma_kernel<BN, LC>,
                 dim3(static_cast<unsigned>(blocks)), dim3(kThreads), dynamic_shared_bytes<BN>(), x_map,
                 w_map, t, y);
}

}  // namespace forward_tma_wgmma_bf16
}  // namespace

void launch_08_forward_tma_wgmma_bf16(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w,
                                      float* y) {
  using namespace forward_tma_wgmma_bf16;
  require_supported("08_forward_tma_wgmma_bf16", g,
                    g.groups == 1 && g.in_channels % 8 == 0 && g.stride_h <= 8 && g.stride_w <= 8 &&
                        ladder::wgmma_available(),
                    "groups 1, C % 8 == 0, strides up to 8, an H100 or H200 and a build for sm_90a");
  require_16_byte_operands("08_forward_tma_wgmma_bf16", x, w, y);
  // BN: the smallest tile that holds K; LC: the narrowest line that holds C (top).
  with_tile_and_line_width(g.out_channels, g.in_channels,
                           [&]<int BN, int LC>() { launch_tiles<BN, LC>(g, x, w, y); });
}

}  // namespace kiln::kernels::conv2d_ladder
