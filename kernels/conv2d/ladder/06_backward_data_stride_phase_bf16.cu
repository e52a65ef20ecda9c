// Convolution ladder, step 06 (backward data): step 05's bfloat16 implicit GEMM for gx, split by stride
// phase, so that no tap that lands nowhere is gathered or multiplied. At stride 1 it is step 05.
//
// The waste it removes. gx[n, h, w, c] = sum over the taps (r, s) that read (h, w) and over k of
// gy[n, p, q, k] * w[k, r, s, c], where tap r reads row h from output row p exactly when
// h + pad_h - r*dil_h = p * stride_h with 0 <= p < P. Step 05 reduces over every tap and zero-fills those
// that fail the test: at stride 2 a 3x3 filter lands 4, 2, 2 or 1 of its 9 taps on a position, 2.25 on
// average, so three quarters of its copies and mma work are zeros. But whether a tap lands depends only on
// remainders: write h + pad_h = hq * stride_h + a (a, the position's phase, in [0, stride_h)) and
// r*dil_h = rq * stride_h + rr; tap r can reach row h only when rr == a, and then it does, at p = hq - rq
// (if 0 <= p < P). So the positions of one phase (a, b) all have the same landing taps, those with
// r*dil_h % stride_h == a and s*dil_w % stride_w == b, and each phase is a smaller dense implicit GEMM:
//   gx[m, c] = sum over j < Ta*Tb*K of A[m, j] * B[j, c]    m = (n, i, j') < N * Ha * Wb,  c < C
//   m's position: h = first_h + i * stride_h, w = first_w + j' * stride_w (every position of phase (a, b))
//   j = (tr, ts, k), k fastest: tap r = tap0_h + tr * tap_step_h (tr < Ta), s likewise (ts < Tb)
//   A[m, j] = gy[n, hq - rq, wq - sq, k], zero only where that leaves gy (the image's edges)
//   B[j, c] = w[k, r, s, c]
// The landing taps of a phase are evenly spaced: r*dil_h mod stride_h repeats with period
// tap_step_h = stride_h / gcd(dil_h, stride_h), and from one landing tap to the next rq grows by
// tap_q_step_h = dil_h / gcd(dil_h, stride_h). The host finds each phase's first landing tap (tap0, with
// its rq = tap_q0) and counts them (stride_phases.hpp, shared with the fp32 step 06); a phase with none (a
// 1x1 filter at stride 2: 3 phases of 4) has an empty reduction and its block stores zeros, so every element
// of gx is still written, once.
//
// Phases and launches. The phases are separable: phase (a, b) is an h-phase a times a w-phase b. The host
// lists the h-phases that hold positions (at most min(stride_h, H)), sorted by landing taps, most first, and
// the w-phases likewise; one launch covers up to 8 x 8 of them, grid (tiles, h-phases, w-phases), with each
// block reading its two phases from a table passed by value (PhaseTable, 384 bytes of kernel parameters).
// One launch, not one per phase, because the phases are small: at batch 128 ResNet's stride-2 layers give
// each phase a quarter of step 05's blocks, and four launches in a row would pay four partial last waves.
// Blocks are issued x fastest, then y, then z, so the longest reductions (phase (0, 0) of a 3x3 at stride 2:
// 4 taps, then 2, 2, 1) start first and the short ones fill the tail. grid.x covers the largest phase; the
// blocks past a smaller phase's tiles return at once. Strides above 8 take several launches (all correct,
// none fast: such convolutions skip most of their input).
//
// What stays as in step 05: the tile shapes (picked by C), the copies, the three-stage cp.async pipeline,
// the shared layouts and the ldmatrix / mma fragments; the walk over j is the same odometer with the taps
// replaced by the phase's landing taps (k += 32; while k >= K: k -= K, next landing tap: no division).
// Every tap gathered now lands, save at the image's edges.
//
// Tiling (the GEMM of one phase). A block of 4 warps (128 threads) computes a BM x BN tile of the phase's
// gx, walking its reduction in slices of BK = 32 bfloat16 (64 bytes); the tile shape is picked per launch by
// C (the GEMM's N):
//   C <= 16:  BM x BN = 128 x 16, warps 4 x 1, warp tile 32 x 16 (2 x 2 mma tiles), 35328 bytes of shared
//   C <= 32:  128 x 32,           warps 4 x 1, warp tile 32 x 32 (2 x 4 mma tiles), 38400 bytes
//   C >  32:  64 x 64,            warps 2 x 2, warp tile 32 x 32 (2 x 4 mma tiles), 29184 bytes
// Within a phase, tile (m, n) = (blockIdx.x / tiles_n, blockIdx.x % tiles_n).
//
// Shared memory (static, under 48 KiB): per stage an A tile [BM][40] ([m][j]) and a B tile [32][BN + 8]
// ([j][c]), bfloat16 bits, in 3 stages. Rows of 80 bytes (A) and 48, 80 or 144 bytes (B) are odd numbers
// of 16-byte units, so the 8 rows of each ldmatrix 8x8 matrix fall in 8 distinct units mod 128 bytes: no
// bank conflicts; every row is a multiple of 16 bytes for cp.async and ldmatrix.
//
// Copies. A: thread t copies the 16-byte vector at column copy_col = 8 ((t / 8) % 4) of rows copy_row + 32 i,
// copy_row = t % 8 + 8 (t / 32). B: thread t copies the vector at column b_col = 8 (t % (BN / 8)) of rows
// b_row + (128 / (BN / 8)) i, b_row = t / (BN / 8) (for BN = 16 only threads 0..63: the tile has 32 rows).
// A row past the phase's M, a tap whose output leaves gy, a channel past C and a j past the phase's
// reduction are zero-filled (cp.async with source size 0).
//
// Pipeline: as step 05. Tiles 0 and 1 are issued before the loop; iteration t waits for tile t (wait_group
// 1), __syncthreads() (everyone's copies visible; everyone done with tile t - 1), issues tile t + 2 into tile
// t - 1's buffer, computes on tile t. An empty group is committed where there is no tile to copy, so the
// counting stays uniform, and a phase with no landing taps runs no iteration at all.
//
// Fragments (mma.cuh, m16n8k16 bf16; group = lane / 4, thread = lane % 4), exactly as step 05:
//   A: lane l names a_tile[row0 + l % 16][k16 + 8 (l / 16)]: r[0..3] = a[0..3] (rows 0-7 / 8-15, j 0-7 /
//     8-15 in mma.cuh's order).
//   B (b_tile is [j][c], so transposed): lane l names b_tile[k16 + l % 16][col0 + 8 (l / 16)]: r[0], r[1]
//     are b[0], b[1] of channels col0..+7 (j 2 thread + {0, 1} and + 8, channel group); r[2], r[3] those of
//     col0 + 8..+15.
// The accumulators c[0..3] are gx(row0 + group + {0, 0, 8, 8}, col0 + 2 thread + {0, 1, 0, 1}) of the phase's
// rows. A row's place in gx is decoded once in the epilogue (m -> n, i, j' -> h, w: two divisions per
// row, 4 rows per lane); each pair of channels is one float2 store, predicated on row < M and channel < C.
// A row stores BN * 4 contiguous bytes (at least one 32-byte sector, C % 8 == 0); neighbouring rows are
// stride_w positions apart in gx, where step 05's were neighbours.
#include <cstdint>
#include <vector>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/conv2d/ladder/stride_phases.hpp"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mma.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace backward_data_stride_phase_bf16 {  // this step's names (its ladder compiles as one unit)

