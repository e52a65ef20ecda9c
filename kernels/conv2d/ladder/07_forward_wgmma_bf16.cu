// Convolution ladder, step 07 (forward): Hopper's warpgroup multiply (wgmma), which reads both operands
// straight from 128-byte-swizzled shared memory and runs asynchronously, so a four-stage cp.async pipeline's
// copies overlap it. Built for sm_90a (H100, H200); elsewhere the step refuses (kernels/ladder/hopper.hpp).
//
// The GEMM view, as in step 05. With x [N, H, W, C], w [K, R, S, C] bfloat16 and y [N, P, Q, K] float:
//   y[m, k] = sum over j < R*S*C of A[m, j] * B[k, j]        m = (n, p, q) < M = N*P*Q,  k < K
//   A[m, j] = x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, c]     j = (r, s, c), c fastest; zero in the padding
//   B[k, j] = w[k, j]: the filter as a row-major [K, R*S*C] matrix
// Both operands run along the reduction j contiguously: "K-major" in wgmma's terms (wgmma.cuh), the layout it
// reads without a transpose. With C % 8 == 0, 8 consecutive j (j % 8 == 0) are 8 channels of one tap: one
// aligned 16-byte cp.async, as in step 05.
//
// What changes from step 05:
//   - One warpgroup (the block's 4 warps together) computes a 128 x BN tile with wgmma.m64nBNk16: two
//     instructions per 16-wide slice of j (rows 0-63 and 64-127), each 64 x BN x 16, where step 05's warps
//     each issued m16n8k16s a sixteenth of that size or less. No ldmatrix and no fragments: the tensor cores
//     read the tiles from shared memory through descriptors, and the registers that held fragments hold
//     accumulators (BN floats per thread).
//   - The multiplies are asynchronous: iteration t issues tile t's eight wgmma, then the copies of tile
//     t + 3 (their address arithmetic runs while the tensor cores work), then waits for the wgmma.
//   - Tiles are 64 bfloat16 of j wide (128 bytes, twice step 05's) and swizzled instead of padded: chunk c
//     of row r lies at 128 r + 16 (c ^ r % 8), the layout the descriptors name. Each tile starts on 1024
//     bytes, which the swizzle needs, so the dynamic shared memory is aligned up by hand.
//
// Tiling. BM = 128 output positions, BN = 16, 32, 64 or 128 output channels (the smallest that holds K, up
// to 128), BK = 64. Per stage an A tile (128 rows, 16 KiB) and a B tile (BN rows, BN x 128 bytes); 4 stages:
// 72 KiB (BN = 16) to 128 KiB (BN = 128), plus 1 KiB of alignment slack. The blocks form a 1-D grid, tile
// (m, n) = (b / tiles_n, b % tiles_n): consecutive blocks share rows of A.
//
// Copies. Thread t copies the 16-byte chunk t % 8 of rows t / 8 + 16 i (A: i < 8; B: i < BN / 16): eight
// consecutive lanes fill one row's 128 bytes, a warp four whole rows, so its 32 stores cover 512 bytes once
// each, without bank conflicts whatever the swizzle does inside a row. The (n, p, q) of each A row are
// worked out once, before the loop; j = (r, s, c) of the thread's chunk is walked incrementally (c += 64;
// while c >= C: c -= C, next tap). Rows past M, taps in the padding, channels past K and j past R*S*C are
// zero-filled (cp.async with source size 0).
//
// Pipeline, iteration t: wait for this thread's copies of tile t (cp_async_wait<2>), fence them to the async
// proxy the tensor cores read through, __syncthreads (everyone's copies of tile t are in; everyone has
// waited for iteration t - 1's wgmma, so that buffer is free); issue tile t's wgmma and commit them; issue
// the copies of tile t + 3 into the free buffer; wait for the wgmma (wgmma_wait<0>).
//
// The accumulators (wgmma.cuh): thread t of the warpgroup, warp = t / 32, group = (t % 32) / 4,
// quad = t % 4, holds in acc[h][i] the output (row 64 h + 16 warp + group + 8 ((i / 2) % 2),
// channel 8 (i / 4) + 2 quad + i % 2) of the tile: pairs of adjacent channels, stored as float2 when K is
// even, each predicated on the row < M and the channel < K.
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/hopper.hpp"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/wgmma.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace forward_wgmma_bf16 {  // this step's names (its ladder compiles as one unit)

