// Convolution ladder, step 03, backward-weight: implicit GEMM with split-K. The weight gradient is a matrix
// product whose right-hand matrix (im2col of x) is gathered tile by tile into shared memory, never written to
// memory; its long reduction (over the batch and every output position) is cut into chunks that separate
// blocks sum into float partials, which a second, small kernel adds up in a fixed order (no atomics).
//
//   gy [N, K, P, Q]    x [N, C, H, W]    gw [K, C, R, S]      (NCHW, float, gw overwritten; groups == 1)
//
// The GEMM view.  GW[k, j] = sum over i of A[k, i] * B[i, j], with
//   M_gemm = K          GEMM row k        = output channel k
//   N_gemm = C * R * S  GEMM column j     = filter tap (c, r, s):        j = (c * R + r) * S + s
//   K_gemm = N * P * Q  reduction index i = output position (n, p, q):  i = (n * P + p) * Q + q
//   A[k, i] = gy[n, k, p, q]   at (n * K + k) * P*Q + (p * Q + q): gy's plane for (n, k) is contiguous in i
//   B[i, j] = x[n, c, p*stride_h - pad_h + r*dil_h, q*stride_w - pad_w + s*dil_w]   (0 outside the image)
//   GW[k, j] = gw[k, c, r, s]: gw already is the row-major [K, C*R*S] result
// This is step 03 forward's GEMM with the roles turned: there the reduction ran over the taps (c, r, s) and
// the columns over the positions; here the positions are the reduction and the taps are the columns.
//
// Why split-K. The output is small and the reduction long: ResNet-20's first stage at batch 128 has
// gw = 16 x 144 and N*P*Q = 131,072. One block per output tile would be 1 block (16 x 256 tiles) on a GPU of
// 132 multiprocessors, each looping 8,192 times; step 01 (one thread per gw element) has the same problem. So
// the reduction is cut into `splits` chunks of `chunk` positions: block (tile, z) computes its tile of GW
// over chunk z alone, into partials[z] (scratch, splits x K x C*R*S floats), and sum_splits_kernel then adds
// the partials into gw in a fixed order: the same bits on every run. The choice of splits (split_reduction;
// it and the sum live in split_k.cuh, shared with the later backward-weight steps): enough blocks for about
// four per multiprocessor of an H100 (4 x 132 = 528), but never chunks shorter than 256 positions (16
// tiles), so that each block's fixed costs (its first tile, its BM x BN partial written and read back once)
// stay small beside the chunk's loads. (The tensor-core steps keep split_k.cuh's 512. Here 512 held four of
// ResNet-20's six layers at batch 128 to 80 to 192 blocks, 8 warps each, about one block per multiprocessor:
// the H200 measured this step at 0.54x to 0.80x of cuDNN there. 256 doubles those blocks; not yet measured.)
// With one split (large outputs) the kernel writes gw directly and no scratch is used. For the ResNet layer
// above: 1 tile, 512 splits of 256 positions, 512 blocks.
//
// What changes from step 01, and why it is faster. (1) The whole GPU works: the long sum is spread over
// blocks, not run serially by one thread per weight. (2) Reuse through shared memory and registers: a thread
// computes 4 x 4 gw values from one float4 of A and one float4 of B per position (step 01: two global loads
// per multiply-add). (3) The next tile's global loads are issued before the current tile's multiply-adds
// (software pipelining through registers, shared tiles double-buffered), with one __syncthreads per tile.
//
// The tiling. A block computes a BM x BN tile of GW (BM channels from k0, BN taps from j0) over one chunk,
// BK = 16 positions per tile, 256 threads: BM = 64, BN = 64 for K > 32; BM = 32, BN = 128 for 16 < K <= 32;
// BM = 16, BN = 256 for K <= 16. BM * BN = 4096 in each, 16 outputs per thread. For the multiply-adds threads
// form a (BM/4) x (BN/4) grid: thread (ty, tx), ty = tid / (BN/4), tx = tid % (BN/4), owns channels
// k0 + 4 ty .. +3 and taps j0 + 4 tx .. +3.
//   A tile  a_tile[i][k] (BK x BM, i-major so a thread's 4 channels are one float4; rows padded by 4 floats)
//   B tile  b_tile[i][j] (BK x BN, rows padded by 4 floats)
// For the loads each thread owns ONE position row of the tile, row = tid % 8 + 8 ((tid / 32) % 2), and the
// columns col + 16 l, col = (tid / 8) % 4 + 4 (tid / 64): BM/16 elements of A (1, 2, 4) and BN/16 of B
// (16, 8, 4) per tile. A warp loads 8 consecutive positions x 4 columns: runs of 8 consecutive q of one
// (n, p) for stride 1 (32 bytes of gy or x), and its shared stores land on 32 different banks (bank
// 4 row + col, the rows being 4 mod 32 floats apart; for BM = 16, 20 row + col).
// Shared memory: 2 * BK * ((BM + 4) + (BN + 4)) floats + BN taps of 16 bytes: 39,936 bytes (16 x 256),
// 23,552 (32 x 128), 18,432 (64 x 64).
//
// The gather, without divisions in the loop. Each tap column (c, r, s) is decoded once per block into the
// table `taps`: {c * H * W, r*dil_h - pad_h, s*dil_w - pad_w, inside}. Each thread decodes its row's first
// position (n, p, q) once and steps it like an odometer, +BK per tile (BK split once on the host into
// (dn, dp, dq) with dq < Q, dp < P, so each digit carries at most once). B(i, j) then reads
// x[(n * C * H * W + c * H * W) + ih * W + iw] with ih = p * stride_h + (r*dil_h - pad_h), likewise iw, when
// the tap is inside the image; A(k, i) reads gy[(n * K + k) * P*Q + p * Q + q]. The row's count of positions
// left in the chunk says when it has run past the chunk's end (then it loads 0). K need not be a multiple of
// BM, nor C*R*S of BN, nor the chunk of BK: loads past an edge read 0, stores past an edge are skipped.
//
// Requirement: groups == 1 (a grouped convolution is a batch of smaller GEMMs, one per group). Indices are
// int (every tensor holds fewer than 2^31 elements; offsets are formed only for elements inside them); every
// sum is float.
#include <algorithm>
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/conv2d/ladder/split_k.cuh"
#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace backward_weight_implicit_gemm {  // this step's names (its ladder compiles as one unit)

