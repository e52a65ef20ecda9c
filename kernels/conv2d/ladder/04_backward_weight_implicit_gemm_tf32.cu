// Convolution ladder, step 04 (backward weight): implicit GEMM with split-K on the tensor cores, TF32
// operands, channels-last (NHWC) tensors, tiles gathered by a three-stage cp.async pipeline.
//
// The GEMM view. With gy [N, P, Q, K], x [N, H, W, C] and gw [K, R, S, C] the weight gradient is one GEMM
//   gw[k, j] = sum over i < N*P*Q of A[k, i] * B[i, j]        k < K,  j = (r, s, c) < R*S*C, c fastest
// where the reduction index i = (n, p, q) runs over the batch and every output position:
//   A[k, i] = gy[i, k]: gy in NHWC is the row-major [N*P*Q, K] matrix, so A arrives reduction-major
//   B[i, j] = x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, c]     (zero where that lies in the padding)
// and gw in KRSC is the row-major [K, R*S*C] result. B is im2col's matrix, gathered tile by tile, never
// built. Along j, B's row is a run of C consecutive channels per tap (r, s), contiguous in NHWC; with C % 4
// == 0, 4 consecutive j (j % 4 == 0) are 4 channels of one tap: one 16-byte cp.async or a zero-fill. Along k,
// A's row i is gy's row: with K % 4 == 0, 4 consecutive k are one aligned 16-byte copy.
//
// Split-K. The output is small (K x R*S*C: 16 x 144 for ResNet-20's first stage) and the reduction long
// (N*P*Q = 131,072 there at batch 128): one block per output tile would leave the GPU idle. The reduction is
// cut into `splits` chunks of `chunk` positions; block (tile, z) computes its tile over chunk z into
// partials[z] (scratch, splits x K x R*S*C floats), and sum_splits_kernel adds the partials into gw in a
// fixed order (split_k.cuh): deterministic, no atomics. splits (split_reduction): enough blocks
// for about four per multiprocessor of an H100 (4 x 132 = 528 blocks: about one wave at the 3 to 4 blocks a
// multiprocessor holds here), but no chunk shorter than 512 positions (16 tiles), so that a block's fixed
// costs (filling the pipeline, writing its BM x BN partial that the sum reads back) stay small beside its
// chunk's loads. With one split (large outputs) the kernel writes gw directly and no scratch is used.
// ResNet-20's first stage at batch 128: 2 tiles of 16 x 128, 256 splits of 512 positions, 512 blocks.
//
// What changes from step 03 (the SIMT implicit GEMM): the multiplies run on the tensor cores (mma.sync
// m16n8k8, TF32 operands, float sums), several times the float FMA rate; the layout is NHWC, so the gather
// moves 16 bytes of channels per copy instead of one float, and gy's rows are contiguous in k; and the copies
// are asynchronous, three tiles in flight, so the gather's latency hides behind the tile before.
//
// Tiling. A block of 4 warps (128 threads) computes a BM x BN tile of gw (BM channels from k0, BN columns
// from j0), walking its chunk in slices of BK = 32 positions. The tile shape is a template picked by K:
//   K <= 16:  BM x BN = 16 x 128, warps 1 x 4, warp tile 16 x 32 (1 x 4 mma tiles), 61,440 bytes of shared
//   K <= 32:  32 x 128,           warps 1 x 4, warp tile 32 x 32 (2 x 4 mma tiles), 67,584 bytes
//   K >  32:  64 x 64,            warps 2 x 2, warp tile 32 x 32 (2 x 4 mma tiles), 55,296 bytes
// The grid is (tiles, splits): block x = tile_j * tiles_k + tile_k, so consecutive blocks share their B
// columns (the x gather, the costly operand), which meet again in L2; block y = the chunk.
//
// Shared memory: per stage an A tile [BK][BM + 8] (a_tile[i][k], as gy's rows arrive) and a B tile
// [BK][BN + 8] (b_tile[i][j]), floats, in 3 stages. Rows are padded by 8 floats: BM + 8 and BN + 8 are 8 or
// 24 mod 32, so a fragment load, which reads rows thread = 0..3 at columns group = 0..7, hits banks (8 or 24)
// thread + group: 32 different ones. Every row stays a multiple of 16 bytes for cp.async.
//
// Copies. A (gy): 16-byte vector e = tid + 128 l of the tile is row e / (BM/4), channels 4 (e % (BM/4)):
// gy + (i0 + row) * K + k0 + 4 (e % (BM/4)); BM/4 threads read a row's BM channels, contiguous. B (x): thread
// t copies rows b_row = t / 8 and b_row + 16, vectors b_vec = t % 8 and b_vec + 8 u of each (BN/32 per row):
// 8 consecutive lanes store 8 consecutive vectors of one row (conflict-free) and read 128 contiguous bytes of
// x where the row's taps are adjacent. Each thread decodes its B columns' taps (r, s, c) once, before the
// loop, into (c, r*dh - ph, s*dw - pw); and its two rows' positions (n, p, q) once, stepping them like an
// odometer, +BK per tile (BK split on the host into (dn, dp, dq), each digit carrying at most once): no
// division in the loop. A row past the chunk, a channel past K, a column past R*S*C and a tap in the padding
// are zero-filled (cp.async with source size 0); zeros add nothing to the sums.
//
// Pipeline (cp_async.cuh): tiles 0 and 1 are issued before the loop; iteration t waits for tile t
// (wait_group 1), __syncthreads() (everyone's copies visible; everyone done with tile t - 1), issues tile
// t + 2 into tile t - 1's buffer, computes on tile t. One barrier per tile covers both hazards.
//
// Fragments (mma.cuh, m16n8k8 tf32; group = lane / 4, thread = lane % 4). The mma's rows are channels k, its
// reduction index the positions i, its columns j. For a warp's 16 channels from row0 and 8 positions from i8,
// A(k, i) lives at a_tile[i][k], so
//   a[0] = A(row0 + group,     i8 + thread)     = a_tile[i8 + thread][row0 + group]
//   a[1] = A(row0 + group + 8, i8 + thread)     = a_tile[i8 + thread][row0 + group + 8]
//   a[2] = A(row0 + group,     i8 + thread + 4) = a_tile[i8 + thread + 4][row0 + group]
//   a[3] = A(row0 + group + 8, i8 + thread + 4) = a_tile[i8 + thread + 4][row0 + group + 8]
// and for its 8 columns from col0, b[0], b[1] = B(i8 + thread + {0, 4}, col0 + group)
// = b_tile[i8 + thread + {0, 4}][col0 + group]. Each float is rounded to TF32 (cvt.rna) as it leaves shared
// memory. The accumulators c[0..3] are gw(row0 + group + {0, 0, 8, 8}, col0 + 2 thread + {0, 1, 0, 1}),
// stored straight from registers as float2 (R*S*C is a multiple of 4, so a pair never straddles the edge),
// each predicated on the channel < K and the column < R*S*C.
#include <algorithm>
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/conv2d/ladder/split_k.cuh"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mma.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace backward_weight_implicit_gemm_tf32 {  // this step's names (its ladder compiles as one unit)

