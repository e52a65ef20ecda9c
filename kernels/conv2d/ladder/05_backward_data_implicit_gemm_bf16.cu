// Convolution ladder, step 05 (backward data): gx = d loss / d x as an implicit GEMM on the bfloat16 tensor
// cores, channels-last (NHWC) tensors, tiles gathered by a three-stage cp.async pipeline and fed to mma.sync
// by ldmatrix.
//
// The GEMM view, as in step 04. With gy [N, P, Q, K], w [K, R, S, C] and gx [N, H, W, C]:
//   gx[m, c] = sum over j < R*S*K of A[m, j] * B[j, c]       m = (n, h, w) < M = N*H*W,  c < C
//   A[m, j] = gy[n, p, q, k]   j = (r, s, k), k fastest, where h + ph - r*dh = p * sh and w + pw - s*dw =
//                              q * sw exactly, inside gy; zero when tap (r, s) of no output reads (h, w)
//   B[j, c] = w[k, r, s, c]:   for each tap, the filter's row-major [K][C] slab, c contiguous
// and gx in NHWC is the row-major [M, C] result, in float. With K % 8 == 0, 8 consecutive j (j % 8 == 0) are
// 8 channels of one tap of gy: one aligned 16-byte cp.async; with C % 8 == 0 B's rows move in 16-byte
// vectors. Which taps land is decided without a division, as in step 04: h + ph = hq * sh + hr once per row,
// r*dh = rq * sh + rr walked per tap; the tap lands on row h exactly when hr == rr, at p = hq - rq. With
// stride 2, 3 of 4 taps of a 3x3 filter land nowhere on average; they are gathered as zero-fills (see step
// 04).
//
// What changes from step 04: the operands are bfloat16, so every byte moved (global -> shared -> registers)
// carries twice the values, and an m16n8k16 mma does twice the work of an m16n8k8 tf32 one at the same issue
// cost (the H100's bf16 tensor rate is twice its tf32 rate). The fragments come out of shared memory by
// ldmatrix, four 8x8 matrices per instruction, where step 04 needed a 32-bit load and a cvt per register. B
// is stored [j][c], j-major, so its fragments come from ldmatrix_x4_trans, which transposes each 8x8 matrix
// on the way. The products are exact; the sums are float.
//
// Tiling. A block of 4 warps (128 threads) computes a BM x BN tile of gx, walking the reduction in slices of
// BK = 32 bfloat16 (64 bytes). The tile shape is a template picked per launch by C (the GEMM's N):
//   C <= 16:  BM x BN = 128 x 16, warps 4 x 1, warp tile 32 x 16 (2 x 2 mma tiles), 35328 bytes of shared
//   C <= 32:  128 x 32,           warps 4 x 1, warp tile 32 x 32 (2 x 4 mma tiles), 38400 bytes
//   C >  32:  64 x 64,            warps 2 x 2, warp tile 32 x 32 (2 x 4 mma tiles), 29184 bytes
// The blocks form a 1-D grid, tile (m, n) = (b / tiles_n, b % tiles_n): consecutive blocks share rows of A.
//
// Shared memory (static, under 48 KiB): per stage an A tile [BM][40] ([m][j]) and a B tile [32][BN + 8]
// ([j][c]), bfloat16 bits, in 3 stages. ldmatrix reads, per 8x8 matrix, 16 bytes from each of 8 consecutive
// rows at one column; they are conflict-free when the 8 rows fall in 8 different 16-byte units mod 128 bytes.
// A's rows are 80 bytes (5 units: 5 row mod 8 = 0, 5, 2, 7, 4, 1, 6, 3); B's are 48, 80 or 144 bytes (3, 5 or
// 9 units, all odd: distinct mod 8 too). Every row stays a multiple of 16 bytes for cp.async and ldmatrix.
//
// Copies. A: thread t copies the 16-byte vector at column copy_col = 8 ((t / 8) % 4) of rows copy_row + 32 i,
// copy_row = t % 8 + 8 (t / 32); a warp reads 8 rows x 64 bytes of gy. B: thread t copies the vector at
// column b_col = 8 (t % (BN / 8)) of rows b_row + (128 / (BN / 8)) i, b_row = t / (BN / 8); for BN = 16 that
// is 64 rows per pass for a 32-row tile, so only threads 0..63 copy B. The threads walk their j = (r, s, k)
// incrementally (k += 32; while k >= K: k -= K, next tap): no division in the loop. A row past M, a tap that
// lands nowhere, a channel past C and a j past R*S*K are zero-filled (cp.async with source size 0).
//
// Pipeline: as step 04. Tiles 0 and 1 are issued before the loop; iteration t waits for tile t (wait_group
// 1), __syncthreads() (everyone's copies visible; everyone done with tile t - 1), issues tile t + 2 into tile
// t - 1's buffer, computes on tile t.
//
// Fragments (mma.cuh, m16n8k16 bf16; group = lane / 4, thread = lane % 4; two bfloat16 per register, the
// lower j in the low half). ldmatrix_x4: lanes 8i..8i+7 name the 16-byte rows of matrix i; lane l receives
// in register i matrix i's (row l / 4, cols 2 (l % 4) + {0, 1}); with .trans, (rows 2 (l % 4) + {0, 1},
// col l / 4).
//   A, 16 rows from row0, 16 j from k16: lane l names a_tile[row0 + l % 16][k16 + 8 (l / 16)], so matrix
//     0 = (rows 0-7, j 0-7), 1 = (rows 8-15, j 0-7), 2 = (rows 0-7, j 8-15), 3 = (rows 8-15, j 8-15), and
//     r[i] = A(row0 + group + 8 (i % 2), k16 + 8 (i / 2) + 2 thread + {0, 1}) = a[i], mma.cuh's order.
//   B, 16 j from k16, 16 channels from col0, transposed (b_tile is [j][c]): lane l names
//     b_tile[k16 + l % 16][col0 + 8 (l / 16)], so matrix 0 = (j 0-7, c 0-7), 1 = (j 8-15, c 0-7),
//     2 = (j 0-7, c 8-15), 3 = (j 8-15, c 8-15), and lane l gets, of each, (j 2 thread + {0, 1}, c group):
//     r[0] = B(k16 + 2 thread + {0, 1}, col0 + group) = b[0] and r[1] = B(k16 + 8 + 2 thread + {0, 1}, col0 +
//     group) = b[1] of channels col0..+7; r[2], r[3] likewise b[0], b[1] of channels col0 + 8..+15.
// The accumulators c[0..3] are gx(row0 + group + {0, 0, 8, 8}, col0 + 2 thread + {0, 1, 0, 1}), stored
// straight from registers as float2 (C % 8 == 0), each pair predicated on the row < M and the channel < C.
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mma.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace backward_data_implicit_gemm_bf16 {  // this step's names (its ladder compiles as one unit)

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
  int height, width, channels;           // gx [N, H, W, C]
  int out_channels, kernel_h, kernel_w;  // w [K, R, S, C]
  int out_h, out_w;                      // gy [N, P, Q, K]
  int stride_h, stride_w, pad_h, pad_w;
  int dilation_q_h, dilation_r_h;  // dilation_h = dilation_q_h * stride_h + dilation_r_h, r in [0, stride_h)
  int dilation_q_w, dilation_r_w;  // likewise along w
  int taps;                        // R * S
  int rows;                        // M = N * H * W
  int reduction;                   // R * S * K
};

