// Convolution ladder, step 05 (forward): implicit GEMM on the bfloat16 tensor cores, channels-last (NHWC)
// tensors, tiles gathered by a three-stage cp.async pipeline and fed to mma.sync by ldmatrix.
//
// The GEMM view, as in step 04. With x [N, H, W, C], w [K, R, S, C] and y [N, P, Q, K]:
//   y[m, k] = sum over j < R*S*C of A[m, j] * B[j, k]        m = (n, p, q) < M = N*P*Q,  k < K
//   A[m, j] = x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, c]     j = (r, s, c), c fastest; zero in the padding
//   B[j, k] = w[k, j]: the filter as a row-major [K, R*S*C] matrix, i.e. B column-major (mma's `.col`)
// and y in NHWC is the row-major [M, K] result, in float. A is gathered from x tile by tile, never built.
// With C % 8 == 0, 8 consecutive j (j % 8 == 0) are 8 channels of one tap: one aligned 16-byte cp.async.
//
// What changes from step 04: the operands are bfloat16, so every byte moved (global -> shared -> registers)
// carries twice the values, and an m16n8k16 mma does twice the work of an m16n8k8 tf32 one at the same
// issue cost (the H100's bf16 tensor rate is twice its tf32 rate). The fragments come out of shared memory
// by ldmatrix, four 8x8 matrices per instruction, where step 04 needed a 32-bit load (and a cvt to TF32)
// per register. The products are exact; the sums are float.
//
// Tiling. A block of 4 warps (128 threads) computes a BM x BN tile of y, walking the reduction in slices of
// BK = 32 bfloat16 (64 bytes). The tile shape is a template picked per launch by K, as in step 04:
//   K <= 16:  BM x BN = 128 x 16, warps 4 x 1, warp tile 32 x 16 (2 x 2 mma tiles), 34560 bytes of shared
//   K <= 32:  128 x 32,           warps 4 x 1, warp tile 32 x 32 (2 x 4 mma tiles), 38400 bytes
//   K >  32:  64 x 64,            warps 2 x 2, warp tile 32 x 32 (2 x 4 mma tiles), 30720 bytes
// The blocks form a 1-D grid, tile (m, n) = (b / tiles_n, b % tiles_n): consecutive blocks share rows of A.
//
// Shared memory: per stage an A tile [BM][40] and a B tile [BN][40] (B as [k][j], j contiguous), bfloat16
// bits, in 3 stages. Rows are padded from 32 to 40 elements (80 bytes, 5 16-byte units): ldmatrix reads, per
// 8x8 matrix, 16 bytes from each of 8 consecutive rows, at units 5 row + const, 8 different units mod 8, so
// no bank conflicts; and 80 bytes keeps every row 16-byte aligned for cp.async and ldmatrix.
//
// Copies. Thread t copies the 16-byte vector at column copy_col = 8 ((t / 8) % 4) of rows copy_row + 32 i,
// copy_row = t % 8 + 8 (t / 32): 8 consecutive lanes store one column of 8 consecutive rows (units
// 5 row + col / 8: conflict-free); a warp reads 8 rows x 64 bytes of x. The (n, p, q) of each A row are
// worked out once, before the loop; j = (r, s, c) is walked incrementally (c += 32; while c >= C: c -= C,
// next tap): no division in the loop. Rows past M, taps in the padding and j past R*S*C are zero-filled
// (cp.async with source size 0). For BN = 16 only the threads with copy_row < 16 copy B.
//
// Pipeline: as step 04. Tiles 0 and 1 are issued before the loop; iteration t waits for tile t (wait_group
// 1), __syncthreads() (everyone's copies visible; everyone done with tile t - 1), issues tile t + 2 into tile
// t - 1's buffer, computes on tile t.
//
// Fragments (mma.cuh, m16n8k16 bf16; group = lane / 4, thread = lane % 4; two bfloat16 per register, the
// lower j in the low half). ldmatrix_x4: lanes 8i..8i+7 name the 16-byte rows of matrix i, and lane l
// receives in register i matrix i's (row l / 4, cols 2 (l % 4) + {0, 1}) = (group, 2 thread + {0, 1}).
//   A, 16 rows from row0, 16 j from k16: lane l names a_tile[row0 + l % 16][k16 + 8 (l / 16)], so matrix
//     0 = (rows 0-7, j 0-7), 1 = (rows 8-15, j 0-7), 2 = (rows 0-7, j 8-15), 3 = (rows 8-15, j 8-15), and
//     r[i] = A(row0 + group + 8 (i % 2), k16 + 8 (i / 2) + 2 thread + {0, 1}) = a[i], mma.cuh's order.
//   B, 16 channels from col0, 16 j from k16, NOT transposed (b_tile is [k][j]: j is the contiguous "column"):
//     lane l names b_tile[col0 + l % 16][k16 + 8 (l / 16)], so matrix 0 = (channels 0-7, j 0-7),
//     1 = (channels 8-15, j 0-7), 2 = (channels 0-7, j 8-15), 3 = (channels 8-15, j 8-15), and lane l gets
//     (channel group, j 2 thread + {0, 1}) of each: B(j = 2 thread + {0, 1}, k = group), which is b[0] of
//     the mma's B layout for j 0-7 and b[1] for j 8-15. So r[0], r[2] are b[0], b[1] of channels col0..+7
//     and r[1], r[3] are b[0], b[1] of channels col0 + 8..+15.
// The accumulators c[0..3] are y(row0 + group + {0, 0, 8, 8}, col0 + 2 thread + {0, 1, 0, 1}), stored
// straight from registers (float2 when K is even), each predicated on the row < M and the channel < K.
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mma.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace forward_implicit_gemm_bf16 {  // this step's names (its ladder compiles as one unit)

using ladder::cp_async_16;
using ladder::cp_async_commit;
using ladder::cp_async_wait;
using ladder::ldmatrix_x4;
using ladder::mma_m16n8k16_bf16;

constexpr int kThreads = 128;                // 4 warps, in every tile shape
constexpr int kBlockK = 32;                  // bfloat16 of the reduction per stage (64 bytes)
constexpr int kStages = 3;                   // tiles in flight
constexpr int kRowStride = kBlockK + 8;      // bfloat16 per shared row: 80 bytes, see the top comment
constexpr int kVectorsPerRow = kBlockK / 8;  // 16-byte copies per row of a tile: 4
constexpr int kRowsPerPass = kThreads / kVectorsPerRow;  // rows the block copies per pass: 32

// The geometry in int (the launcher has checked that every tensor holds fewer than 2^31 elements).
struct ConvShape {
  int height, width, channels;           // x [N, H, W, C]
  int out_channels, kernel_h, kernel_w;  // w [K, R, S, C]
  int out_h, out_w;                      // y [N, P, Q, K]
  int stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int rows;       // M = N * P * Q
  int reduction;  // R * S * C
};

// x [N, H, W, C], w [K, R, S, C] bfloat16; y [N, P, Q, K] = [M, K] float; C % 8 == 0.
template <int BM, int BN, int WARPS_M, int WARPS_N>
__global__ void __launch_bounds__(kThreads)
    forward_bf16_kernel(ConvShape g, const bfloat16* __restrict__ x, const bfloat16* __restrict__ w,
                        float* __restrict__ y) {
  constexpr int kWarpM = BM / WARPS_M, kWarpN = BN / WARPS_N;  // the warp's tile of y
  constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 8;   // its mma tiles (16 x 8 each)
  constexpr int kPassesA = BM / kRowsPerPass;
  constexpr int kPassesB = (BN + kRowsPerPass - 1) / kRowsPerPass;  // the last one partial when BN = 16
  static_assert(WARPS_M * WARPS_N * 32 == kThreads, "4 warps");
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "whole ldmatrix_x4 loads: 16 rows, 16 channels");
  static_assert(BM % kRowsPerPass == 0, "whole copy passes for A");
  static_assert(kPassesA <= 32 && kPassesB <= 32, "one bit per pass in the masks below");

  // Raw bfloat16 bits: the tiles only travel (cp.async) and are read by ldmatrix.
  __shared__ __align__(16) std::uint16_t a_tiles[kStages][BM][kRowStride];
  __shared__ __align__(16) std::uint16_t b_tiles[kStages][BN][kRowStride];

  const int tiles_n = (g.out_channels - 1) / BN + 1;
  const int m0 = static_cast<int>(blockIdx.x) / tiles_n * BM;
  const int n0 = static_cast<int>(blockIdx.x) % tiles_n * BN;
  // Offsets inside the tile are compared with what is left of y, so no index ever passes M or K.
  const int rows_left = g.rows - m0, cols_left = g.out_channels - n0;  // >= 1
  const int tid = static_cast<int>(threadIdx.x);

  // ---- what this thread copies: the vector at copy_col of rows copy_row + i * kRowsPerPass ----
  const int copy_row = tid % 8 + 8 * (tid / (8 * kVectorsPerRow));  // 0..31
  const int copy_col = tid / 8 % kVectorsPerRow * 8;                // 0, 8, 16, 24

  // A's rows, once: the image's offset in x and the input position of tap (0, 0) (may be negative).
  int a_image[kPassesA], a_ih0[kPassesA], a_iw0[kPassesA];
  unsigned a_rows_inside = 0;  // bit i: row copy_row + 32 i is < M
#pragma unroll
  for (int i = 0; i < kPassesA; ++i) {
    const int row = copy_row + i * kRowsPerPass;
    a_image[i] = 0;
    a_ih0[i] = 0;
    a_iw0[i] = 0;
    if (row < rows_left) {
      const int m = m0 + row;
      const int q = m % g.out_w, np = m / g.out_w;
      const int p = np % g.out_h, n = np / g.out_h;
      a_image[i] = n * g.height * g.width * g.channels;  // < N*H*W*C < 2^31
      a_ih0[i] = p * g.stride_h - g.pad_h;
      a_iw0[i] = q * g.stride_w - g.pad_w;
      a_rows_inside |= 1u << i;
    }
  }
  // B's rows (output channels), once: where the filter of channel n0 + row starts in w.
  int b_start[kPassesB];
  unsigned b_rows_inside = 0;  // bit i: row copy_row + 32 i is < BN and its channel < K
#pragma unroll
  for (int i = 0; i < kPassesB; ++i) {
    const int row = copy_row + i * kRowsPerPass;
    b_start[i] = 0;
    if (row < BN && row < cols_left) {
      b_start[i] = (n0 + row) * g.reduction;  // < K * R*S*C < 2^31
      b_rows_inside |= 1u << i;
    }
  }

  // This thread's reduction index j = 32 t + copy_col for the next tile t to copy, and the same j as a tap
  // (r, s) and channel c, with r*dh and s*dw beside them. tap_r reaches R exactly when j passes R*S*C.
  int j = copy_col;
  int tap_c = copy_col, tap_s = 0, tap_r = 0, tap_sdw = 0, tap_rdh = 0;
  const auto carry_channels = [&] {  // c back into [0, C), moving to the next taps (at most 4 times: C >= 8)
    while (tap_c >= g.channels) {
      tap_c -= g.channels;
      tap_sdw += g.dilation_w;
      if (++tap_s == g.kernel_w) {
        tap_s = 0;
        tap_sdw = 0;
        ++tap_r;
        tap_rdh += g.dilation_h;
      }
    }
  };
  carry_channels();

  // Issues the copies of the next tile into buffer `stage` and advances j.
  const auto copy_tile = [&](int stage) {
    const bool tap_inside = tap_r < g.kernel_h;  // j < R*S*C
#pragma unroll
    for (int i = 0; i < kPassesA; ++i) {
      const int ih = a_ih0[i] + tap_rdh, iw = a_iw0[i] + tap_sdw;
      const bool inside =
          tap_inside && (a_rows_inside >> i & 1u) && ih >= 0 && ih < g.height && iw >= 0 && iw < g.width;
      // The address is formed only inside x; a zero-fill names x itself (valid, never read).
      const bfloat16* source = inside ? x + (a_image[i] + (ih * g.width + iw) * g.channels + tap_c) : x;
      cp_async_16(&a_tiles[stage][copy_row + i * kRowsPerPass][copy_col], source, inside);
    }
    const bool j_inside = j < g.reduction;
#pragma unroll
    for (int i = 0; i < kPassesB; ++i) {
      const int row = copy_row + i * kRowsPerPass;
      if (BN % kRowsPerPass != 0 && row >= BN) continue;  // BN = 16: half the block copies B
      const bool inside = j_inside && (b_rows_inside >> i & 1u);
      const bfloat16* source = inside ? w + (b_start[i] + j) : w;
      cp_async_16(&b_tiles[stage][row][copy_col], source, inside);
    }
    j += kBlockK;
    tap_c += kBlockK;
    carry_channels();
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
  // The 16-byte row this lane names to ldmatrix_x4: row (or channel) lane % 16, j offset 8 (lane / 16).
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
        // Channels col0..col0+15: r[0], r[2] = b[0], b[1] of the first 8; r[1], r[3] those of the next 8.
        std::uint32_t r[4];
        ldmatrix_x4(r, &b_tiles[stage][warp_col + pair * 16 + ld_row][k16 + ld_col]);
        b[2 * pair][0] = r[0];
        b[2 * pair][1] = r[2];
        b[2 * pair + 1][0] = r[1];
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

  // ---- the tile of y: c[0], c[1] at (group, 2 thread + {0, 1}), c[2], c[3] eight rows below ----
  const bool even_k = g.out_channels % 2 == 0;  // then every (m, even k) is 8-byte aligned: float2 stores
#pragma unroll
  for (int mt = 0; mt < kFragsM; ++mt) {
#pragma unroll
    for (int nt = 0; nt < kFragsN; ++nt) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = warp_row + mt * 16 + group + 8 * half;
        const int col = warp_col + nt * 8 + 2 * thread;
        if (row >= rows_left || col >= cols_left) continue;
        float* out = y + ((m0 + row) * g.out_channels + n0 + col);  // < M*K < 2^31
        const float first = acc[mt][nt][2 * half], second = acc[mt][nt][2 * half + 1];
        if (col + 1 >= cols_left) {
          out[0] = first;
        } else if (even_k) {
          *reinterpret_cast<float2*>(out) = make_float2(first, second);
        } else {
          out[0] = first;
          out[1] = second;
        }
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
  s.dilation_h = as_int(g.dilation_h);
  s.dilation_w = as_int(g.dilation_w);
  s.rows = as_int(g.batch * g.out_height() * g.out_width());      // <= y's size < 2^31
  s.reduction = as_int(g.kernel_h * g.kernel_w * g.in_channels);  // <= w's size < 2^31
  return s;
}

// Static shared memory, under 48 KiB in every tile shape: no attribute to set.
template <int BM, int BN, int WARPS_M, int WARPS_N>
void launch_tiles(const ConvShape& s, const bfloat16* x, const bfloat16* w, float* y) {
  // tiles_m * tiles_n <= M * K < 2^31: within gridDim.x's limit of 2^31 - 1.
  const std::int64_t tiles_m = (std::int64_t{s.rows} + BM - 1) / BM;
  const std::int64_t tiles_n = (std::int64_t{s.out_channels} + BN - 1) / BN;
  const auto blocks = static_cast<unsigned>(tiles_m * tiles_n);
  ladder::launch("conv2d ladder 05_forward_implicit_gemm_bf16", forward_bf16_kernel<BM, BN, WARPS_M, WARPS_N>,
                 dim3(blocks), dim3(kThreads), 0, s, x, w, y);
}

}  // namespace forward_implicit_gemm_bf16
}  // namespace

void launch_05_forward_implicit_gemm_bf16(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w,
                                          float* y) {
  using namespace forward_implicit_gemm_bf16;
  require_supported("05_forward_implicit_gemm_bf16", g, g.groups == 1 && g.in_channels % 8 == 0,
                    "groups 1, C % 8 == 0");
  require_16_byte_operands("05_forward_implicit_gemm_bf16", x, w, y);
  const ConvShape s = conv_shape(g);
  if (s.out_channels <= 16) {
    launch_tiles<128, 16, 4, 1>(s, x, w, y);
  } else if (s.out_channels <= 32) {
    launch_tiles<128, 32, 4, 1>(s, x, w, y);
  } else {
    launch_tiles<64, 64, 2, 2>(s, x, w, y);
  }
}

}  // namespace kiln::kernels::conv2d_ladder
