// Channels-last bfloat16 convolution read straight from the activations by AVX512-BF16's pair dot products
// (conv2d.hpp, direct_dot_products): no im2col columns, no packed copy of the input. Compiled with AVX-512
// and AVX512-BF16; dispatch calls it only where avx512_bf16_usable().
//
// In a channels-last image the input channels of one pixel lie side by side, so the pair of channels
// (2q, 2q + 1) of input pixel (ih, iw) is already one 32-bit word of x, the A operand of VDPBF16PS
// (kernels/gemm/avx512_bf16.cpp says what the instruction computes). One output tile is MR pixels of an
// output row by 16 J output channels, MR x J float accumulators; for each tap (r, s) and channel pair q it
// broadcasts one word per pixel and multiplies it against J vectors of the weights:
//
//   acc[i][j] += x[n][ih(r)][(ow0 + i) sw - pw + s dw][2q, 2q + 1] . w_pairs[r, s][q][16 j .. 16 j + 15]
//
//   w_pairs [KH * KW][blocks][ceil(C_in / 2)][16 J] words:
//           word (tap, b, q, k) = w[16 J b + k][2q, 2q + 1][tap],
//           the output channels past C_out zero (their lanes are never stored)
//
// An odd C_in (the 3-channel stems) has a last pair whose upper channel is zero, in the weights and in the
// input's layout alike (below), so it adds nothing: a stem takes 2 pairs for its 3 channels.
//
// Neighbouring taps of a kernel row read overlapping pixels: where the row is 3 wide at dilation 1 and
// stride 1 or 2 (three_tap_tile), each broadcast word goes to every tap that reads it, three dot products a
// broadcast at stride 1.
//
// The weights of a block, KH KW ceil(C_in / 2) x 16 J words (36 KiB for 64 -> 64 at J = 2), stay in L1 and L2
// while the tiles of a row pass over them. The input is read through a copy: a task (a band of one image's
// output rows) first lays out the input rows the band reads, pair-major and split by phase of the stride
// (BandLayout), with zeros for the padding. A tap's pixels are then consecutive words at fixed
// displacements, so the tile's loop holds one address register (reading x in place takes one a pixel, more
// than x86 has: GCC spilled them) and tests no bounds (a kernel row above or below the image is skipped: its
// taps add nothing). Each input row is laid out once a band, not once for each kernel row that reads it.

// Backward data at stride 1 is the same forward over gy, through the kernel flipped in both axes with C_in
// and C_out swapped (conv2d.hpp, transposed_convolution); at stride 2 and more, one such forward for each
// stride phase of gx, through the taps of that phase (backward_data_by_phase, below). Threads take bands of
// output rows: every output is summed by one tile in the same order (taps, then channel pairs), so any
// thread count gives the same bits.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/conv2d/algorithm.hpp"
#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/ladder/stride_phases.hpp"
#include "kernels/cpu_scratch.hpp"
#include "kernels/parallel.hpp"
#include "kernels/simd/float_vector_avx512.hpp"
#include "kernels/simd/transpose_8x8.hpp"