using ladder::cp_async_16;
using ladder::cp_async_commit;
using ladder::cp_async_wait;
using ladder::ldmatrix_x4;
using ladder::ldmatrix_x4_trans;
using ladder::mma_m16n8k16_bf16;

constexpr int kThreads = 128;                 // 4 warps, in every tile shape
constexpr int kBlockK = 32;                   // bfloat16 of the reduction per stage (64 bytes)
constexpr int kStages = 3;                    // tiles in flight
constexpr int kRowStrideA = kBlockK + 8;      // bfloat16 per shared row of A: 80 bytes, see the top comment
constexpr int kVectorsPerRowA = kBlockK / 8;  // 16-byte copies per row of A: 4
constexpr int kRowsPerPassA = kThreads / kVectorsPerRowA;  // rows of A the block copies per pass: 32

// The geometry in int (the launcher has checked that every tensor holds fewer than 2^31 elements).
struct ConvShape {
  int batch, height, width, channels;    // gx [N, H, W, C]
  int out_channels, kernel_h, kernel_w;  // w [K, R, S, C]
  int out_h, out_w;                      // gy [N, P, Q, K]
  int stride_h, stride_w;
  int tap_step_h, tap_step_w;      // from one landing tap of a phase to the next: stride / gcd(dil, stride)
  int tap_q_step_h, tap_q_step_w;  // and the growth of its rq (sq) meanwhile: dilation / gcd(dil, stride)
};

