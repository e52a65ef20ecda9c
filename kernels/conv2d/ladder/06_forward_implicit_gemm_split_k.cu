// Convolution ladder, step 06, forward, fp32: step 03's SIMT implicit GEMM with split-K, for the layers whose
// output is too small to fill the GPU with tiles. The same tiles, the same loop; what changes is how many
// blocks there are.
//
//   x [N, C, H, W]    w [K, C, R, S]    y [N, K, P, Q]      (NCHW, float, y overwritten; groups == 1)
//
// Why. Measured on an H200 (bench/results/h200-2026-12-04, batch 128), step 03 lost most where it made the
// fewest blocks: ResNet's last stage, 64 -> 64 channels at 8x8, cuts Y (64 x 8,192) into 128 tiles of
// 64 x 64, one 8-warp block per multiprocessor of 132, and ran at 0.55x of cuDNN's best; the two layers
// of 256 tiles, two blocks per multiprocessor, at 0.74x; the layers of 512 tiles at 1.06x and 1.10x. With
// one block on a multiprocessor, its 8 warps are all there is to hide the next tile's global loads behind:
// a tile of BK = 8 reduction indices is 128 multiply-adds per thread, about 256 issue cycles on each of the
// multiprocessor's four schedulers, barely the latency of a load from L2, less than one from memory, so the
// warps wait at the barrier. More threads per output tile is no cure (4 x 4 outputs per thread is what keeps
// the loop from being bound by shared-memory loads), and the output is what it is; the reduction, C*R*S =
// 576 long here, is the dimension left to spread.
//
// Split-K (split_k.cuh, shared with every backward-weight step). The reduction is cut into `splits` chunks
// of `chunk` indices, a whole number of BK-tiles: block (tile, z) runs step 03's loop over chunk z alone,
// into partials[z] (scratch, splits x N*K*P*Q floats, each laid out as y), and sum_splits_kernel adds the
// partials into y in a fixed order (the same bits on every run, no atomics). splits: about four blocks per
// multiprocessor in all (528 on an H100), and no chunk shorter than 64 indices (8 tiles), so that a block's
// fixed costs (its first tile's load, waited for in full; its partial written and read back once) stay small
// beside its loop. ResNet-20 at batch 128: the 128-tile layers get 4 splits (64 -> 64 at 8x8: chunks of 144
// of the 576 taps, 512 blocks; 32 -> 64 at stride 2: 72 of 288), the 256-tile layers 2, the 512-tile
// layers 1: there this step is step 03, the same kernel writing y directly, with no scratch and no sum.
//
// What it costs. The partials are written and read back once: 4 splits of the last stage are 8 MiB each
// way, beside the 2 MiB of x the step reads (several times, from L2) and the 2 MiB of y it writes, all of it
// within an H100's 50 MiB of L2; and a second, short kernel. Against that, four times the warps to hide the
// loads behind. Expected (not yet measured): the 128- and 256-tile layers up from step 03's 0.55x to 0.74x
// of cuDNN toward 0.8x to 1x; the others as step 03.
//
// The kernel is step 03's with three differences: its reduction runs over the chunk [begin, begin + length)
// (the odometer starts at the tap of index begin), it stores into partials[blockIdx.y], and the tile count
// comes from the chunk's length. Chunks are whole tiles, so only the last chunk can end inside a tile, and it
// ends where the reduction does: step 03's edge tests (c < C for B, kk < C*R*S for A) still hold. The rest,
// from the tiling (BM x BN = 4096 by K: 16 x 256, 32 x 128, 64 x 64; 256 threads, 4 x 4 outputs each; BK =
// 8) to the division-free gather and the shared layouts, is step 03's, explained there.
//
// Requirement: groups == 1 (a grouped convolution is a batch of smaller GEMMs, one per group). Indices are
// int (every tensor holds fewer than 2^31 elements); every sum is float.
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/conv2d/ladder/split_k.cuh"
#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace forward_implicit_gemm_split_k {  // this step's names (its ladder compiles as one unit)

constexpr int kThreads = 256;
constexpr int kBK = 8;                         // reduction indices per tile
constexpr int kThreadTile = 4;                 // a thread's outputs: 4 channels x 4 positions
constexpr std::int64_t kMinChunkIndices = 64;  // split-K's shortest chunk: 8 tiles

// The geometry in int, with the output size worked out once on the host (groups == 1), and the split.
struct Shape {
  int batch, channels, height, width;    // x [N, C, H, W]
  int out_channels, kernel_h, kernel_w;  // w [K, C, R, S]
  int out_height, out_width;             // y [N, K, P, Q]
  int stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int chunk;  // reduction indices per split, a multiple of kBK; the last split may have fewer
};

Shape int_shape(const Conv2dGeometry& g) {
  const auto i = [](std::int64_t v) { return static_cast<int>(v); };
  Shape s{};
  s.batch = i(g.batch), s.channels = i(g.in_channels), s.height = i(g.in_height), s.width = i(g.in_width);
  s.out_channels = i(g.out_channels), s.kernel_h = i(g.kernel_h), s.kernel_w = i(g.kernel_w);
  s.out_height = i(g.out_height()), s.out_width = i(g.out_width());
  s.stride_h = i(g.stride_h), s.stride_w = i(g.stride_w), s.pad_h = i(g.pad_h), s.pad_w = i(g.pad_w);
  s.dilation_h = i(g.dilation_h), s.dilation_w = i(g.dilation_w);
  return s;
}