namespace kiln::kernels::direct_dot_products {
namespace {

using Vector = simd::FloatVector512;
using Word = std::uint32_t;  // a pair of bfloat16, the lower channel in the low half

// Tiles: J = 2 (32 output channels) takes up to 12 pixels, 24 accumulators; J = 1 (layers of at most 16
// output channels) up to 24. Both leave registers for the weights and the broadcast word.
template <int J>
constexpr int kMaxPixels = J == 2 ? 12 : 24;
// A band of output rows per task: about this many multiply-adds, so scheduling costs little beside it.
constexpr std::int64_t kBandMultiplyAdds = std::int64_t{1} << 21;

// Channel pairs a pixel holds: with an odd C_in the last pair's upper half is zero.
std::int64_t pairs_of(const Conv2dGeometry& g) { return (g.in_channels + 1) / 2; }

// w [C_out, C_in, KH, KW] -> w_pairs as at the top. `flip`: the kernel of the transposed convolution g,
// read from the forward's w [C_in, C_out, KH, KW] (g's sides swapped) with the taps in reverse order.
void pack_weights(const Conv2dGeometry& g, int j_vectors, const bfloat16* w, bool flip, Word* w_pairs) {
  const std::int64_t taps = g.kernel_h * g.kernel_w, pairs = pairs_of(g), lanes = 16 * j_vectors;
  const std::int64_t blocks = (g.out_channels + lanes - 1) / lanes;
  // Where w holds (output channel k, input channel c)'s taps, and how far apart input channels are.
  const std::int64_t k_stride = flip ? taps : g.in_channels * taps,
                     c_stride = flip ? g.out_channels * taps : taps;
  std::memset(w_pairs, 0, static_cast<std::size_t>(taps * blocks * pairs * lanes) * sizeof(Word));
  for (std::int64_t k = 0; k < g.out_channels; ++k) {
    Word* const lane_words = w_pairs + (k / lanes * pairs) * lanes + k % lanes;
    for (std::int64_t q = 0; q < pairs; ++q) {
      const bfloat16* even = w + k * k_stride + 2 * q * c_stride;
      const bfloat16* odd = 2 * q + 1 < g.in_channels ? even + c_stride : nullptr;
      for (std::int64_t tap = 0; tap < taps; ++tap) {
        const std::int64_t from = flip ? taps - 1 - tap : tap;
        lane_words[(tap * blocks * pairs + q) * lanes] =
            static_cast<Word>(even[from].bits) | static_cast<Word>(odd ? odd[from].bits : 0) << 16;
      }
    }
  }
}

// A band's input rows, each in the layout the tiles read: [C_in / 2][sw][phase_len] words, word (q, phase,
// k) the channel pair q of padded column k sw + phase (column -pw of the image is padded column 0), so the
// pixels one tap of a tile reads, input columns sw apart, are consecutive words of one phase: a tile
// broadcasts pixel i from a fixed displacement, 4 i bytes, and needs one address register, not one a pixel.
struct BandLayout {
  std::int64_t pairs, stride_w, phase_len, row_words;
  // For output rows of `columns` pixels.
  BandLayout(const Conv2dGeometry& g, std::int64_t columns)
      : pairs(pairs_of(g)),
        stride_w(g.stride_w),
        // The padded columns the taps reach: -pw .. (columns - 1) sw - pw + (KW - 1) dw.
        phase_len(((columns - 1) * g.stride_w + (g.kernel_w - 1) * g.dilation_w + 1 + g.stride_w - 1) /
                  g.stride_w),
        row_words(pairs * g.stride_w * phase_len) {}
  std::int64_t pair_stride() const { return stride_w * phase_len; }
  // Where tap s (input column offset s dw) of output column ow starts: its phase, then its index in it.
  std::int64_t tap_offset(std::int64_t ow, std::int64_t column_offset) const {
    const std::int64_t column = ow * stride_w + column_offset;
    return (column % stride_w) * phase_len + column / stride_w;
  }
};

// Input row `input_row` (channels-last, W pixels of C_in values) into `row` in the band layout, which the
// caller has zeroed (the padded columns outside the image stay so). With an even C_in a pixel is already its
// pairs' words, moved by transposes; with an odd one (the 3-channel stems) each word is put together, its
// upper half zero past the last channel.
void lay_out_row(const Conv2dGeometry& g, const BandLayout& layout, const bfloat16* input_row, Word* row) {
  const std::int64_t C = g.in_channels, padded_columns = layout.phase_len * layout.stride_w;
  for (std::int64_t phase = 0; phase < layout.stride_w; ++phase) {
    // The image columns of this phase: iw = k sw + phase - pw for k with 0 <= iw < W (and in the padding).
    std::int64_t k_first = (g.pad_w - phase + layout.stride_w - 1) / layout.stride_w;
    k_first = std::max<std::int64_t>(k_first, 0);
    const std::int64_t column_end = std::min(g.in_width + g.pad_w, padded_columns);  // padded columns
    const std::int64_t k_end = (column_end - phase + layout.stride_w - 1) / layout.stride_w;
    if (k_end <= k_first) continue;
    const std::int64_t iw_first = k_first * layout.stride_w + phase - g.pad_w;
    Word* const phase_row = row + phase * layout.phase_len + k_first;
    if (C % 2 == 0) {
      const auto* words = reinterpret_cast<const float*>(input_row);  // moved as 32-bit words, bits unchanged
      transpose_matrix(words + iw_first * layout.pairs, layout.stride_w * layout.pairs, k_end - k_first,
                       layout.pairs, reinterpret_cast<float*>(phase_row), layout.pair_stride());
      continue;
    }
    for (std::int64_t k = 0; k < k_end - k_first; ++k) {
      const bfloat16* pixel = input_row + (iw_first + k * layout.stride_w) * C;
      for (std::int64_t q = 0; q < layout.pairs; ++q) {
        const Word upper = 2 * q + 1 < C ? pixel[2 * q + 1].bits : 0;
        phase_row[q * layout.pair_stride() + k] = static_cast<Word>(pixel[2 * q].bits) | upper << 16;
      }
    }
  }
}

// A tile's sums set to zero, before its first dot product.
template <int J, int Pixels>
void clear_tile(__m512 (&acc)[Pixels][J]) {
#pragma GCC unroll 24
  for (int i = 0; i < Pixels; ++i)
#pragma GCC unroll 2
    for (int j = 0; j < J; ++j) acc[i][j] = _mm512_setzero_ps();
}

// A tile's sums, plus the bias (may be null), rounded to y's bfloat16: `Pixels` pixels pixel_pitch values
// apart, the first lanes_left of the tile's 16 J channels of each.
template <int J, int Pixels>
void store_tile(const __m512 (&acc)[Pixels][J], std::int64_t pixel_pitch, const float* bias, bfloat16* y,
                int lanes_left) {
#pragma GCC unroll 24
  for (int i = 0; i < Pixels; ++i) {
#pragma GCC unroll 2
    for (int j = 0; j < J; ++j) {
      const int lanes = std::min(lanes_left - 16 * j, 16);
      if (lanes <= 0) break;
      __m512 sum = acc[i][j];
      if (bias) sum = _mm512_add_ps(sum, Vector::load_partial(bias + 16 * j, lanes));
      Vector::store_partial(y + i * pixel_pitch + 16 * j, sum, lanes);
    }
  }
}

// One tile: `Pixels` output pixels of a row by 16 J output channels, any kernel. rows[r]: kernel row r's
// input row in the band layout (null where it lies outside the image), offset to the tile's first output
// column. One broadcast per dot product.
template <int J, int Pixels>
void tile(const Conv2dGeometry& g, const BandLayout& layout, const Word* const* rows, const Word* w_block,
          std::int64_t tap_stride, const float* bias, bfloat16* y, std::int64_t pixel_pitch, int lanes_left) {
  __m512 acc[Pixels][J];
  clear_tile<J, Pixels>(acc);
  for (std::int64_t r = 0; r < g.kernel_h; ++r) {
    if (rows[r] == nullptr) continue;
    for (std::int64_t s = 0; s < g.kernel_w; ++s) {
      const Word* x = rows[r] + layout.tap_offset(0, s * g.dilation_w);
      const Word* w = w_block + (r * g.kernel_w + s) * tap_stride;
      for (std::int64_t q = 0; q < layout.pairs; ++q, x += layout.pair_stride(), w += 16 * J) {
        __m512bh weights[J];
#pragma GCC unroll 2
        for (int j = 0; j < J; ++j) weights[j] = (__m512bh)_mm512_loadu_si512(w + 16 * j);
#pragma GCC unroll 24
        for (int i = 0; i < Pixels; ++i) {
          const __m512bh pair = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[i]));
#pragma GCC unroll 2
          for (int j = 0; j < J; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], weights[j], pair);
        }
      }
    }
  }
  store_tile<J, Pixels>(acc, pixel_pitch, bias, y, lanes_left);
}

