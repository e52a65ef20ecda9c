// Convolution ladder, step 06 (backward data), fp32: step 03's SIMT implicit GEMM for gx, split by stride
// phase (stride_phases.hpp), so that no tap that lands nowhere is gathered or multiplied. At stride 1 there
// is one phase, holding every tap: step 03's GEMM, summed in the same order where it is not split (below).
//
//   gy [N, K, P, Q]    w [K, C, R, S]    gx [N, C, H, W]      (NCHW, float, gx overwritten; groups == 1)
//
// Why. Step 03 reduces every position over all K*R*S taps and multiplies the ones that land nowhere as
// zeros: at stride 2 a 3x3 filter lands 4, 2, 2 or 1 of its 9 taps on a position, 2.25 on average, so three
// quarters of its gathers and multiply-adds are wasted, and each gather pays a division to find that out.
// Measured on an H200 (ResNet-20's stride-2 layers at batch 128, bench/results/h200-2026-12-04), step 03
// reached 0.24x and 0.28x of cuDNN's best there, against 0.60x to 0.78x for the stride-1 layers. The bf16
// step 06 does this split on tensor cores; this is the same idea on the fp32 SIMT step the fp32 training
// runs.
//
// The GEMM of one phase (a, b): its positions are h = first_h + i * stride_h (i < count_h), w = first_w + j'
// * stride_w (j' < count_w), and its landing taps r = tap0_h + tr * tap_step_h (tr < Ta), s likewise (ts <
// Tb). Then
//   GX[c, m] = sum over j < K * Ta * Tb of A[c, j] * B[j, m]
//   column m = (n, i, j') < N * count_h * count_w:  m = (n * count_h + i) * count_w + j'
//   j = (k, tr, ts), ts fastest:                     j = (k * Ta + tr) * Tb + ts
//   A[c, j] = w[k, c, r, s]
//   B[j, m] = gy[n, k, hq - rq, wq - sq]   hq = q0_h + i, rq = tap_q0_h + tr * tap_q_step_h (and w's
//   likewise);
//                                         0 only where that leaves gy (the image's edges)
//   GX[c, m] = gx[n, c, h, w]
// Consecutive columns of a phase are consecutive outputs q: a warp's 32 gathers of one tap read runs of
// consecutive floats of gy, a phase row at a time, where step 03's at stride 2 read every other one (and
// multiplied the rest as zeros). The stores of gx are stride_w floats apart instead: a quarter of the work
// writes half-used sectors.
//
// What stays as in step 03: the tile shapes (BM x BN = 4096 by C: 16 x 256, 32 x 128, 64 x 64), 256 threads
// with 4 x 4 outputs each, BK = 8 reduction indices per tile, the shared layouts (A transposed and padded),
// the next tile's loads issued into registers before the current tile's multiply-adds, two shared buffers,
// one __syncthreads a tile. The reduction's odometer walks (k, tr, ts) instead of (k, r, s), and B's test is
// two subtractions and four comparisons: no division.
//
// Phases and launches (as in the bf16 step): one launch covers up to 8 x 8 phases, grid (tiles, h-phases,
// w-phases), the phases sorted most landing taps first so the longest reductions start first; grid.x covers
// the largest phase and the blocks past a smaller phase's tiles return at once. A phase with no landing tap
// stores zeros, so every element of gx is written, once. Indices are int (every tensor holds fewer than 2^31
// elements); every sum is float, each gx element summed in a fixed order: no atomics.
//
// Split-K where gx makes few tiles, as the forward step 06 does (split_k.cuh): on the H200 step 03 ran
// ResNet's last stage (64 -> 64 at 8x8, gx = 64 x 8,192 at batch 128: 128 tiles, one 8-warp block per
// multiprocessor) at 0.49x of cuDNN, its warps too few to hide the loads. The split is chosen for gx's tiles
// and the longest phase's reduction (about four blocks per multiprocessor, chunks of at least 64 indices):
// block (x, y, z) runs chunk x / tiles of its phase's reduction over tile x % tiles into partials[chunk], a
// copy of gx's shape, and the sum adds the copies in a fixed order. A phase with fewer landing taps runs out
// of chunks first; its blocks past the end store zeros, so each copy is whole. ResNet-20 at batch 128: the
// last stage splits 4 ways (chunks of 144 of its 576 taps), 32 -> 32 at 16x16 2 ways (of 288), the 32 -> 64
// stride-2 layer 2 ways (its phases' reductions of 256, 128, 128 and 64 in chunks of 128), the 16-channel
// layers, 512 tiles, not at all. Not yet measured.
#include <cstdint>
#include <vector>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/conv2d/ladder/split_k.cuh"
#include "kernels/conv2d/ladder/stride_phases.hpp"
#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace backward_data_stride_phase {  // this step's names (its ladder compiles as one unit)

