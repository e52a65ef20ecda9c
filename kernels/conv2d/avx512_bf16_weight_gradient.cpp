// The weight gradient of a channels-last bfloat16 convolution on AVX512-BF16's pair dot products, summed
// over pairs of images (conv2d.hpp, direct_dot_products::conv2d_backward_weight_bf16): no im2col columns.
// Compiled with AVX-512 and AVX512-BF16; dispatch calls it only where avx512_bf16_usable().
//
// The weight gradient sums over every output position of the batch,
//
//   gw[k][c][r][s] = sum over n, oh, ow of gy[n][oh][ow][k] . x[n][oh sh - ph + r dh][ow sw - pw + s dw][c],
//
// so the pair VDPBF16PS multiplies (kernels/gemm/avx512_bf16.cpp says what the instruction computes) must be
// two terms of that sum. The forward pairs two input channels of one pixel, which lie side by side in a
// channels-last image; here the pair is the same position in images 2m and 2m + 1. That keeps every tap a
// fixed displacement (a pair of neighbouring pixels would straddle two words at every odd tap) and takes
// any C_in and C_out, odd ones and the 3-channel stems included. A chunk of image pairs is first laid out
// with the two images' values interleaved, one 32-bit word a position and channel, the low half from image
// 2m (an odd batch's last image is paired with zeros):
//
//   x_pairs  [pairs][Hp][Wp][C_in] words: padded row hp is input row hp - ph, padded column u input column
//            u - pw, zeros outside the image, so no tap tests a bound
//   gy_pairs [pairs][OH][OW][Cp] words, the output channels padded with zeros to Cp, a multiple of 16, so a
//            tile's 16 output channels are one whole-vector load
//
// A tile holds the sums of 16 output channels (the lanes) for a few (r, c, s), and sweeps every position of
// the chunk with them in registers: per output pixel it loads one vector of gy and broadcasts x words
// against it. Where a kernel row is 3 wide at dilation 1 and stride 1 or 2 (three_tap_tile), each broadcast
// word goes to every tap that reads it: at stride 1 input column u is tap s of output column u - s for
// s = 0, 1, 2, so with the last three gy vectors in registers one broadcast feeds three dot products. Other
// kernels take runs of a kernel row's consecutive words (run_tile), one broadcast a dot product.
//
// Threads take chunks; each chunk's sums go to their own buffer and are added in chunk order
// (batch_chunks::sum_over_chunks), and chunks depend only on the shape, so any thread count gives the same
// bits.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/simd/intrinsics.hpp"  // <immintrin.h>

namespace kiln::kernels::direct_dot_products {
namespace {

using Word = std::uint32_t;  // one position and channel of two images, image 2m's bfloat16 in the low half
constexpr int kLanes = 16;   // output channels a tile holds, one float vector
// A chunk's layouts stay about this size, to be read from L2 by each of its tiles' sweeps.
constexpr std::int64_t kChunkBytes = std::int64_t{512} << 10;

// The shapes of a chunk's layouts, and where a row of each starts.
struct PairLayout {
  std::int64_t in_channels, padded_channels;  // C_in; Cp, C_out rounded up to 16
  std::int64_t rows, columns;                 // Hp, Wp
  std::int64_t out_height, out_width;         // OH, OW
  explicit PairLayout(const Conv2dGeometry& g)
      : in_channels(g.in_channels),
        padded_channels((g.out_channels + kLanes - 1) / kLanes * kLanes),
        rows((g.out_height() - 1) * g.stride_h + (g.kernel_h - 1) * g.dilation_h + 1),
        columns((g.out_width() - 1) * g.stride_w + (g.kernel_w - 1) * g.dilation_w + 1),
        out_height(g.out_height()),
        out_width(g.out_width()) {}
  std::int64_t x_words() const { return rows * columns * in_channels; }
  std::int64_t gy_words() const { return out_height * out_width * padded_channels; }
  // Where padded row `row` of pair `pair` starts in x_pairs, and output row oh in gy_pairs.
  std::int64_t x_row(std::int64_t pair, std::int64_t row) const {
    return (pair * rows + row) * columns * in_channels;
  }
  std::int64_t gy_row(std::int64_t pair, std::int64_t oh) const {
    return (pair * out_height + oh) * out_width * padded_channels;
  }
};

// count values of image a and of image b (null: an odd batch's missing image, zeros) interleaved into words.
void interleave(const bfloat16* a, const bfloat16* b, std::int64_t count, Word* to) {
  for (std::int64_t i = 0; i < count; i += 16) {
    const __mmask16 lanes =
        count - i >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << (count - i)) - 1);
    const __m512i low = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes, a + i));
    const __m512i high =
        b ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes, b + i)) : _mm512_setzero_si512();
    _mm512_mask_storeu_epi32(to + i, lanes, _mm512_or_si512(low, _mm512_slli_epi32(high, 16)));
  }
}