// gy [N, P, Q, K], w [K, R, S, C] bfloat16; gx [N, H, W, C] = [M, C] float; C % 8 == 0, K % 8 == 0.
template <int BM, int BN, int WARPS_M, int WARPS_N>
__global__ void __launch_bounds__(kThreads)
    backward_data_bf16_kernel(ConvShape g, const bfloat16* __restrict__ gy, const bfloat16* __restrict__ w,
                              float* __restrict__ gx) {
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

  const int tiles_n = (g.channels - 1) / BN + 1;
  const int m0 = static_cast<int>(blockIdx.x) / tiles_n * BM;
  const int n0 = static_cast<int>(blockIdx.x) % tiles_n * BN;
  // Offsets inside the tile are compared with what is left of gx, so no index ever passes M or C.
  const int rows_left = g.rows - m0, cols_left = g.channels - n0;  // >= 1
  const int tid = static_cast<int>(threadIdx.x);

  // ---- A: this thread copies the vector at copy_col of rows copy_row + 32 i ----
  const int copy_row = tid % 8 + 8 * (tid / (8 * kVectorsPerRowA));  // 0..31
  const int copy_col = tid / 8 % kVectorsPerRowA * 8;                // 0, 8, 16, 24

  // A's rows, once: gy's image offset, and h + ph = hq * sh + hr, w + pw = wq * sw + wr; a row past M gets
  // hr = -1, which no tap has.
  int a_image[kPassesA], a_hq[kPassesA], a_hr[kPassesA], a_wq[kPassesA], a_wr[kPassesA];
#pragma unroll
  for (int i = 0; i < kPassesA; ++i) {
    const int row = copy_row + i * kRowsPerPassA;
    a_image[i] = 0;
    a_hq[i] = 0;
    a_hr[i] = -1;
    a_wq[i] = 0;
    a_wr[i] = 0;
    if (row < rows_left) {
      const int m = m0 + row;
      const int iw = m % g.width, nh = m / g.width;
      const int ih = nh % g.height, n = nh / g.height;
      a_image[i] = n * (g.out_h * g.out_w * g.out_channels);  // < N*P*Q*K < 2^31
      const int hp = ih + g.pad_h, wp = iw + g.pad_w;
      a_hq[i] = hp / g.stride_h;
      a_hr[i] = hp % g.stride_h;
      a_wq[i] = wp / g.stride_w;
      a_wr[i] = wp % g.stride_w;
    }
  }

  // A's column: this thread's reduction index j = 32 t + copy_col for the next tile t to copy, as channel
  // tap_k of tap (tap_r, tap_s), with r*dh = tap_rq * sh + tap_rr and s*dw = tap_sq * sw + tap_sr beside it.
  // tap_r reaches R exactly when j passes R*S*K.
  int tap_k = copy_col, tap_s = 0, tap_r = 0, tap_sq = 0, tap_sr = 0, tap_rq = 0, tap_rr = 0;
  const auto carry_a = [&] {  // k back into [0, K), moving to the next taps (at most 4 times: K >= 8)
    while (tap_k >= g.out_channels) {
      tap_k -= g.out_channels;
      tap_sq += g.dilation_q_w;  // s*dw += dw, as (quotient, remainder) by sw: one carry at most
      tap_sr += g.dilation_r_w;
      if (tap_sr >= g.stride_w) {
        tap_sr -= g.stride_w;
        ++tap_sq;
      }
      if (++tap_s == g.kernel_w) {
        tap_s = 0;
        tap_sq = 0;
        tap_sr = 0;
        ++tap_r;
        tap_rq += g.dilation_q_h;
        tap_rr += g.dilation_r_h;
        if (tap_rr >= g.stride_h) {
          tap_rr -= g.stride_h;
          ++tap_rq;
        }
      }
    }
  };
  carry_a();

  // ---- B: this thread copies the vector at b_col of rows b_row + kRowsPerPassB i (those below 32) ----
  const int b_row = tid / kVectorsPerRowB;
  const int b_col = tid % kVectorsPerRowB * 8;
  const bool b_col_inside = b_col < cols_left;  // the 8 channels are all inside or all outside: C % 8 == 0
  // Row b_row + kRowsPerPassB i of the next tile is j = (tap, k) with tap = r*S + s: w[k, r, s, :] starts at
  // (k * R*S + tap) * C. b_tap reaches R*S exactly when j passes R*S*K.
  int b_k[kPassesB], b_tap[kPassesB];
#pragma unroll
  for (int i = 0; i < kPassesB; ++i) {
    b_k[i] = b_row + i * kRowsPerPassB;
    b_tap[i] = 0;
  }
  const auto carry_b = [&] {  // each k back into [0, K) (at most 8 times, for a row 32..63 of BN = 16)
#pragma unroll
    for (int i = 0; i < kPassesB; ++i) {
      while (b_k[i] >= g.out_channels) {
        b_k[i] -= g.out_channels;
        ++b_tap[i];
      }
    }
  };
  carry_b();

  // Issues the copies of the next tile into buffer `stage` and advances every j by 32.
  const auto copy_tile = [&](int stage) {
    const bool tap_inside = tap_r < g.kernel_h;  // j < R*S*K
#pragma unroll
    for (int i = 0; i < kPassesA; ++i) {
      const int p = a_hq[i] - tap_rq, q = a_wq[i] - tap_sq;  // the output position, when the phases agree
      const bool inside = tap_inside && a_hr[i] == tap_rr && a_wr[i] == tap_sr && p >= 0 && p < g.out_h &&
                          q >= 0 && q < g.out_w;
      // The address is formed only inside gy; a zero-fill names gy itself (valid, never read).
      const bfloat16* source = inside ? gy + (a_image[i] + (p * g.out_w + q) * g.out_channels + tap_k) : gy;
      cp_async_16(&a_tiles[stage][copy_row + i * kRowsPerPassA][copy_col], source, inside);
    }
#pragma unroll
    for (int i = 0; i < kPassesB; ++i) {
      const int row = b_row + i * kRowsPerPassB;
      if (kRowsPerPassB > kBlockK && row >= kBlockK) continue;  // BN = 16: half the block copies B
      const bool inside = b_col_inside && b_tap[i] < g.taps;
      const bfloat16* source = inside ? w + ((b_k[i] * g.taps + b_tap[i]) * g.channels + n0 + b_col) : w;
      cp_async_16(&b_tiles[stage][row][b_col], source, inside);
      b_k[i] += kBlockK;
    }
    carry_b();
    tap_k += kBlockK;
    carry_a();
  };

  // ---- the pipeline ----
  const int k_tiles = (g.reduction - 1) / kBlockK + 1;
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
    for (int nt = 0; nt < kFragsN; ++nt) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = warp_row + mt * 16 + group + 8 * half;
        const int col = warp_col + nt * 8 + 2 * thread;  // even; cols_left % 8 == 0, so col + 1 < cols_left
        if (row >= rows_left || col >= cols_left) continue;
        float* out = gx + ((m0 + row) * g.channels + n0 + col);  // < M*C < 2^31; even, so 8-byte aligned
        *reinterpret_cast<float2*>(out) = make_float2(acc[mt][nt][2 * half], acc[mt][nt][2 * half + 1]);
      }
    }
  }
}