constexpr int kThreads = 256;
constexpr int kBK = 8;          // reduction indices per tile
constexpr int kThreadTile = 4;  // a thread's outputs: 4 channels x 4 positions
constexpr std::int64_t kMinChunkIndices = 64;  // split-K's shortest chunk: 8 tiles

// The geometry in int (the launcher has checked that every tensor holds fewer than 2^31 elements).
struct Shape {
  int batch, channels, height, width;    // gx [N, C, H, W]
  int out_channels, kernel_h, kernel_w;  // w [K, C, R, S]
  int out_height, out_width;             // gy [N, K, P, Q]
  int stride_h, stride_w;
  int tap_step_h, tap_step_w;      // from one landing tap of a phase to the next
  int tap_q_step_h, tap_q_step_w;  // and the growth of its rq (sq) meanwhile
  int splits, chunk;  // split-K: chunks of a phase's reduction, indices per chunk (a multiple of 8)
};

Shape int_shape(const Conv2dGeometry& g) {
  const auto i = [](std::int64_t v) { return static_cast<int>(v); };
  const AxisTapSteps steps_h = axis_tap_steps(g.stride_h, g.dilation_h);
  const AxisTapSteps steps_w = axis_tap_steps(g.stride_w, g.dilation_w);
  Shape s{};
  s.batch = i(g.batch), s.channels = i(g.in_channels), s.height = i(g.in_height), s.width = i(g.in_width);
  s.out_channels = i(g.out_channels), s.kernel_h = i(g.kernel_h), s.kernel_w = i(g.kernel_w);
  s.out_height = i(g.out_height()), s.out_width = i(g.out_width());
  s.stride_h = i(g.stride_h), s.stride_w = i(g.stride_w);
  s.tap_step_h = steps_h.tap_step, s.tap_step_w = steps_w.tap_step;
  s.tap_q_step_h = steps_h.tap_q_step, s.tap_q_step_w = steps_w.tap_q_step;
  return s;
}

// A reduction index j of a phase as (k, tr, ts): j = (k * Ta + tr) * Tb + ts.
struct PhaseTap {
  int k, tr, ts;
};
__device__ PhaseTap phase_tap_of(int j, int taps_h, int taps_w) {
  const int taps = taps_h * taps_w;
  return {j / taps, (j % taps) / taps_w, j % taps_w};
}
// t + d, digit by digit, where d's digits are below the phase's (ts < Tb, tr < Ta): each carries at most
// once.
__device__ void advance(PhaseTap& t, const PhaseTap& d, int taps_h, int taps_w) {
  t.ts += d.ts;
  if (t.ts >= taps_w) {
    t.ts -= taps_w;
    ++t.tr;
  }
  t.tr += d.tr;
  if (t.tr >= taps_h) {
    t.tr -= taps_h;
    ++t.k;
  }
  t.k += d.k;
}

