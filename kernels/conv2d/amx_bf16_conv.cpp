// The AMX bfloat16 convolutions (amx_bf16_conv.hpp): the forward, laid out below; backward data, which is
// the forward of the transposed convolution; the weight gradient, laid out at its function. Compiled with
// -mamx-tile -mamx-bf16 and AVX-512; dispatch.cpp calls them only where kernels::amx_bf16_usable().
//
// The forward's tiles (AMX palette 1: eight registers of up to 16 rows of 64 bytes):
//   tmm0-3  accumulators: 16 positions x 16 output channels, float; up to four, 64 output channels a pass
//   tmm4    A: 16 positions x kc input channels of one tap, bfloat16 (kc = 32, a 64-byte row, or 16)
//   tmm5    B: kc input channels x 16 output channels of one tap, bfloat16 in AMX's pair layout: row q holds,
//           for each output channel, the two channels 2q and 2q + 1 side by side (the "VNNI" layout)
// TDPBF16PS tmm_k, tmm4, tmm5 adds A B to accumulator k: per output value, kc products summed in float.
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
// Threads split the output rows (n, oh); each configures its own tiles and releases them at the end. The
// output row's values do not depend on the split: the same bits on any thread count.
#include "kernels/conv2d/amx_bf16_conv.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/simd/float_vector_avx512.hpp"
#include "kernels/simd/intrinsics.hpp"  // <immintrin.h>, without GCC 12's false -Wuninitialized
#include "kernels/simd/transpose_16x16.hpp"

namespace kiln::kernels::amx {
namespace {

using Vector = simd::FloatVector512;

constexpr int kTileRows = 16;       // positions a tile: output columns of one row
constexpr int kBlockChannels = 16;  // output channels an accumulator holds (16 floats, 64 bytes)
constexpr int kAccumulators = 4;    // tmm0-3; A is tmm4 and B tmm5 (GCC's tile intrinsics take the
                                    // register's number as a literal, spelled out below)

// The tile configuration LDTILECFG reads: palette 1, then each register's bytes per row and rows.
struct alignas(64) TileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {};
  std::uint8_t rows[16] = {};
};

// Scratch of `count` bfloat16 from the CPU's caching allocator (as floats: two bfloat16 a float).
struct Bfloat16Scratch {
  explicit Bfloat16Scratch(std::int64_t count) : floats(batch_chunks::scratch((count + 1) / 2)) {}
  bfloat16* get() const { return reinterpret_cast<bfloat16*>(floats.get()); }
  batch_chunks::Scratch floats;
};

// The accumulator instructions name their register in the instruction: one case per accumulator.
void zero_accumulator(int k) {
  switch (k) {
    case 0:
      _tile_zero(0);
      break;
    case 1:
      _tile_zero(1);
      break;
    case 2:
      _tile_zero(2);
      break;
    default:
      _tile_zero(3);
      break;
  }
}
void multiply_into(int k) {
  switch (k) {
    case 0:
      _tile_dpbf16ps(0, 4, 5);
      break;
    case 1:
      _tile_dpbf16ps(1, 4, 5);
      break;
    case 2:
      _tile_dpbf16ps(2, 4, 5);
      break;
    default:
      _tile_dpbf16ps(3, 4, 5);
      break;
  }
}
void store_accumulator(int k, float* to) {  // 16 rows of 16 floats, 64 bytes apart
  switch (k) {
    case 0:
      _tile_stored(0, to, 64);
      break;
    case 1:
      _tile_stored(1, to, 64);
      break;
    case 2:
      _tile_stored(2, to, 64);
      break;
    default:
      _tile_stored(3, to, 64);
      break;
  }
}

// Input channels as the tiles take them: C_in rounded up to 16, a tile row's 32 bytes (the 3-channel stem
// runs as 16, 13 of them zeros).
std::int64_t padded_channels(const Conv2dGeometry& g) { return (g.in_channels + 15) / 16 * 16; }

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

// Accumulators tmm0-3 of 16 x 16 floats, A (tmm4) of 16 rows of a_bytes, B (tmm5) of b_rows rows of 16 pairs.
void configure_tiles(int a_bytes, int b_rows) {
  TileConfig config;
  for (int k = 0; k < kAccumulators; ++k) {
    config.rows[k] = kTileRows;
    config.bytes_per_row[k] = kBlockChannels * sizeof(float);
  }
  config.rows[4] = kTileRows;
  config.bytes_per_row[4] = static_cast<std::uint16_t>(a_bytes);
  config.rows[5] = static_cast<std::uint8_t>(b_rows);
  config.bytes_per_row[5] = kBlockChannels * 2 * sizeof(bfloat16);
  _tile_loadconfig(&config);
}

// out[2 j] = first[j], out[2 j + 1] = second[j] for j < 16: two runs of 16 bfloat16 (two positions' 16
// channels) interleaved into the pair layout's 64-byte row.
void interleave_pairs(const bfloat16* first, const bfloat16* second, bfloat16* out) {
  const __m512i both =
      _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(first))),
                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(second)), 1);
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                         22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  _mm512_storeu_si512(out, _mm512_permutexvar_epi16(order, both));
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
  const std::int64_t slack = (kTileRows * g.stride_w + (S - 1) * g.dilation_w + 1) * C;
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

  const std::int64_t a_stride = g.stride_w * C * static_cast<std::int64_t>(sizeof(bfloat16));
