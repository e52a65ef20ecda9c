// Convolution ladder, step 05 (backward weight): implicit GEMM with split-K on the bfloat16 tensor cores,
// channels-last (NHWC) tensors, tiles gathered by a three-stage cp.async pipeline and fed to mma.sync by
// ldmatrix.trans.
//
// The GEMM view, as in step 04. With gy [N, P, Q, K], x [N, H, W, C] and gw [K, R, S, C]:
//   gw[k, j] = sum over i < N*P*Q of A[k, i] * B[i, j]        k < K,  j = (r, s, c) < R*S*C, c fastest
//   A[k, i] = gy[i, k]: gy is the row-major [N*P*Q, K] matrix, so A arrives reduction-major ([i][k])
//   B[i, j] = x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, c]     i = (n, p, q); zero in the padding
// and gw in KRSC is the row-major [K, R*S*C] result, in float. B is gathered from x tile by tile, never
// built. With C % 8 == 0, 8 consecutive j (j % 8 == 0) are 8 channels of one tap, and with K % 8 == 0, 8
// consecutive k of one gy row: each one aligned 16-byte cp.async.
//
// Split-K, as in step 04: the reduction is cut into `splits` chunks of `chunk` positions; block (tile, z)
// computes its tile over chunk z into partials[z] (float scratch, splits x K x R*S*C), and sum_splits_kernel
// adds the partials into gw in a fixed order (deterministic, no atomics).
// splits (split_reduction): enough blocks for about four per multiprocessor of an H100 (4 x 132 = 528), but
// no chunk shorter than 512 positions (16 tiles), so that filling the pipeline and the partial's round trip
// stay small beside the chunk's loads. With one split the kernel writes gw directly, no scratch.
//
// What changes from step 04: the operands are bfloat16, so every byte moved (global -> shared -> registers)
// carries twice the values, and an m16n8k16 mma does twice the work of an m16n8k8 tf32 one at the same issue
// cost (the H100's bf16 tensor rate is twice its tf32 rate). The fragments come out of shared memory by
// ldmatrix, four 8x8 matrices per instruction, where step 04 needed a 32-bit load and a cvt to TF32 per
// register. Both operands are stored reduction-major (rows i), so both are loaded with ldmatrix.trans. The
// products are exact; the sums are float.
//
// Tiling. A block of 4 warps (128 threads) computes a BM x BN tile of gw (BM channels from k0, BN columns
// from j0), walking its chunk in slices of BK = 32 positions. The tile shape is a template picked by K:
//   K <= 16:  BM x BN = 16 x 128, warps 1 x 4, warp tile 16 x 32 (1 x 4 mma tiles), 30,720 bytes of shared
//   K <= 32:  32 x 128,           warps 1 x 4, warp tile 32 x 32 (2 x 4 mma tiles), 33,792 bytes
//   K >  32:  64 x 64,            warps 2 x 2, warp tile 32 x 32 (2 x 4 mma tiles), 27,648 bytes
// The grid is (tiles, splits): block x = tile_j * tiles_k + tile_k (consecutive blocks share their B columns,
// the x gather, in L2); block y = the chunk.
//
// Shared memory: per stage an A tile [BK][BM + 8] (a_tiles[i][k], as gy's rows arrive) and a B tile
// [BK][BN + 8] (b_tiles[i][j]), bfloat16 bits, in 3 stages. Rows are padded by 8 elements (16 bytes), so a
// row is (BM + 8) / 8 = 3, 5 or 9, and (BN + 8) / 8 = 9 or 17, 16-byte units: odd. ldmatrix reads each 8x8
// matrix as 16 bytes from each of 8 consecutive rows, at units odd * row + const: 8 different units mod 8, no
// bank conflicts; and every row stays 16-byte aligned for cp.async and ldmatrix.
//
// Copies. A (gy): 16-byte vector e = tid (+ 128) of the tile is row e / (BM/8), channels 8 (e % (BM/8)):
// gy + (i0 + row) * K + k0 + 8 (e % (BM/8)); for BM = 16 only threads 0..63 copy A. B (x): thread t copies
// rows b_row = t / 8 and b_row + 16, vectors b_vec = t % 8 (+ 8) of each (BN/64 per row): 8 consecutive lanes
// store 8 consecutive vectors of one row (conflict-free) and read 128 contiguous bytes of x where the row's
// taps are adjacent. Each thread decodes its B columns' taps (r, s, c) once, before the loop, and its two
// rows' positions (n, p, q) once, stepping them like an odometer, +BK per tile ((dn, dp, dq) from the host,
// each digit carrying at most once): no division in the loop. A row past the chunk, a channel past K, a
// column past R*S*C and a tap in the padding are zero-filled (cp.async with source size 0).
//
// Pipeline: as step 04. Tiles 0 and 1 are issued before the loop; iteration t waits for tile t (wait_group
// 1), __syncthreads() (everyone's copies visible; everyone done with tile t - 1), issues tile t + 2 into tile
// t - 1's buffer, computes on tile t.
//
// Fragments (mma.cuh, m16n8k16 bf16; group = lane / 4, thread = lane % 4; two bfloat16 per register, the
// lower reduction index in the low half). The mma's rows are channels k, its reduction index the positions i,
// its columns j. ldmatrix_x4_trans: lanes 8m..8m+7 name the 16-byte rows of stored matrix m, and lane l
// receives in register m that matrix's (stored rows 2 (l % 4) + {0, 1}, stored col l / 4) =
// (rows 2 thread + {0, 1}, col group), the lower row in the low half.
//   A, 16 channels from row0, 16 positions from i16. Stored as a_tiles[i][k], so a stored row is a position
//     and a stored column a channel. mma.cuh's a[m] = A(row0 + group + 8 (m % 2), i16 + 8 (m / 2) + 2 thread
//     + {0, 1}) is stored matrix m = (positions i16 + 8 (m / 2) .. +7, channels row0 + 8 (m % 2) .. +7),
//     received transposed: (stored rows 2 thread + {0, 1} = positions, stored col group = channel). So lane l
//     names a_tiles[i16 + l % 8 + 8 (l / 16)][row0 + 8 ((l / 8) % 2)], and r[0..3] are a[0..3].
//   B, 16 columns from col0, 16 positions from i16. Stored as b_tiles[i][j] ([k][n] in mma.cuh's words), so,
//     as mma.cuh says, lane l names b_tiles[i16 + l % 16][col0 + 8 (l / 16)]: matrix 0 = (positions 0-7,
//     columns 0-7), 1 = (positions 8-15, columns 0-7), 2 = (0-7, 8-15), 3 = (8-15, 8-15), and lane l gets
//     B(i = 2 thread + {0, 1} (+ 8), j = group) of each: r[0], r[1] are b[0], b[1] of columns col0..+7 and
//     r[2], r[3] those of columns col0 + 8..+15.
// The accumulators c[0..3] are gw(row0 + group + {0, 0, 8, 8}, col0 + 2 thread + {0, 1, 0, 1}), stored
// straight from registers as float2 (R*S*C is a multiple of 8: a pair never straddles the edge), each
// predicated on the channel < K and the column < R*S*C.
#include <algorithm>
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/conv2d/ladder/split_k.cuh"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mma.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace backward_weight_implicit_gemm_bf16 {  // this step's names (its ladder compiles as one unit)