// Images [first, first + 2 pairs) of x and gy (channels-last) into the chunk's layouts.
void lay_out_pairs(const Conv2dGeometry& g, const PairLayout& layout, const bfloat16* x, const bfloat16* gy,
                   std::int64_t first, std::int64_t pairs, Word* x_pairs, Word* gy_pairs) {
  const std::int64_t OH = g.out_height(), OW = g.out_width(), C = g.in_channels, K = g.out_channels;
  const auto zero = [](Word* to, std::int64_t words) {
    std::memset(to, 0, static_cast<std::size_t>(words) * sizeof(Word));
  };
  // Each padded row: pw zero columns, the image's columns the taps reach, zeros to the end: only the
  // padding is zeroed, not the whole layout that the values then overwrite (3-5% of ResNet's 16 -> 16).
  const std::int64_t left = std::min(g.pad_w, layout.columns);
  const std::int64_t width = std::clamp<std::int64_t>(layout.columns - g.pad_w, 0, g.in_width);
  const std::int64_t right = layout.columns - left - width;
  for (std::int64_t m = 0; m < pairs; ++m) {
    const std::int64_t n = first + 2 * m;
    const bool partnered = n + 1 < g.batch;
    const bfloat16* x_a = x + n * g.in_height * g.in_width * C;
    const bfloat16* x_b = partnered ? x_a + g.in_height * g.in_width * C : nullptr;
    for (std::int64_t row = 0; row < layout.rows; ++row) {
      Word* to = x_pairs + layout.x_row(m, row);
      const std::int64_t ih = row - g.pad_h;
      if (ih < 0 || ih >= g.in_height) {
        zero(to, layout.columns * C);
        continue;
      }
      // An input row is one run of W C values in both images.
      const std::int64_t offset = ih * g.in_width * C;
      zero(to, left * C);
      interleave(x_a + offset, x_b ? x_b + offset : nullptr, width * C, to + left * C);
      zero(to + (left + width) * C, right * C);
    }
    const bfloat16* gy_a = gy + n * OH * OW * K;
    const bfloat16* gy_b = partnered ? gy_a + OH * OW * K : nullptr;
    Word* const gy_image = gy_pairs + layout.gy_row(m, 0);
    if (K == layout.padded_channels) {  // the image is one run, as in gy
      interleave(gy_a, gy_b, OH * OW * K, gy_image);
      continue;
    }
    zero(gy_image, layout.gy_words());  // the padded channels
    for (std::int64_t p = 0; p < OH * OW; ++p)
      interleave(gy_a + p * K, gy_b ? gy_b + p * K : nullptr, K, gy_image + p * layout.padded_channels);
  }
}

// What a tile reads and where its sums go: the chunk's layouts, the block of 16 output channels, and the
// chunk's gradient gw_chunk [C_out][C_in][KH][KW].
struct TileTask {
  const Conv2dGeometry* g;
  const PairLayout* layout;
  const Word* x_pairs;
  const Word* gy_pairs;
  std::int64_t pairs, block;
  float* gw_chunk;
};

// The output rows that kernel rows [r0, r0 + rows) read inside the image for: [first, end). Outside it the
// layout holds zeros, which would add nothing.
std::pair<std::int64_t, std::int64_t> rows_inside(const Conv2dGeometry& g, std::int64_t r0,
                                                  std::int64_t rows) {
  // ih = oh sh - ph + r dh, for some r of the group, within [0, IH).
  const std::int64_t lowest = -g.pad_h + r0 * g.dilation_h, highest = lowest + (rows - 1) * g.dilation_h;
  std::int64_t first = highest >= 0 ? 0 : (-highest + g.stride_h - 1) / g.stride_h;
  std::int64_t end = g.in_height - 1 - lowest < 0 ? 0 : (g.in_height - 1 - lowest) / g.stride_h + 1;
  return {std::min(first, g.out_height()), std::min(end, g.out_height())};
}

