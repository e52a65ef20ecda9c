// The AMX bfloat16 convolutions (amx_bf16_conv.hpp): the forward, laid out below, and backward data, which
// is the forward of the transposed convolution (the weight gradient is amx_bf16_weight_gradient.cpp).
// Compiled with -mamx-tile -mamx-bf16 and AVX-512; dispatch.cpp calls them only where
// kernels::amx_bf16_usable().
//
// The forward's tiles (amx_bf16_tiles.hpp):
//   tmm0-3  accumulators: 16 positions x 16 output channels, float: a pass's four tile rows of one block of
//           output channels, or two tile rows of two blocks
//   tmm4, 6 A: 16 positions x kc input channels of one tap, bfloat16 (kc = 32, a 64-byte row, or 16)
//   tmm5, 7 B: kc input channels x 16 output channels of one tap, in the pair layout: row q holds, for each
//           output channel, the two channels 2q and 2q + 1 side by side
// TDPBF16PS adds A B to an accumulator: per output value, kc products summed in float.
//
// A: the 16 positions are output columns ow0 .. ow0 + 15 of one output row; at tap (r, s) they read input
// columns ow * stride + s * dilation of input row oh * stride + r * dilation, each a run of C contiguous
// channels, the runs stride * C apart: one tile load with that row stride.
// Borders: the input is first copied into a zero-padded [N, H + 2 pad, W + 2 pad, C] scratch, C being C_in
// rounded up to 16 with zero channels (padded_channels), so a tap that falls outside the image reads zeros;
// a final block narrower than 16 columns computes rows past the output's edge (reading the next padded row,
// or a zeroed slack at the very end) and stores only its own.
// B: the weights are packed once per call into the pair layout, tap by tap, channel chunk by chunk, block of
// 16 output channels by block (72 KiB for a 3x3 64 -> 64 layer), and read from cache by every tile row.
//
// Threads split the tile rows (16 output columns of one output row) in groups of a pass; each configures its
// own tiles and releases them at the end. An output's sum does not depend on the split or on the tile rows
// beside it: the same bits on any thread count.
#include "kernels/conv2d/amx_bf16_conv.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/conv2d/amx_bf16_tiles.hpp"
#include "kernels/simd/float_vector_avx512.hpp"

namespace kiln::kernels::amx {
namespace {

using Vector = simd::FloatVector512;
using tiles::Bfloat16Scratch;
using tiles::kBlockChannels;
using tiles::kRows;
using tiles::padded_channels;

// The channels-last input zero-padded to [N, H + 2 pad, W + 2 pad, padded_channels], then `slack` zeros: what
// a tile row past the last position may read.
Bfloat16Scratch padded_input(const Conv2dGeometry& g, const bfloat16* x, std::int64_t slack) {
  const std::int64_t C = padded_channels(g), C_in = g.in_channels, H = g.in_height, W = g.in_width;
  const std::int64_t Hp = H + 2 * g.pad_h, Wp = W + 2 * g.pad_w, padded_count = g.batch * Hp * Wp * C;
  Bfloat16Scratch padded(padded_count + slack);
  bfloat16* const xp = padded.get();
  const auto row_bytes = [](std::int64_t elements) {
    return static_cast<std::size_t>(elements) * sizeof(bfloat16);
  };
#pragma omp parallel for schedule(static)
  for (std::int64_t image_row = 0; image_row < g.batch * Hp; ++image_row) {
    const std::int64_t n = image_row / Hp, h = image_row % Hp - g.pad_h;
    bfloat16* const to = xp + image_row * Wp * C;
    if (h < 0 || h >= H) {
      std::memset(to, 0, row_bytes(Wp * C));
      continue;
    }
    std::memset(to, 0, row_bytes(g.pad_w * C));
    const bfloat16* const from = x + (n * H + h) * W * C_in;
    if (C == C_in) {
      std::memcpy(to + g.pad_w * C, from, row_bytes(W * C));
    } else {  // each position's channels, then zeros up to the tile's 16
      for (std::int64_t w = 0; w < W; ++w) {
        bfloat16* const position = to + (g.pad_w + w) * C;
        std::memcpy(position, from + w * C_in, row_bytes(C_in));
        std::memset(position + C_in, 0, row_bytes(C - C_in));
      }
    }
    std::memset(to + (g.pad_w + W) * C, 0, row_bytes(g.pad_w * C));
  }
  std::memset(xp + padded_count, 0, row_bytes(slack));
  return padded;
}

}  // namespace

void conv2d_forward_bf16(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w, const bfloat16* bias,
                         bfloat16* y) {
  // C: the padded input's channels (padded_channels); the weights have C_in.
  const std::int64_t n_images = g.batch, C = padded_channels(g), C_in = g.in_channels, K = g.out_channels;
  const std::int64_t H = g.in_height, W = g.in_width, R = g.kernel_h, S = g.kernel_w;
  const std::int64_t OH = g.out_height(), OW = g.out_width();
  const std::int64_t Hp = H + 2 * g.pad_h, Wp = W + 2 * g.pad_w;
  const int kc = C % 32 == 0 ? 32 : 16;  // input channels a tile multiply reduces
  const std::int64_t chunks = C / kc, blocks = K / kBlockChannels;

  // The zero-padded input, and after it the slack the last block's extra rows may read.
  const std::int64_t slack = (kRows * g.stride_w + (S - 1) * g.dilation_w + 1) * C;
  const Bfloat16Scratch padded = padded_input(g, x, slack);
  const bfloat16* const xp = padded.get();

  // The weights in the pair layout: [tap][chunk][block][kc / 2][16 output channels][2].
  const std::int64_t b_tile = kc * kBlockChannels;  // bfloat16 a B tile
  const Bfloat16Scratch packed(R * S * chunks * blocks * b_tile);
  bfloat16* const wp = packed.get();
  for (std::int64_t tap = 0; tap < R * S; ++tap) {
    for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
      for (std::int64_t block = 0; block < blocks; ++block) {
        bfloat16* const tile = wp + ((tap * chunks + chunk) * blocks + block) * b_tile;
        for (std::int64_t q = 0; q < kc / 2; ++q) {
          for (std::int64_t col = 0; col < kBlockChannels; ++col) {
            for (std::int64_t e = 0; e < 2; ++e) {
              const std::int64_t k = block * kBlockChannels + col, c = chunk * kc + 2 * q + e;
              tile[(q * kBlockChannels + col) * 2 + e] =
                  c < C_in ? w[(k * C_in + c) * R * S + tap] : bfloat16::from_bits(0);
            }
          }
        }
      }
    }
  }