using ladder::cp_async_16;
using ladder::cp_async_commit;
using ladder::cp_async_wait;
using ladder::ldmatrix_x4_trans;
using ladder::mma_m16n8k16_bf16;

constexpr int kThreads = 128;     // 4 warps, in every tile shape
constexpr int kBlockK = 32;       // positions (n, p, q) of the reduction per stage
constexpr int kStages = 3;        // tiles in flight
constexpr int kPad = 8;           // bfloat16 added to every shared row (16 bytes), see the top comment
constexpr int kVector = 8;        // bfloat16 per 16-byte copy
constexpr int kLanesPerBRow = 8;  // threads copying one row of the B tile
constexpr int kBRowsPerPass = kThreads / kLanesPerBRow;  // 16
constexpr int kBPasses = kBlockK / kBRowsPerPass;        // 2 rows of B per thread

// The geometry in int (the launcher has checked that every tensor holds fewer than 2^31 elements; with
// K % 8 == 0, N*P*Q < 2^28, so a position plus a few tiles never overflows).
struct ConvShape {
  int height, width, channels;           // x [N, H, W, C]
  int out_channels, kernel_h, kernel_w;  // gw [K, R, S, C]
  int out_h, out_w;                      // gy [N, P, Q, K]
  int stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int columns;                 // R * S * C
  int positions;               // N * P * Q
  int chunk;                   // positions per split; the last split may have fewer
  int step_n, step_p, step_q;  // kBlockK as (n, p, q) digits: kBlockK = (step_n * P + step_p) * Q + step_q
};