// A reduction index kk as the tap (c, r, s): kk = (c * R + r) * S + s.
struct Tap {
  int c, r, s;
};
__device__ Tap tap_of(int kk, int kernel_h, int kernel_w) {
  const int taps = kernel_h * kernel_w;
  return {kk / taps, (kk % taps) / kernel_w, kk % kernel_w};
}

// BM output channels x BN output positions per block (BM * BN = 4096), over the chunk of reduction indices
// blockIdx.y. `out` is y itself with one split, else the partials [splits, N, K, P, Q].
template <int BM>
__global__ void __launch_bounds__(kThreads)
    forward_split_k_kernel(Shape g, const float* x, const float* w, float* out) {
  constexpr int BN = 4096 / BM;
  constexpr int kThreadCols = BN / kThreadTile;                  // tx < BN/4
  constexpr int kALoads = (kBK * BM + kThreads - 1) / kThreads;  // A elements per thread: 2, 1, 1 (half idle)
  constexpr int kBLoads = kBK * BN / kThreads;                   // B elements per thread: 2, 4, 8
  static_assert((BM / kThreadTile) * kThreadCols == kThreads && kBLoads * kThreads == kBK * BN);

  // Two buffers of each tile: one read by this step's multiply-adds, one filled for the next step.
  __shared__ __align__(16) float a_tile[2][kBK][BM + 4];  // A[k0 + k, kk0 + kk] at a_tile[.][kk][k]
  __shared__ __align__(16) float b_tile[2][kBK][BN];      // B[kk0 + kk, m0 + m] at b_tile[.][kk][m]

  const int plane_out = g.out_height * g.out_width;            // P * Q
  const int positions = g.batch * plane_out;                   // N_gemm = N * P * Q
  const int reduction = g.channels * g.kernel_h * g.kernel_w;  // K_gemm = C * R * S

  // The block's tile of Y (blockIdx.x, as in step 03) and its chunk of the reduction (blockIdx.y).
  const int k_tiles = (g.out_channels + BM - 1) / BM;
  const int k0 = (static_cast<int>(blockIdx.x) % k_tiles) * BM;
  const int m0 = (static_cast<int>(blockIdx.x) / k_tiles) * BN;
  const int begin = static_cast<int>(blockIdx.y) * g.chunk;  // < C*R*S: every split has an index
  const int length = min(g.chunk, reduction - begin);        // >= 1
  const int tid = static_cast<int>(threadIdx.x);

  // ---- per thread, once: the B column this thread gathers, and its first row's tap ----
  const int b_column = tid % BN, b_row0 = (tid / BN) * kBLoads;
  const bool column_valid = b_column < positions - m0;  // m0 + b_column < N*P*Q, without overflow
  const float* x_image = x;                             // x[n, :, :, :]
  int ih0 = 0, iw0 = 0;                                 // the input under tap (0, 0) of position m
  if (column_valid) {
    const int m = m0 + b_column, n = m / plane_out, pq = m % plane_out;
    x_image = x + n * g.channels * g.height * g.width;
    ih0 = (pq / g.out_width) * g.stride_h - g.pad_h;
    iw0 = (pq % g.out_width) * g.stride_w - g.pad_w;
  }
  Tap walk = tap_of(begin + b_row0, g.kernel_h, g.kernel_w);  // the tap of row b_row0 of the next tile
  const Tap step = tap_of(kBK, g.kernel_h, g.kernel_w);       // kk += 8 as (dc, dr, ds)

  // ---- the tile's trip from global memory, through registers, to shared memory ----
  float a_next[kALoads], b_next[kBLoads];
  // Global -> registers: the tile of A and B at reduction indices kk0 .. kk0 + 7.
  auto load_tile = [&](int kk0) {
    for (int l = 0; l < kALoads; ++l) {
      const int e = tid + l * kThreads, k = e / kBK, kk = e % kBK;
      const bool inside = e < kBK * BM && k < g.out_channels - k0 && kk < reduction - kk0;
      a_next[l] = inside ? w[(k0 + k) * reduction + kk0 + kk] : 0.0f;
    }
    Tap t = walk;  // row b_row0 + l has tap t; c == C means past the end of the reduction
    for (int l = 0; l < kBLoads; ++l) {
      const int ih = ih0 + t.r * g.dilation_h, iw = iw0 + t.s * g.dilation_w;
      const bool inside =
          column_valid && t.c < g.channels && ih >= 0 && ih < g.height && iw >= 0 && iw < g.width;
      b_next[l] = inside ? x_image[(t.c * g.height + ih) * g.width + iw] : 0.0f;
      if (++t.s == g.kernel_w) {  // the next row: s + 1, carrying into r, then c
        t.s = 0;
        if (++t.r == g.kernel_h) {
          t.r = 0;
          ++t.c;
        }
      }
    }
    // The next tile's first row is 8 further on: add (dc, dr, ds), each digit carrying at most once.
    walk.s += step.s;
    if (walk.s >= g.kernel_w) {
      walk.s -= g.kernel_w;
      ++walk.r;
    }
    walk.r += step.r;
    if (walk.r >= g.kernel_h) {
      walk.r -= g.kernel_h;
      ++walk.c;
    }
    walk.c += step.c;
  };
  // Registers -> shared memory buffer `buffer`.
  auto store_tile = [&](int buffer) {
    for (int l = 0; l < kALoads; ++l) {
      const int e = tid + l * kThreads;
      if (e < kBK * BM) a_tile[buffer][e % kBK][e / kBK] = a_next[l];
    }
    for (int l = 0; l < kBLoads; ++l) b_tile[buffer][b_row0 + l][b_column] = b_next[l];
  };

  // ---- the main loop over the chunk: Y tile += A tile * B tile, 8 reduction indices at a time ----
  const int ty = tid / kThreadCols, tx = tid % kThreadCols;
  float sum[kThreadTile][kThreadTile] = {};  // sum[i][j]: channel k0 + 4*ty + i, position m0 + 4*tx + j
  const int tiles = (length - 1) / kBK + 1;
  load_tile(begin);
  store_tile(0);
  __syncthreads();  // tile 0 has landed in buffer 0
  for (int tile = 0; tile < tiles; ++tile) {
    const int buffer = tile % 2;
    const bool has_next = tile + 1 < tiles;
    // Issue the next tile's global loads now; they land in registers while we compute.
    if (has_next) load_tile(begin + (tile + 1) * kBK);
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      const float4 a = *reinterpret_cast<const float4*>(&a_tile[buffer][kk][kThreadTile * ty]);
      const float4 b = *reinterpret_cast<const float4*>(&b_tile[buffer][kk][kThreadTile * tx]);
      const float a_k[kThreadTile] = {a.x, a.y, a.z, a.w}, b_m[kThreadTile] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int i = 0; i < kThreadTile; ++i) {
#pragma unroll
        for (int j = 0; j < kThreadTile; ++j) sum[i][j] += a_k[i] * b_m[j];
      }
    }
    // The other buffer was last read in the previous step, before the __syncthreads that ended it: free.
    if (has_next) store_tile(1 - buffer);
    // The next tile has landed, and nobody reads `buffer` again before the step after next overwrites it.
    __syncthreads();
  }

  // ---- store into this split's output, laid out as y; rows and columns past K and N*P*Q skipped ----
  float* const out_split = out + static_cast<std::int64_t>(blockIdx.y) * g.out_channels * positions;
  for (int j = 0; j < kThreadTile; ++j) {
    const int column = kThreadTile * tx + j;
    if (column >= positions - m0) break;  // the columns after it are past the end too
    const int m = m0 + column, n = m / plane_out, pq = m % plane_out;
    float* y_column = out_split + n * g.out_channels * plane_out + pq;  // [n, 0, p, q]; channel k at + k*P*Q
    for (int i = 0; i < kThreadTile; ++i) {
      const int row = kThreadTile * ty + i;
      if (row < g.out_channels - k0) y_column[(k0 + row) * plane_out] = sum[i][j];
    }
  }
}

