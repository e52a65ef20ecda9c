// Convolution ladder, step 04 (backward data): gx = d loss / d x as an implicit GEMM on the tensor cores,
// TF32 operands, channels-last (NHWC) tensors, tiles gathered by a three-stage cp.async pipeline.
//
// The GEMM view. With gy [N, P, Q, K], w [K, R, S, C] and gx [N, H, W, C], the adjoint of the forward is
//   gx[m, c] = sum over j < R*S*K of A[m, j] * B[j, c]       m = (n, h, w) < M = N*H*W,  c < C
// with the reduction index j = (r, s, k), k fastest, and
//   A[m, j] = gy[n, p, q, k]   where h + ph - r*dh = p * sh and w + pw - s*dw = q * sw exactly, 0 <= p < P,
//                              0 <= q < Q; zero when tap (r, s) of no output position reads (h, w)
//   B[j, c] = w[k, r, s, c]:   for each tap, the filter's row-major [K][C] slab; c is contiguous
// and gx in NHWC is the row-major [M, C] result, in float. A is gathered from gy tile by tile, never built.
// Along j, A's row is a run of K consecutive channels of gy per tap: with K % 4 == 0, 4 consecutive j
// (j % 4 == 0) are 4 channels of one tap, one aligned 16-byte cp.async; with C % 4 == 0, B's rows and gx's
// rows move in 16-byte vectors too.
//
// Which taps land, without a division in the loop. Write h + ph = hq * sh + hr and r*dh = rq * sh + rr with
// hr, rr in [0, sh): then h + ph - r*dh = (hq - rq) * sh + (hr - rr), a multiple of sh exactly when hr == rr
// (|hr - rr| < sh), and then p = hq - rq. So each A row keeps (hq, hr) and (wq, wr), worked out once; each
// thread's tap keeps (rq, rr) and (sq, sr), advanced by adding dh = dq * sh + dr (one carry), never divided.
// With stride 1 every phase is 0 and every tap lands unless it falls off the image of gy. With stride 2 a 3x3
// filter has, for a given parity of (h, w), 4, 2, 2 or 1 of its 9 taps landing: the rest are gathered as
// zero-fills and multiplied (correct, but 9 taps multiplied for 2.25 useful on average). A stride-phase
// decomposition (one GEMM per phase (h % sh, w % sw), whose reduction runs over only that phase's taps, as
// cuDNN-like kernels do) would skip them; see the write-up.
//
// What changes from step 03 (the SIMT implicit GEMM, NCHW): the multiplies run on the tensor cores
// (mma.sync m16n8k8, TF32 operands, float sums); the layout is NHWC, so a gather moves 16 bytes of channels
// of gy per copy instead of one float; and the copies are asynchronous, three tiles in flight, so the
// gather's latency hides behind the multiplies of the tile before. The same structure as the forward step 04;
// only A's gather (gy through the inverted taps) and B (w read as [j][c], not [c][j]) differ.
//
// Tiling. A block of 4 warps (128 threads) computes a BM x BN tile of gx, walking the reduction in slices of
// BK = 32. The tile shape is a template picked per launch by C (the GEMM's N):
//   C <= 16:  BM x BN = 128 x 16, warps 4 x 1, warp tile 32 x 16 (2 x 2 mma tiles), 64512 bytes of shared
//   C <= 32:  128 x 32,           warps 4 x 1, warp tile 32 x 32 (2 x 4 mma tiles), 70656 bytes
//   C >  32:  64 x 64,            warps 2 x 2, warp tile 32 x 32 (2 x 4 mma tiles), 55296 bytes
// The blocks form a 1-D grid, tile (m, n) = (b / tiles_n, b % tiles_n): consecutive blocks gather the same
// rows of A, which meet again in L2.
//
// Shared memory (dynamic, over 48 KiB): per stage an A tile [BM][36] ([m][j], j contiguous) and a B tile
// [32][BN + 8] ([j][c], c contiguous), floats, in 3 stages. A's rows are padded to 36 floats (144 bytes): a
// fragment load reads rows group = 0..7 at columns thread = 0..3, bank (36 group + thread) % 32 = 4 group +
// thread, 32 different banks. B's rows are padded to BN + 8 floats (24, 40 or 72; 8 or 24 mod 32): a fragment
// load reads rows thread = 0..3 at columns group = 0..7, banks (8 thread + group) % 32 or (24 thread + group)
// % 32, 32 different banks either way. Every row stays a multiple of 16 bytes for cp.async.
//
// Copies. A as in the forward step: thread t copies the 16-byte vector at column copy_col = 4 ((t / 8) % 8)
// of rows copy_row + 16 i, copy_row = t % 8 + 8 (t / 64); a warp reads 8 rows x 64 bytes of gy. B: thread t
// copies the vector at column b_col = 4 (t % (BN / 4)) of rows b_row + (128 / (BN / 4)) i, b_row = t / (BN /
// 4): consecutive lanes read consecutive channels of one (k, r, s) row of w. The threads walk their j = (r,
// s, k) incrementally as the tiles advance (k += 32; while k >= K: k -= K, next tap): no division in the
// loop. A row past M, a tap that lands nowhere, a channel past C and a j past R*S*K are zero-filled (cp.async
// with source size 0); zeros add nothing to the sums.
//
// Pipeline (cp_async.cuh), as in the forward step 04: tiles 0 and 1 are issued before the loop; iteration t
// waits for tile t (wait_group 1), __syncthreads() (everyone's copies are visible, and everyone has finished
// computing tile t - 1), issues tile t + 2 into tile t - 1's buffer, then computes on tile t.
//
// Fragments (mma.cuh, m16n8k8 tf32; group = lane / 4, thread = lane % 4). For a warp's 16-row slice at row0
// and 8-column slice k8 of the tile, a[0..3] = A(row0 + group + {0, 8}, k8 + thread + {0, 4}) in the order
// (g, t), (g + 8, t), (g, t + 4), (g + 8, t + 4) = a_tile[row0 + group + {0, 8}][k8 + thread + {0, 4}]; for
// its 8 channels at col0, b[0] = B(k8 + thread, col0 + group) = b_tile[k8 + thread][col0 + group] and b[1]
// the same 4 rows further, b_tile[k8 + thread + 4][col0 + group]. Each float is rounded to TF32 (cvt.rna) as
// it leaves shared memory. The accumulators c[0..3] are gx(row0 + group + {0, 0, 8, 8}, col0 + 2 thread +
// {0, 1, 0, 1}), stored straight from registers as float2 (C % 4 == 0: an even channel is 8-byte aligned and
// its neighbour is inside whenever it is), each pair predicated on the row < M and the channel < C.
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mma.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace backward_data_implicit_gemm_tf32 {  // this step's names (its ladder compiles as one unit)

using ladder::cp_async_16;
using ladder::cp_async_commit;
using ladder::cp_async_wait;
using ladder::mma_m16n8k8_tf32;
using ladder::to_tf32;

constexpr int kThreads = 128;                 // 4 warps, in every tile shape
constexpr int kBlockK = 32;                   // floats of the reduction per stage
constexpr int kStages = 3;                    // tiles in flight
constexpr int kRowStrideA = kBlockK + 4;      // floats per shared row of A: 144 bytes, see the top comment
constexpr int kVectorsPerRowA = kBlockK / 4;  // 16-byte copies per row of A: 8
constexpr int kRowsPerPassA = kThreads / kVectorsPerRowA;  // rows of A the block copies per pass: 16

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

// gy [N, P, Q, K], w [K, R, S, C]; gx [N, H, W, C] = [M, C]; C % 4 == 0, K % 4 == 0.
template <int BM, int BN, int WARPS_M, int WARPS_N>
__global__ void __launch_bounds__(kThreads)
    backward_data_tf32_kernel(ConvShape g, const float* __restrict__ gy, const float* __restrict__ w,
                              float* __restrict__ gx) {
  constexpr int kWarpM = BM / WARPS_M, kWarpN = BN / WARPS_N;  // the warp's tile of gx
  constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 8;   // its mma tiles (16 x 8 each)
  constexpr int kPassesA = BM / kRowsPerPassA;
  constexpr int kRowStrideB = BN + 8;                        // floats per shared row of B, see the top
  constexpr int kVectorsPerRowB = BN / 4;                    // 4, 8, 16
  constexpr int kRowsPerPassB = kThreads / kVectorsPerRowB;  // 32, 16, 8
  constexpr int kPassesB = kBlockK / kRowsPerPassB;          // 1, 2, 4
  constexpr int kTileAFloats = BM * kRowStrideA;
  constexpr int kStageFloats = kTileAFloats + kBlockK * kRowStrideB;
  static_assert(WARPS_M * WARPS_N * 32 == kThreads, "4 warps");
  static_assert(kWarpM % 16 == 0 && kWarpN % 8 == 0, "whole mma tiles per warp");
  static_assert(BM % kRowsPerPassA == 0 && kBlockK % kRowsPerPassB == 0, "whole copy passes");
  static_assert(kRowStrideB % 4 == 0 && kTileAFloats % 4 == 0, "16-byte aligned shared rows");

  // [kStages][A [BM][kRowStrideA], B [kBlockK][kRowStrideB]]: stage s at s * kStageFloats, B kTileAFloats in.
  KILN_DYNAMIC_SHARED_MEMORY(shared_bytes);
  float* const shared = reinterpret_cast<float*>(shared_bytes);

  const int tiles_n = (g.channels - 1) / BN + 1;
  const int m0 = static_cast<int>(blockIdx.x) / tiles_n * BM;
  const int n0 = static_cast<int>(blockIdx.x) % tiles_n * BN;
  // Offsets inside the tile are compared with what is left of gx, so no index ever passes M or C.
  const int rows_left = g.rows - m0, cols_left = g.channels - n0;  // >= 1
  const int tid = static_cast<int>(threadIdx.x);

  // ---- A: this thread copies the vector at copy_col of rows copy_row + 16 i ----
  const int copy_row = tid % 8 + 8 * (tid / (8 * kVectorsPerRowA));  // 0..15
  const int copy_col = tid / 8 % kVectorsPerRowA * 4;                // 0, 4, ..., 28

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
  const auto carry_a = [&] {  // k back into [0, K), moving to the next taps (at most 8 times: K >= 4)
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

  // ---- B: this thread copies the vector at b_col of rows b_row + kRowsPerPassB i ----
  const int b_row = tid / kVectorsPerRowB;
  const int b_col = tid % kVectorsPerRowB * 4;
  const bool b_col_inside = b_col < cols_left;  // the 4 channels are all inside or all outside: C % 4 == 0
  // Row b_row + kRowsPerPassB i of the next tile is j = (tap, k) with tap = r*S + s: w[k, r, s, :] starts at
  // (k * R*S + tap) * C. b_tap reaches R*S exactly when j passes R*S*K.
  int b_k[kPassesB], b_tap[kPassesB];
#pragma unroll
  for (int i = 0; i < kPassesB; ++i) {
    b_k[i] = b_row + i * kRowsPerPassB;
    b_tap[i] = 0;
  }
  const auto carry_b = [&] {  // each k back into [0, K) (at most 8 times: K >= 4)
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
    float* a_tile = shared + stage * kStageFloats;
    float* b_tile = a_tile + kTileAFloats;
    const bool tap_inside = tap_r < g.kernel_h;  // j < R*S*K
#pragma unroll
    for (int i = 0; i < kPassesA; ++i) {
      const int p = a_hq[i] - tap_rq, q = a_wq[i] - tap_sq;  // the output position, when the phases agree
      const bool inside = tap_inside && a_hr[i] == tap_rr && a_wr[i] == tap_sr && p >= 0 && p < g.out_h &&
                          q >= 0 && q < g.out_w;
      // The address is formed only inside gy; a zero-fill names gy itself (valid, never read).
      const float* source = inside ? gy + (a_image[i] + (p * g.out_w + q) * g.out_channels + tap_k) : gy;
      cp_async_16(a_tile + (copy_row + i * kRowsPerPassA) * kRowStrideA + copy_col, source, inside);
    }
#pragma unroll
    for (int i = 0; i < kPassesB; ++i) {
      const bool inside = b_col_inside && b_tap[i] < g.taps;
      const float* source = inside ? w + ((b_k[i] * g.taps + b_tap[i]) * g.channels + n0 + b_col) : w;
      cp_async_16(b_tile + (b_row + i * kRowsPerPassB) * kRowStrideB + b_col, source, inside);
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
        // a[2] = (group, thread + 4), a[3] = (group + 8, thread + 4); A(m, j) is a_tile[m][j]
        const float* from = a_tile + (warp_row + mt * 16 + group) * kRowStrideA + k8 + thread;
        a[mt][0] = to_tf32(from[0]);
        a[mt][1] = to_tf32(from[8 * kRowStrideA]);
        a[mt][2] = to_tf32(from[4]);
        a[mt][3] = to_tf32(from[8 * kRowStrideA + 4]);
      }
#pragma unroll
      for (int nt = 0; nt < kFragsN; ++nt) {
        // b[0] = (j thread, c group), b[1] = (j thread + 4, c group); B(j, c) is b_tile[j][c]
        const float* from = b_tile + (k8 + thread) * kRowStrideB + warp_col + nt * 8 + group;
        b[nt][0] = to_tf32(from[0]);
        b[nt][1] = to_tf32(from[4 * kRowStrideB]);
      }
#pragma unroll
      for (int mt = 0; mt < kFragsM; ++mt) {
#pragma unroll
        for (int nt = 0; nt < kFragsN; ++nt) mma_m16n8k8_tf32(acc[mt][nt], a[mt], b[nt]);
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
        const int col = warp_col + nt * 8 + 2 * thread;  // even; cols_left % 4 == 0, so col + 1 < cols_left
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

template <int BM, int BN, int WARPS_M, int WARPS_N>
void launch_tiles(const ConvShape& s, const float* gy, const float* w, float* gx) {
  auto* const kernel = backward_data_tf32_kernel<BM, BN, WARPS_M, WARPS_N>;
  constexpr int kSharedBytes =
      kStages * (BM * kRowStrideA + kBlockK * (BN + 8)) * static_cast<int>(sizeof(float));
  // tiles_m * tiles_n <= M * C < 2^31 (every tile holds an element of gx): within gridDim.x's 2^31 - 1.
  const std::int64_t tiles_m = (std::int64_t{s.rows} + BM - 1) / BM;
  const std::int64_t tiles_n = (std::int64_t{s.channels} + BN - 1) / BN;
  ladder::launch("conv2d ladder 04_backward_data_implicit_gemm_tf32", kernel,
                 dim3(static_cast<unsigned>(tiles_m * tiles_n)), dim3(kThreads), kSharedBytes, s, gy, w, gx);
}

}  // namespace backward_data_implicit_gemm_tf32
}  // namespace

void launch_04_backward_data_implicit_gemm_tf32(const Conv2dGeometry& g, const float* gy, const float* w,
                                                float* gx) {
  using namespace backward_data_implicit_gemm_tf32;
  require_supported("04_backward_data_implicit_gemm_tf32", g,
                    g.groups == 1 && g.in_channels % 4 == 0 && g.out_channels % 4 == 0,
                    "groups 1, C % 4 == 0, K % 4 == 0");
  require_16_byte_operands("04_backward_data_implicit_gemm_tf32", gy, w, gx);
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