// gy [N, P, Q, K], w [K, R, S, C] bfloat16; gx [N, H, W, C] float; C % 8 == 0, K % 8 == 0. Writes the
// positions of phase (table.h[blockIdx.y], table.w[blockIdx.z]), tile blockIdx.x of them.
template <int BM, int BN, int WARPS_M, int WARPS_N>
__global__ void __launch_bounds__(kThreads)
    stride_phase_bf16_kernel(ConvShape g, PhaseTable table, const bfloat16* __restrict__ gy,
                             const bfloat16* __restrict__ w, float* __restrict__ gx) {
  constexpr int kWarpM = BM / WARPS_M, kWarpN = BN / WARPS_N;  // the warp's tile of gx
  constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 8;   // its mma tiles (16 x 8 each)
  constexpr int kPassesA = BM / kRowsPerPassA;
  constexpr int kRowStrideB = BN + 8;                        // bfloat16 per shared row of B, see the top
  constexpr int kVectorsPerRowB = BN / 8;                    // 2, 4, 8
  constexpr int kRowsPerPassB = kThreads / kVectorsPerRowB;  // 64, 32, 16
  constexpr int kPassesB = (kBlockK + kRowsPerPassB - 1) / kRowsPerPassB;  // 1, 1, 2 (BN = 16: half a pass)
  static_assert(WARPS_M * WARPS_N * 32 == kThreads, "4 warps");
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "whole ldmatrix_x4 loads: 16 rows, 16 channels");
  static_assert(BM % kRowsPerPassA == 0, "whole copy passes for A");
  static_assert(kRowsPerPassB >= kBlockK || kBlockK % kRowsPerPassB == 0, "whole copy passes for B");
  static_assert(kRowStrideB % 8 == 0, "16-byte aligned shared rows of B");

  // Raw bfloat16 bits: the tiles only travel (cp.async) and are read by ldmatrix.
  __shared__ __align__(16) std::uint16_t a_tiles[kStages][BM][kRowStrideA];
  __shared__ __align__(16) std::uint16_t b_tiles[kStages][kBlockK][kRowStrideB];

  // ---- this block's phase and tile ----
  const AxisPhase phase_h = table.h[blockIdx.y], phase_w = table.w[blockIdx.z];
  const int rows = g.batch * phase_h.count * phase_w.count;  // the phase's M, <= N*H*W < 2^31
  const int taps_w = phase_w.taps;
  const int reduction = phase_h.taps * taps_w * g.out_channels;  // <= R*S*K < 2^31; 0: no landing tap
  const int tiles_n = (g.channels - 1) / BN + 1;
  const int tiles_m = (rows - 1) / BM + 1;
  if (static_cast<int>(blockIdx.x) >= tiles_m * tiles_n) return;  // grid.x covers the largest phase
  const int m0 = static_cast<int>(blockIdx.x) / tiles_n * BM;
  const int n0 = static_cast<int>(blockIdx.x) % tiles_n * BN;
  // Offsets inside the tile are compared with what is left of the phase, so no index ever passes M or C.
  const int rows_left = rows - m0, cols_left = g.channels - n0;  // >= 1
  const int tid = static_cast<int>(threadIdx.x);

  // ---- A: this thread copies the vector at copy_col of rows copy_row + 32 i ----
  const int copy_row = tid % 8 + 8 * (tid / (8 * kVectorsPerRowA));  // 0..31
  const int copy_col = tid / 8 % kVectorsPerRowA * 8;                // 0, 8, 16, 24

  // A's rows, once: m = (n, i, j') of the phase, gy's image offset, and (hq, wq) of the position.
  bool a_row_inside[kPassesA];
  int a_image[kPassesA], a_hq[kPassesA], a_wq[kPassesA];