constexpr int kThreads = 256;
constexpr int kBK = 16;         // reduction positions (n, p, q) per tile
constexpr int kThreadTile = 4;  // a thread's outputs: 4 channels x 4 taps
constexpr std::int64_t kMinChunkPositions = 256;  // split-K's shortest chunk (the top of the file)

// The geometry in int, with the output size, the GEMM's sizes and the split worked out on the host.
struct Shape {
  int batch, channels, height, width;    // x [N, C, H, W]
  int out_channels, kernel_h, kernel_w;  // gw [K, C, R, S]
  int out_height, out_width;             // gy [N, K, P, Q]
  int stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int taps;                    // N_gemm = C * R * S
  int positions;               // K_gemm = N * P * Q
  int chunk;                   // positions per split; the last split may have fewer
  int step_n, step_p, step_q;  // BK as (n, p, q) digits: BK = (step_n * P + step_p) * Q + step_q
};

// One column of the block's tile as a tap: where its channel starts in an image of x, its offsets from the
// position's corner (p * stride_h, q * stride_w), and whether it lies inside C*R*S at all.
struct alignas(16) Tap {
  int channel_offset, row_offset, col_offset, inside;
};

// BM output channels x BN taps per block (BM * BN = 4096), over the chunk of positions blockIdx.y.
// `out` is gw itself with one split, else the partials [splits, K, C*R*S].
template <int BM>
__global__ void __launch_bounds__(kThreads)
    backward_weight_implicit_gemm_kernel(Shape g, const float* gy, const float* x, float* out) {
  constexpr int BN = 4096 / BM;
  constexpr int kThreadCols = BN / kThreadTile;  // tx < BN/4
  constexpr int kALoads = BM / 16;               // A elements per thread and tile: 1, 2, 4
  constexpr int kBLoads = BN / 16;               // B elements per thread and tile: 16, 8, 4
  static_assert((BM / kThreadTile) * kThreadCols == kThreads && BN <= kThreads);
  static_assert(kBK * 16 == kThreads, "16 threads per position row: 8 rows x 4 columns per warp");

  // Two buffers of each tile: one read by this step's multiply-adds, one filled for the next step.
  __shared__ __align__(16) float a_tile[2][kBK][BM + 4];  // A[k0 + k, i0 + i] at a_tile[.][i][k]
  __shared__ __align__(16) float b_tile[2][kBK][BN + 4];  // B[i0 + i, j0 + j] at b_tile[.][i][j]
  __shared__ Tap taps[BN];                                // column j0 + j, decoded

  const int plane_out = g.out_height * g.out_width;   // P * Q
  const int image = g.channels * g.height * g.width;  // C * H * W

  // The block's tile: blockIdx.x = tile_j * k_tiles + tile_k (the channel tiles of one tap tile side by side:
  // they gather the same x, which then comes from L2); blockIdx.y = the chunk.
  const int k_tiles = (g.out_channels + BM - 1) / BM;
  const int k0 = (static_cast<int>(blockIdx.x) % k_tiles) * BM;
  const int j0 = (static_cast<int>(blockIdx.x) / k_tiles) * BN;
  const int begin = static_cast<int>(blockIdx.y) * g.chunk;  // < N*P*Q: every split has a position
  const int length = min(g.chunk, g.positions - begin);      // >= 1
  const int tid = static_cast<int>(threadIdx.x);

  // ---- once per block: decode the tile's taps ----
  if (tid < BN) {
    Tap tap{0, 0, 0, 0};
    if (tid < g.taps - j0) {  // j0 + tid < C*R*S, without overflow
      const int j = j0 + tid, plane = g.kernel_h * g.kernel_w;
      const int c = j / plane, r = (j % plane) / g.kernel_w, s = j % g.kernel_w;
      tap = {c * g.height * g.width, r * g.dilation_h - g.pad_h, s * g.dilation_w - g.pad_w, 1};
    }
    taps[tid] = tap;
  }

  // ---- per thread, once: its position row and its load columns ----
  const int row = tid % 8 + 8 * (tid / 32 % 2);  // 0..15
  const int col = tid / 8 % 4 + 4 * (tid / 64);  // 0..15: columns col + 16 l
  int left = length - row;                       // positions of the chunk from this row on; > 0: inside
  int n = 0, p = 0, q = 0;                       // the row's position in the next tile
  if (left > 0) {
    const int i = begin + row;
    q = i % g.out_width;
    p = i / g.out_width % g.out_height;
    n = i / plane_out;
  }

  // ---- the tile's trip from global memory, through registers, to shared memory ----
  float a_next[kALoads], b_next[kBLoads];
  // Global -> registers: the row's A and B elements of the next tile, then the row moves on BK positions.
  auto load_tile = [&] {
    const bool row_inside = left > 0;
    // Offsets formed only for a row inside the chunk (then n < N and they stay inside gy and x).
    const int gy_position = row_inside ? n * g.out_channels * plane_out + p * g.out_width + q : 0;
    const int x_image = row_inside ? n * image : 0;
    const int ih0 = p * g.stride_h, iw0 = q * g.stride_w;
#pragma unroll
    for (int l = 0; l < kALoads; ++l) {
      const int k = col + 16 * l;
      const bool inside = row_inside && k < g.out_channels - k0;
      a_next[l] = inside ? gy[gy_position + (k0 + k) * plane_out] : 0.0f;
    }
#pragma unroll
    for (int l = 0; l < kBLoads; ++l) {
      const Tap tap = taps[col + 16 * l];
      const int ih = ih0 + tap.row_offset, iw = iw0 + tap.col_offset;
      const bool inside = row_inside && tap.inside && ih >= 0 && ih < g.height && iw >= 0 && iw < g.width;
      b_next[l] = inside ? x[x_image + tap.channel_offset + ih * g.width + iw] : 0.0f;
    }
    // The next tile's row is BK positions on: add (dn, dp, dq), each digit carrying at most once.
    left -= kBK;
    q += g.step_q;
    if (q >= g.out_width) {
      q -= g.out_width;
      ++p;
    }
    p += g.step_p;
    if (p >= g.out_height) {
      p -= g.out_height;
      ++n;
    }
    n += g.step_n;
  };
  // Registers -> shared memory buffer `buffer`.
  auto store_tile = [&](int buffer) {
#pragma unroll
    for (int l = 0; l < kALoads; ++l) a_tile[buffer][row][col + 16 * l] = a_next[l];
#pragma unroll
    for (int l = 0; l < kBLoads; ++l) b_tile[buffer][row][col + 16 * l] = b_next[l];
  };

  // ---- the main loop: GW tile += A tile * B tile, BK positions at a time ----
  const int ty = tid / kThreadCols, tx = tid % kThreadCols;
  float sum[kThreadTile][kThreadTile] = {};  // sum[a][b]: channel k0 + 4 ty + a, tap j0 + 4 tx + b
  const int tiles = (length - 1) / kBK + 1;
  __syncthreads();  // the tap table is written
  load_tile();
  store_tile(0);
  __syncthreads();  // tile 0 has landed in buffer 0
  for (int tile = 0; tile < tiles; ++tile) {
    const int buffer = tile % 2;
    const bool has_next = tile + 1 < tiles;
    // Issue the next tile's global loads now; they land in registers while we compute.
    if (has_next) load_tile();
#pragma unroll
    for (int i = 0; i < kBK; ++i) {
      const float4 a = *reinterpret_cast<const float4*>(&a_tile[buffer][i][kThreadTile * ty]);
      const float4 b = *reinterpret_cast<const float4*>(&b_tile[buffer][i][kThreadTile * tx]);
      const float a_k[kThreadTile] = {a.x, a.y, a.z, a.w}, b_j[kThreadTile] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int u = 0; u < kThreadTile; ++u) {
#pragma unroll
        for (int v = 0; v < kThreadTile; ++v) sum[u][v] += a_k[u] * b_j[v];
      }
    }
    // The other buffer was last read in the previous step, before the __syncthreads that ended it: free.
    if (has_next) store_tile(1 - buffer);
    // The next tile has landed, and nobody reads `buffer` again before the step after next overwrites it.
    __syncthreads();
  }

  // ---- store: GW[k, j] = out[z][k][j], skipping rows past K and columns past C*R*S ----
  float* const out_split = out + static_cast<std::int64_t>(blockIdx.y) * g.out_channels * g.taps;
  for (int u = 0; u < kThreadTile; ++u) {
    const int k = kThreadTile * ty + u;
    if (k >= g.out_channels - k0) break;                        // the rows after it are past the end too
    float* const out_row = out_split + (k0 + k) * g.taps + j0;  // < K * C*R*S < 2^31
    for (int v = 0; v < kThreadTile; ++v) {
      const int j = kThreadTile * tx + v;
      if (j < g.taps - j0) out_row[j] = sum[u][v];
    }
  }
}

