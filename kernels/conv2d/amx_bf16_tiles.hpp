// The AMX tile plumbing the bfloat16 convolutions share (amx_bf16_conv.cpp, amx_bf16_weight_gradient.cpp):
// the tile configuration, the accumulator instructions, the pair interleave. Tile intrinsics inline: include
// this only from the amx_*.cpp files, which CMake compiles with -mamx-tile -mamx-bf16 and AVX-512.
//
// The registers, as both kernels configure them (AMX palette 1: eight registers of up to 16 rows of 64
// bytes):
//   tmm0-3  accumulators: 16 rows x 16 columns of float
//   tmm4    A: 16 rows of bfloat16, up to 32 a row, the sum's reduction along the row
//   tmm5    B: up to 16 rows of 16 pairs of bfloat16 (the "VNNI" pair layout: row q holds, for each of the
//           16 columns, reduction indices 2q and 2q + 1 side by side)
//   tmm6    a second A, tmm7 a second B, configured as tmm4 and tmm5
// TDPBF16PS tmm_k, tmm4, tmm5 adds A B to accumulator k, each output's products summed in float.
//
// Tile registers are not renamed: a load into tmm4 waits for every multiply still reading tmm4, and a
// multiply into tmm_k for the one before it. A loop of load A, load B, multiply into one accumulator runs
// one step at a time (about 70 cycles a step for the weight gradient's loop, where a multiply alone issues
// every 16); the second A and B and four accumulators in flight let loads overlap multiplies.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/bfloat16.hpp"
#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/simd/float_vector_avx512.hpp"
#include "kernels/simd/intrinsics.hpp"  // <immintrin.h>, without GCC 12's false -Wuninitialized
#include "kernels/simd/transpose_16x16.hpp"

namespace kiln::kernels::amx::tiles {

inline constexpr int kRows = 16;           // rows a tile: positions, or output channels
inline constexpr int kBlockChannels = 16;  // columns an accumulator holds (16 floats, 64 bytes)
inline constexpr int kAccumulators = 4;    // tmm0-3; A is tmm4 and B tmm5 (GCC's tile intrinsics take the
                                           // register's number as a literal, spelled out below)

// The tile configuration LDTILECFG reads: palette 1, then each register's bytes per row and rows.
struct alignas(64) TileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {};
  std::uint8_t rows[16] = {};
};

// Accumulators tmm0-3 of 16 x 16 floats, A (tmm4, tmm6) of 16 rows of a_bytes, B (tmm5, tmm7) of b_rows rows
// of 16 pairs.
inline void configure(int a_bytes, int b_rows) {
  TileConfig config;
  for (int k = 0; k < kAccumulators; ++k) {
    config.rows[k] = kRows;
    config.bytes_per_row[k] = kBlockChannels * sizeof(float);
  }
  for (const int a : {4, 6}) {
    config.rows[a] = kRows;
    config.bytes_per_row[a] = static_cast<std::uint16_t>(a_bytes);
  }
  for (const int b : {5, 7}) {
    config.rows[b] = static_cast<std::uint8_t>(b_rows);
    config.bytes_per_row[b] = kBlockChannels * 2 * sizeof(bfloat16);
  }
  // GCC 12's _tile_loadconfig tells the compiler it reads only the first 8 bytes of the configuration (its
  // asm operand is *(const void**)config), so stores to the rest may be dropped as dead: once inlined
  // differently, the rows' byte counts never reached memory and LDTILECFG faulted on the zeros. This empty
  // asm reads the whole struct.
  asm volatile("" : : "m"(config));
  _tile_loadconfig(&config);
}