// One tile's sums (the 16 output channels of the block, its first lanes_left real) into gw_chunk at
// (c, r, s).
void store_sums(const TileTask& t, __m512 sums, std::int64_t c, std::int64_t r, std::int64_t s) {
  const Conv2dGeometry& g = *t.g;
  const std::int64_t taps = g.kernel_h * g.kernel_w, k0 = t.block * kLanes;
  alignas(64) float lanes[kLanes];
  _mm512_store_ps(lanes, sums);
  for (std::int64_t k = k0; k < std::min(k0 + kLanes, g.out_channels); ++k)
    t.gw_chunk[(k * g.in_channels + c) * taps + r * g.kernel_w + s] = lanes[k - k0];
}

// three_tap_tile's sums: kernel rows R, input channels CB, taps 3.
template <int R, int CB>
using ThreeTapSums = __m512[R][CB][3];

// One step of three_tap_tile: input columns ow SW + p (p < SW, word u + p C of each kernel row's input)
// against gy's vectors of output columns ow - t held in window[t], for the slots t in [TFirst, TLast]. A
// row's first and last steps leave out the slots that lie outside it, whose dot products would add zeros
// (at 8x8 images a fifth of them).
template <int TFirst, int TLast, int SW, int R, int CB, int W>
[[gnu::always_inline]] inline void three_tap_step(ThreeTapSums<R, CB>& acc, const __m512bh (&window)[W],
                                                  const Word* const (&x)[R], std::int64_t u, std::int64_t C) {
  // Whether input column ow SW + p is a tap of any slot in [TFirst, TLast] (else it is not read).
  constexpr auto read = [](int p) {
    for (int w = TFirst; w <= TLast; ++w)
      if (p + w * SW < 3) return true;
    return false;
  };
#pragma GCC unroll 2
  for (int p = 0; p < SW; ++p) {
    if (!read(p)) continue;
#pragma GCC unroll 3
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int c = 0; c < CB; ++c) {
        const __m512bh pair = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[r][u + p * C + c]));
#pragma GCC unroll 3
        for (int w = TFirst; w <= TLast; ++w) {
          const int s = p + w * SW;
          if (s < 3) acc[r][c][s] = _mm512_dpbf16_ps(acc[r][c][s], window[w], pair);
        }
      }
    }
  }
}

// A step at a row's ends, slots [first, last] of the W-slot window and not all of them: entering the row
// (first 0), or leaving it (last W - 1, or with a row narrower than the window both ends at once).
template <int SW, int R, int CB, int W>
[[gnu::always_inline]] inline void three_tap_edge_step(int first, int last, ThreeTapSums<R, CB>& acc,
                                                       const __m512bh (&window)[W], const Word* const (&x)[R],
                                                       std::int64_t u, std::int64_t C) {
  if constexpr (W == 2) {
    if (first == 0) return three_tap_step<0, 0, SW>(acc, window, x, u, C);
    return three_tap_step<1, 1, SW>(acc, window, x, u, C);
  } else {
    if (first == 0 && last == 0) return three_tap_step<0, 0, SW>(acc, window, x, u, C);
    if (first == 0) return three_tap_step<0, 1, SW>(acc, window, x, u, C);
    if (first == 1 && last == 1) return three_tap_step<1, 1, SW>(acc, window, x, u, C);
    if (first == 1) return three_tap_step<1, 2, SW>(acc, window, x, u, C);
    return three_tap_step<2, 2, SW>(acc, window, x, u, C);
  }
}

