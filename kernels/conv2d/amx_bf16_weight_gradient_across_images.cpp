// The AMX bfloat16 weight gradient of a small plane, reduced across images (amx_bf16_conv.hpp), compiled
// with -mamx-tile -mamx-bf16 and AVX-512:
//
//   gw[k][c][r][s] = sum over the output positions (oh, ow) whose input at the tap,
//                    (ih, iw) = (oh sh - ph + r dh, ow sw - pw + s dw), lies inside x, and over the images n,
//                    of gy[n][oh][ow][k] x[n][ih][iw][c]
//
// The phase grid (amx_bf16_weight_gradient.cpp) reduces over positions, on a grid of the padded plane: a
// 4x4 plane at padding 1 is a 6x6 grid, a 2x2 one 4x4, so most of what its tiles multiply is zeros; and
// every tap multiplies the whole grid, where on a 2x2 plane a 3x3 filter's taps each reach a quarter to all
// of it. Here each tap's sum is one [C_out x N] x [N x C_in] product per output position it reaches, the
// reduction over the batch:
//   A  gy^T at one output position: 16 output channels x 32 images, [position][k block][image block][16][32]
//      (two images' channels interleaved in pairs make 16 rows of 16 pairs; one 16 x 16 transpose of those
//      32-bit pairs gives 16 rows of one channel's 32 images, as the phase grid's A tiles are built)
//   B  x at one input position: 32 images x 16 input channels in the pair layout, row q holding images
//      2q and 2q + 1 of each channel side by side, [position][c block][image block][16][16][2]
// Images past the batch are zeros in both. Each operand is the size of the tensor it comes from.
//
// Passes: a group of output-channel blocks by input-channel blocks (two by two, or one by four where one side
// has one block), four accumulators, over every tap in turn. A tap's accumulators start at zero and add the
// output positions it reaches, in order, each over the image blocks in order; they are then stored to the
// pass's float sums [tap][k][c], which are rounded once into gw [C_out][C_in][KH][KW]. Each pass owns its
// part of gw: the same bits on any thread count.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/conv2d/amx_bf16_conv.hpp"
#include "kernels/conv2d/amx_bf16_tiles.hpp"
#include "kernels/simd/float_vector_avx512.hpp"