#pragma unroll
  for (int i = 0; i < kPassesA; ++i) {
    const int row = copy_row + i * kRowsPerPassA;
    a_row_inside[i] = row < rows_left;
    a_image[i] = 0;
    a_hq[i] = 0;
    a_wq[i] = 0;
    if (a_row_inside[i]) {
      const int m = m0 + row;
      const int j = m % phase_w.count, ni = m / phase_w.count;
      const int ih = ni % phase_h.count, n = ni / phase_h.count;
      a_image[i] = n * (g.out_h * g.out_w * g.out_channels);  // < N*P*Q*K < 2^31
      a_hq[i] = phase_h.q0 + ih;
      a_wq[i] = phase_w.q0 + j;
    }
  }

  // A's column: this thread's reduction index j = 32 t + copy_col for the next tile t to copy, as channel
  // tap_k of landing tap (tap_tr, tap_ts), with that tap's rq and sq beside it. tap_tr reaches the phase's
  // taps exactly when j passes its reduction.
  int tap_k = copy_col, tap_ts = 0, tap_tr = 0, tap_rq = phase_h.tap_q0, tap_sq = phase_w.tap_q0;
  const auto carry_a = [&] {  // k back into [0, K), moving to the next landing taps (at most 4 times: K >= 8)
    while (tap_k >= g.out_channels) {
      tap_k -= g.out_channels;
      tap_sq += g.tap_q_step_w;
      if (++tap_ts == taps_w) {
        tap_ts = 0;
        tap_sq = phase_w.tap_q0;
        ++tap_tr;
        tap_rq += g.tap_q_step_h;
      }
    }
  };

  // ---- B: this thread copies the vector at b_col of rows b_row + kRowsPerPassB i (those below 32) ----
  const int b_row = tid / kVectorsPerRowB;
  const int b_col = tid % kVectorsPerRowB * 8;
  const bool b_col_inside = b_col < cols_left;  // the 8 channels are all inside or all outside: C % 8 == 0
  // Row b_row + kRowsPerPassB i of the next tile is j = (tr, ts, k): w[k, r, s, :] with r = tap0_h + tr *
  // tap_step_h, s = tap0_w + ts * tap_step_w. b_tr reaches the phase's taps exactly when j passes its
  // reduction.
  int b_k[kPassesB], b_ts[kPassesB], b_tr[kPassesB];
#pragma unroll
  for (int i = 0; i < kPassesB; ++i) {
    b_k[i] = b_row + i * kRowsPerPassB;
    b_ts[i] = 0;
    b_tr[i] = 0;
  }
  const auto carry_b = [&] {  // each k back into [0, K) (at most 8 times, for a row 32..63 of BN = 16)
#pragma unroll
    for (int i = 0; i < kPassesB; ++i) {
      while (b_k[i] >= g.out_channels) {
        b_k[i] -= g.out_channels;
        if (++b_ts[i] == taps_w) {
          b_ts[i] = 0;
          ++b_tr[i];
        }
      }
    }
  };

  // Issues the copies of the next tile into buffer `stage` and advances every j by 32.
  const auto copy_tile = [&](int stage) {
    const bool tap_inside = tap_tr < phase_h.taps;  // j < the phase's reduction
#pragma unroll
    for (int i = 0; i < kPassesA; ++i) {
      const int p = a_hq[i] - tap_rq, q = a_wq[i] - tap_sq;  // the tap lands: only the edges can miss
      const bool inside = tap_inside && a_row_inside[i] && p >= 0 && p < g.out_h && q >= 0 && q < g.out_w;
      // The address is formed only inside gy; a zero-fill names gy itself (valid, never read).
      const bfloat16* source = inside ? gy + (a_image[i] + (p * g.out_w + q) * g.out_channels + tap_k) : gy;
      cp_async_16(&a_tiles[stage][copy_row + i * kRowsPerPassA][copy_col], source, inside);
    }
#pragma unroll
    for (int i = 0; i < kPassesB; ++i) {
      const int row = b_row + i * kRowsPerPassB;
      if (kRowsPerPassB > kBlockK && row >= kBlockK) continue;  // BN = 16: half the block copies B
      const bool inside = b_col_inside && b_tr[i] < phase_h.taps;
      const int r = phase_h.tap0 + b_tr[i] * g.tap_step_h, s = phase_w.tap0 + b_ts[i] * g.tap_step_w;
      const bfloat16* source =
          inside ? w + (((b_k[i] * g.kernel_h + r) * g.kernel_w + s) * g.channels + n0 + b_col) : w;
      cp_async_16(&b_tiles[stage][row][b_col], source, inside);
      b_k[i] += kBlockK;
    }
    carry_b();
    tap_k += kBlockK;
    carry_a();
  };

  // ---- the pipeline (no iteration at all for a phase without landing taps: its tile stores zeros) ----
  const int k_tiles = reduction > 0 ? (reduction - 1) / kBlockK + 1 : 0;
  if (k_tiles > 0) {  // j = copy_col and b_row (< 64) into (tap, k) form; K >= 8 and taps_w >= 1 here
    carry_a();
    carry_b();
  }