// Kernel rows r0 .. r0 + R - 1 and input channels c0 .. c0 + CB - 1, their three taps each (a kernel row 3
// wide at dilation 1 and stride SW = 1 or 2): R CB 3 sums. It walks output column ow, keeping gy's vectors
// of columns ow, ow - 1, ... (`window`); input column u = ow SW + p is tap s = p + t SW of output column
// ow - t. The walk runs W - 1 steps past the row, to finish the taps of its last input columns (with the
// slots of the row's last output columns; no vector of gy is read there).
template <int R, int CB, int SW>
void three_tap_tile(const TileTask& t, std::int64_t r0, std::int64_t c0) {
  constexpr int kWindow = (3 + SW - 1) / SW;
  const Conv2dGeometry& g = *t.g;
  const PairLayout& layout = *t.layout;
  const std::int64_t C = g.in_channels, Cp = layout.padded_channels, OW = g.out_width();
  const std::int64_t entered = std::min<std::int64_t>(kWindow - 1, OW);  // the steps entering a row
  const auto [oh_first, oh_end] = rows_inside(g, r0, R);
  ThreeTapSums<R, CB> acc;
#pragma GCC unroll 3
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < CB; ++c)
#pragma GCC unroll 3
      for (int s = 0; s < 3; ++s) acc[r][c][s] = _mm512_setzero_ps();
  for (std::int64_t m = 0; m < t.pairs; ++m) {
    for (std::int64_t oh = oh_first; oh < oh_end; ++oh) {
      const Word* gy = t.gy_pairs + layout.gy_row(m, oh) + t.block * kLanes;
      const Word* x[R];
#pragma GCC unroll 3
      for (int r = 0; r < R; ++r)
        x[r] = t.x_pairs + layout.x_row(m, oh * g.stride_h + (r0 + r) * g.dilation_h) + c0;
      __m512bh window[kWindow];
      // Moves the window one output column on, to ow (past the row's end, zeros, which no step reads).
      const auto advance = [&](std::int64_t ow) {
#pragma GCC unroll 3
        for (int w = kWindow - 1; w > 0; --w) window[w] = window[w - 1];
        window[0] = ow < OW ? (__m512bh)_mm512_loadu_si512(gy + ow * Cp) : (__m512bh)_mm512_setzero_ps();
      };
      std::int64_t ow = 0;
      for (; ow < entered; ++ow) {
        advance(ow);
        three_tap_edge_step<SW>(0, static_cast<int>(ow), acc, window, x, ow * SW * C, C);
      }
      for (; ow < OW; ++ow) {
        advance(ow);
        three_tap_step<0, kWindow - 1, SW>(acc, window, x, ow * SW * C, C);
      }
      for (; ow < OW + kWindow - 1; ++ow) {
        advance(ow);
        three_tap_edge_step<SW>(static_cast<int>(ow - OW + 1),
                                static_cast<int>(std::min<std::int64_t>(kWindow - 1, ow)), acc, window, x,
                                ow * SW * C, C);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < CB; ++c)
      for (int s = 0; s < 3; ++s) store_sums(t, acc[r][c][s], c0 + c, r0 + r, s);
}

// Any kernel row: a run of CB consecutive words of the kernel row's input at one output pixel, one sum and
// one broadcast a dot product. With dilation 1 along the width the row's KW taps read KW C consecutive
// words, so a run may cross taps (a 5x5 stem's row of 15 words is one run); with more, a run stays within
// one tap's C. Word `first + j` of the run starting at tap s0 is channel (first + j) % C of tap
// s0 + (first + j) / C.
template <int CB>
void run_tile(const TileTask& t, std::int64_t r, std::int64_t s0, std::int64_t first) {
  const Conv2dGeometry& g = *t.g;
  const PairLayout& layout = *t.layout;
  const std::int64_t C = g.in_channels, Cp = layout.padded_channels, OW = g.out_width();
  const std::int64_t step = g.stride_w * C;  // words between the input pixels of neighbouring outputs
  const auto [oh_first, oh_end] = rows_inside(g, r, 1);
  __m512 acc[CB];
#pragma GCC unroll 24
  for (int j = 0; j < CB; ++j) acc[j] = _mm512_setzero_ps();
  for (std::int64_t m = 0; m < t.pairs; ++m) {
    for (std::int64_t oh = oh_first; oh < oh_end; ++oh) {
      const Word* gy = t.gy_pairs + layout.gy_row(m, oh) + t.block * kLanes;
      const Word* x =
          t.x_pairs + layout.x_row(m, oh * g.stride_h + r * g.dilation_h) + s0 * g.dilation_w * C + first;
      for (std::int64_t ow = 0; ow < OW; ++ow, gy += Cp, x += step) {
        const __m512bh gy_pair = (__m512bh)_mm512_loadu_si512(gy);
#pragma GCC unroll 24
        for (int j = 0; j < CB; ++j)
          acc[j] = _mm512_dpbf16_ps(acc[j], gy_pair, (__m512bh)_mm512_set1_epi32(static_cast<int>(x[j])));
      }
    }
  }
  for (int j = 0; j < CB; ++j) store_sums(t, acc[j], (first + j) % C, r, s0 + (first + j) / C);
}

// The tiles by channel count, indexed by CB - 1 (a layer's last channel block takes what is left).
constexpr int kThreeTapChannels = 8;      // one kernel row: 24 sums, the window and a broadcast beside them
constexpr int kThreeTapStemChannels = 3;  // all three kernel rows of a stem of up to 3 channels: 27 sums
constexpr int kRunWords = 24;             // 24 sums, the gy vector and a broadcast beside them
using ThreeTapTile = void (*)(const TileTask&, std::int64_t, std::int64_t);
using RunTile = void (*)(const TileTask&, std::int64_t, std::int64_t, std::int64_t);
template <int R, int SW, std::size_t... CB>
constexpr std::array<ThreeTapTile, sizeof...(CB)> three_tap_tiles(std::index_sequence<CB...>) {
  return {&three_tap_tile<R, static_cast<int>(CB) + 1, SW>...};
}
template <std::size_t... CB>
constexpr std::array<RunTile, sizeof...(CB)> run_tiles(std::index_sequence<CB...>) {
  return {&run_tile<static_cast<int>(CB) + 1>...};
}
template <int R, int SW>
constexpr auto kThreeTapTiles =
    three_tap_tiles<R, SW>(std::make_index_sequence<R == 1 ? kThreeTapChannels : kThreeTapStemChannels>{});
constexpr auto kRunTiles = run_tiles(std::make_index_sequence<kRunWords>{});

// The run tiles over `words` words from tap s0: as even as kRunWords allows (30 -> 15 + 15).
void run_tiles_over(const TileTask& t, std::int64_t r, std::int64_t s0, std::int64_t words) {
  const std::int64_t tiles = (words + kRunWords - 1) / kRunWords;
  for (std::int64_t i = 0, first = 0; i < tiles; ++i) {
    const std::int64_t count = (words - first) / (tiles - i);
    kRunTiles[count - 1](t, r, s0, first);
    first += count;
  }
}

// Every tile of one block of 16 output channels over a chunk: together they write each of its gw_chunk
// entries once.
void block_tiles(const TileTask& t) {
  const Conv2dGeometry& g = *t.g;
  const std::int64_t C = g.in_channels;
  const bool three_taps = g.kernel_w == 3 && g.dilation_w == 1 && (g.stride_w == 1 || g.stride_w == 2);
  if (three_taps && g.kernel_h == 3 && C <= kThreeTapStemChannels) {
    (g.stride_w == 1 ? kThreeTapTiles<3, 1> : kThreeTapTiles<3, 2>)[C - 1](t, 0, 0);
    return;
  }
  for (std::int64_t r = 0; r < g.kernel_h; ++r) {
    if (three_taps) {
      for (std::int64_t c0 = 0; c0 < C; c0 += kThreeTapChannels) {
        const std::int64_t channels = std::min<std::int64_t>(kThreeTapChannels, C - c0);
        (g.stride_w == 1 ? kThreeTapTiles<1, 1> : kThreeTapTiles<1, 2>)[channels - 1](t, r, c0);
      }
      continue;
    }
    if (g.dilation_w == 1) {
      run_tiles_over(t, r, 0, g.kernel_w * C);
    } else {
      for (std::int64_t s = 0; s < g.kernel_w; ++s) run_tiles_over(t, r, s, C);
    }
  }
}

}  // namespace