// The accumulator instructions name their register in the instruction: one case per accumulator.
inline void zero_accumulator(int k) {
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
// Accumulator k += A B, A being tmm4 or tmm6 (second_a), B tmm5 or tmm7 (second_b).
inline void multiply_into(int k, bool second_a = false, bool second_b = false) {
#define KILN_AMX_MULTIPLY_CASES(k)             \
  case 4 * (k):                                \
    _tile_dpbf16ps(k, 4, 5);                   \
    break;                                     \
  case 4 * (k) + 1:                            \
    _tile_dpbf16ps(k, 4, 7);                   \
    break;                                     \
  case 4 * (k) + 2:                            \
    _tile_dpbf16ps(k, 6, 5);                   \
    break;                                     \
  case 4 * (k) + 3:                            \
    _tile_dpbf16ps(k, 6, 7);                   \
    break;
  switch (4 * k + 2 * second_a + second_b) {
    KILN_AMX_MULTIPLY_CASES(0)
    KILN_AMX_MULTIPLY_CASES(1)
    KILN_AMX_MULTIPLY_CASES(2)
    KILN_AMX_MULTIPLY_CASES(3)
    default:
      break;
  }
#undef KILN_AMX_MULTIPLY_CASES
}
// Loads 16 rows `stride` bytes apart into A (tmm4, or tmm6: second) or B (tmm5, or tmm7).
inline void load_a(const bfloat16* rows, std::int64_t stride, bool second = false) {
  if (second) {
    _tile_loadd(6, rows, stride);
  } else {
    _tile_loadd(4, rows, stride);
  }
}
inline void load_b(const bfloat16* rows, std::int64_t stride, bool second = false) {
  if (second) {
    _tile_loadd(7, rows, stride);
  } else {
    _tile_loadd(5, rows, stride);
  }
}
// Accumulator k = 16 rows of 16 floats from `from`, rows `stride` bytes apart.
inline void load_accumulator(int k, const float* from, std::int64_t stride) {
  switch (k) {
    case 0:
      _tile_loadd(0, from, stride);
      break;
    case 1:
      _tile_loadd(1, from, stride);
      break;
    case 2:
      _tile_loadd(2, from, stride);
      break;
    default:
      _tile_loadd(3, from, stride);
      break;
  }
}
// Accumulator k's 16 rows of 16 floats to `to`, rows `stride` bytes apart.
inline void store_accumulator(int k, float* to, std::int64_t stride = kBlockChannels * sizeof(float)) {
  switch (k) {
    case 0:
      _tile_stored(0, to, stride);
      break;
    case 1:
      _tile_stored(1, to, stride);
      break;
    case 2:
      _tile_stored(2, to, stride);
      break;
    default:
      _tile_stored(3, to, stride);
      break;
  }
}

// Rows [first, last) of accumulator k, each plus bias[0, 16) (none where null), rounded to bfloat16 at
// out + row * step: a convolution's 16 positions by 16 output channels (the forwards' and backward data's
// epilogue). Accumulating (backward data into a gradient so far), each rounded row is added to out's values
// and rounded again: the bits of storing it, then adding the two bfloat16 tensors.
inline void store_rounded(int k, const bfloat16* bias, bfloat16* out, std::int64_t step, std::int64_t first,
                          std::int64_t last, bool accumulate = false) {
  using Vector = simd::FloatVector512;
  alignas(64) float rows[kRows][kBlockChannels];
  store_accumulator(k, &rows[0][0]);
  const __m512 add = bias ? Vector::load(bias) : Vector::zero();
  for (std::int64_t row = first; row < last; ++row) {
    bfloat16* const to = out + row * step;
    const __m512 value = Vector::add(Vector::load(rows[row]), add);
    if (accumulate) {
      Vector::store(to, Vector::add(Vector::load(to), Vector::widen(Vector::narrow(value))));
    } else {
      Vector::store(to, value);
    }
  }
}

// Accumulator i * b_count + j += A_i B_j for i < a_count, j < b_count (a_count x b_count <= 4 accumulators):
// the As through tmm4 and tmm6, the Bs through tmm5 and tmm7. Up to two of a kind are loaded once; three or
// four take turns in the two registers. a_tile(i) and b_tile(j) give each tile's first row.
template <typename ATile, typename BTile>
inline void multiply_block(int a_count, std::int64_t a_stride, ATile a_tile, int b_count, std::int64_t b_stride,
                           BTile b_tile) {
  const bool a_turns = a_count > 2, b_turns = b_count > 2;
  if (!b_turns)
    for (int j = 0; j < b_count; ++j) load_b(b_tile(j), b_stride, j == 1);
  if (!a_turns)
    for (int i = 0; i < a_count; ++i) load_a(a_tile(i), a_stride, i == 1);
  for (int i = 0; i < a_count; ++i) {
    if (a_turns) load_a(a_tile(i), a_stride, i % 2 == 1);
    for (int j = 0; j < b_count; ++j) {
      if (b_turns) load_b(b_tile(j), b_stride, j % 2 == 1);
      multiply_into(i * b_count + j, i % 2 == 1, j % 2 == 1);
    }
  }
}

// A weight gradient's pass: A tiles (blocks of 16 output channels) [a_first, a_first + a_count) by B tiles
// [b_first, b_first + b_count), accumulator i * b_count + j holding A block i by B block j, and the passes
// that cover a_blocks by b_blocks: two by two, or four by one where one side has a single block (its four
// accumulators then share that side's tile).
struct BlockPass {
  std::int64_t a_first, b_first;
  int a_count, b_count;
};
inline std::vector<BlockPass> block_passes(std::int64_t a_blocks, std::int64_t b_blocks) {
  const std::int64_t a = std::min<std::int64_t>(a_blocks, b_blocks == 1 ? kAccumulators : 2);
  const std::int64_t b = std::min<std::int64_t>(b_blocks, kAccumulators / a);
  std::vector<BlockPass> all;
  for (std::int64_t a_first = 0; a_first < a_blocks; a_first += a)
    for (std::int64_t b_first = 0; b_first < b_blocks; b_first += b)
      all.push_back({a_first, b_first, static_cast<int>(std::min(a, a_blocks - a_first)),
                     static_cast<int>(std::min(b, b_blocks - b_first))});
  return all;
}

// out[2 j] = first[j], out[2 j + 1] = second[j] for j < 16: two runs of 16 bfloat16 (two positions' 16
// channels) interleaved into the pair layout's 64-byte row.
inline void interleave_pairs(const bfloat16* first, const bfloat16* second, bfloat16* out) {
  const __m512i both =
      _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(first))),
                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(second)), 1);
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                         22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  _mm512_storeu_si512(out, _mm512_permutexvar_epi16(order, both));
}