namespace kiln::kernels::amx {
namespace {

using Vector = simd::FloatVector512;
using tiles::Bfloat16Scratch;
using tiles::kAccumulators;
using tiles::kBlockChannels;
using tiles::kRows;

constexpr std::int64_t kImages = 32;                 // images a tile reduces over: 16 rows of pairs
constexpr std::int64_t kTile = kRows * kImages;      // bfloat16 a tile, A or B
constexpr std::int64_t kTileRowBytes = kImages * 2;  // 64: A's 32 images, B's 16 pairs

// The images' rows of one position in a channels-last tensor [N][positions][channels]: image i's channels,
// or `zeros` past the batch.
void image_rows(const bfloat16* tensor, std::int64_t batch, std::int64_t positions, std::int64_t channels,
                std::int64_t position, std::int64_t image_block, const bfloat16* zeros,
                const bfloat16* (&rows)[kImages]) {
  for (std::int64_t i = 0; i < kImages; ++i) {
    const std::int64_t n = image_block * kImages + i;
    rows[i] = n < batch ? tensor + (n * positions + position) * channels : zeros;
  }
}

// The A tiles: gy^T, [output position][k block][image block][16 output channels][32 images].
void transpose_gy(const Conv2dGeometry& g, const bfloat16* gy, std::int64_t image_blocks, const bfloat16* zeros,
                  bfloat16* a) {
  const std::int64_t K = g.out_channels, k_blocks = K / kBlockChannels;
  const std::int64_t positions = g.out_height() * g.out_width();
#pragma omp parallel for schedule(static) collapse(2)
  for (std::int64_t position = 0; position < positions; ++position) {
    for (std::int64_t image_block = 0; image_block < image_blocks; ++image_block) {
      const bfloat16* rows[kImages];
      image_rows(gy, g.batch, positions, K, position, image_block, zeros, rows);
      for (std::int64_t kb = 0; kb < k_blocks; ++kb)
        tiles::transposed_tile(rows, kb * kBlockChannels,
                               a + ((position * k_blocks + kb) * image_blocks + image_block) * kTile);
    }
  }
}

// The B tiles: x in pairs of images, [input position][c block][image block][16 rows][16 channels][2].
void pair_x(const Conv2dGeometry& g, const bfloat16* x, std::int64_t image_blocks, const bfloat16* zeros,
            bfloat16* b) {
  const std::int64_t C = g.in_channels, c_blocks = C / kBlockChannels;
  const std::int64_t positions = g.in_height * g.in_width;
#pragma omp parallel for schedule(static) collapse(2)
  for (std::int64_t position = 0; position < positions; ++position) {
    for (std::int64_t image_block = 0; image_block < image_blocks; ++image_block) {
      const bfloat16* rows[kImages];
      image_rows(x, g.batch, positions, C, position, image_block, zeros, rows);
      for (std::int64_t cb = 0; cb < c_blocks; ++cb) {
        const std::int64_t c0 = cb * kBlockChannels;
        bfloat16* const tile = b + ((position * c_blocks + cb) * image_blocks + image_block) * kTile;
        for (std::int64_t q = 0; q < kRows; ++q)
          tiles::interleave_pairs(rows[2 * q] + c0, rows[2 * q + 1] + c0, tile + q * kImages);
      }
    }
  }
}

// One pass over every tap: its float sums [tap][k_blocks 16][c_blocks 16] in `sums`, then rounded into gw.
void multiply(const Conv2dGeometry& g, const tiles::BlockPass& pass, const bfloat16* a, const bfloat16* b,
              std::int64_t image_blocks, float* sums, bfloat16* rounded, bfloat16* gw) {
  const std::int64_t K = g.out_channels, C = g.in_channels, OH = g.out_height(), OW = g.out_width();
  const std::int64_t k_blocks = K / kBlockChannels, c_blocks = C / kBlockChannels;
  const std::int64_t taps = g.kernel_h * g.kernel_w;
  const std::int64_t rows = pass.a_count * kBlockChannels, columns = pass.b_count * kBlockChannels;
  const std::int64_t sums_stride = columns * static_cast<std::int64_t>(sizeof(float));
  for (std::int64_t tap = 0; tap < taps; ++tap) {
    const std::int64_t r = tap / g.kernel_w, s = tap % g.kernel_w;
    for (int k = 0; k < pass.a_count * pass.b_count; ++k) tiles::zero_accumulator(k);
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      const std::int64_t ih = oh * g.stride_h - g.pad_h + r * g.dilation_h;
      if (ih < 0 || ih >= g.in_height) continue;
      for (std::int64_t ow = 0; ow < OW; ++ow) {
        const std::int64_t iw = ow * g.stride_w - g.pad_w + s * g.dilation_w;
        if (iw < 0 || iw >= g.in_width) continue;
        const bfloat16* const a_first = a + ((oh * OW + ow) * k_blocks + pass.a_first) * image_blocks * kTile;
        const bfloat16* const b_first =
            b + ((ih * g.in_width + iw) * c_blocks + pass.b_first) * image_blocks * kTile;
        for (std::int64_t image_block = 0; image_block < image_blocks; ++image_block) {
          tiles::multiply_block(
              pass.a_count, kTileRowBytes,
              [&](int i) { return a_first + (i * image_blocks + image_block) * kTile; }, pass.b_count,
              kTileRowBytes, [&](int j) { return b_first + (j * image_blocks + image_block) * kTile; });
        }
      }
    }
    for (int i = 0; i < pass.a_count; ++i)
      for (int j = 0; j < pass.b_count; ++j)
        tiles::store_accumulator(i * pass.b_count + j,
                                 sums + (tap * rows + i * kBlockChannels) * columns + j * kBlockChannels,
                                 sums_stride);
  }
  // [tap][k][c] rounded once, 16 sums at a time, into `rounded`, then moved to gw's [C_out][C_in][taps]: a
  // row of columns x taps per output channel. (Rounding lane by lane in the move: ResNet-18's 256 -> 256
  // at 2x2 0.38 ms against 0.36, 512 -> 512 1.55 against 1.42; batch 128, two threads.)
  for (std::int64_t i = 0; i < taps * rows * columns; i += kBlockChannels)
    Vector::store(rounded + i, Vector::load(sums + i));
  for (std::int64_t k = 0; k < rows; ++k) {
    bfloat16* const out =
        gw + ((pass.a_first * kBlockChannels + k) * C + pass.b_first * kBlockChannels) * taps;
    for (std::int64_t c = 0; c < columns; ++c)
      for (std::int64_t tap = 0; tap < taps; ++tap)
        out[c * taps + tap] = rounded[(tap * rows + k) * columns + c];
  }
}

}  // namespace

void conv2d_backward_weight_bf16_across_images(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                               bfloat16* gw) {
  const std::int64_t image_blocks = (g.batch + kImages - 1) / kImages;
  const std::int64_t K = g.out_channels, C = g.in_channels;
  const std::vector<bfloat16> zeros(static_cast<std::size_t>(std::max(K, C)), bfloat16::from_bits(0));
  const Bfloat16Scratch a(g.out_height() * g.out_width() * K * image_blocks * kImages);
  const Bfloat16Scratch b(g.in_height * g.in_width * C * image_blocks * kImages);
  transpose_gy(g, gy, image_blocks, zeros.data(), a.get());
  pair_x(g, x, image_blocks, zeros.data(), b.get());
  const std::vector<tiles::BlockPass> all =
      tiles::block_passes(g.out_channels / kBlockChannels, g.in_channels / kBlockChannels);
  const std::int64_t taps = g.kernel_h * g.kernel_w;
#pragma omp parallel
  {
    const auto most = static_cast<std::size_t>(taps * kAccumulators * kBlockChannels * kBlockChannels);
    std::vector<float> sums(most);
    std::vector<bfloat16> rounded(most);
    tiles::configure(static_cast<int>(kTileRowBytes), kRows);
#pragma omp for schedule(static)
    for (std::size_t p = 0; p < all.size(); ++p)
      multiply(g, all[p], a.get(), b.get(), image_blocks, sums.data(), rounded.data(), gw);
    _tile_release();
  }
}

}  // namespace kiln::kernels::amx