void conv2d_backward_weight_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x, float* gw) {
  const std::int64_t gw_size = g.out_channels * g.in_channels * g.kernel_h * g.kernel_w;
  if (g.batch == 0 || g.out_height() <= 0 || g.out_width() <= 0) {  // a sum of no terms
    std::fill(gw, gw + gw_size, 0.0f);
    return;
  }
  const PairLayout layout(g);
  const std::int64_t pair_words = layout.x_words() + layout.gy_words();
  const std::int64_t batch_pairs = (g.batch + 1) / 2;
  const std::int64_t pairs_per_chunk =
      std::clamp<std::int64_t>(kChunkBytes / (pair_words * std::int64_t{sizeof(Word)}), 1, batch_pairs);
  const std::int64_t chunk_count = (batch_pairs + pairs_per_chunk - 1) / pairs_per_chunk;
  const std::int64_t blocks = layout.padded_channels / kLanes;
  batch_chunks::sum_over_chunks(chunk_count, gw_size, pairs_per_chunk * pair_words, gw,
                                [&](std::int64_t chunk, float* scratch, float* gw_chunk) {
                                  const std::int64_t first_pair = chunk * pairs_per_chunk;
                                  const std::int64_t pairs =
                                      std::min(pairs_per_chunk, batch_pairs - first_pair);
                                  Word* const x_pairs = reinterpret_cast<Word*>(scratch);
                                  Word* const gy_pairs = x_pairs + pairs * layout.x_words();
                                  lay_out_pairs(g, layout, x, gy, 2 * first_pair, pairs, x_pairs, gy_pairs);
                                  for (std::int64_t block = 0; block < blocks; ++block)
                                    block_tiles({&g, &layout, x_pairs, gy_pairs, pairs, block, gw_chunk});
                                });
}

}  // namespace kiln::kernels::direct_dot_products