#pragma omp parallel
  {
    configure_tiles(kc * sizeof(bfloat16), kc / 2);
    alignas(64) float staged[kTileRows][kBlockChannels];

#pragma omp for schedule(static)
    for (std::int64_t output_row = 0; output_row < n_images * OH; ++output_row) {
      const std::int64_t n = output_row / OH, oh = output_row % OH;
      for (std::int64_t ow0 = 0; ow0 < OW; ow0 += kTileRows) {
        const std::int64_t columns = std::min<std::int64_t>(kTileRows, OW - ow0);
        for (std::int64_t first_block = 0; first_block < blocks; first_block += kAccumulators) {
          const int pass_blocks =
              static_cast<int>(std::min<std::int64_t>(kAccumulators, blocks - first_block));
          for (int k = 0; k < pass_blocks; ++k) zero_accumulator(k);
          for (std::int64_t r = 0; r < R; ++r) {
            const std::int64_t hp = oh * g.stride_h + r * g.dilation_h;
            for (std::int64_t s = 0; s < S; ++s) {
              const bfloat16* const a = xp + ((n * Hp + hp) * Wp + ow0 * g.stride_w + s * g.dilation_w) * C;
              const bfloat16* const b = wp + ((r * S + s) * chunks * blocks + first_block) * b_tile;
              for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
                _tile_loadd(4, a + chunk * kc, a_stride);
                for (int k = 0; k < pass_blocks; ++k) {
                  _tile_loadd(5, b + (chunk * blocks + k) * b_tile, kBlockChannels * 2 * sizeof(bfloat16));
                  multiply_into(k);
                }
              }
            }
          }
          // Each accumulator's rows are positions: 16 channels of one output position, contiguous in y.
          for (int k = 0; k < pass_blocks; ++k) {
            store_accumulator(k, &staged[0][0]);
            const std::int64_t k0 = (first_block + k) * kBlockChannels;
            const __m512 add = bias ? Vector::load(bias + k0) : Vector::zero();
            bfloat16* const out = y + ((n * OH + oh) * OW + ow0) * K + k0;
            for (std::int64_t column = 0; column < columns; ++column)
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

// gw[k][c][tap] = sum over positions p of gy[p][k] x[p + tap][c]: per tap a GEMM of gy^T [C_out, P] and
// x [P, C_in] whose reduction, the positions, runs down both operands' rows. B (x, 32 positions x 16
// channels) is the pair layout straight away: row q interleaves positions 2q and 2q + 1 (interleave_pairs).
// A (16 output channels x 32 positions) wants the positions along its rows: the same interleave of gy's rows
// makes 16 rows of 16 pairs, a 16 x 16 matrix of 32-bit pairs, and one 16 x 16 transpose of those
// (transpose_16x16, moving bits only) gives 16 rows of one channel's 32 positions. Each A tile is built once
// per block of 32 positions and reused by every tap and channel chunk.
//
// The positions are cut into chunks of whole images, as many as make about kChunkPositions, fixed by the
// shape and never by the thread count; each chunk's sums go to its own partial gradient, and the partials
// are added in chunk order and rounded once, so the result is the same on any number of threads.
void conv2d_backward_weight_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                 bfloat16* gw) {
  constexpr std::int64_t kChunkPositions = 4096, kBlock = 32;  // positions a chunk, and an A or B tile
  // C: the padded input's channels (padded_channels); the gradient has C_in.
  const std::int64_t C = padded_channels(g), C_in = g.in_channels, K = g.out_channels;
  const std::int64_t taps = g.kernel_h * g.kernel_w;
  const std::int64_t OH = g.out_height(), OW = g.out_width(), P = OH * OW;
  const std::int64_t Wp = g.in_width + 2 * g.pad_w, Hp = g.in_height + 2 * g.pad_h;
  const std::int64_t k_blocks = K / kBlockChannels, c_chunks = C / kBlockChannels;
  // A position past the chunk's last reads zeros: the slack after the padded input, at every tap's offset.
  const std::int64_t padded_count = g.batch * Hp * Wp * C;
  const std::int64_t slack = ((g.kernel_h - 1) * g.dilation_h * Wp + (g.kernel_w - 1) * g.dilation_w + 1) * C;
  const Bfloat16Scratch padded = padded_input(g, x, slack);
  const bfloat16* const xp = padded.get();
  const std::vector<bfloat16> zeros(static_cast<std::size_t>(K), bfloat16::from_bits(0));

  const std::int64_t images_per_chunk = std::max<std::int64_t>(1, kChunkPositions / P);
  const std::int64_t chunks = (g.batch + images_per_chunk - 1) / images_per_chunk;
  const std::int64_t gw_count = K * C_in * taps;
  const std::unique_ptr<float[]> partial(new float[static_cast<std::size_t>(chunks * gw_count)]);

#pragma omp parallel
  {
    configure_tiles(kBlock * sizeof(bfloat16), kBlock / 2);
    alignas(64) bfloat16 pairs[kTileRows * kBlock];  // 16 rows of 16 pairs: B, or A before its transpose
    alignas(64) float staged[kTileRows][kBlockChannels];
    std::vector<bfloat16> a_tiles;        // the chunk's A tiles: [block][k block][16][32]
    std::vector<std::int64_t> x_offsets;  // each position's input in the padded input, at tap (0, 0)

#pragma omp for schedule(static)
    for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
      const std::int64_t first_image = chunk * images_per_chunk;
      const std::int64_t positions = (std::min(g.batch, first_image + images_per_chunk) - first_image) * P;
      const std::int64_t blocks = (positions + kBlock - 1) / kBlock;
      // Walked with counters: a division per position costs more than the tile multiplies of a small layer.
      x_offsets.assign(static_cast<std::size_t>(blocks * kBlock), padded_count);
      for (std::int64_t p = 0, n = first_image, oh = 0, ow = 0; p < positions; ++p) {
        x_offsets[static_cast<std::size_t>(p)] = ((n * Hp + oh * g.stride_h) * Wp + ow * g.stride_w) * C;
        if (++ow < OW) continue;
        ow = 0;
        if (++oh < OH) continue;
        oh = 0;
        ++n;
      }
      const auto gy_row = [&](std::int64_t p) {
        return p < positions ? gy + (first_image * P + p) * K : zeros.data();
      };
      a_tiles.resize(static_cast<std::size_t>(blocks * k_blocks * kTileRows * kBlock));
      for (std::int64_t block = 0; block < blocks; ++block) {
        for (std::int64_t kb = 0; kb < k_blocks; ++kb) {
          const std::int64_t p0 = block * kBlock, k0 = kb * kBlockChannels;
          for (std::int64_t q = 0; q < kTileRows; ++q)
            interleave_pairs(gy_row(p0 + 2 * q) + k0, gy_row(p0 + 2 * q + 1) + k0, pairs + q * kBlock);
          bfloat16* const a = a_tiles.data() + (block * k_blocks + kb) * kTileRows * kBlock;
          transpose_16x16(reinterpret_cast<const float*>(pairs), kBlock / 2, reinterpret_cast<float*>(a),
                          kBlock / 2);
        }
      }

      float* const sums = partial.get() + chunk * gw_count;
      for (std::int64_t tap = 0; tap < taps; ++tap) {
        const std::int64_t tap_offset =
            (tap / g.kernel_w * g.dilation_h * Wp + tap % g.kernel_w * g.dilation_w) * C;
        for (std::int64_t cc = 0; cc < c_chunks; ++cc) {
          const std::int64_t c0 = cc * kBlockChannels;
          for (std::int64_t first_block = 0; first_block < k_blocks; first_block += kAccumulators) {
            const int pass_blocks =
                static_cast<int>(std::min<std::int64_t>(kAccumulators, k_blocks - first_block));
            for (int k = 0; k < pass_blocks; ++k) zero_accumulator(k);
            for (std::int64_t block = 0; block < blocks; ++block) {
              const std::int64_t* const offsets = x_offsets.data() + block * kBlock;
              for (std::int64_t q = 0; q < kTileRows; ++q) {
                interleave_pairs(xp + offsets[2 * q] + tap_offset + c0,
                                 xp + offsets[2 * q + 1] + tap_offset + c0, pairs + q * kBlock);
              }
              _tile_loadd(5, pairs, kBlock * sizeof(bfloat16));
              for (int k = 0; k < pass_blocks; ++k) {
                _tile_loadd(4, a_tiles.data() + (block * k_blocks + first_block + k) * kTileRows * kBlock,
                            kBlock * sizeof(bfloat16));
                multiply_into(k);
              }
            }
            // Accumulator k: rows are output channels, columns input channels, of this tap.
            for (int k = 0; k < pass_blocks; ++k) {
              store_accumulator(k, &staged[0][0]);
              const std::int64_t k0 = (first_block + k) * kBlockChannels;
              for (std::int64_t i = 0; i < kTileRows; ++i)
                for (std::int64_t j = 0; j < std::min<std::int64_t>(kBlockChannels, C_in - c0); ++j)
                  sums[((k0 + i) * C_in + c0 + j) * taps + tap] = staged[i][j];
            }
          }
        }
      }
    }
    _tile_release();
  }

  // The chunks' partial gradients, added in chunk order, rounded once.
  for (std::int64_t i = 0; i < gw_count; ++i) {
    float sum = 0.0f;
    for (std::int64_t chunk = 0; chunk < chunks; ++chunk)
      sum += partial[static_cast<std::size_t>(chunk * gw_count + i)];
    gw[i] = bfloat16(sum);
  }
}

}  // namespace kiln::kernels::amx