// gy [N*P*Q, K], x [N, H, W, C] bfloat16; `out` [K, R*S*C] float: gw itself with one split, else partials[z]
// for z = blockIdx.y. C % 8 == 0, K % 8 == 0.
template <int BM, int BN, int WARPS_M, int WARPS_N>
__global__ void __launch_bounds__(kThreads)
    backward_weight_bf16_kernel(ConvShape g, const bfloat16* __restrict__ gy, const bfloat16* __restrict__ x,
                                float* __restrict__ out) {
  constexpr int kWarpM = BM / WARPS_M, kWarpN = BN / WARPS_N;  // the warp's tile of gw
  constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 8;   // its mma tiles (16 x 8 each)
  constexpr int kAVectorsPerRow = BM / kVector;
  constexpr int kAVectors = kBlockK * kAVectorsPerRow;             // 64, 128, 256
  constexpr int kACopies = (kAVectors + kThreads - 1) / kThreads;  // per thread: 1 (half the threads), 1, 2
  constexpr int kBCopiesPerRow = BN / kVector / kLanesPerBRow;     // per thread and row: 2, 1
  static_assert(WARPS_M * WARPS_N * 32 == kThreads, "4 warps");
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "whole ldmatrix_x4 loads: 16 channels, 16 columns");
  static_assert(kAVectors % kThreads == 0 || kAVectors < kThreads, "whole A copy passes, or one partial one");
  static_assert(kBCopiesPerRow * kVector * kLanesPerBRow == BN && kBPasses * kBRowsPerPass == kBlockK);
  static_assert((BM + kPad) / 8 % 2 == 1 && (BN + kPad) / 8 % 2 == 1, "odd 16-byte units per row");
  static_assert(kBCopiesPerRow <= 32, "one bit per column in the mask below");

  // Raw bfloat16 bits: the tiles only travel (cp.async) and are read by ldmatrix.
  __shared__ __align__(16) std::uint16_t a_tiles[kStages][kBlockK][BM + kPad];  // A(k0 + k, i0 + i) at [i][k]
  __shared__ __align__(16) std::uint16_t b_tiles[kStages][kBlockK][BN + kPad];  // B(i0 + i, j0 + j) at [i][j]

  const int tiles_k = (g.out_channels - 1) / BM + 1;
  const int k0 = static_cast<int>(blockIdx.x) % tiles_k * BM;
  const int j0 = static_cast<int>(blockIdx.x) / tiles_k * BN;
  // Offsets inside the tile are compared with what is left of gw, so no index ever passes K or R*S*C.
  const int rows_left = g.out_channels - k0, cols_left = g.columns - j0;  // >= 1
  const int begin = static_cast<int>(blockIdx.y) * g.chunk;               // < N*P*Q
  const int length = min(g.chunk, g.positions - begin);                   // >= 1
  const int tid = static_cast<int>(threadIdx.x);

  // ---- B's columns, once: the tap (r, s) and channel c of each vector this thread copies ----
  const int b_row = tid / kLanesPerBRow, b_vec = tid % kLanesPerBRow;
  int col_c[kBCopiesPerRow], col_ih[kBCopiesPerRow], col_iw[kBCopiesPerRow];
  unsigned cols_inside = 0;  // bit u: column j0 + 8 (b_vec + 8 u) is < R*S*C
#pragma unroll
  for (int u = 0; u < kBCopiesPerRow; ++u) {
    const int col = kVector * (b_vec + kLanesPerBRow * u);
    col_c[u] = 0;
    col_ih[u] = 0;
    col_iw[u] = 0;
    if (col < cols_left) {
      const int j = j0 + col, rs = j / g.channels;
      col_c[u] = j % g.channels;
      col_ih[u] = rs / g.kernel_w * g.dilation_h - g.pad_h;  // ih = p * sh + col_ih
      col_iw[u] = rs % g.kernel_w * g.dilation_w - g.pad_w;  // iw = q * sw + col_iw
      cols_inside |= 1u << u;
    }
  }
  // ---- B's rows, once: the position (n, p, q) of rows b_row + 16 h of the next tile ----
  int row_left[kBPasses], row_n[kBPasses], row_p[kBPasses], row_q[kBPasses];  // row_left > 0: in the chunk
