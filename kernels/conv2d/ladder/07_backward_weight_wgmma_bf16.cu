// Convolution ladder, step 07 (backward weight): gw = d loss / d w on Hopper's warpgroup multiply (wgmma),
// both operands MN-major ("transposed"), read by the tensor cores from 128-byte-swizzled shared memory, with
// split-K over the batch's positions. Built for sm_90a (H100, H200); elsewhere the step refuses
// (kernels/ladder/hopper.hpp).
//
// The GEMM view, turned around. With gy [N, P, Q, K], x [N, H, W, C] bfloat16 and gw [K, R, S, C] float, step
// 05 computed gw[k, j] = sum over positions i of gy[i, k] x_i[j], j = (r, s, c) < R*S*C. wgmma's tile is 64
// rows tall, and K, the output channels, is 16 or 32 in most of a CIFAR ResNet: as rows it would leave half
// to three quarters of every instruction idle. So this step computes the transpose,
//   gw^T[j, k] = sum over i < N*P*Q of A[j, i] * B[i, k]
//   A[j, i] = x[n, p*sh - ph + r*dh, q*sw - pw + s*dw, c]     i = (n, p, q); zero in the padding
//   B[i, k] = gy[i, k]: gy is the row-major [N*P*Q, K] matrix
// with the R*S*C columns (144 to 576 for a CIFAR ResNet) as rows and K as wgmma's N, which may be as small
// as 8. Both operands arrive with the reduction index i outermost: x gathered at a position is a run of
// channels (j contiguous), gy's row is a run of k. In wgmma's terms both are MN-major, its "transposed"
// operands: a shared line is one position i and 64 j (A) or 64 k (B), a 64-wide column is a stack of 8-line
// atoms along i, 1024 bytes apart, and the next 64-wide column starts 8 KiB on (wgmma.cuh). No transposing
// copy anywhere. The epilogue writes D[j][k] to gw[k][j].
//
// What changes from step 05: the instruction (the forward step 07 says what wgmma changes), the orientation
// above, and BK = 64 positions per stage.
//
// Split-K, as step 05: the N*P*Q positions are cut into `splits` chunks of `chunk` positions (a multiple of
// 64); block (tile, z) computes its tile over chunk z into partials[z] (float scratch, splits x K x R*S*C),
// and sum_splits_kernel adds the partials in a fixed order (deterministic, no atomics). About four blocks per
// multiprocessor, no chunk under 512 positions; with one split the kernel writes gw directly.
//
// Tiling. A warpgroup computes a 128 x BN tile of gw^T: 128 columns j (two wgmma of 64 rows), BN = 16, 32,
// 64 or 128 channels k (the smallest that holds K, up to 128). Per stage: A, 64 positions x 128 j, two
// 64-wide columns (16 KiB); B, 64 positions x BN k, one or two columns (8 or 16 KiB); 4 stages: 96 KiB, or
// 128 KiB for BN = 128, plus 1 KiB of alignment slack. The grid is (tiles, splits), block x = tile_j *
// tiles_k
// + tile_k.
//
// Copies. A (x): thread t copies chunk t % 16 of the tile's 128 columns (8 channels of one tap, decoded once,
// before the loop) for the positions t / 16 + 8 u (u < 8), each stepped like an odometer, +64 positions per
// tile ((dn, dp, dq) from the host, each digit carrying at most once): no division in the loop. B (gy): the
// 64 lines hold BN / 8 chunks each; thread t copies chunk t % (BN / 8) of lines t / (BN / 8) + (128 /
// (BN / 8)) u. A position past the chunk, a tap in the padding, a column past R*S*C and a channel past K are
// zero-filled (cp.async with source size 0).
//
// Pipeline: the forward step 07's (cp_async_wait<2>, the proxy fence, __syncthreads; issue and commit the
// wgmma; copy tile t + 3 into tile t - 1's stage; wgmma_wait<0>).
//
// The accumulators (wgmma.cuh): acc[h][i] is D(j = 64 h + 16 warp + group + 8 ((i / 2) % 2), k = 8 (i / 4) +
// 2 quad + i % 2) of the tile, stored to gw[k][j] one float at a time, predicated on j < R*S*C and k < K:
// the eight groups of a warp write 8 consecutive j of one k, 32 bytes.
#include <algorithm>
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/conv2d/ladder/split_k.cuh"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/hopper.hpp"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/wgmma.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace backward_weight_wgmma_bf16 {  // this step's names (its ladder compiles as one unit)

using ladder::cp_async_16;
using ladder::cp_async_commit;
using ladder::cp_async_wait;
using ladder::fence_proxy_async_shared;
using ladder::first_swizzle_atom;
using ladder::kSwizzleAtomBytes;
using ladder::Major;
using ladder::mn_major_128b_descriptor;
using ladder::swizzled_128b;
using ladder::wgmma_bf16;
using ladder::wgmma_commit_group;
using ladder::wgmma_fence;
using ladder::wgmma_wait;

constexpr int kThreads = 128;                             // one warpgroup
constexpr int kBlockM = 128;                              // columns j of gw per tile: two wgmma of 64 rows
constexpr int kBlockK = 64;                               // positions per stage
constexpr int kStages = 4;                                // tiles in flight
constexpr int kLineBytes = 128;                           // 64 bfloat16
constexpr int kChunksPerLine = 8;                         // 16-byte copies per line
constexpr int kColumnBytes = kBlockK * kLineBytes;        // 8 KiB: 64 positions x 64 j (or k)
constexpr int kATileBytes = kBlockM / 64 * kColumnBytes;  // 16 KiB
constexpr int kAChunks = kBlockM / 8;                     // 16 chunks of 8 j per position
constexpr int kALinesPerPass = kThreads / kAChunks;       // 8
constexpr int kAPasses = kBlockK / kALinesPerPass;        // 8 positions per thread per tile

template <int BN>
constexpr int b_tile_bytes() {
  return (BN + 63) / 64 * kColumnBytes;
}
template <int BN>
constexpr int stage_bytes() {
  return kATileBytes + b_tile_bytes<BN>();
}
template <int BN>
constexpr int dynamic_shared_bytes() {
  return kStages * stage_bytes<BN>() + kSwizzleAtomBytes;  // the slack the alignment may take
}

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
template <int BN>
__global__ void __launch_bounds__(kThreads, 1)
    backward_weight_wgmma_kernel(ConvShape g, const bfloat16* __restrict__ gy, const bfloat16* __restrict__ x,
                                 float* __restrict__ out) {
  constexpr int kChunksB = BN / 8;                     // chunks of a B line this tile uses: 2 to 16
  constexpr int kLinesPerPassB = kThreads / kChunksB;  // 64 to 8
  constexpr int kPassesB = kBlockK / kLinesPerPassB;   // 1 to 8
  static_assert(kBlockK % kLinesPerPassB == 0, "whole copy passes for B");
  static_assert(stage_bytes<BN>() % kSwizzleAtomBytes == 0, "every tile of every stage starts on 1024 bytes");

  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const tiles = first_swizzle_atom(shared);  // the launch asked for the slack
  const auto a_tile = [&](int stage) { return tiles + stage * stage_bytes<BN>(); };
  const auto b_tile = [&](int stage) { return tiles + stage * stage_bytes<BN>() + kATileBytes; };

  const int tiles_k = (g.out_channels - 1) / BN + 1;
  const int k0 = static_cast<int>(blockIdx.x) % tiles_k * BN;
  const int j0 = static_cast<int>(blockIdx.x) / tiles_k * kBlockM;
  // Offsets inside the tile are compared with what is left of gw, so no index ever passes K or R*S*C.
  const int channels_left = g.out_channels - k0, columns_left = g.columns - j0;  // >= 1
  const int begin = static_cast<int>(blockIdx.y) * g.chunk;                      // < N*P*Q
  const int length = min(g.chunk, g.positions - begin);                          // >= 1
  const int tid = static_cast<int>(threadIdx.x);

  // ---- A's column, once: the tap (r, s) and channel c of the chunk this thread copies ----
  const int a_chunk =
      tid % kAChunks;  // 8 j from j0 + 8 a_chunk, in line chunk a_chunk % 8 of column a_chunk / 8
  const int a_column_offset = a_chunk / kChunksPerLine * kColumnBytes;
  int col_c = 0, col_ih = 0, col_iw = 0;
  const bool column_inside = 8 * a_chunk < columns_left;  // 8 channels all inside or all outside: C % 8 == 0
  if (column_inside) {
    const int j = j0 + 8 * a_chunk, rs = j / g.channels;
    col_c = j % g.channels;
    col_ih = rs / g.kernel_w * g.dilation_h - g.pad_h;  // ih = p * sh + col_ih
    col_iw = rs % g.kernel_w * g.dilation_w - g.pad_w;  // iw = q * sw + col_iw
  }
  // ---- A's lines, once: the position (n, p, q) of lines a_line + 8 u of the next tile ----
  const int a_line = tid / kAChunks;
  int row_left[kAPasses], row_n[kAPasses], row_p[kAPasses], row_q[kAPasses];  // row_left > 0: in the chunk
#pragma unroll
  for (int u = 0; u < kAPasses; ++u) {
    const int line = a_line + u * kALinesPerPass;
    row_left[u] = length - line;
    row_n[u] = 0;
    row_p[u] = 0;
    row_q[u] = 0;
    if (row_left[u] > 0) {
      const int i = begin + line, np = i / g.out_w;
      row_q[u] = i % g.out_w;
      row_p[u] = np % g.out_h;
      row_n[u] = np / g.out_h;
    }
  }
  // ---- B: this thread copies chunk b_chunk of lines b_line + kLinesPerPassB u ----
  const int b_line = tid / kChunksB, b_chunk = tid % kChunksB;
  const int b_column_offset = b_chunk / kChunksPerLine * kColumnBytes;
  const bool b_chunk_inside = 8 * b_chunk < channels_left;  // K % 8 == 0
  int tile_start = begin, tile_left = length;  // the next tile's first position, and the chunk from there on

  // Issues the copies of the next tile into buffer `stage` and moves every position on by 64.
  const auto copy_tile = [&](int stage) {
    unsigned char* const a = a_tile(stage) + a_column_offset;
    unsigned char* const b = b_tile(stage) + b_column_offset;
#pragma unroll
    for (int u = 0; u < kAPasses; ++u) {
      const int ih = row_p[u] * g.stride_h + col_ih, iw = row_q[u] * g.stride_w + col_iw;
      const bool inside =
          column_inside && row_left[u] > 0 && ih >= 0 && ih < g.height && iw >= 0 && iw < g.width;
      // The address is formed only inside x (then n < N); a zero-fill names x itself.
      const bfloat16* source =
          inside ? x + (((row_n[u] * g.height + ih) * g.width + iw) * g.channels + col_c) : x;
      cp_async_16(a + swizzled_128b(a_line + u * kALinesPerPass, a_chunk % kChunksPerLine), source, inside);
    }
#pragma unroll
    for (int u = 0; u < kPassesB; ++u) {
      const int line = b_line + u * kLinesPerPassB;
      const bool inside = b_chunk_inside && line < tile_left;
      // The address is formed only inside gy; a zero-fill names gy itself (valid, never read).
      const bfloat16* source = inside ? gy + ((tile_start + line) * g.out_channels + k0 + 8 * b_chunk) : gy;
      cp_async_16(b + swizzled_128b(line, b_chunk % kChunksPerLine), source, inside);
    }
    // The next tile is 64 positions on: add (dn, dp, dq) to each line, each digit carrying at most once.
    tile_start += kBlockK;
    tile_left -= kBlockK;
#pragma unroll
    for (int u = 0; u < kAPasses; ++u) {
      row_left[u] -= kBlockK;
      row_q[u] += g.step_q;
      if (row_q[u] >= g.out_w) {
        row_q[u] -= g.out_w;
        ++row_p[u];
      }
      row_p[u] += g.step_p;
      if (row_p[u] >= g.out_h) {
        row_p[u] -= g.out_h;
        ++row_n[u];
      }
      row_n[u] += g.step_n;
    }
  };

  // ---- the pipeline ----
  const int k_tiles = (length - 1) / kBlockK + 1;
#pragma unroll
  for (int t = 0; t < kStages - 1; ++t) {
    if (t < k_tiles) copy_tile(t);
    cp_async_commit();  // an empty group when there is no tile t: the counting stays uniform
  }

  float acc[2][BN / 2] = {};  // columns j0 .. j0 + 63 and j0 + 64 .. j0 + 127 of gw, as rows of gw^T

  for (int t = 0; t < k_tiles; ++t) {
    cp_async_wait<kStages - 2>();  // this thread's copies of tile t have landed...
    fence_proxy_async_shared();    // ...and are ordered before the tensor cores' reads...
    __syncthreads();  // ...and so are everyone's; everyone has waited for iteration t - 1's wgmma
    const int stage = t % kStages;
    const unsigned char* const a = a_tile(stage);
    const unsigned char* const b = b_tile(stage);
    wgmma_fence(acc);
#pragma unroll
    for (int slice = 0; slice < kBlockK / 16; ++slice) {
      // Slice s: 16 positions, two atoms (2048 bytes) into every column of A and B.
      const std::uint64_t b_slice = mn_major_128b_descriptor(b + 2048 * slice, kColumnBytes);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const std::uint64_t a_slice =
            mn_major_128b_descriptor(a + h * kColumnBytes + 2048 * slice, kColumnBytes);
        wgmma_bf16<BN, Major::MN, Major::MN>(acc[h], a_slice, b_slice, true);
      }
    }
    wgmma_commit_group();
    if (t + kStages - 1 < k_tiles) copy_tile((t + kStages - 1) % kStages);  // into tile t - 1's buffer
    cp_async_commit();
    wgmma_wait<0>(acc);
  }
  // What is still pending are empty copy groups: no copy outlives the loop.

  // ---- the tile of gw, from gw^T's accumulators ----
  float* const out_split = out + static_cast<std::int64_t>(blockIdx.y) * g.out_channels * g.columns;
  const int warp = tid / 32, lane = tid % 32;
  const int group = lane / 4, quad = lane % 4;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) {
      const int j = 64 * h + 16 * warp + group + 8 * ((i / 2) % 2);
      const int k = 8 * (i / 4) + 2 * quad + i % 2;
      if (j >= columns_left || k >= channels_left) continue;
      out_split[(k0 + k) * g.columns + j0 + j] = acc[h][i];  // < K * R*S*C < 2^31
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

template <int BN>
void launch_tiles(ConvShape s, const bfloat16* gy, const bfloat16* x, float* gw) {
  constexpr const char* kName = "conv2d ladder 07_backward_weight_wgmma_bf16";
  auto* const kernel = backward_weight_wgmma_kernel<BN>;
  // Every tile holds at least one element of gw (< 2^31 of them): the count fits gridDim.x.
  const std::int64_t tiles = ((s.columns + kBlockM - 1) / kBlockM) * ((s.out_channels + BN - 1) / BN);
  run_split_k("conv2d ladder 07_backward_weight_wgmma_bf16 (sum of splits)", tiles, s.positions, kBlockK,
              std::int64_t{s.out_channels} * s.columns, gw, [&](dim3 grid, int chunk, float* out) {
                s.chunk = chunk;
                ladder::launch(kName, kernel, grid, dim3(kThreads), dynamic_shared_bytes<BN>(), s, gy, x,
                               out);
              });
}

}  // namespace backward_weight_wgmma_bf16
}  // namespace

void launch_07_backward_weight_wgmma_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                          float* gw) {
  using namespace backward_weight_wgmma_bf16;
  require_supported(
      "07_backward_weight_wgmma_bf16", g,
      g.groups == 1 && g.in_channels % 8 == 0 && g.out_channels % 8 == 0 && ladder::wgmma_available(),
      "groups 1, C % 8 == 0, K % 8 == 0, an H100 or H200 and a build for sm_90a");
  require_16_byte_operands("07_backward_weight_wgmma_bf16", gy, x, gw);
  const ConvShape s = conv_shape(g);
  if (s.out_channels <= 16) {
    launch_tiles<16>(s, gy, x, gw);
  } else if (s.out_channels <= 32) {
    launch_tiles<32>(s, gy, x, gw);
  } else if (s.out_channels <= 64) {
    launch_tiles<64>(s, gy, x, gw);
  } else {
    launch_tiles<128>(s, gy, x, gw);
  }
}

}  // namespace kiln::kernels::conv2d_ladder
