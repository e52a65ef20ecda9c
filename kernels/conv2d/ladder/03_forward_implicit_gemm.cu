// Convolution ladder, step 03, forward: implicit GEMM. The convolution is run as a matrix product whose
// right-hand matrix (im2col of x) is never written to memory: each tile of it is gathered from x straight
// into shared memory, and the product is register-blocked like a SIMT GEMM (4 x 4 outputs per thread).
//
//   x [N, C, H, W]    w [K, C, R, S]    y [N, K, P, Q]      (NCHW, float, y overwritten; groups == 1)
//
// The GEMM view.  Y[k, m] = sum over kk of A[k, kk] * B[kk, m], with
//   M_gemm = K          GEMM row k        = output channel k
//   N_gemm = N * P * Q  GEMM column m     = output position (n, p, q):  m = (n * P + p) * Q + q
//   K_gemm = C * R * S  reduction index kk = tap (c, r, s):            kk = (c * R + r) * S + s
//   A[k, kk] = w[k, c, r, s]    w already is A, row-major [K, C*R*S]: w + k * C*R*S + kk
//   B[kk, m] = x[n, c, p*stride_h - pad_h + r*dil_h, q*stride_w - pad_w + s*dil_w]   (0 outside the image)
//   Y[k, m]  = y[n, k, p, q]    at (n * K + k) * P*Q + (p * Q + q): row k of one image's block is contiguous
// B is the im2col matrix (R*S times the size of x for stride 1: 9x for 3x3). Step 02 read x through a halo
// tile whose shape depends on the geometry; here every geometry is the same GEMM, the loop is the same tight
// multiply-add loop as a GEMM's, and the only convolution left is the index arithmetic of B's gather.
//
// What changes from step 02, and why it is faster. (1) Register blocking: a thread computes a 4 x 4 block of
// Y (4 channels x 4 positions) from one float4 of A and one float4 of B per kk: 2 shared loads per 16 FMAs
// (step 02: 2 per 4). (2) Every geometry becomes a large, regular GEMM: no halo wasted for strides, no idle
// threads for odd tile shapes, the reduction runs over all C*R*S at once. (3) The next tile's global loads
// are issued before the current tile's multiply-adds (software pipelining through registers, shared tiles
// double-buffered), so their latency hides behind the arithmetic, with one __syncthreads per tile.
//
// The tiling. A block computes a BM x BN tile of Y (BM channels k0.., BN positions m0..), BK = 8 reduction
// indices per step, 256 threads: BM = 64, BN = 64 for K > 32; BM = 32, BN = 128 for 16 < K <= 32; BM = 16,
// BN = 256 for K <= 16 (ResNet-20's first stage has K = 16: a 64-row tile would leave 3/4 of it idle). BM *
// BN = 4096 in each, 16 outputs per thread. Threads form a (BM/4) x (BN/4) grid: thread (ty, tx), ty = tid /
// (BN/4), tx = tid % (BN/4), owns channels k0 + 4*ty .. +3 and positions m0 + 4*tx .. +3.
//   A tile  a_tile[kk][k] (BK x BM, stored transposed so a thread's 4 channels are one float4; rows padded by
//           4 floats so the transposing stores do not conflict): element e = (k = e / 8, kk = e % 8), global
//           reads in runs of 8 consecutive kk of one filter.
//   B tile  b_tile[kk][m] (BK x BN): thread t gathers column m0 + t % BN, the BN/32 consecutive rows from
//           (t / BN) * BN/32. A warp reads 32 consecutive positions of one tap: coalesced for stride 1.
// Shared memory, 2 * BK * (BM + 4 + BN) floats: 8448 B for 64 x 64, 10496 for 32 x 128, 17664 for 16 x 256.
//
// The gather, without divisions in the loop. Once per thread: the thread's column m -> (n, p, q), the image
// x + n*C*H*W and the input corner ih0 = p*stride_h - pad_h, iw0 = q*stride_w - pad_w. Then each B element
// (c, r, s) reads x_image[(c * H + ih0 + r*dil_h) * W + iw0 + s*dil_w] when the tap is inside the image (and
// c < C: past the end of the reduction, 0). The thread keeps (c, r, s) of its first row and steps it like an
// odometer: +1 along its rows (s, carrying into r, then c), +BK from one tile to the next (BK = 8 split once
// into (dc, dr, ds) with ds < S, dr < R, so each digit carries at most once). K_gemm = C*R*S need not be a
// multiple of 8, nor K of BM, nor N*P*Q of BN: loads past an edge read 0, stores past an edge are skipped.
//
// Requirement: groups == 1 (a grouped convolution is a batch of smaller GEMMs, one per group). Indices are
// int (every tensor holds fewer than 2^31 elements); every sum is float.
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace forward_implicit_gemm {  // this step's names (its ladder compiles as one unit)

constexpr int kThreads = 256;
constexpr int kBK = 8;          // reduction indices per tile
constexpr int kThreadTile = 4;  // a thread's outputs: 4 channels x 4 positions

// The geometry in int, with the output size worked out once on the host (groups == 1).
struct Shape {
  int batch, channels, height, width;    // x [N, C, H, W]
  int out_channels, kernel_h, kernel_w;  // w [K, C, R, S]
  int out_height, out_width;             // y [N, K, P, Q]
  int stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
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

// BM output channels x BN output positions per block (BM * BN = 4096, see the top of the file).
template <int BM>
__global__ void __launch_bounds__(kThreads)
    forward_implicit_gemm_kernel(Shape g, const float* x, const float* w, float* y) {
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

  // The block's tile of Y: blockIdx.x = tile_m * k_tiles + tile_k, the channel tiles of one position tile
  // side by side (they gather the same x, which then comes from L2).
  const int k_tiles = (g.out_channels + BM - 1) / BM;
  const int k0 = (static_cast<int>(blockIdx.x) % k_tiles) * BM;
  const int m0 = (static_cast<int>(blockIdx.x) / k_tiles) * BN;
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
  Tap walk = tap_of(b_row0, g.kernel_h, g.kernel_w);     // the tap of row b_row0 of the next tile
  const Tap step = tap_of(kBK, g.kernel_h, g.kernel_w);  // kk += 8 as (dc, dr, ds)

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

  // ---- the main loop: Y tile += A tile * B tile, 8 reduction indices at a time ----
  const int ty = tid / kThreadCols, tx = tid % kThreadCols;
  float sum[kThreadTile][kThreadTile] = {};  // sum[i][j]: channel k0 + 4*ty + i, position m0 + 4*tx + j
  const int tiles = reduction / kBK + (reduction % kBK != 0);
  load_tile(0);
  store_tile(0);
  __syncthreads();  // tile 0 has landed in buffer 0
  for (int tile = 0; tile < tiles; ++tile) {
    const int buffer = tile % 2;
    const bool has_next = tile + 1 < tiles;
    // Issue the next tile's global loads now; they land in registers while we compute.
    if (has_next) load_tile((tile + 1) * kBK);
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

  // ---- store: Y[k, m] = y[n, k, p, q], skipping rows and columns past K and N*P*Q ----
  for (int j = 0; j < kThreadTile; ++j) {
    const int column = kThreadTile * tx + j;
    if (column >= positions - m0) break;  // the columns after it are past the end too
    const int m = m0 + column, n = m / plane_out, pq = m % plane_out;
    float* y_column = y + n * g.out_channels * plane_out + pq;  // y[n, 0, p, q]; channel k at + k * P*Q
    for (int i = 0; i < kThreadTile; ++i) {
      const int row = kThreadTile * ty + i;
      if (row < g.out_channels - k0) y_column[(k0 + row) * plane_out] = sum[i][j];
    }
  }
}

template <int BM>
void launch_tiles(const Shape& shape, const float* x, const float* w, float* y) {
  constexpr int BN = 4096 / BM;
  const std::int64_t positions = std::int64_t{shape.batch} * shape.out_height * shape.out_width;
  // Every block holds at least one element of y, which holds fewer than 2^31: the count fits gridDim.x.
  const std::int64_t blocks = ((positions + BN - 1) / BN) * ((shape.out_channels + BM - 1) / BM);
  ladder::launch("conv2d ladder 03_forward_implicit_gemm", forward_implicit_gemm_kernel<BM>,
                 dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, shape, x, w, y);
}

}  // namespace forward_implicit_gemm
}  // namespace

void launch_03_forward_implicit_gemm(const Conv2dGeometry& g, const float* x, const float* w, float* y) {
  using namespace forward_implicit_gemm;
  require_supported("03_forward_implicit_gemm", g, g.groups == 1, "groups 1");
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