template <int BM>
void launch_tiles(Shape shape, const float* x, const float* w, float* y) {
  constexpr int BN = 4096 / BM;
  constexpr const char* kName = "conv2d ladder 06_forward_implicit_gemm_split_k";
  const std::int64_t positions = std::int64_t{shape.batch} * shape.out_height * shape.out_width;
  const std::int64_t reduction = std::int64_t{shape.channels} * shape.kernel_h * shape.kernel_w;
  // Every tile holds at least one element of y, which holds fewer than 2^31: the count fits gridDim.x.
  const std::int64_t tiles = ((positions + BN - 1) / BN) * ((shape.out_channels + BM - 1) / BM);
  run_split_k(
      "conv2d ladder 06_forward_implicit_gemm_split_k (sum of splits)", tiles, reduction, kBK,
      positions * shape.out_channels, y,
      [&](dim3 grid, int chunk, float* out) {
        shape.chunk = chunk;
        ladder::launch(kName, forward_split_k_kernel<BM>, grid, dim3(kThreads), 0, shape, x, w, out);
      },
      kMinChunkIndices);
}

}  // namespace forward_implicit_gemm_split_k
}  // namespace

void launch_06_forward_implicit_gemm_split_k(const Conv2dGeometry& g, const float* x, const float* w,
                                             float* y) {
  using namespace forward_implicit_gemm_split_k;
  require_supported("06_forward_implicit_gemm_split_k", g, g.groups == 1, "groups 1");
  const Shape shape = int_shape(g);
  if (shape.out_channels <= 16) {
    launch_tiles<16>(shape, x, w, y);
  } else if (shape.out_channels <= 32) {
    launch_tiles<32>(shape, x, w, y);
  } else {
    launch_tiles<64>(shape, x, w, y);
  }
}

}  // namespace kiln::kernels::conv2d_ladder