#pragma unroll
  for (int t = 0; t < kStages - 1; ++t) {
    if (t < k_tiles) copy_tile(t);
    cp_async_commit();  // an empty group when there is no tile t: the counting stays uniform
  }

  const int warp = tid / 32, lane = tid % 32;
  const int group = lane / 4, thread = lane % 4;  // as in mma.cuh's layouts
  const int warp_row = warp % WARPS_M * kWarpM, warp_col = warp / WARPS_M * kWarpN;
  // The 16-byte row this lane names to ldmatrix: row (A) or j (B) lane % 16, column offset 8 (lane / 16).
  const int ld_row = lane % 16, ld_col = lane / 16 * 8;
  float acc[kFragsM][kFragsN][4] = {};

  for (int t = 0; t < k_tiles; ++t) {
    cp_async_wait<kStages - 2>();  // this thread's copies of tile t have landed...
    __syncthreads();               // ...and everyone's; everyone is done with tile t - 1
    if (t + kStages - 1 < k_tiles) copy_tile((t + kStages - 1) % kStages);  // into tile t - 1's buffer
    cp_async_commit();

    const int stage = t % kStages;
#pragma unroll
    for (int k16 = 0; k16 < kBlockK; k16 += 16) {
      std::uint32_t a[kFragsM][4], b[kFragsN][2];
#pragma unroll
      for (int mt = 0; mt < kFragsM; ++mt) {
        // r[0..3] = a[0..3]: (rows 0-7, j 0-7), (rows 8-15, j 0-7), (rows 0-7, j 8-15), (rows 8-15, j 8-15)
        ldmatrix_x4(a[mt], &a_tiles[stage][warp_row + mt * 16 + ld_row][k16 + ld_col]);
      }
#pragma unroll
      for (int pair = 0; pair < kFragsN / 2; ++pair) {
        // Channels col0..col0+15, transposed: r[0], r[1] = b[0], b[1] of the first 8; r[2], r[3] of the
        // next 8.
        std::uint32_t r[4];
        ldmatrix_x4_trans(r, &b_tiles[stage][k16 + ld_row][warp_col + pair * 16 + ld_col]);
        b[2 * pair][0] = r[0];
        b[2 * pair][1] = r[1];
        b[2 * pair + 1][0] = r[2];
        b[2 * pair + 1][1] = r[3];
      }
#pragma unroll
      for (int mt = 0; mt < kFragsM; ++mt) {
#pragma unroll
        for (int nt = 0; nt < kFragsN; ++nt) mma_m16n8k16_bf16(acc[mt][nt], a[mt], b[nt]);
      }
    }
  }
  // What is still pending are empty groups: no copy outlives the loop.

  // ---- the tile of gx: c[0], c[1] at (group, 2 thread + {0, 1}), c[2], c[3] eight rows below ----
#pragma unroll
  for (int mt = 0; mt < kFragsM; ++mt) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = warp_row + mt * 16 + group + 8 * half;
      if (row >= rows_left) continue;
      // The phase's row m = (n, i, j') is gx's position (n, first_h + i * stride_h, first_w + j' * stride_w).
      const int m = m0 + row;
      const int j = m % phase_w.count, ni = m / phase_w.count;
      const int ih = ni % phase_h.count, n = ni / phase_h.count;
      const int h = phase_h.first + ih * g.stride_h, iw = phase_w.first + j * g.stride_w;  // < H, < W
      // (((n * H + h) * W + w) * C < N*H*W*C < 2^31)
      float* gx_row = gx + (((n * g.height + h) * g.width + iw) * g.channels + n0);