ConvShape conv_shape(const Conv2dGeometry& g) {
  const auto as_int = [](std::int64_t value) { return static_cast<int>(value); };
  ConvShape s{};
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
  s.pad_h = as_int(g.pad_h);
  s.pad_w = as_int(g.pad_w);
  s.dilation_q_h = as_int(g.dilation_h / g.stride_h);
  s.dilation_r_h = as_int(g.dilation_h % g.stride_h);
  s.dilation_q_w = as_int(g.dilation_w / g.stride_w);
  s.dilation_r_w = as_int(g.dilation_w % g.stride_w);
  s.taps = as_int(g.kernel_h * g.kernel_w);                        // <= w's size < 2^31
  s.rows = as_int(g.batch * g.in_height * g.in_width);             // <= gx's size < 2^31
  s.reduction = as_int(g.kernel_h * g.kernel_w * g.out_channels);  // <= w's size < 2^31
  return s;
}

// Static shared memory, under 48 KiB in every tile shape: no attribute to set.
template <int BM, int BN, int WARPS_M, int WARPS_N>
void launch_tiles(const ConvShape& s, const bfloat16* gy, const bfloat16* w, float* gx) {
  // tiles_m * tiles_n <= M * C < 2^31 (every tile holds an element of gx): within gridDim.x's 2^31 - 1.
  const std::int64_t tiles_m = (std::int64_t{s.rows} + BM - 1) / BM;
  const std::int64_t tiles_n = (std::int64_t{s.channels} + BN - 1) / BN;
  ladder::launch("conv2d ladder 05_backward_data_implicit_gemm_bf16",
                 backward_data_bf16_kernel<BM, BN, WARPS_M, WARPS_N>,
                 dim3(static_cast<unsigned>(tiles_m * tiles_n)), dim3(kThreads), 0, s, gy, w, gx);
}

}  // namespace backward_data_implicit_gemm_bf16
}  // namespace

void launch_05_backward_data_implicit_gemm_bf16(const Conv2dGeometry& g, const bfloat16* gy,
                                                const bfloat16* w, float* gx) {
  using namespace backward_data_implicit_gemm_bf16;
  require_supported("05_backward_data_implicit_gemm_bf16", g,
                    g.groups == 1 && g.in_channels % 8 == 0 && g.out_channels % 8 == 0,
                    "groups 1, C % 8 == 0, K % 8 == 0");
  require_16_byte_operands("05_backward_data_implicit_gemm_bf16", gy, w, gx);
  const ConvShape s = conv_shape(g);
  if (s.channels <= 16) {
    launch_tiles<128, 16, 4, 1>(s, gy, w, gx);
  } else if (s.channels <= 32) {
    launch_tiles<128, 32, 4, 1>(s, gy, w, gx);
  } else {
    launch_tiles<64, 64, 2, 2>(s, gy, w, gx);
  }
}

}  // namespace kiln::kernels::conv2d_ladder