#pragma unroll
  for (int h = 0; h < kBPasses; ++h) {
    const int row = b_row + h * kBRowsPerPass;
    row_left[h] = length - row;
    row_n[h] = 0;
    row_p[h] = 0;
    row_q[h] = 0;
    if (row_left[h] > 0) {
      const int i = begin + row, np = i / g.out_w;
      row_q[h] = i % g.out_w;
      row_p[h] = np % g.out_h;
      row_n[h] = np / g.out_h;
    }
  }
  int tile_start = begin, tile_left = length;  // the next tile's first position, and the chunk from there on

  // Issues the copies of the next tile into buffer `stage` and moves every row on by BK positions.
  const auto copy_tile = [&](int stage) {
#pragma unroll
    for (int l = 0; l < kACopies; ++l) {
      const int e = tid + l * kThreads;
      if (kAVectors < kThreads && e >= kAVectors) continue;  // BM = 16: half the block copies A
      const int row = e / kAVectorsPerRow, col = e % kAVectorsPerRow * kVector;
      const bool inside = row < tile_left && col < rows_left;
      // The address is formed only inside gy; a zero-fill names gy itself (valid, never read).
      const bfloat16* source = inside ? gy + ((tile_start + row) * g.out_channels + k0 + col) : gy;
      cp_async_16(&a_tiles[stage][row][col], source, inside);
    }
#pragma unroll
    for (int h = 0; h < kBPasses; ++h) {
      const bool row_inside = row_left[h] > 0;
      const int ih0 = row_p[h] * g.stride_h, iw0 = row_q[h] * g.stride_w;
      const int row = b_row + h * kBRowsPerPass;
#pragma unroll
      for (int u = 0; u < kBCopiesPerRow; ++u) {
        const int ih = ih0 + col_ih[u], iw = iw0 + col_iw[u];
        const bool inside =
            row_inside && (cols_inside >> u & 1u) && ih >= 0 && ih < g.height && iw >= 0 && iw < g.width;
        // The address is formed only inside x (then n < N); a zero-fill names x itself.
        const bfloat16* source =
            inside ? x + (((row_n[h] * g.height + ih) * g.width + iw) * g.channels + col_c[u]) : x;
        cp_async_16(&b_tiles[stage][row][kVector * (b_vec + kLanesPerBRow * u)], source, inside);
      }
    }
    // The next tile is BK positions on: add (dn, dp, dq) to each row, each digit carrying at most once.
    tile_start += kBlockK;
    tile_left -= kBlockK;
#pragma unroll
    for (int h = 0; h < kBPasses; ++h) {
      row_left[h] -= kBlockK;
      row_q[h] += g.step_q;
      if (row_q[h] >= g.out_w) {
        row_q[h] -= g.out_w;
        ++row_p[h];
      }
      row_p[h] += g.step_p;
      if (row_p[h] >= g.out_h) {
        row_p[h] -= g.out_h;
        ++row_n[h];
      }
      row_n[h] += g.step_n;
    }
  };

  // ---- the pipeline ----
  const int k_tiles = (length - 1) / kBlockK + 1;