// BM input channels x BN positions of one phase per block (BM * BN = 4096); block (x, y, z) computes, of
// phase (table.h[y], table.w[z]), tile x % tiles over chunk x / tiles of its reduction (tiles = gridDim.x /
// splits), into `out`: gx itself with one split, else the partials [splits, N, C, H, W].
// At most 64 registers a thread (launch bounds of 4 blocks a multiprocessor), as step 03 uses: unbounded, the
// 32-channel tile took 66, and only 3 of its blocks fit a multiprocessor's 65,536 registers.
template <int BM>
__global__ void __launch_bounds__(kThreads, 4)
    stride_phase_kernel(Shape g, PhaseTable table, const float* gy, const float* w, float* out) {
  constexpr int BN = 4096 / BM;
  constexpr int kThreadCols = BN / kThreadTile;                  // tx < BN/4
  constexpr int kALoads = (kBK * BM + kThreads - 1) / kThreads;  // A elements per thread: 2, 1, 1 (half idle)
  constexpr int kBLoads = kBK * BN / kThreads;                   // B elements per thread: 2, 4, 8
  static_assert((BM / kThreadTile) * kThreadCols == kThreads && kBLoads * kThreads == kBK * BN);
  static_assert(kThreads % kBK == 0, "a thread's A elements share one reduction index");

  __shared__ __align__(16) float a_tile[2][kBK][BM + 4];  // A[c0 + c, j0 + j] at a_tile[.][j][c]
  __shared__ __align__(16) float b_tile[2][kBK][BN];      // B[j0 + j, m0 + m] at b_tile[.][j][m]

  // ---- this block's phase and tile ----
  const AxisPhase phase_h = table.h[blockIdx.y], phase_w = table.w[blockIdx.z];
  const int positions = g.batch * phase_h.count * phase_w.count;  // the phase's columns, <= N*H*W < 2^31
  const int taps_h = phase_h.taps, taps_w = phase_w.taps;
  const int reduction = g.out_channels * taps_h * taps_w;  // <= K*R*S < 2^31; 0: no landing tap
  const int c_tiles = (g.channels + BM - 1) / BM;
  const int m_tiles = (positions + BN - 1) / BN;
  const int grid_tiles = static_cast<int>(gridDim.x) / g.splits;  // the largest phase's tiles
  const int block_tile = static_cast<int>(blockIdx.x) % grid_tiles;
  const int split = static_cast<int>(blockIdx.x) / grid_tiles;
  if (block_tile >= c_tiles * m_tiles) return;  // past a smaller phase's tiles
  // The channel tiles of one position tile side by side (they gather the same gy, which then comes from L2).
  const int c0 = (block_tile % c_tiles) * BM;
  const int m0 = (block_tile / c_tiles) * BN;
  // The chunk [begin, begin + length) of the phase's reduction; empty (length 0) where a phase with fewer
  // landing taps than the longest has run out: the block then stores zeros, so every split covers all of gx.
  const int begin = split * g.chunk;
  const int length = begin < reduction ? min(g.chunk, reduction - begin) : 0;
  const int tid = static_cast<int>(threadIdx.x);
  const int plane_in = g.height * g.width, plane_out = g.out_height * g.out_width;

  // ---- per thread, once: the B column this thread gathers ----
  const int b_column = tid % BN, b_row0 = (tid / BN) * kBLoads;
  const bool column_valid = b_column < positions - m0;  // m0 + b_column < the phase's columns
  const float* gy_image = gy;                           // gy[n, :, :, :]
  int hq = 0, wq = 0;                                   // the column's (hq, wq): output p = hq - rq
  if (column_valid) {
    const int m = m0 + b_column;
    const int iw = m % phase_w.count, ni = m / phase_w.count;
    const int ih = ni % phase_h.count, n = ni / phase_h.count;
    gy_image = gy + n * g.out_channels * plane_out;
    hq = phase_h.q0 + ih;
    wq = phase_w.q0 + iw;
  }

  // ---- the main loop: GX tile += A tile * B tile, 8 reduction indices at a time ----
  const int ty = tid / kThreadCols, tx = tid % kThreadCols;
  float sum[kThreadTile][kThreadTile] = {};  // sum[i][j]: channel c0 + 4*ty + i, column m0 + 4*tx + j
  const int tiles = (length + kBK - 1) / kBK;
  if (tiles > 0) {  // the whole block agrees (one phase and chunk per block): the barriers stay uniform
    // A's reduction index, stepped per tile (every A element of this thread has j % 8 = tid % 8), and B's
    // first row's; both as (k, tr, ts), k == K meaning past the end of the reduction. Chunks are whole
    // tiles, so only the last can end inside one, where the reduction ends: k == K still marks the end.
    PhaseTap a_tap = phase_tap_of(begin + tid % kBK, taps_h, taps_w);
    PhaseTap walk = phase_tap_of(begin + b_row0, taps_h, taps_w);
    const PhaseTap step = phase_tap_of(kBK, taps_h, taps_w);  // j += 8 as (dk, dtr, dts)

    float a_next[kALoads], b_next[kBLoads];
    // Global -> registers: the tile of A and B at the next 8 reduction indices.
    auto load_tile = [&]() {
      const int r = phase_h.tap0 + a_tap.tr * g.tap_step_h, s = phase_w.tap0 + a_tap.ts * g.tap_step_w;
      for (int l = 0; l < kALoads; ++l) {
        const int c = (tid + l * kThreads) / kBK;  // row of A; this thread's j is j0 + tid % 8
        const bool inside = c < BM && c < g.channels - c0 && a_tap.k < g.out_channels;
        a_next[l] = inside ? w[((a_tap.k * g.channels + c0 + c) * g.kernel_h + r) * g.kernel_w + s] : 0.0f;
      }
      advance(a_tap, step, taps_h, taps_w);

      PhaseTap t = walk;  // row b_row0 + l has (k, tr, ts) t
      for (int l = 0; l < kBLoads; ++l) {
        const int p = hq - (phase_h.tap_q0 + t.tr * g.tap_q_step_h);  // the tap lands: only the edges miss
        const int q = wq - (phase_w.tap_q0 + t.ts * g.tap_q_step_w);
        const bool inside =
            column_valid && t.k < g.out_channels && p >= 0 && p < g.out_height && q >= 0 && q < g.out_width;
        b_next[l] = inside ? gy_image[(t.k * g.out_height + p) * g.out_width + q] : 0.0f;
        if (++t.ts == taps_w) {  // the next row: ts + 1, carrying into tr, then k
          t.ts = 0;
          if (++t.tr == taps_h) {
            t.tr = 0;
            ++t.k;
          }
        }
      }
      advance(walk, step, taps_h, taps_w);
    };
    // Registers -> shared memory buffer `buffer`.
    auto store_tile = [&](int buffer) {
      for (int l = 0; l < kALoads; ++l) {
        const int e = tid + l * kThreads;
        if (e < kBK * BM) a_tile[buffer][e % kBK][e / kBK] = a_next[l];
      }
      for (int l = 0; l < kBLoads; ++l) b_tile[buffer][b_row0 + l][b_column] = b_next[l];
    };

    load_tile();
    store_tile(0);
    __syncthreads();  // tile 0 has landed in buffer 0
    for (int tile = 0; tile < tiles; ++tile) {
      const int buffer = tile % 2;
      const bool has_next = tile + 1 < tiles;
      if (has_next) load_tile();  // lands in registers while we compute
#pragma unroll
      for (int j = 0; j < kBK; ++j) {
        const float4 a = *reinterpret_cast<const float4*>(&a_tile[buffer][j][kThreadTile * ty]);
        const float4 b = *reinterpret_cast<const float4*>(&b_tile[buffer][j][kThreadTile * tx]);
        const float a_c[kThreadTile] = {a.x, a.y, a.z, a.w}, b_m[kThreadTile] = {b.x, b.y, b.z, b.w};
#pragma unroll
        for (int i = 0; i < kThreadTile; ++i) {
#pragma unroll
          for (int jj = 0; jj < kThreadTile; ++jj) sum[i][jj] += a_c[i] * b_m[jj];
        }
      }
      // The other buffer was last read in the previous step, before the __syncthreads that ended it: free.
      if (has_next) store_tile(1 - buffer);
      __syncthreads();  // the next tile has landed; nobody reads `buffer` again before it is refilled
    }
  }

  // ---- store: GX[c, m] = gx[n, c, h, w] (this split's copy), skipping rows and columns past C and the phase
  float* const gx = out + static_cast<std::int64_t>(split) * g.batch * g.channels * plane_in;
  for (int jj = 0; jj < kThreadTile; ++jj) {
    const int column = kThreadTile * tx + jj;
    if (column >= positions - m0) break;  // the columns after it are past the end too
    const int m = m0 + column;
    const int iw = m % phase_w.count, ni = m / phase_w.count;
    const int ih = ni % phase_h.count, n = ni / phase_h.count;
    const int h = phase_h.first + ih * g.stride_h, x = phase_w.first + iw * g.stride_w;  // < H, < W
    float* gx_column = gx + n * g.channels * plane_in + h * g.width + x;  // gx[n, 0, h, w]; c at + c * H*W
    for (int i = 0; i < kThreadTile; ++i) {
      const int row = kThreadTile * ty + i;
      if (row < g.channels - c0) gx_column[(c0 + row) * plane_in] = sum[i][jj];
    }
  }
}

