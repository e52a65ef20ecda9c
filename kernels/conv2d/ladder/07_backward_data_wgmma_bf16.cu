// Convolution ladder, step 07 (backward data): gx = d loss / d x on Hopper's warpgroup multiply (wgmma),
// both operands read by the tensor cores from 128-byte-swizzled shared memory, the filter MN-major straight
// from its [K][C] slabs. Built for sm_90a (H100, H200); elsewhere the step refuses
// (kernels/ladder/hopper.hpp).
//
// The GEMM view, as in step 05. With gy [N, P, Q, K], w [K, R, S, C] bfloat16 and gx [N, H, W, C] float:
//   gx[m, c] = sum over j < R*S*K of A[m, j] * B[j, c]       m = (n, h, w) < M = N*H*W,  c < C
//   A[m, j] = gy[n, p, q, k]   j = (r, s, k), k fastest, where h + ph - r*dh = p * sh and w + pw - s*dw =
//                              q * sw exactly, inside gy; zero when tap (r, s) of no output reads (h, w)
//   B[j, c] = w[k, r, s, c]:   for each tap, the filter's row-major [K][C] slab, c contiguous
// A runs along j contiguously (K-major in wgmma's terms); B runs along c, the GEMM's N: MN-major, wgmma's
// "transposed" B, which it reads without any transposing copy (step 05 needed ldmatrix.trans). The gather of
// A, and its division-free test of which taps land, are step 05's, walked 64 j at a time.
//
// What changes from step 05 (the forward step 07 made the same move; its top comment says more):
//   - One warpgroup computes a 128 x BN tile of gx with wgmma.m64nBNk16, two per 16-wide slice of j (rows
//     0-63 and 64-127), from descriptors: no ldmatrix, no fragments; BN accumulators per thread.
//   - The multiplies run asynchronously: iteration t issues tile t's eight wgmma, then the copies of tile
//     t + 3, then waits for the wgmma.
//   - Tiles are swizzled, 128-byte lines (wgmma.cuh): A's lines are rows m, 64 j each (16 KiB a stage); B's
//     lines are one j each, 64 channels wide, in 64-wide columns of channels, each a stack of 8 atoms along
//     j (8 KiB), the next column 8 KiB on (the descriptor's leading byte offset). For BN < 64 only the first
//     BN channels of each line are copied and read.
//
// Tiling. BM = 128 input positions, BN = 16, 32, 64 or 128 input channels (the smallest that holds C, up to
// 128), BK = 64; 4 stages: 96 KiB (BN <= 64) or 128 KiB (BN = 128) of dynamic shared memory, plus 1 KiB of
// alignment slack. 1-D grid, tile (m, n) = (b / tiles_n, b % tiles_n).
//
// Copies. A: thread t copies chunk t % 8 of rows t / 8 + 16 i (i < 8), 8 channels k of one tap of gy, or a
// zero-fill. B: the stage's 64 lines hold BN / 8 chunks each; thread t copies chunk t % (BN / 8) of lines
// t / (BN / 8) + (128 / (BN / 8)) i (i < BN / 16): 8 channels c of w[k, r, s, :]. Every thread walks the
// j = (r, s, k) of its A chunk and of each B line incrementally (k += 64; while k >= K: k -= K, next tap).
//
// Pipeline and epilogue: the forward step 07's (cp_async_wait<2>, the proxy fence, __syncthreads; issue and
// commit the wgmma; copy tile t + 3 into tile t - 1's stage; wgmma_wait<0>). acc[h][i] is gx(row 64 h +
// 16 warp + group + 8 ((i / 2) % 2), channel 8 (i / 4) + 2 quad + i % 2), pairs stored as float2 (C % 8 ==
// 0).
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/hopper.hpp"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/wgmma.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace backward_data_wgmma_bf16 {  // this step's names (its ladder compiles as one unit)

using ladder::cp_async_16;
using ladder::cp_async_commit;
using ladder::cp_async_wait;
using ladder::fence_proxy_async_shared;
using ladder::first_swizzle_atom;
using ladder::k_major_128b_descriptor;
using ladder::kSwizzleAtomBytes;
using ladder::Major;
using ladder::mn_major_128b_descriptor;
using ladder::swizzled_128b;
using ladder::wgmma_bf16;
using ladder::wgmma_commit_group;
using ladder::wgmma_fence;
using ladder::wgmma_wait;

constexpr int kThreads = 128;                             // one warpgroup
constexpr int kBlockM = 128;                              // two wgmma of 64 rows
constexpr int kBlockK = 64;                               // j per stage: one 128-byte line of A
constexpr int kStages = 4;                                // tiles in flight
constexpr int kLineBytes = 128;                           // 64 bfloat16
constexpr int kChunksPerLine = 8;                         // 16-byte copies per line
constexpr int kRowsPerPassA = kThreads / kChunksPerLine;  // 16
constexpr int kATileBytes = kBlockM * kLineBytes;         // 16 KiB
constexpr int kBColumnBytes = kBlockK * kLineBytes;       // 8 KiB: 64 channels x 64 j