// The same tile for kernel rows 3 wide at dilation 1 and stride SW (1 or 2), each broadcast word fed to
// every tap that reads it. At stride 1, input word u serves pixel u - s of tap s for s = 0, 1, 2: three dot
// products a broadcast, where `tile` does one. At stride 2, phase 0's word u serves pixel u of tap 0 and
// pixel u - 1 of tap 2, phase 1's pixel u of tap 1.
template <int J, int Pixels, int SW>
void three_tap_tile(const Conv2dGeometry& g, const BandLayout& layout, const Word* const* rows,
                    const Word* w_block, std::int64_t tap_stride, const float* bias, bfloat16* y,
                    std::int64_t pixel_pitch, int lanes_left) {
  constexpr int kTaps = 3;
  __m512 acc[Pixels][J];
  clear_tile<J, Pixels>(acc);
  for (std::int64_t r = 0; r < g.kernel_h; ++r) {
    if (rows[r] == nullptr) continue;
    const Word* x_row = rows[r];
    const Word* w = w_block + r * kTaps * tap_stride;
    for (std::int64_t q = 0; q < layout.pairs; ++q, x_row += layout.pair_stride(), w += 16 * J) {
      __m512bh weights[kTaps][J];
#pragma GCC unroll 3
      for (int s = 0; s < kTaps; ++s)
#pragma GCC unroll 2
        for (int j = 0; j < J; ++j) weights[s][j] = (__m512bh)_mm512_loadu_si512(w + s * tap_stride + 16 * j);
#pragma GCC unroll 2
      for (int phase = 0; phase < SW; ++phase) {
        const Word* x = x_row + phase * layout.phase_len;
        // Tap s (of this phase: s = phase, phase + SW, ...) reads word i + s / SW for pixel i.
#pragma GCC unroll 26
        for (int u = 0; u < Pixels + (kTaps - 1 - phase) / SW; ++u) {
          const __m512bh pair = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[u]));
#pragma GCC unroll 3
          for (int s = phase; s < kTaps; s += SW) {
            const int i = u - s / SW;
            if (i < 0 || i >= Pixels) continue;
#pragma GCC unroll 2
            for (int j = 0; j < J; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], weights[s][j], pair);
          }
        }
      }
    }
  }
  store_tile<J, Pixels>(acc, pixel_pitch, bias, y, lanes_left);
}