  // The four accumulators hold a pass's tile rows (16 output columns of one output row) times its blocks of
  // output channels: four rows of one block where there is one block (the rows' A tiles share one B), else
  // two rows of two blocks. Independent accumulators let the tile loads overlap the multiplies.
  const std::int64_t row_tiles = (OW + kRows - 1) / kRows, tile_rows = n_images * OH * row_tiles;
  const int pass_rows = blocks == 1 ? 4 : 2;
  const std::int64_t pass_blocks = std::min<std::int64_t>(blocks, 2);
  const std::int64_t a_stride = g.stride_w * C * static_cast<std::int64_t>(sizeof(bfloat16));
  const std::int64_t b_stride = kBlockChannels * 2 * static_cast<std::int64_t>(sizeof(bfloat16));
#pragma omp parallel
  {
    tiles::configure(kc * sizeof(bfloat16), kc / 2);
    alignas(64) float staged[kRows][kBlockChannels];
    std::int64_t a_base[4], out_base[4], columns[4];  // each tile row's input at tap (0, 0), output, width

#pragma omp for schedule(static)
    for (std::int64_t first_row = 0; first_row < tile_rows; first_row += pass_rows) {
      const int rows = static_cast<int>(std::min<std::int64_t>(pass_rows, tile_rows - first_row));
      for (int i = 0; i < rows; ++i) {
        const std::int64_t output_row = (first_row + i) / row_tiles,
                           ow0 = (first_row + i) % row_tiles * kRows;
        const std::int64_t n = output_row / OH, oh = output_row % OH;
        a_base[i] = ((n * Hp + oh * g.stride_h) * Wp + ow0 * g.stride_w) * C;
        out_base[i] = (output_row * OW + ow0) * K;
        columns[i] = std::min<std::int64_t>(kRows, OW - ow0);
      }
      for (std::int64_t first_block = 0; first_block < blocks; first_block += pass_blocks) {
        const int block_count = static_cast<int>(std::min(pass_blocks, blocks - first_block));
        for (int k = 0; k < rows * block_count; ++k) tiles::zero_accumulator(k);
        for (std::int64_t r = 0; r < R; ++r) {
          for (std::int64_t s = 0; s < S; ++s) {
            const std::int64_t tap_offset = (r * g.dilation_h * Wp + s * g.dilation_w) * C;
            const bfloat16* const b = wp + ((r * S + s) * chunks * blocks + first_block) * b_tile;
            for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
              tiles::multiply_block(
                  rows, a_stride, [&](int i) { return xp + a_base[i] + tap_offset + chunk * kc; },
                  block_count, b_stride, [&](int k) { return b + (chunk * blocks + k) * b_tile; });
            }
          }
        }
        // Accumulator i * block_count + k: rows are tile row i's positions, 16 channels of block k each,
        // contiguous in y.
        for (int i = 0; i < rows; ++i) {
          for (int k = 0; k < block_count; ++k) {
            tiles::store_accumulator(i * block_count + k, &staged[0][0]);
            const std::int64_t k0 = (first_block + k) * kBlockChannels;
            const __m512 add = bias ? Vector::load(bias + k0) : Vector::zero();
            bfloat16* const out = y + out_base[i] + k0;
            for (std::int64_t column = 0; column < columns[i]; ++column)
              Vector::store(out + column * K, Vector::add(Vector::load(staged[column]), add));
          }
        }
      }
    }
    _tile_release();
  }
}

void conv2d_backward_data_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w, bfloat16* gx) {
  const std::int64_t K = g.out_channels, C = g.in_channels, taps = g.kernel_h * g.kernel_w;
  const Bfloat16Scratch turned(C * K * taps);  // w' [C][K][KH][KW]: the filter turned, roles swapped
  for (std::int64_t k = 0; k < K; ++k)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t tap = 0; tap < taps; ++tap)
        turned.get()[(c * K + k) * taps + (taps - 1 - tap)] = w[(k * C + c) * taps + tap];
  conv2d_forward_bf16(transposed_convolution(g), gy, turned.get(), nullptr, gx);
}

}  // namespace kiln::kernels::amx
