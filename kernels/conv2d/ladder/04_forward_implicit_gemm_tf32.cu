// Convolution ladder, step 04 (forward): implicit GEMM on the tensor cores, TF32 operands, channels-last
// (NHWC) tensors, tiles gathered by a three-stage cp.async pipeline.
//
// The GEMM view. With x [N, H, W, C], w [K, R, S, C] and y [N, P, Q, K] the convolution is one GEMM
//   y[m, k] = sum over j < R*S*C of A[m, j] * B[j, k]        m = (n, p, q) < M = N*P*Q,  k < K
// where the reduction index j = (r, s, c) runs with c fastest. y in NHWC already is the row-major [M, K]
// result; B[j, k] = w[k, j] is the filter read as a row-major [K, R*S*C] matrix, which is B stored
// column-major, the `.col` operand mma.sync wants; and A is im2col's matrix, never built:
//   A[m, j] = x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, c]     (zero where that lies in the padding)
// Along j, A's row is a run of C consecutive channels per tap (r, s), contiguous in NHWC. With C % 4 == 0,
// 4 consecutive j (j % 4 == 0) are 4 channels of one tap: one 16-byte cp.async, aligned, or a zero-fill.
//
// What changes from step 03 (the SIMT implicit GEMM): the multiplies run on the tensor cores
// (mma.sync m16n8k8, TF32 operands, float sums), several times the float FMA rate; the layout is NHWC, so
// the gather moves 16 bytes of channels per copy instead of one float; and the copies are asynchronous, three
// tiles in flight, so the gather's latency hides behind the multiplies of the tile before.
//
// Tiling. A block of 4 warps (128 threads) computes a BM x BN tile of y, walking the reduction in slices of
// BK = 32 floats. The tile shape is a template, picked per launch by K (the GEMM's N), so that the narrow
// layers of a CIFAR ResNet (K = 16, 32) do not compute on a tile that is mostly padding:
//   K <= 16:  BM x BN = 128 x 16, warps 4 x 1, warp tile 32 x 16 (2 x 2 mma tiles), 62208 bytes of shared
//   K <= 32:  128 x 32,           warps 4 x 1, warp tile 32 x 32 (2 x 4 mma tiles), 69120 bytes
//   K >  32:  64 x 64,            warps 2 x 2, warp tile 32 x 32 (2 x 4 mma tiles), 55296 bytes
// (64 x 64 rather than 128 x 64 for K = 64, so that ResNet's last stage at batch 128, M = 8192, still makes
// 128 blocks for 132 multiprocessors.) The blocks form a 1-D grid, tile (m, n) = (b / tiles_n, b % tiles_n):
// consecutive blocks share their rows of A, which meet again in L2.
//
// Shared memory: per stage an A tile [BM][36] and a B tile [BN][36] (B as [k][j], j contiguous), floats, in 3
// stages. The rows are padded from 32 to 36 floats (144 bytes): a fragment load reads rows group = 0..7 at
// columns thread = 0..3, bank (36 group + thread) % 32 = 4 group + thread, 32 different banks; and 144 bytes
// keeps every row 16-byte aligned for cp.async.
//
// Copies. Thread t copies the 16-byte vector at column copy_col = 4 ((t / 8) % 8) of rows
// copy_row + 16 i, copy_row = t % 8 + 8 (t / 64): 8 consecutive lanes store one column of 8 consecutive rows,
// at 16-byte bank units 9 row + col / 4, 8 different ones (conflict-free); a warp reads 8 rows x 64 bytes of
// x. Each thread works out the (n, p, q) of its A rows once, before the loop, and walks its j = (r, s, c)
// incrementally as the tiles advance (c += 32; while c >= C: c -= C, next tap): no division in the loop.
// A row past M, a tap in the padding and a j past R*S*C are zero-filled (cp.async with source size 0);
// zeros add nothing to the sums.
//
// Pipeline (cp_async.cuh): tiles 0 and 1 are issued before the loop; iteration t waits for tile t
// (wait_group 1: all but the newest group have landed), __syncthreads() (everyone's copies are visible, and
// everyone has finished computing tile t - 1), issues tile t + 2 into tile t - 1's buffer, then computes on
// tile t. One barrier per tile covers both hazards.
//
// Fragments (mma.cuh, m16n8k8 tf32; group = lane / 4, thread = lane % 4). For a warp's 16-row slice at
// row0 and 8-column slice k8 of the tile, a[0..3] = A(row0 + group + {0, 8}, k8 + thread + {0, 4}) in the
// order (g, t), (g + 8, t), (g, t + 4), (g + 8, t + 4); for its 8 output channels at col0,
// b[0], b[1] = B(j = k8 + thread + {0, 4}, k = col0 + group) = b_tile[col0 + group][k8 + thread + {0, 4}].
// Each float is rounded to TF32 (cvt.rna) as it leaves shared memory. The accumulators c[0..3] are
// y(row0 + group + {0, 0, 8, 8}, col0 + 2 thread + {0, 1, 0, 1}), stored straight from registers (float2
// when K is even), each one predicated on the row < M and the channel < K.
#include <cstdint>