#pragma unroll
      for (int nt = 0; nt < kFragsN; ++nt) {
        const int col = warp_col + nt * 8 + 2 * thread;  // even; cols_left % 8 == 0, so col + 1 < cols_left
        if (col >= cols_left) continue;
        // Even offset from a 16-byte aligned gx: 8-byte aligned.
        *reinterpret_cast<float2*>(gx_row + col) =
            make_float2(acc[mt][nt][2 * half], acc[mt][nt][2 * half + 1]);
      }
    }
  }
}

ConvShape conv_shape(const Conv2dGeometry& g) {
  const auto as_int = [](std::int64_t value) { return static_cast<int>(value); };
  const AxisTapSteps steps_h = axis_tap_steps(g.stride_h, g.dilation_h);
  const AxisTapSteps steps_w = axis_tap_steps(g.stride_w, g.dilation_w);
  ConvShape s{};
  s.batch = as_int(g.batch);
  s.height = as_int(g.in_height);
  s.width = as_int(g.in_width);
  s.channels = as_int(g.in_channels);
  s.out_channels = as_int(g.out_channels);
  s.kernel_h = as_int(g.kernel_h);
  s.kernel_w = as_int(g.kernel_w);
  s.out_h = as_int(g.out_height());
  s.out_w = as_int(g.out_width());
  s.stride_h = as_int(g.stride_h);
  s.stride_w = as_int(g.stride_w);
  s.tap_step_h = steps_h.tap_step;
  s.tap_step_w = steps_w.tap_step;
  s.tap_q_step_h = steps_h.tap_q_step;
  s.tap_q_step_w = steps_w.tap_q_step;
  return s;
}

// Static shared memory, under 48 KiB in every tile shape: no attribute to set. One launch per 8 x 8 block of
// (h-phase, w-phase) pairs: one launch for strides up to 8.
template <int BM, int BN, int WARPS_M, int WARPS_N>
void launch_tiles(const ConvShape& s, const std::vector<AxisPhase>& phases_h,
                  const std::vector<AxisPhase>& phases_w, const bfloat16* gy, const bfloat16* w, float* gx) {
  for_each_phase_table(
      phases_h, phases_w,
      [&](const PhaseTable& table, unsigned count_h, unsigned count_w, int most_h, int most_w) {
        // tiles_m * tiles_n <= M * C < 2^31 (every tile holds an element of gx): within
        // gridDim.x's 2^31 - 1.
        const std::int64_t rows = std::int64_t{s.batch} * most_h * most_w;
        const std::int64_t tiles_m = (rows + BM - 1) / BM;
        const std::int64_t tiles_n = (std::int64_t{s.channels} + BN - 1) / BN;
        ladder::launch("conv2d ladder 06_backward_data_stride_phase_bf16",
                       stride_phase_bf16_kernel<BM, BN, WARPS_M, WARPS_N>,
                       dim3(static_cast<unsigned>(tiles_m * tiles_n), count_h, count_w), dim3(kThreads), 0, s,
                       table, gy, w, gx);
      });
}

}  // namespace backward_data_stride_phase_bf16
}  // namespace

void launch_06_backward_data_stride_phase_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w,
                                               float* gx) {
  using namespace backward_data_stride_phase_bf16;
  require_supported("06_backward_data_stride_phase_bf16", g,
                    g.groups == 1 && g.in_channels % 8 == 0 && g.out_channels % 8 == 0,
                    "groups 1, C % 8 == 0, K % 8 == 0");
  require_16_byte_operands("06_backward_data_stride_phase_bf16", gy, w, gx);
  const ConvShape s = conv_shape(g);
  const std::vector<AxisPhase> phases_h =
      axis_phases(g.in_height, g.pad_h, g.stride_h, g.dilation_h, g.kernel_h);
  const std::vector<AxisPhase> phases_w =
      axis_phases(g.in_width, g.pad_w, g.stride_w, g.dilation_w, g.kernel_w);
  if (s.channels <= 16) {
    launch_tiles<128, 16, 4, 1>(s, phases_h, phases_w, gy, w, gx);
  } else if (s.channels <= 32) {
    launch_tiles<128, 32, 4, 1>(s, phases_h, phases_w, gy, w, gx);
  } else {
    launch_tiles<64, 64, 2, 2>(s, phases_h, phases_w, gy, w, gx);
  }
}

}  // namespace kiln::kernels::conv2d_ladder