// The tiles for P = 1 .. kMaxPixels<J> pixels, indexed by P - 1 (a row's last tile takes what is left of
// it): `tile`, or `three_tap_tile` at stride SW.
using TileKernel = void (*)(const Conv2dGeometry&, const BandLayout&, const Word* const*, const Word*,
                            std::int64_t, const float*, bfloat16*, std::int64_t, int);
template <int J, std::size_t... P>
constexpr std::array<TileKernel, sizeof...(P)> tile_kernels(std::index_sequence<P...>) {
  return {&tile<J, static_cast<int>(P) + 1>...};
}
template <int J, int SW, std::size_t... P>
constexpr std::array<TileKernel, sizeof...(P)> three_tap_tile_kernels(std::index_sequence<P...>) {
  return {&three_tap_tile<J, static_cast<int>(P) + 1, SW>...};
}
template <int J>
constexpr auto kTiles = tile_kernels<J>(std::make_index_sequence<kMaxPixels<J>>{});
template <int J, int SW>
constexpr auto kThreeTapTiles = three_tap_tile_kernels<J, SW>(std::make_index_sequence<kMaxPixels<J>>{});

// The tiles for g's kernel rows.
template <int J>
const TileKernel* tiles_for(const Conv2dGeometry& g) {
  if (g.kernel_w == 3 && g.dilation_w == 1 && g.stride_w == 1) return kThreeTapTiles<J, 1>.data();
  if (g.kernel_w == 3 && g.dilation_w == 1 && g.stride_w == 2) return kThreeTapTiles<J, 2>.data();
  return kTiles<J>.data();
}