using ladder::cp_async_16;
using ladder::cp_async_commit;
using ladder::cp_async_wait;
using ladder::mma_m16n8k8_tf32;
using ladder::to_tf32;

constexpr int kThreads = 128;     // 4 warps, in every tile shape
constexpr int kBlockK = 32;       // positions (n, p, q) of the reduction per stage
constexpr int kStages = 3;        // tiles in flight
constexpr int kPad = 8;           // floats added to every shared row, see the top comment
constexpr int kVector = 4;        // floats per 16-byte copy
constexpr int kLanesPerBRow = 8;  // threads copying one row of the B tile
constexpr int kBRowsPerPass = kThreads / kLanesPerBRow;  // 16
constexpr int kBPasses = kBlockK / kBRowsPerPass;        // 2 rows of B per thread

// The geometry in int (the launcher has checked that every tensor holds fewer than 2^31 elements; with
// K % 4 == 0, N*P*Q < 2^29, so a position plus a few tiles never overflows).
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

// gy [N*P*Q, K], x [N, H, W, C] float; `out` [K, R*S*C] float: gw itself with one split, else partials[z] for
// z = blockIdx.y. C % 4 == 0, K % 4 == 0.
template <int BM, int BN, int WARPS_M, int WARPS_N>
__global__ void __launch_bounds__(kThreads)
    backward_weight_tf32_kernel(ConvShape g, const float* __restrict__ gy, const float* __restrict__ x,
                                float* __restrict__ out) {
  constexpr int kWarpM = BM / WARPS_M, kWarpN = BN / WARPS_N;  // the warp's tile of gw
  constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 8;   // its mma tiles (16 x 8 each)
  constexpr int kStrideA = BM + kPad, kStrideB = BN + kPad;    // floats per shared row
  constexpr int kTileAFloats = kBlockK * kStrideA, kStageFloats = kBlockK * (kStrideA + kStrideB);
  constexpr int kAVectorsPerRow = BM / kVector;
  constexpr int kAVectors = kBlockK * kAVectorsPerRow;             // 128, 256, 512
  constexpr int kACopies = (kAVectors + kThreads - 1) / kThreads;  // per thread: 1, 2, 4
  constexpr int kBCopiesPerRow = BN / kVector / kLanesPerBRow;     // per thread and row: 4, 2
  static_assert(WARPS_M * WARPS_N * 32 == kThreads, "4 warps");
  static_assert(kWarpM % 16 == 0 && kWarpN % 8 == 0, "whole mma tiles per warp");
  static_assert(kAVectors % kThreads == 0, "whole A copy passes");
  static_assert(kBCopiesPerRow * kVector * kLanesPerBRow == BN && kBPasses * kBRowsPerPass == kBlockK);
  static_assert(kStrideA % 32 == 8 || kStrideA % 32 == 24, "conflict-free A fragments");
  static_assert(kStrideB % 32 == 8 || kStrideB % 32 == 24, "conflict-free B fragments");
  static_assert(kBCopiesPerRow <= 32, "one bit per column in the mask below");

  // [kStages][BK][BM + 8] of A, then [BK][BN + 8] of B, per stage.
  KILN_DYNAMIC_SHARED_MEMORY(shared_bytes);
  float* const shared = reinterpret_cast<float*>(shared_bytes);

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
  unsigned cols_inside = 0;  // bit u: column j0 + 4 (b_vec + 8 u) is < R*S*C
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
    float* const a_tile = shared + stage * kStageFloats;
    float* const b_tile = a_tile + kTileAFloats;
#pragma unroll
    for (int l = 0; l < kACopies; ++l) {
      const int e = tid + l * kThreads, row = e / kAVectorsPerRow, col = e % kAVectorsPerRow * kVector;
      const bool inside = row < tile_left && col < rows_left;
      // The address is formed only inside gy; a zero-fill names gy itself (valid, never read).
      const float* source = inside ? gy + ((tile_start + row) * g.out_channels + k0 + col) : gy;
      cp_async_16(a_tile + row * kStrideA + col, source, inside);
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
        const float* source =
            inside ? x + (((row_n[h] * g.height + ih) * g.width + iw) * g.channels + col_c[u]) : x;
        cp_async_16(b_tile + row * kStrideB + kVector * (b_vec + kLanesPerBRow * u), source, inside);
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
  float acc[kFragsM][kFragsN][4] = {};

  for (int t = 0; t < k_tiles; ++t) {
    cp_async_wait<kStages - 2>();  // this thread's copies of tile t have landed...
    __syncthreads();               // ...and everyone's; everyone is done with tile t - 1
    if (t + kStages - 1 < k_tiles) copy_tile((t + kStages - 1) % kStages);  // into tile t - 1's buffer
    cp_async_commit();

    const float* a_tile = shared + t % kStages * kStageFloats;
    const float* b_tile = a_tile + kTileAFloats;
#pragma unroll
    for (int i8 = 0; i8 < kBlockK; i8 += 8) {
      std::uint32_t a[kFragsM][4], b[kFragsN][2];
#pragma unroll
      for (int mt = 0; mt < kFragsM; ++mt) {
        // a[0] = (k group, i thread), a[1] = (k group + 8, i thread),
        // a[2] = (k group, i thread + 4), a[3] = (k group + 8, i thread + 4); A(k, i) is a_tile[i][k]
        const float* from = a_tile + (i8 + thread) * kStrideA + warp_row + mt * 16 + group;
        a[mt][0] = to_tf32(from[0]);
        a[mt][1] = to_tf32(from[8]);
        a[mt][2] = to_tf32(from[4 * kStrideA]);
        a[mt][3] = to_tf32(from[4 * kStrideA + 8]);
      }
#pragma unroll
      for (int nt = 0; nt < kFragsN; ++nt) {
        // b[0] = (i thread, j group), b[1] = (i thread + 4, j group); B(i, j) is b_tile[i][j]
        const float* from = b_tile + (i8 + thread) * kStrideB + warp_col + nt * 8 + group;
        b[nt][0] = to_tf32(from[0]);
        b[nt][1] = to_tf32(from[4 * kStrideB]);
      }
#pragma unroll
      for (int mt = 0; mt < kFragsM; ++mt) {
#pragma unroll
        for (int nt = 0; nt < kFragsN; ++nt) mma_m16n8k8_tf32(acc[mt][nt], a[mt], b[nt]);
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
        const int col = warp_col + nt * 8 + 2 * thread;  // even; cols_left is even (R*S*C % 4 == 0)
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
  s.positions = as_int(g.batch * g.out_height() * g.out_width());  // <= gy's size / 4
  s.step_q = as_int(kBlockK % g.out_width());
  s.step_p = as_int(kBlockK / g.out_width() % g.out_height());
  s.step_n = as_int(kBlockK / (g.out_width() * g.out_height()));
  return s;
}

template <int BM, int BN, int WARPS_M, int WARPS_N>
void launch_tiles(ConvShape s, const float* gy, const float* x, float* gw) {
  constexpr const char* kName = "conv2d ladder 04_backward_weight_implicit_gemm_tf32";
  auto* const kernel = backward_weight_tf32_kernel<BM, BN, WARPS_M, WARPS_N>;
  constexpr int kSharedBytes = kStages * kBlockK * (BM + BN + 2 * kPad) * static_cast<int>(sizeof(float));
  // Every tile holds at least one element of gw (< 2^31 of them): the count fits gridDim.x.
  const std::int64_t tiles = ((s.columns + BN - 1) / BN) * ((s.out_channels + BM - 1) / BM);
  run_split_k("conv2d ladder 04_backward_weight_implicit_gemm_tf32 (sum of splits)", tiles, s.positions,
              kBlockK, std::int64_t{s.out_channels} * s.columns, gw, [&](dim3 grid, int chunk, float* out) {
                s.chunk = chunk;
                ladder::launch(kName, kernel, grid, dim3(kThreads), kSharedBytes, s, gy, x, out);
              });
}

}  // namespace backward_weight_implicit_gemm_tf32
}  // namespace

void launch_04_backward_weight_implicit_gemm_tf32(const Conv2dGeometry& g, const float* gy, const float* x,
                                                  float* gw) {
  using namespace backward_weight_implicit_gemm_tf32;
  require_supported("04_backward_weight_implicit_gemm_tf32", g,
                    g.groups == 1 && g.in_channels % 4 == 0 && g.out_channels % 4 == 0,
                    "groups 1, C % 4 == 0, K % 4 == 0");
  require_16_byte_operands("04_backward_weight_implicit_gemm_tf32", gy, x, gw);
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