// A weight gradient's A tile, 16 channels x 32 positions (the reduction along its rows), from 32 positions'
// channel rows: channels c0 .. c0 + 15 of rows[p]. Two positions' channels interleaved in pairs make 16 rows
// of 16 pairs; one 16 x 16 transpose of those 32-bit pairs (moving bits only) gives 16 rows of one channel's
// 32 positions.
inline void transposed_tile(const bfloat16* const (&rows)[32], std::int64_t c0, bfloat16* tile) {
  alignas(64) bfloat16 pairs[kRows * 32];
  for (int q = 0; q < kRows; ++q) interleave_pairs(rows[2 * q] + c0, rows[2 * q + 1] + c0, pairs + q * 32);
  transpose_16x16(reinterpret_cast<const float*>(pairs), kRows, reinterpret_cast<float*>(tile), kRows);
}

// Channels as the tiles take them: rounded up to 16 with zeros (a tile row of 16 bfloat16 is 32 bytes; the
// 3-channel stem runs as 16, 13 of them zeros).
inline std::int64_t padded_channels(std::int64_t channels) { return (channels + 15) / 16 * 16; }

// One position's channels as the tiles take them: to[0, C) = from's C_in channels, then zeros (C = C_in
// rounded up to 16). Masked loads: nothing past from's C_in is read.
inline void copy_padded_channels(const bfloat16* from, std::int64_t C_in, std::int64_t C, bfloat16* to) {
  for (std::int64_t c0 = 0; c0 < C; c0 += kBlockChannels) {
    const std::int64_t valid = std::clamp<std::int64_t>(C_in - c0, 0, kBlockChannels);
    const auto lanes = static_cast<__mmask16>((1u << valid) - 1);
    const __m256i values = valid > 0 ? _mm256_maskz_loadu_epi16(lanes, from + c0) : _mm256_setzero_si256();
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(to + c0), values);
  }
}

// Scratch of `count` bfloat16 from the CPU's caching allocator (as floats: two bfloat16 a float).
struct Bfloat16Scratch {
  explicit Bfloat16Scratch(std::int64_t count) : floats(cpu_scratch((count + 1) / 2)) {}
  bfloat16* get() const { return reinterpret_cast<bfloat16*>(floats.get()); }
  CpuScratch floats;
};

}  // namespace kiln::kernels::amx::tiles