// Where the forward's outputs go: `rows` x `columns` pixels of each image, pixel (n, oh, ow) at
// y + n image_pitch + oh row_pitch + ow pixel_pitch, its C_out channels side by side. A forward's own output
// is g's, dense; a stride phase of backward data (below) is every sh-th row and sw-th column of gx.
struct OutputPixels {
  bfloat16* y;
  std::int64_t rows, columns;
  std::int64_t image_pitch, row_pitch, pixel_pitch;
};

OutputPixels dense_output(const Conv2dGeometry& g, bfloat16* y) {
  const std::int64_t row_pitch = g.out_width() * g.out_channels;
  return {y, g.out_height(), g.out_width(), g.out_height() * row_pitch, row_pitch, g.out_channels};
}

// The forward over channels-last x, weights already in w_pairs at J vectors a block, into `out` (input
// rows outside [0, H) read as zeros, so `out` may hold fewer or more rows than g's own output). A task is a
// band of one image's output rows; it lays out the input rows the band reads, then runs its tiles.
template <int J>
void forward_packed(const Conv2dGeometry& g, const bfloat16* x, const Word* w_pairs, const float* bias,
                    const OutputPixels& out) {
  constexpr int kLanes = 16 * J;
  const std::int64_t OH = out.rows, OW = out.columns, pairs = pairs_of(g);
  const std::int64_t blocks = (g.out_channels + kLanes - 1) / kLanes, tap_stride = blocks * pairs * kLanes;
  const BandLayout layout(g, OW);
  const TileKernel* const tiles = tiles_for<J>(g);
  // Rows of OW pixels in tiles as even as kMaxPixels allows (32 -> 2 x 16 at J = 1; 32 -> 11 + 11 + 10).
  const std::int64_t tiles_per_row = (OW + kMaxPixels<J> - 1) / kMaxPixels<J>;
  // Bands of about kBandMultiplyAdds, at least four a thread where the batch has rows enough.
  const std::int64_t row_madds = OW * g.out_channels * g.kernel_h * g.kernel_w * g.in_channels;
  const std::int64_t threads = compute_threads();
  std::int64_t band =
      std::min(kBandMultiplyAdds / std::max<std::int64_t>(row_madds, 1) + 1, g.batch * OH / (4 * threads));
  const std::int64_t bands_per_image =
      (OH + std::clamp<std::int64_t>(band, 1, OH) - 1) / std::clamp<std::int64_t>(band, 1, OH);
  band = (OH + bands_per_image - 1) / bands_per_image;  // as even as the rows allow
  // The input rows a band reads: (band - 1) sh + (KH - 1) dh + 1.
  const std::int64_t band_input_rows =
      std::min((band - 1) * g.stride_h + (g.kernel_h - 1) * g.dilation_h + 1, g.in_height);

  batch_chunks::for_each_chunk(
      g.batch * bands_per_image, band_input_rows * layout.row_words, [&](std::int64_t chunk, float* scratch) {
        Word* const band_rows = reinterpret_cast<Word*>(scratch);
        const std::int64_t n = chunk / bands_per_image, oh0 = chunk % bands_per_image * band;
        const std::int64_t oh1 = std::min(OH, oh0 + band);
        const std::int64_t ih_first = std::max<std::int64_t>(oh0 * g.stride_h - g.pad_h, 0);
        const std::int64_t ih_end =
            std::min((oh1 - 1) * g.stride_h - g.pad_h + (g.kernel_h - 1) * g.dilation_h + 1, g.in_height);
        const bfloat16* image = x + n * g.in_height * g.in_width * g.in_channels;
        // The band's padding zeroed in one memset, not one a row of a few hundred bytes.
        std::memset(
            band_rows, 0,
            static_cast<std::size_t>(std::max<std::int64_t>(ih_end - ih_first, 0) * layout.row_words) *
                sizeof(Word));
        for (std::int64_t ih = ih_first; ih < ih_end; ++ih)
          lay_out_row(g, layout, image + ih * g.in_width * g.in_channels,
                      band_rows + (ih - ih_first) * layout.row_words);
        // Each kernel row's input row for an output row, and offset to a tile's first pixel.
        std::vector<const Word*> rows(static_cast<std::size_t>(g.kernel_h)), tile_rows(rows.size());
        for (std::int64_t oh = oh0; oh < oh1; ++oh) {
          for (std::int64_t r = 0; r < g.kernel_h; ++r) {
            const std::int64_t ih = oh * g.stride_h - g.pad_h + r * g.dilation_h;
            rows[r] = ih >= 0 && ih < g.in_height ? band_rows + (ih - ih_first) * layout.row_words : nullptr;
          }
          bfloat16* y_row = out.y + n * out.image_pitch + oh * out.row_pitch;
          for (std::int64_t b = 0; b < blocks; ++b) {
            const int lanes_left =
                static_cast<int>(std::min<std::int64_t>(kLanes, g.out_channels - b * kLanes));
            const float* block_bias = bias ? bias + b * kLanes : nullptr;
            std::int64_t ow = 0;
            for (std::int64_t t = 0; t < tiles_per_row; ++t) {
              const std::int64_t pixels = (OW - ow) / (tiles_per_row - t);
              for (std::int64_t r = 0; r < g.kernel_h; ++r)
                tile_rows[r] = rows[r] ? rows[r] + layout.tap_offset(ow, 0) : nullptr;
              tiles[pixels - 1](g, layout, tile_rows.data(), w_pairs + b * pairs * kLanes, tap_stride,
                                block_bias, y_row + ow * out.pixel_pitch + b * kLanes, out.pixel_pitch,
                                lanes_left);
              ow += pixels;
            }
          }
        }
      });
}