Shape int_shape(const Conv2dGeometry& g) {
  const auto i = [](std::int64_t v) { return static_cast<int>(v); };
  Shape s{};
  s.batch = i(g.batch), s.channels = i(g.in_channels), s.height = i(g.in_height), s.width = i(g.in_width);
  s.out_channels = i(g.out_channels), s.kernel_h = i(g.kernel_h), s.kernel_w = i(g.kernel_w);
  s.out_height = i(g.out_height()), s.out_width = i(g.out_width());
  s.stride_h = i(g.stride_h), s.stride_w = i(g.stride_w), s.pad_h = i(g.pad_h), s.pad_w = i(g.pad_w);
  s.dilation_h = i(g.dilation_h), s.dilation_w = i(g.dilation_w);
  s.taps = i(g.in_channels * g.kernel_h * g.kernel_w);        // <= gw's size < 2^31
  s.positions = i(g.batch * g.out_height() * g.out_width());  // <= gy's size < 2^31
  const std::int64_t plane_out = g.out_height() * g.out_width();
  s.step_q = i(kBK % g.out_width());
  s.step_p = i(kBK / g.out_width() % g.out_height());
  s.step_n = i(kBK / plane_out);
  return s;
}

template <int BM>
void launch_tiles(Shape shape, const float* gy, const float* x, float* gw) {
  constexpr int BN = 4096 / BM;
  constexpr const char* kName = "conv2d ladder 03_backward_weight_implicit_gemm";
  // Every tile holds at least one element of gw, which holds fewer than 2^31: the count fits gridDim.x.
  const std::int64_t tiles = ((shape.taps + BN - 1) / BN) * ((shape.out_channels + BM - 1) / BM);
  run_split_k(
      "conv2d ladder 03_backward_weight_implicit_gemm (sum of splits)", tiles, shape.positions, kBK,
      std::int64_t{shape.out_channels} * shape.taps, gw,
      [&](dim3 grid, int chunk, float* out) {
        shape.chunk = chunk;
        ladder::launch(kName, backward_weight_implicit_gemm_kernel<BM>, grid, dim3(kThreads), 0, shape, gy, x,
                       out);
      },
      kMinChunkPositions);
}

}  // namespace backward_weight_implicit_gemm
}  // namespace

void launch_03_backward_weight_implicit_gemm(const Conv2dGeometry& g, const float* gy, const float* x,
                                             float* gw) {
  using namespace backward_weight_implicit_gemm;
  require_supported("03_backward_weight_implicit_gemm", g, g.groups == 1, "groups 1");
  const Shape shape = int_shape(g);
  if (shape.out_channels <= 16) {
    launch_tiles<16>(shape, gy, x, gw);
  } else if (shape.out_channels <= 32) {
    launch_tiles<32>(shape, gy, x, gw);
  } else {
    launch_tiles<64>(shape, gy, x, gw);
  }
}

}  // namespace kiln::kernels::conv2d_ladder