template <int BN>
constexpr int b_tile_bytes() {
  return (BN + 63) / 64 * kBColumnBytes;
}
template <int BN>
constexpr int stage_bytes() {
  return kATileBytes + b_tile_bytes<BN>();
}
template <int BN>
constexpr int dynamic_shared_bytes() {
  return kStages * stage_bytes<BN>() + kSwizzleAtomBytes;  // the slack the alignment may take
}

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
template <int BN>
__global__ void __launch_bounds__(kThreads, 1)
    backward_data_wgmma_kernel(ConvShape g, const bfloat16* __restrict__ gy, const bfloat16* __restrict__ w,
                               float* __restrict__ gx) {
  constexpr int kPassesA = kBlockM / kRowsPerPassA;    // 8
  constexpr int kChunksB = BN / 8;                     // chunks of a B line this tile uses: 2 to 16
  constexpr int kLinesPerPassB = kThreads / kChunksB;  // 64 to 8
  constexpr int kPassesB = kBlockK / kLinesPerPassB;   // 1 to 8
  static_assert(kBlockK % kLinesPerPassB == 0, "whole copy passes for B");
  static_assert(stage_bytes<BN>() % kSwizzleAtomBytes == 0, "every tile of every stage starts on 1024 bytes");

  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const tiles = first_swizzle_atom(shared);  // the launch asked for the slack
  const auto a_tile = [&](int stage) { return tiles + stage * stage_bytes<BN>(); };
  const auto b_tile = [&](int stage) { return tiles + stage * stage_bytes<BN>() + kATileBytes; };

  const int tiles_n = (g.channels - 1) / BN + 1;
  const int m0 = static_cast<int>(blockIdx.x) / tiles_n * kBlockM;
  const int n0 = static_cast<int>(blockIdx.x) % tiles_n * BN;
  // Offsets inside the tile are compared with what is left of gx, so no index ever passes M or C.
  const int rows_left = g.rows - m0, cols_left = g.channels - n0;  // >= 1
  const int tid = static_cast<int>(threadIdx.x);

  // ---- A: this thread copies chunk copy_chunk of rows copy_row + 16 i ----
  const int copy_row = tid / kChunksPerLine;  // 0..15
  const int copy_chunk = tid % kChunksPerLine;

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

  // A's column: this thread's j = 64 t + 8 copy_chunk for the next tile t to copy, as channel tap_k of tap
  // (tap_r, tap_s), with r*dh = tap_rq * sh + tap_rr and s*dw = tap_sq * sw + tap_sr beside it. tap_r
  // reaches R exactly when j passes R*S*K.
  int tap_k = copy_chunk * 8, tap_s = 0, tap_r = 0, tap_sq = 0, tap_sr = 0, tap_rq = 0, tap_rr = 0;
  const auto carry_a = [&] {  // k back into [0, K), moving to the next taps (at most 8 times: K >= 8)
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

  // ---- B: this thread copies chunk b_chunk of lines b_line + kLinesPerPassB i ----
  const int b_line = tid / kChunksB;
  const int b_chunk = tid % kChunksB;
  const bool b_chunk_inside = 8 * b_chunk < cols_left;  // 8 channels all inside or all outside: C % 8 == 0
  // Where the chunk lands in a stage's B tile: its 64-wide column of channels, then its line's swizzle.
  const int b_column_offset = b_chunk / kChunksPerLine * kBColumnBytes;
  // Line b_line + kLinesPerPassB i of the next tile is j = (tap, k) with tap = r*S + s: w[k, r, s, :] starts
  // at (k * R*S + tap) * C. b_tap reaches R*S exactly when j passes R*S*K.
  int b_k[kPassesB], b_tap[kPassesB];
#pragma unroll
  for (int i = 0; i < kPassesB; ++i) {
    b_k[i] = b_line + i * kLinesPerPassB;
    b_tap[i] = 0;
  }
  const auto carry_b = [&] {  // each k back into [0, K)
#pragma unroll
    for (int i = 0; i < kPassesB; ++i) {
      while (b_k[i] >= g.out_channels) {
        b_k[i] -= g.out_channels;
        ++b_tap[i];
      }
    }
  };
  carry_b();

  // Issues the copies of the next tile into buffer `stage` and advances every j by 64.
  const auto copy_tile = [&](int stage) {
    unsigned char* const a = a_tile(stage);
    unsigned char* const b = b_tile(stage);
    const bool tap_inside = tap_r < g.kernel_h;  // j < R*S*K
#pragma unroll
    for (int i = 0; i < kPassesA; ++i) {
      const int p = a_hq[i] - tap_rq, q = a_wq[i] - tap_sq;  // the output position, when the phases agree
      const bool inside = tap_inside && a_hr[i] == tap_rr && a_wr[i] == tap_sr && p >= 0 && p < g.out_h &&
                          q >= 0 && q < g.out_w;
      // The address is formed only inside gy; a zero-fill names gy itself (valid, never read).
      const bfloat16* source = inside ? gy + (a_image[i] + (p * g.out_w + q) * g.out_channels + tap_k) : gy;
      cp_async_16(a + swizzled_128b(copy_row + i * kRowsPerPassA, copy_chunk), source, inside);
    }
#pragma unroll
    for (int i = 0; i < kPassesB; ++i) {
      const int line = b_line + i * kLinesPerPassB;
      const bool inside = b_chunk_inside && b_tap[i] < g.taps;
      const bfloat16* source =
          inside ? w + ((b_k[i] * g.taps + b_tap[i]) * g.channels + n0 + 8 * b_chunk) : w;
      cp_async_16(b + b_column_offset + swizzled_128b(line, b_chunk % kChunksPerLine), source, inside);
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

  float acc[2][BN / 2] = {};  // rows 0-63 and 64-127 of the tile

  for (int t = 0; t < k_tiles; ++t) {
    cp_async_wait<kStages - 2>();  // this thread's copies of tile t have landed...
    fence_proxy_async_shared();    // ...and are ordered before the tensor cores' reads...
    __syncthreads();  // ...and so are everyone's; everyone has waited for iteration t - 1's wgmma
    const int stage = t % kStages;
    const unsigned char* const a = a_tile(stage);
    const unsigned char* const b = b_tile(stage);
    wgmma_fence(acc);
#pragma unroll
    for (int j16 = 0; j16 < kBlockK / 16; ++j16) {
      // Slice j16: 32 bytes into each line of A; 16 lines (two atoms, 2048 bytes) into B's columns.
      const std::uint64_t b_slice = mn_major_128b_descriptor(b + 2048 * j16, kBColumnBytes);
      wgmma_bf16<BN, Major::K, Major::MN>(acc[0], k_major_128b_descriptor(a + 32 * j16), b_slice, true);
      wgmma_bf16<BN, Major::K, Major::MN>(acc[1], k_major_128b_descriptor(a + 64 * kLineBytes + 32 * j16),
                                          b_slice, true);
    }
    wgmma_commit_group();
    if (t + kStages - 1 < k_tiles) copy_tile((t + kStages - 1) % kStages);  // into tile t - 1's buffer
    cp_async_commit();
    wgmma_wait<0>(acc);
  }
  // What is still pending are empty copy groups: no copy outlives the loop.

  // ---- the tile of gx ----
  const int warp = tid / 32, lane = tid % 32;
  const int group = lane / 4, quad = lane % 4;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
#pragma unroll
    for (int i = 0; i < BN / 2; i += 2) {
      const int row = 64 * h + 16 * warp + group + 8 * ((i / 2) % 2);
      const int col = 8 * (i / 4) + 2 * quad;  // even; cols_left % 8 == 0, so col + 1 < cols_left
      if (row >= rows_left || col >= cols_left) continue;
      float* out = gx + ((m0 + row) * g.channels + n0 + col);  // < M*C < 2^31; even, so 8-byte aligned
      *reinterpret_cast<float2*>(out) = make_float2(acc[h][i], acc[h][i + 1]);
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

template <int BN>
void launch_tiles(const ConvShape& s, const bfloat16* gy, const bfloat16* w, float* gx) {
  // tiles_m * tiles_n <= M * C < 2^31 (every tile holds an element of gx): within gridDim.x's 2^31 - 1.
  const std::int64_t tiles_m = (std::int64_t{s.rows} + kBlockM - 1) / kBlockM;
  const std::int64_t tiles_n = (std::int64_t{s.channels} + BN - 1) / BN;
  ladder::launch("conv2d ladder 07_backward_data_wgmma_bf16", backward_data_wgmma_kernel<BN>,
                 dim3(static_cast<unsigned>(tiles_m * tiles_n)), dim3(kThreads), dynamic_shared_bytes<BN>(),
                 s, gy, w, gx);
}

}  // namespace backward_data_wgmma_bf16
}  // namespace

void launch_07_backward_data_wgmma_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w,
                                        float* gx) {
  using namespace backward_data_wgmma_bf16;
  require_supported(
      "07_backward_data_wgmma_bf16", g,
      g.groups == 1 && g.in_channels % 8 == 0 && g.out_channels % 8 == 0 && ladder::wgmma_available(),
      "groups 1, C % 8 == 0, K % 8 == 0, an H100 or H200 and a build for sm_90a");
  require_16_byte_operands("07_backward_data_wgmma_bf16", gy, w, gx);
  const ConvShape s = conv_shape(g);
  if (s.channels <= 16) {
    launch_tiles<16>(s, gy, w, gx);
  } else if (s.channels <= 32) {
    launch_tiles<32>(s, gy, w, gx);
  } else if (s.channels <= 64) {
    launch_tiles<64>(s, gy, w, gx);
  } else {
    launch_tiles<128>(s, gy, w, gx);
  }
}

}  // namespace kiln::kernels::conv2d_ladder