// Static shared memory (at most 17664 bytes): no attribute to set. The split is chosen for gx's tiles and
// the longest phase's reduction (the phases come most landing taps first); then one launch per 8 x 8 block
// of (h-phase, w-phase) pairs (one launch for strides up to 8), every split of a phase in the same launch,
// and split_k.cuh's sum after the last.
template <int BM>
void launch_tiles(Shape s, const std::vector<AxisPhase>& phases_h, const std::vector<AxisPhase>& phases_w,
                  const float* gy, const float* w, float* gx) {
  constexpr int BN = 4096 / BM;
  const std::int64_t gx_size = std::int64_t{s.batch} * s.channels * s.height * s.width;
  const std::int64_t tiles = (gx_size / s.channels + BN - 1) / BN * ((s.channels + BM - 1) / BM);
  const std::int64_t longest = std::int64_t{s.out_channels} * phases_h.front().taps * phases_w.front().taps;
  run_split_k(
      "conv2d ladder 06_backward_data_stride_phase (sum of splits)", tiles, longest, kBK, gx_size, gx,
      [&](dim3 split_grid, int chunk, float* out) {
        s.splits = static_cast<int>(split_grid.y);
        s.chunk = chunk;
        for_each_phase_table(
            phases_h, phases_w,
            [&](const PhaseTable& table, unsigned count_h, unsigned count_w, int most_h, int most_w) {
              // Every tile holds an element of gx, which holds fewer than 2^31, and there are splits only
              // where the tiles are few: within gridDim.x.
              const std::int64_t positions = std::int64_t{s.batch} * most_h * most_w;
              const std::int64_t blocks = ((positions + BN - 1) / BN) * ((s.channels + BM - 1) / BM);
              ladder::launch("conv2d ladder 06_backward_data_stride_phase", stride_phase_kernel<BM>,
                             dim3(static_cast<unsigned>(blocks * s.splits), count_h, count_w), dim3(kThreads),
                             0, s, table, gy, w, out);
            });
      },
      kMinChunkIndices);
}

}  // namespace backward_data_stride_phase
}  // namespace

void launch_06_backward_data_stride_phase(const Conv2dGeometry& g, const float* gy, const float* w,
                                          float* gx) {
  using namespace backward_data_stride_phase;
  require_supported("06_backward_data_stride_phase", g, g.groups == 1, "groups 1");
  const Shape shape = int_shape(g);
  const std::vector<AxisPhase> phases_h =
      axis_phases(g.in_height, g.pad_h, g.stride_h, g.dilation_h, g.kernel_h);
  const std::vector<AxisPhase> phases_w =
      axis_phases(g.in_width, g.pad_w, g.stride_w, g.dilation_w, g.kernel_w);
  if (shape.channels <= 16) {
    launch_tiles<16>(shape, phases_h, phases_w, gy, w, gx);
  } else if (shape.channels <= 32) {
    launch_tiles<32>(shape, phases_h, phases_w, gy, w, gx);
  } else {
    launch_tiles<64>(shape, phases_h, phases_w, gy, w, gx);
  }
}

}  // namespace kiln::kernels::conv2d_ladder