#include "core/error.hpp"
#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mma.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace forward_implicit_gemm_tf32 {  // this step's names (its ladder compiles as one unit)

using ladder::cp_async_16;
using ladder::cp_async_commit;
using ladder::cp_async_wait;
using ladder::mma_m16n8k8_tf32;
using ladder::to_tf32;

constexpr int kThreads = 128;                // 4 warps, in every tile shape
constexpr int kBlockK = 32;                  // floats of the reduction per stage
constexpr int kStages = 3;                   // tiles in flight
constexpr int kRowStride = kBlockK + 4;      // floats per shared row: 144 bytes, see the top comment
constexpr int kVectorsPerRow = kBlockK / 4;  // 16-byte copies per row of a tile: 8
constexpr int kRowsPerPass = kThreads / kVectorsPerRow;  // rows the block copies per pass: 16

// The geometry in int (the launcher has checked that every tensor holds fewer than 2^31 elements).
struct ConvShape {
  int height, width, channels;           // x [N, H, W, C]
  int out_channels, kernel_h, kernel_w;  // w [K, R, S, C]
  int out_h, out_w;                      // y [N, P, Q, K]
  int stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int rows;       // M = N * P * Q
  int reduction;  // R * S * C
};

// x [N, H, W, C], w [K, R, S, C], y [N, P, Q, K] = [M, K]; C % 4 == 0.
template <int BM, int BN, int WARPS_M, int WARPS_N>
__global__ void __launch_bounds__(kThreads)
    forward_tf32_kernel(ConvShape g, const float* __restrict__ x, const float* __restrict__ w,
                        float* __restrict__ y) {
  constexpr int kWarpM = BM / WARPS_M, kWarpN = BN / WARPS_N;  // the warp's tile of y
  constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 8;   // its mma tiles (16 x 8 each)
  constexpr int kPassesA = BM / kRowsPerPass, kPassesB = BN / kRowsPerPass;
  constexpr int kTileAFloats = BM * kRowStride, kStageFloats = (BM + BN) * kRowStride;
  static_assert(WARPS_M * WARPS_N * 32 == kThreads, "4 warps");
  static_assert(kWarpM % 16 == 0 && kWarpN % 8 == 0, "whole mma tiles per warp");
  static_assert(BM % kRowsPerPass == 0 && BN % kRowsPerPass == 0, "whole copy passes");
  static_assert(kPassesA <= 32 && kPassesB <= 32, "one bit per pass in the masks below");

  // [kStages][BM + BN][kRowStride]: stage s holds A at s * kStageFloats, B kTileAFloats further.
  KILN_DYNAMIC_SHARED_MEMORY(shared_bytes);
  float* const shared = reinterpret_cast<float*>(shared_bytes);

  const int tiles_n = (g.out_channels - 1) / BN + 1;
  const int m0 = static_cast<int>(blockIdx.x) / tiles_n * BM;
  const int n0 = static_cast<int>(blockIdx.x) % tiles_n * BN;
  // Offsets inside the tile are compared with what is left of y, so no index ever passes M or K.
  const int rows_left = g.rows - m0, cols_left = g.out_channels - n0;  // >= 1
  const int tid = static_cast<int>(threadIdx.x);

  // ---- what this thread copies: the vector at copy_col of rows copy_row + i * kRowsPerPass ----
  const int copy_row = tid % 8 + 8 * (tid / (8 * kVectorsPerRow));  // 0..15
  const int copy_col = tid / 8 % kVectorsPerRow * 4;                // 0, 4, ..., 28

  // A's rows, once: the image's offset in x and the input position of tap (0, 0) (may be negative).
  int a_image[kPassesA], a_ih0[kPassesA], a_iw0[kPassesA];
  unsigned a_rows_inside = 0;  // bit i: row copy_row + 16 i is < M
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
  unsigned b_rows_inside = 0;  // bit i: channel n0 + copy_row + 16 i is < K
#pragma unroll
  for (int i = 0; i < kPassesB; ++i) {
    const int row = copy_row + i * kRowsPerPass;
    b_start[i] = 0;
    if (row < cols_left) {
      b_start[i] = (n0 + row) * g.reduction;  // < K * R*S*C < 2^31
      b_rows_inside |= 1u << i;
    }
  }

  // This thread's reduction index j = 32 t + copy_col for the next tile t to copy, and the same j as a tap
  // (r, s) and channel c, with r*dh and s*dw beside them. tap_r reaches R exactly when j passes R*S*C.
  int j = copy_col;
  int tap_c = copy_col, tap_s = 0, tap_r = 0, tap_sdw = 0, tap_rdh = 0;
  const auto carry_channels = [&] {  // c back into [0, C), moving to the next taps (at most 8 times: C >= 4)
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
    float* a_tile = shared + stage * kStageFloats;
    float* b_tile = a_tile + kTileAFloats;
    const bool tap_inside = tap_r < g.kernel_h;  // j < R*S*C
#pragma unroll
    for (int i = 0; i < kPassesA; ++i) {
      const int ih = a_ih0[i] + tap_rdh, iw = a_iw0[i] + tap_sdw;
      const bool inside =
          tap_inside && (a_rows_inside >> i & 1u) && ih >= 0 && ih < g.height && iw >= 0 && iw < g.width;
      // The address is formed only inside x; a zero-fill names x itself (valid, never read).
      const float* source = inside ? x + (a_image[i] + (ih * g.width + iw) * g.channels + tap_c) : x;
      cp_async_16(a_tile + (copy_row + i * kRowsPerPass) * kRowStride + copy_col, source, inside);
    }
    const bool j_inside = j < g.reduction;
#pragma unroll
    for (int i = 0; i < kPassesB; ++i) {
      const bool inside = j_inside && (b_rows_inside >> i & 1u);
      const float* source = inside ? w + (b_start[i] + j) : w;
      cp_async_16(b_tile + (copy_row + i * kRowsPerPass) * kRowStride + copy_col, source, inside);
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
  float acc[kFragsM][kFragsN][4] = {};

  for (int t = 0; t < k_tiles; ++t) {
    cp_async_wait<kStages - 2>();  // this thread's copies of tile t have landed...
    __syncthreads();               // ...and everyone's; everyone is done with tile t - 1
    if (t + kStages - 1 < k_tiles) copy_tile((t + kStages - 1) % kStages);  // into tile t - 1's buffer
    cp_async_commit();

    const float* a_tile = shared + t % kStages * kStageFloats;
    const float* b_tile = a_tile + kTileAFloats;
#pragma unroll
    for (int k8 = 0; k8 < kBlockK; k8 += 8) {
      std::uint32_t a[kFragsM][4], b[kFragsN][2];
#pragma unroll
      for (int mt = 0; mt < kFragsM; ++mt) {
        // a[0] = (group, thread), a[1] = (group + 8, thread),
        // a[2] = (group, thread + 4), a[3] = (group + 8, thread + 4)
        const float* from = a_tile + (warp_row + mt * 16 + group) * kRowStride + k8 + thread;
        a[mt][0] = to_tf32(from[0]);
        a[mt][1] = to_tf32(from[8 * kRowStride]);
        a[mt][2] = to_tf32(from[4]);
        a[mt][3] = to_tf32(from[8 * kRowStride + 4]);
      }
#pragma unroll
      for (int nt = 0; nt < kFragsN; ++nt) {
        // b[0] = (j thread, k group), b[1] = (j thread + 4, k group); B(j, k) is b_tile[k][j]
        const float* from = b_tile + (warp_col + nt * 8 + group) * kRowStride + k8 + thread;
        b[nt][0] = to_tf32(from[0]);
        b[nt][1] = to_tf32(from[4]);
      }
#pragma unroll
      for (int mt = 0; mt < kFragsM; ++mt) {
#pragma unroll
        for (int nt = 0; nt < kFragsN; ++nt) mma_m16n8k8_tf32(acc[mt][nt], a[mt], b[nt]);
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

template <int BM, int BN, int WARPS_M, int WARPS_N>
void launch_tiles(const ConvShape& s, const float* x, const float* w, float* y) {
  auto* const kernel = forward_tf32_kernel<BM, BN, WARPS_M, WARPS_N>;
  constexpr int kSharedBytes = kStages * (BM + BN) * kRowStride * static_cast<int>(sizeof(float));
  // tiles_m * tiles_n <= M * K < 2^31: within gridDim.x's limit of 2^31 - 1.
  const std::int64_t tiles_m = (std::int64_t{s.rows} + BM - 1) / BM;
  const std::int64_t tiles_n = (std::int64_t{s.out_channels} + BN - 1) / BN;
  ladder::launch("conv2d ladder 04_forward_implicit_gemm_tf32", kernel,
                 dim3(static_cast<unsigned>(tiles_m * tiles_n)), dim3(kThreads), kSharedBytes, s, x, w, y);
}

}  // namespace forward_implicit_gemm_tf32
}  // namespace

void launch_04_forward_implicit_gemm_tf32(const Conv2dGeometry& g, const float* x, const float* w, float* y) {
  using namespace forward_implicit_gemm_tf32;
  require_supported("04_forward_implicit_gemm_tf32", g, g.groups == 1 && g.in_channels % 4 == 0,
                    "groups 1, C % 4 == 0");
  require_16_byte_operands("04_forward_implicit_gemm_tf32", x, w, y);
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