// Packs the weights at the block width the layer's output channels fill, and runs the forward into `out`.
void forward_into(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w, bool flip, const float* bias,
                  const OutputPixels& out) {
  if (g.batch == 0 || out.rows <= 0 || out.columns <= 0) return;  // no output to write
  const int j_vectors = g.out_channels <= 16 ? 1 : 2;
  const std::int64_t lanes = 16 * j_vectors, blocks = (g.out_channels + lanes - 1) / lanes;
  const CpuScratch w_pairs = cpu_scratch(g.kernel_h * g.kernel_w * blocks * pairs_of(g) * lanes);
  Word* const words = reinterpret_cast<Word*>(w_pairs.get());
  pack_weights(g, j_vectors, w, flip, words);
  if (j_vectors == 1)
    forward_packed<1>(g, x, words, bias, out);
  else
    forward_packed<2>(g, x, words, bias, out);
}

// ---- Backward data at stride 2 and more, one stride phase at a time ----------------------------------
//
// The input rows of one stride phase are reached by the same kernel rows, evenly spaced
// (ladder/stride_phases.hpp works them out, for the GPU ladder's stride-phase steps and the AMX backward
// data too): each phase of gx is a stride-1 convolution over gy with its taps turned around. At stride 2 a
// 3x3 kernel's four phases take 2 x 2, 2 x 1, 1 x 2 and 1 x 1 taps. Each runs as the forward of gy through
// its kernel (C_in and C_out swapped), written to every sh-th row and sw-th column of gx (OutputPixels). Each
// input pixel belongs to one phase and is summed by one tile, in the forward's order, so any thread count
// gives the same bits.

// The padding before gy's first row that a phase's forward reads: phase position i reads gy rows
// i - pad + t tap_q_step for its turned taps t (stride_phases.hpp's q0, tap_q0 and tap_q_step).
std::int64_t phase_padding(const conv2d_ladder::AxisPhase& phase, int tap_q_step) {
  return std::int64_t{phase.taps - 1} * tap_q_step + phase.tap_q0 - phase.q0;
}

// Every phase's forward reads gy from its first pixel on (a layer padded wider than its kernel reaches
// would need negative padding), at dilation 1.
bool phases_fit(const Conv2dGeometry& g) {
  if (g.dilation_h != 1 || g.dilation_w != 1) return false;
  const auto fits = [](std::int64_t size, std::int64_t pad, std::int64_t stride, std::int64_t kernel) {
    for (const conv2d_ladder::AxisPhase& phase : conv2d_ladder::axis_phases(size, pad, stride, 1, kernel))
      if (phase.taps > 0 && phase_padding(phase, 1) < 0) return false;
    return true;
  };
  return fits(g.in_height, g.pad_h, g.stride_h, g.kernel_h) &&
         fits(g.in_width, g.pad_w, g.stride_w, g.kernel_w);
}