using ladder::cp_async_16;
using ladder::cp_async_commit;
using ladder::cp_async_wait;
using ladder::fence_proxy_async_shared;
using ladder::first_swizzle_atom;
using ladder::k_major_128b_descriptor;
using ladder::kSwizzleAtomBytes;
using ladder::swizzled_128b;
using ladder::wgmma_bf16;
using ladder::wgmma_commit_group;
using ladder::wgmma_fence;
using ladder::wgmma_wait;

constexpr int kThreads = 128;                           // one warpgroup
constexpr int kBlockM = 128;                            // two wgmma of 64 rows
constexpr int kBlockK = 64;                             // bfloat16 of j per stage: one 128-byte swizzled row
constexpr int kStages = 4;                              // tiles in flight
constexpr int kRowBytes = 128;                          // kBlockK bfloat16
constexpr int kChunksPerRow = 8;                        // 16-byte copies per row
constexpr int kRowsPerPass = kThreads / kChunksPerRow;  // rows the block copies per pass: 16
constexpr int kATileBytes = kBlockM * kRowBytes;

template <int BN>
constexpr int stage_bytes() {
  return kATileBytes + BN * kRowBytes;
}
template <int BN>
constexpr int dynamic_shared_bytes() {
  return kStages * stage_bytes<BN>() + kSwizzleAtomBytes;  // the slack the alignment may take
}

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
template <int BN>
__global__ void __launch_bounds__(kThreads, 1)
    forward_wgmma_kernel(ConvShape g, const bfloat16* __restrict__ x, const bfloat16* __restrict__ w,
                         float* __restrict__ y) {
  constexpr int kPassesA = kBlockM / kRowsPerPass;  // 8
  constexpr int kPassesB = BN / kRowsPerPass;       // 1 to 8
  static_assert(BN % kRowsPerPass == 0 && BN % 8 == 0, "whole copy passes and whole 8-row swizzle groups");
  static_assert(stage_bytes<BN>() % kSwizzleAtomBytes == 0, "every tile of every stage starts on 1024 bytes");

  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const tiles = first_swizzle_atom(shared);  // the launch asked for the slack
  const auto a_tile = [&](int stage) { return tiles + stage * stage_bytes<BN>(); };
  const auto b_tile = [&](int stage) { return tiles + stage * stage_bytes<BN>() + kATileBytes; };

  const int tiles_n = (g.out_channels - 1) / BN + 1;
  const int m0 = static_cast<int>(blockIdx.x) / tiles_n * kBlockM;
  const int n0 = static_cast<int>(blockIdx.x) % tiles_n * BN;
  // Offsets inside the tile are compared with what is left of y, so no index ever passes M or K.
  const int rows_left = g.rows - m0, cols_left = g.out_channels - n0;  // >= 1
  const int tid = static_cast<int>(threadIdx.x);

  // ---- what this thread copies: chunk copy_chunk of rows copy_row + 16 i ----
  const int copy_row = tid / kChunksPerRow;  // 0..15
  const int copy_chunk = tid % kChunksPerRow;

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

  // This thread's reduction index j = 64 t + 8 copy_chunk for the next tile t to copy, and the same j as a
  // tap (r, s) and channel c, with r*dh and s*dw beside them. tap_r reaches R exactly when j passes R*S*C.
  int j = copy_chunk * 8;
  int tap_c = j, tap_s = 0, tap_r = 0, tap_sdw = 0, tap_rdh = 0;
  const auto carry_channels = [&] {  // c back into [0, C), moving to the next taps (at most 8 times: C >= 8)
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
    unsigned char* const a = a_tile(stage);
    unsigned char* const b = b_tile(stage);
    const bool tap_inside = tap_r < g.kernel_h;  // j < R*S*C
#pragma unroll
    for (int i = 0; i < kPassesA; ++i) {
      const int ih = a_ih0[i] + tap_rdh, iw = a_iw0[i] + tap_sdw;
      const bool inside =
          tap_inside && (a_rows_inside >> i & 1u) && ih >= 0 && ih < g.height && iw >= 0 && iw < g.width;
      // The address is formed only inside x; a zero-fill names x itself (valid, never read).
      const bfloat16* source = inside ? x + (a_image[i] + (ih * g.width + iw) * g.channels + tap_c) : x;
      cp_async_16(a + swizzled_128b(copy_row + i * kRowsPerPass, copy_chunk), source, inside);
    }
    const bool j_inside = j < g.reduction;
#pragma unroll
    for (int i = 0; i < kPassesB; ++i) {
      const bool inside = j_inside && (b_rows_inside >> i & 1u);
      const bfloat16* source = inside ? w + (b_start[i] + j) : w;
      cp_async_16(b + swizzled_128b(copy_row + i * kRowsPerPass, copy_chunk), source, inside);
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
    for (int k16 = 0; k16 < kBlockK / 16; ++k16) {
      // Slice k16 of each tile starts 32 k16 bytes in (the swizzle is the hardware's business).
      const std::uint64_t b_slice = k_major_128b_descriptor(b + 32 * k16);
      wgmma_bf16<BN>(acc[0], k_major_128b_descriptor(a + 32 * k16), b_slice, true);
      wgmma_bf16<BN>(acc[1], k_major_128b_descriptor(a + 64 * kRowBytes + 32 * k16), b_slice, true);
    }
    wgmma_commit_group();
    if (t + kStages - 1 < k_tiles) copy_tile((t + kStages - 1) % kStages);  // into tile t - 1's buffer
    cp_async_commit();
    wgmma_wait<0>(acc);
  }
  // What is still pending are empty copy groups: no copy outlives the loop.

  // ---- the tile of y ----
  const int warp = tid / 32, lane = tid % 32;
  const int group = lane / 4, quad = lane % 4;
  const bool even_k = g.out_channels % 2 == 0;  // then every (m, even k) is 8-byte aligned: float2 stores
#pragma unroll
  for (int h = 0; h < 2; ++h) {
#pragma unroll
    for (int i = 0; i < BN / 2; i += 2) {
      const int row = 64 * h + 16 * warp + group + 8 * ((i / 2) % 2);
      const int col = 8 * (i / 4) + 2 * quad;
      if (row >= rows_left || col >= cols_left) continue;
      float* out = y + ((m0 + row) * g.out_channels + n0 + col);  // < M*K < 2^31
      const float first = acc[h][i], second = acc[h][i + 1];
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

template <int BN>
void launch_tiles(const ConvShape& s, const bfloat16* x, const bfloat16* w, float* y) {
  // tiles_m * tiles_n <= M * K < 2^31: within gridDim.x's limit of 2^31 - 1.
  const std::int64_t tiles_m = (std::int64_t{s.rows} + kBlockM - 1) / kBlockM;
  const std::int64_t tiles_n = (std::int64_t{s.out_channels} + BN - 1) / BN;
  const auto blocks = static_cast<unsigned>(tiles_m * tiles_n);
  ladder::launch("conv2d ladder 07_forward_wgmma_bf16", forward_wgmma_kernel<BN>, dim3(blocks),
                 dim3(kThreads), dynamic_shared_bytes<BN>(), s, x, w, y);
}

}  // namespace forward_wgmma_bf16
}  // namespace

void launch_07_forward_wgmma_bf16(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w, float* y) {
  using namespace forward_wgmma_bf16;
  require_supported("07_forward_wgmma_bf16", g,
                    g.groups == 1 && g.in_channels % 8 == 0 && ladder::wgmma_available(),
                    "groups 1, C % 8 == 0, an H100 or H200 and a build for sm_90a");
  require_16_byte_operands("07_forward_wgmma_bf16", x, w, y);
  const ConvShape s = conv_shape(g);
  if (s.out_channels <= 16) {
    launch_tiles<16>(s, x, w, y);
  } else if (s.out_channels <= 32) {
    launch_tiles<32>(s, x, w, y);
  } else if (s.out_channels <= 64) {
    launch_tiles<64>(s, x, w, y);
  } else {
    launch_tiles<128>(s, x, w, y);
  }
}

}  // namespace kiln::kernels::conv2d_ladder