#pragma unroll
  for (int t = 0; t < kStages - 1; ++t) {
    if (t < k_tiles) copy_tile(t);
    cp_async_commit();  // an empty group when there is no tile t: the counting stays uniform
  }

  const int warp = tid / 32, lane = tid % 32;
  const int group = lane / 4, thread = lane % 4;  // as in mma.cuh's layouts
  const int warp_row = warp % WARPS_M * kWarpM, warp_col = warp / WARPS_M * kWarpN;
  // The 16-byte rows this lane names to ldmatrix_x4_trans (see the top comment):
  //   A: position l % 8 + 8 (l / 16), channels from 8 ((l / 8) % 2);  B: position l % 16, columns from 8 (l /
  //   16)
  const int a_ld_row = lane % 8 + 8 * (lane / 16), a_ld_col = 8 * (lane / 8 % 2);
  const int b_ld_row = lane % 16, b_ld_col = 8 * (lane / 16);
  float acc[kFragsM][kFragsN][4] = {};

  for (int t = 0; t < k_tiles; ++t) {
    cp_async_wait<kStages - 2>();  // this thread's copies of tile t have landed...
    __syncthreads();               // ...and everyone's; everyone is done with tile t - 1
    if (t + kStages - 1 < k_tiles) copy_tile((t + kStages - 1) % kStages);  // into tile t - 1's buffer
    cp_async_commit();

    const int stage = t % kStages;
#pragma unroll
    for (int i16 = 0; i16 < kBlockK; i16 += 16) {
      std::uint32_t a[kFragsM][4], b[kFragsN][2];
#pragma unroll
      for (int mt = 0; mt < kFragsM; ++mt) {
        // r[0..3] = a[0..3]: (channels 0-7, i 0-7), (channels 8-15, i 0-7), (0-7, i 8-15), (8-15, i 8-15)
        ldmatrix_x4_trans(a[mt], &a_tiles[stage][i16 + a_ld_row][warp_row + mt * 16 + a_ld_col]);
      }
#pragma unroll
      for (int pair = 0; pair < kFragsN / 2; ++pair) {
        // Columns col0..col0+15: r[0], r[1] = b[0], b[1] of the first 8; r[2], r[3] those of the next 8.
        std::uint32_t r[4];
        ldmatrix_x4_trans(r, &b_tiles[stage][i16 + b_ld_row][warp_col + pair * 16 + b_ld_col]);
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

  // ---- the tile of gw: c[0], c[1] at (group, 2 thread + {0, 1}), c[2], c[3] eight rows below ----
  float* const out_split = out + static_cast<std::int64_t>(blockIdx.y) * g.out_channels * g.columns;
#pragma unroll
  for (int mt = 0; mt < kFragsM; ++mt) {
#pragma unroll
    for (int nt = 0; nt < kFragsN; ++nt) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = warp_row + mt * 16 + group + 8 * half;
        const int col = warp_col + nt * 8 + 2 * thread;  // even; cols_left is even (R*S*C % 8 == 0)
        if (row >= rows_left || col >= cols_left) continue;
        float* const to = out_split + ((k0 + row) * g.columns + j0 + col);  // < K * R*S*C < 2^31; even
        *reinterpret_cast<float2*>(to) = make_float2(acc[mt][nt][2 * half], acc[mt][nt][2 * half + 1]);
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
  s.columns = as_int(g.kernel_h * g.kernel_w * g.in_channels);     // <= gw's size < 2^31
  s.positions = as_int(g.batch * g.out_height() * g.out_width());  // <= gy's size / 8
  s.step_q = as_int(kBlockK % g.out_width());
  s.step_p = as_int(kBlockK / g.out_width() % g.out_height());
  s.step_n = as_int(kBlockK / (g.out_width() * g.out_height()));
  return s;
}

// Static shared memory, under 48 KiB in every tile shape: no attribute to set.
template <int BM, int BN, int WARPS_M, int WARPS_N>
void launch_tiles(ConvShape s, const bfloat16* gy, const bfloat16* x, float* gw) {
  constexpr const char* kName = "conv2d ladder 05_backward_weight_implicit_gemm_bf16";
  auto* const kernel = backward_weight_bf16_kernel<BM, BN, WARPS_M, WARPS_N>;
  // Every tile holds at least one element of gw (< 2^31 of them): the count fits gridDim.x.
  const std::int64_t tiles = ((s.columns + BN - 1) / BN) * ((s.out_channels + BM - 1) / BM);
  run_split_k("conv2d ladder 05_backward_weight_implicit_gemm_bf16 (sum of splits)", tiles, s.positions,
              kBlockK, std::int64_t{s.out_channels} * s.columns, gw, [&](dim3 grid, int chunk, float* out) {
                s.chunk = chunk;
                ladder::launch(kName, kernel, grid, dim3(kThreads), 0, s, gy, x, out);
              });
}

}  // namespace backward_weight_implicit_gemm_bf16
}  // namespace

void launch_05_backward_weight_implicit_gemm_bf16(const Conv2dGeometry& g, const bfloat16* gy,
                                                  const bfloat16* x, float* gw) {
  using namespace backward_weight_implicit_gemm_bf16;
  require_supported("05_backward_weight_implicit_gemm_bf16", g,
                    g.groups == 1 && g.in_channels % 8 == 0 && g.out_channels % 8 == 0,
                    "groups 1, C % 8 == 0, K % 8 == 0");
  require_16_byte_operands("05_backward_weight_implicit_gemm_bf16", gy, x, gw);
  const ConvShape s = conv_shape(g);
  if (s.out_channels <= 16) {
    launch_tiles<16, 128, 1, 4>(s, gy, x, gw);
  } else if (s.out_channels <= 32) {
    launch_tiles<32, 128, 1, 4>(s, gy, x, gw);
  } else {
    launch_tiles<64, 64, 2, 2>(s, gy, x, gw);
  }
}

}  // namespace kiln::kernels::conv2d_ladder
