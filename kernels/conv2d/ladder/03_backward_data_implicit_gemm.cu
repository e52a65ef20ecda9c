// Convolution ladder, step 03, backward data: implicit GEMM. gx = d loss / d x is run as a matrix product
// whose right-hand matrix (gy, gathered through the taps that read each input position) is never written to
// memory: each tile of it is gathered from gy straight into shared memory, and the product is
// register-blocked like a SIMT GEMM (4 x 4 outputs per thread).
//
//   gy [N, K, P, Q]    w [K, C, R, S]    gx [N, C, H, W]      (NCHW, float, gx overwritten; groups == 1)
//
// The GEMM view.  GX[c, m] = sum over j of A[c, j] * B[j, m], with
//   M_gemm = C          GEMM row c        = input channel c
//   N_gemm = N * H * W  GEMM column m     = input position (n, h, w):  m = (n * H + h) * W + w
//   K_gemm = K * R * S  reduction index j = (k, r, s):                 j = (k * R + r) * S + s
//   A[c, j] = w[k, c, r, s]   at (k * C + c) * R*S + (r * S + s): for one k, a run of R*S floats per channel
//   B[j, m] = gy[n, k, p, q]  where h + pad_h - r*dil_h = p * stride_h and w + pad_w - s*dil_w = q * stride_w
//                             exactly, with 0 <= p < P and 0 <= q < Q; 0 when tap (r, s) of no output reads
//                             (h, w) (it falls off gy's edge, or, with stride > 1, between two outputs)
//   GX[c, m] = gx[n, c, h, w] at (n * C + c) * H*W + (h * W + w): row c of one image's block is contiguous
// This is the forward's GEMM (step 03, forward) transposed and re-indexed: the forward sums over (c, r, s)
// for each output; here every input position sums over the (k, r, s) whose taps read it. It is the gather
// form of the adjoint, like step 01: each gx element is written once, by one thread, in a fixed order; no
// atomics.
//
// What changes from step 01 (one thread per gx element, every operand from global memory), and why it is
// faster: (1) reuse through shared memory: a tile of w (BM channels x 8 reduction indices) serves BN
// positions and a tile of gy's gather serves BM channels, where step 01 read both from global memory once per
// product; (2) register blocking: a thread computes a 4 x 4 block of GX from one float4 of A and one float4
// of B per reduction index: 2 shared loads per 16 FMAs; (3) the next tile's global loads are issued before
// the current tile's multiply-adds (software pipelining through registers, shared tiles double-buffered), one
// __syncthreads per tile; (4) the warps of a block do not diverge on the tap tests as step 01's threads do:
// a thread's loads take different branches, but its multiply-adds are the same for every thread.
//
// The tiling. A block computes a BM x BN tile of GX (BM channels c0.., BN positions m0..), BK = 8 reduction
// indices per step, 256 threads: BM = 64, BN = 64 for C > 32; BM = 32, BN = 128 for 16 < C <= 32; BM = 16,
// BN = 256 for C <= 16 (the GEMM's rows are the input channels: a 64-row tile would leave 3/4 of it idle for
// C = 16, and 61/64 for a network's first layer, C = 3). BM * BN = 4096 in each, 16 outputs per thread.
// Threads form a (BM/4) x (BN/4) grid: thread (ty, tx), ty = tid / (BN/4), tx = tid % (BN/4), owns channels
// c0 + 4*ty .. +3 and positions m0 + 4*tx .. +3.
//   A tile  a_tile[j][c] (BK x BM, stored transposed so a thread's 4 channels are one float4; rows padded by
//           4 floats so the transposing stores do not conflict): element e = (c = e / 8, j = e % 8).
//   B tile  b_tile[j][m] (BK x BN): thread t gathers column m0 + t % BN, rows (t / BN) * BN/32 and the BN/32
//           - 1 rows after it. A warp reads 32 consecutive positions of one tap: for stride 1, 32 consecutive
//           floats of gy (less the taps that fall off its edge).
// Shared memory: 2 * (BK * (BM + 4) + BK * BN) floats: 8448 bytes (64 x 64), 10496 (32 x 128), 17664 (16 x
// 256).
//
// The gather. Once per thread: its column m -> (n, h, w), the image gy + n*K*P*Q and the padded position
// (h + pad_h, w + pad_w). The reduction index j = (k, r, s) of its first row is kept and stepped like an
// odometer: +1 along its rows (s, carrying into r, then k), +BK from one tile to the next (BK = 8 split once
// into (dk, dr, ds) with ds < S, dr < R, so each digit carries at most once). Each B element then asks which
// output row reads input row h through tap r: p * stride_h = h + pad_h - r*dil_h, a tap only when that is >=
// 0 and a multiple of the stride, and p < P (likewise q). With stride 1 that is a subtraction and two
// comparisons; with stride > 1 it costs a division, and most taps fail it: 3 of every 4 for a 3x3 filter at
// stride 2, multiplied as zeros. (Steps 04 and 05 replace the division by a phase comparison; a stride-phase
// decomposition would skip the failing taps altogether, see the write-up.) A's element (c, j) is w at
// (k * C + c) * R*S + (r * S + s), with the thread's (k, r*S + s) stepped the same way. K_gemm = K*R*S need
// not be a multiple of 8, nor C of BM, nor N*H*W of BN: loads past an edge read 0, stores past an edge are
// skipped.
//
// Requirement: groups == 1 (a grouped convolution is a batch of smaller GEMMs, one per group). Indices are
// int (every tensor holds fewer than 2^31 elements); every sum is float.
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace backward_data_implicit_gemm {  // this step's names (its ladder compiles as one unit)

constexpr int kThreads = 256;
constexpr int kBK = 8;          // reduction indices per tile
constexpr int kThreadTile = 4;  // a thread's outputs: 4 channels x 4 positions

// The geometry in int, with the output size worked out once on the host (groups == 1).
struct Shape {
  int batch, channels, height, width;    // gx [N, C, H, W]
  int out_channels, kernel_h, kernel_w;  // w [K, C, R, S]
  int out_height, out_width;             // gy [N, K, P, Q]
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

// A reduction index j as (k, r, s): j = (k * R + r) * S + s.
struct Tap {
  int k, r, s;
};
__device__ Tap tap_of(int j, int kernel_h, int kernel_w) {
  const int taps = kernel_h * kernel_w;
  return {j / taps, (j % taps) / kernel_w, j % kernel_w};
}

// The output coordinate (p, or q) whose tap at offset `tap_offset` (r * dil_h, or s * dil_w) reads padded
// input coordinate `padded` (h + pad_h, or w + pad_w); -1 when none does. One dimension of B's gather.
__device__ int output_coordinate(int padded, int tap_offset, int stride, int out_size) {
  const int times_stride = padded - tap_offset;  // p * stride, if this tap reads the input
  if (times_stride < 0) return -1;
  if (stride == 1) return times_stride < out_size ? times_stride : -1;  // no division for stride 1
  const int p = times_stride / stride;
  return p * stride == times_stride && p < out_size ? p : -1;
}

// BM input channels x BN input positions per block (BM * BN = 4096, see the top of the file).
template <int BM>
__global__ void __launch_bounds__(kThreads)
    backward_data_implicit_gemm_kernel(Shape g, const float* gy, const float* w, float* gx) {
  constexpr int BN = 4096 / BM;
  constexpr int kThreadCols = BN / kThreadTile;                  // tx < BN/4
  constexpr int kALoads = (kBK * BM + kThreads - 1) / kThreads;  // A elements per thread: 2, 1, 1 (half idle)
  constexpr int kBLoads = kBK * BN / kThreads;                   // B elements per thread: 2, 4, 8
  static_assert((BM / kThreadTile) * kThreadCols == kThreads && kBLoads * kThreads == kBK * BN);
  static_assert(kThreads % kBK == 0, "a thread's A elements share one reduction index");

  // Two buffers of each tile: one read by this step's multiply-adds, one filled for the next step.
  __shared__ __align__(16) float a_tile[2][kBK][BM + 4];  // A[c0 + c, j0 + j] at a_tile[.][j][c]
  __shared__ __align__(16) float b_tile[2][kBK][BN];      // B[j0 + j, m0 + m] at b_tile[.][j][m]

  const int plane_in = g.height * g.width;           // H * W
  const int plane_out = g.out_height * g.out_width;  // P * Q
  const int positions = g.batch * plane_in;          // N_gemm = N * H * W
  const int taps = g.kernel_h * g.kernel_w;          // R * S
  const int reduction = g.out_channels * taps;       // K_gemm = K * R * S

  // The block's tile of GX: blockIdx.x = tile_m * c_tiles + tile_c, the channel tiles of one position tile
  // side by side (they gather the same gy, which then comes from L2).
  const int c_tiles = (g.channels + BM - 1) / BM;
  const int c0 = (static_cast<int>(blockIdx.x) % c_tiles) * BM;
  const int m0 = (static_cast<int>(blockIdx.x) / c_tiles) * BN;
  const int tid = static_cast<int>(threadIdx.x);

  // ---- per thread, once: A's reduction index (every A element of this thread has j % 8 = tid % 8) ----
  int a_k = (tid % kBK) / taps, a_tap = (tid % kBK) % taps;  // j = a_k * R*S + a_tap, for the next tile
  const int step_k = kBK / taps, step_tap = kBK % taps;      // j += 8 as (dk, d tap)

  // ---- per thread, once: the B column this thread gathers, and its first row's (k, r, s) ----
  const int b_column = tid % BN, b_row0 = (tid / BN) * kBLoads;
  const bool column_valid = b_column < positions - m0;  // m0 + b_column < N*H*W, without overflow
  const float* gy_image = gy;                           // gy[n, :, :, :]
  int h_padded = 0, w_padded = 0;                       // (h + pad_h, w + pad_w) of position m
  if (column_valid) {
    const int m = m0 + b_column, n = m / plane_in, hw = m % plane_in;
    gy_image = gy + n * g.out_channels * plane_out;
    h_padded = hw / g.width + g.pad_h;
    w_padded = hw % g.width + g.pad_w;
  }
  Tap walk = tap_of(b_row0, g.kernel_h, g.kernel_w);     // (k, r, s) of row b_row0 of the next tile
  const Tap step = tap_of(kBK, g.kernel_h, g.kernel_w);  // j += 8 as (dk, dr, ds)

  // ---- the tile's trip from global memory, through registers, to shared memory ----
  float a_next[kALoads], b_next[kBLoads];
  // Global -> registers: the tile of A and B at reduction indices j0 .. j0 + 7.
  auto load_tile = [&]() {
    for (int l = 0; l < kALoads; ++l) {
      const int c = (tid + l * kThreads) / kBK;  // row of A; this thread's j is j0 + tid % 8
      const bool inside = c < BM && c < g.channels - c0 && a_k < g.out_channels;
      a_next[l] = inside ? w[(a_k * g.channels + c0 + c) * taps + a_tap] : 0.0f;
    }
    a_tap += step_tap;  // the next tile's j, 8 further on: one carry at most
    a_k += step_k;
    if (a_tap >= taps) {
      a_tap -= taps;
      ++a_k;
    }

    Tap t = walk;  // row b_row0 + l has (k, r, s) t; k == K means past the end of the reduction
    for (int l = 0; l < kBLoads; ++l) {
      const int p = output_coordinate(h_padded, t.r * g.dilation_h, g.stride_h, g.out_height);
      const int q = output_coordinate(w_padded, t.s * g.dilation_w, g.stride_w, g.out_width);
      const bool inside = column_valid && t.k < g.out_channels && p >= 0 && q >= 0;
      b_next[l] = inside ? gy_image[(t.k * g.out_height + p) * g.out_width + q] : 0.0f;
      if (++t.s == g.kernel_w) {  // the next row: s + 1, carrying into r, then k
        t.s = 0;
        if (++t.r == g.kernel_h) {
          t.r = 0;
          ++t.k;
        }
      }
    }
    // The next tile's first row is 8 further on: add (dk, dr, ds), each digit carrying at most once.
    walk.s += step.s;
    if (walk.s >= g.kernel_w) {
      walk.s -= g.kernel_w;
      ++walk.r;
    }
    walk.r += step.r;
    if (walk.r >= g.kernel_h) {
      walk.r -= g.kernel_h;
      ++walk.k;
    }
    walk.k += step.k;
  };
  // Registers -> shared memory buffer `buffer`.
  auto store_tile = [&](int buffer) {
    for (int l = 0; l < kALoads; ++l) {
      const int e = tid + l * kThreads;
      if (e < kBK * BM) a_tile[buffer][e % kBK][e / kBK] = a_next[l];
    }
    for (int l = 0; l < kBLoads; ++l) b_tile[buffer][b_row0 + l][b_column] = b_next[l];
  };

  // ---- the main loop: GX tile += A tile * B tile, 8 reduction indices at a time ----
  const int ty = tid / kThreadCols, tx = tid % kThreadCols;
  float sum[kThreadTile][kThreadTile] = {};  // sum[i][j]: channel c0 + 4*ty + i, position m0 + 4*tx + j
  const int tiles = reduction / kBK + (reduction % kBK != 0);
  load_tile();
  store_tile(0);
  __syncthreads();  // tile 0 has landed in buffer 0
  for (int tile = 0; tile < tiles; ++tile) {
    const int buffer = tile % 2;
    const bool has_next = tile + 1 < tiles;
    // Issue the next tile's global loads now; they land in registers while we compute.
    if (has_next) load_tile();
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
    // The next tile has landed, and nobody reads `buffer` again before the step after next overwrites it.
    __syncthreads();
  }

  // ---- store: GX[c, m] = gx[n, c, h, w], skipping rows and columns past C and N*H*W ----
  for (int jj = 0; jj < kThreadTile; ++jj) {
    const int column = kThreadTile * tx + jj;
    if (column >= positions - m0) break;  // the columns after it are past the end too
    const int m = m0 + column, n = m / plane_in, hw = m % plane_in;
    float* gx_column = gx + n * g.channels * plane_in + hw;  // gx[n, 0, h, w]; channel c at + c * H*W
    for (int i = 0; i < kThreadTile; ++i) {
      const int row = kThreadTile * ty + i;
      if (row < g.channels - c0) gx_column[(c0 + row) * plane_in] = sum[i][jj];
    }
  }
}

template <int BM>
void launch_tiles(const Shape& shape, const float* gy, const float* w, float* gx) {
  constexpr int BN = 4096 / BM;
  const std::int64_t positions = std::int64_t{shape.batch} * shape.height * shape.width;
  // Every block holds at least one element of gx, which holds fewer than 2^31: the count fits gridDim.x.
  const std::int64_t blocks = ((positions + BN - 1) / BN) * ((shape.channels + BM - 1) / BM);
  ladder::launch("conv2d ladder 03_backward_data_implicit_gemm", backward_data_implicit_gemm_kernel<BM>,
                 dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, shape, gy, w, gx);
}

}  // namespace backward_data_implicit_gemm
}  // namespace

void launch_03_backward_data_implicit_gemm(const Conv2dGeometry& g, const float* gy, const float* w,
                                           float* gx) {
  using namespace backward_data_implicit_gemm;
  require_supported("03_backward_data_implicit_gemm", g, g.groups == 1, "groups 1");
  const Shape shape = int_shape(g);
  if (shape.channels <= 16) {
    launch_tiles<16>(shape, gy, w, gx);
  } else if (shape.channels <= 32) {
    launch_tiles<32>(shape, gy, w, gx);
  } else {
    launch_tiles<64>(shape, gy, w, gx);
  }
}

}  // namespace kiln::kernels::conv2d_ladder