void backward_data_by_phase(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w, bfloat16* gx) {
  namespace phases = conv2d_ladder;
  const std::int64_t C = g.in_channels, K = g.out_channels, H = g.in_height, W = g.in_width;
  const phases::PhaseGrid grid = phases::phase_grid(g);
  std::vector<bfloat16> w_phase;
  for (const phases::AxisPhase& ph : grid.h) {
    for (const phases::AxisPhase& pw : grid.w) {
      const OutputPixels out{gx + (std::int64_t{ph.first} * W + pw.first) * C,
                             ph.count,
                             pw.count,
                             H * W * C,
                             g.stride_h * W * C,
                             g.stride_w * C};
      if (ph.taps == 0 || pw.taps == 0) {  // no tap reaches these pixels (a 1x1 kernel at stride 2)
        for (std::int64_t n = 0; n < g.batch; ++n)
          for (std::int64_t i = 0; i < out.rows; ++i)
            for (std::int64_t j = 0; j < out.columns; ++j)
              std::memset(out.y + n * out.image_pitch + i * out.row_pitch + j * out.pixel_pitch, 0,
                          static_cast<std::size_t>(C) * sizeof(bfloat16));
        continue;
      }
      Conv2dGeometry phase = g;
      phase.in_channels = K;
      phase.out_channels = C;
      phase.in_height = g.out_height();
      phase.in_width = g.out_width();
      phase.kernel_h = ph.taps;
      phase.kernel_w = pw.taps;
      phase.stride_h = phase.stride_w = 1;
      phase.pad_h = phase_padding(ph, grid.steps_h.tap_q_step);
      phase.pad_w = phase_padding(pw, grid.steps_w.tap_q_step);
      phase.dilation_h = grid.steps_h.tap_q_step;
      phase.dilation_w = grid.steps_w.tap_q_step;
      // Its kernel as a forward's, [C_in][C_out][taps_h][taps_w], turned: tap (t, u) is w's
      // (tap0 + (taps - 1 - t) tap_step) along each axis.
      w_phase.resize(static_cast<std::size_t>(C * K * ph.taps * pw.taps));
      for (std::int64_t c = 0; c < C; ++c)
        for (std::int64_t k = 0; k < K; ++k)
          for (std::int64_t t = 0; t < ph.taps; ++t)
            for (std::int64_t u = 0; u < pw.taps; ++u) {
              const std::int64_t r = ph.tap0 + (ph.taps - 1 - t) * grid.steps_h.tap_step;
              const std::int64_t s = pw.tap0 + (pw.taps - 1 - u) * grid.steps_w.tap_step;
              w_phase[static_cast<std::size_t>(((c * K + k) * ph.taps + t) * pw.taps + u)] =
                  w[((k * C + c) * g.kernel_h + r) * g.kernel_w + s];
            }
      forward_into(phase, gy, w_phase.data(), false, nullptr, out);
    }
  }
}

}  // namespace

bool serves(const Conv2dGeometry& g, Conv2dDirection direction) {
  const bool layout = g.channels_last && g.groups == 1;
  if (direction != Conv2dDirection::BackwardData) return layout;
  return layout && (direct_backward_data_fits(g) || phases_fit(g));
}

void conv2d_forward_bf16(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w, const float* bias,
                         bfloat16* y) {
  forward_into(g, x, w, false, bias, dense_output(g, y));
}

void conv2d_backward_data_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w, bfloat16* gx) {
  if (!direct_backward_data_fits(g)) return backward_data_by_phase(g, gy, w, gx);
  const Conv2dGeometry transposed = transposed_convolution(g);
  forward_into(transposed, gy, w, true, nullptr, dense_output(transposed, gx));
}

}  // namespace kiln::kernels::direct_dot_products
