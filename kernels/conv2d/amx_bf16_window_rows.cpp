// The AMX bfloat16 convolutions of few input channels, the RGB stems (amx_bf16_conv.hpp's window_rows_serve),
// compiled with -mamx-tile -mamx-bf16 and AVX-512: forward and weight gradient.
//
// The other AMX kernels reduce over channels a tap at a time, the channels padded to a tile's 16: a
// 3-channel stem multiplies 13 zeros for every 3 values, at each of its 9 (or 49) taps. In channels-last x
// a kernel row's window, kernel_w columns of C channels, is one contiguous run of kernel_w C values (9 for a
// 3x3 stem, 21 for ResNet-18's 7x7). Here the reduction runs along that run instead, zero-extended to
// kc = 16 or 32: one tile multiply per kernel row, 3 for the 3x3 stem where there were 9, 7 for the 7x7
// where there were 49.
//
// Both read an image's runs, built once per input row (image_runs: three output rows of a 3x3 stem read each
// at stride 1): runs[ih][ow], the window row that output column ow reads from input row ih, copied with a
// masked load and zero-extended to kc, zeros where the window leaves the image. So no value outside a
// window reaches its output, not even a NaN times a zero weight.
//
// Forward, y[p][k] = bias[k] + sum over kernel rows r of run_r(p) . filter_r[k]:
//   A  16 output positions (consecutive columns of one output row) x kc: 16 consecutive runs of one input
//      row, kc values apart (a zero tile for a kernel row above or below the image)
//   B  kc x 16 output channels in the pair layout, filter_r[k][s C + c] = w[k][c][r][s], zeros past the run
// Weight gradient, G_r[k][s C + c] = sum over positions p of gy[p][k] run_r(p)[s C + c], and
// gw[k][c][r][s] = G_r[k][s C + c]:
//   A  gy^T, 16 output channels x 32 positions (tiles::transposed_tile, as the phase grid's A tiles)
//   B  32 positions x 16 run values in the pair layout, two positions' runs interleaved; a run longer than
//      16 (the 7x7's 21) takes two column blocks
// The weight gradient goes in chunks of whole images, each summed into its own partial gradient, the
// partials added in chunk order (batch_chunks::sum_over_chunks): the same bits on any thread count. The
// forward's outputs do not depend on how the threads split them.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/conv2d/amx_bf16_conv.hpp"
#include "kernels/conv2d/amx_bf16_tiles.hpp"
#include "kernels/conv2d/batch_chunks.hpp"

namespace kiln::kernels::amx {
namespace {

using tiles::Bfloat16Scratch;
using tiles::kBlockChannels;
using tiles::kRows;

constexpr std::int64_t kPositions = 32;      // positions a weight-gradient tile reduces over: 16 pair rows
constexpr std::int64_t kTile = 16 * 32;      // bfloat16 in a full tile: 16 rows of 64 bytes
constexpr std::int64_t kTileRowBytes = 64;

__mmask32 first_lanes(std::int64_t count) {
  return count >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((std::uint32_t{1} << count) - 1u);
}

// ---- forward ----------------------------------------------------------------------------------------------

// Values a forward tile multiply reduces: the run zero-extended to 16 or 32.
int reduced_values(const Conv2dGeometry& g) { return g.kernel_w * g.in_channels <= 16 ? 16 : 32; }

// filter_r for every kernel row, [r][block][kc / 2][16 output channels][2].
Bfloat16Scratch packed_filter(const Conv2dGeometry& g, const bfloat16* w, int kc) {
  const std::int64_t K = g.out_channels, C = g.in_channels, R = g.kernel_h, S = g.kernel_w;
  const std::int64_t blocks = K / kBlockChannels, b_tile = kc * kBlockChannels;
  Bfloat16Scratch packed(R * blocks * b_tile);
  for (std::int64_t r = 0; r < R; ++r) {
    for (std::int64_t k = 0; k < K; ++k) {
      bfloat16* const tile = packed.get() + (r * blocks + k / kBlockChannels) * b_tile;
      for (std::int64_t i = 0; i < kc; ++i) {  // run element i = s C + c
        const std::int64_t s = i / C, c = i % C;
        tile[((i / 2) * kBlockChannels + k % kBlockChannels) * 2 + i % 2] =
            s < S ? w[((k * C + c) * R + r) * S + s] : bfloat16::from_bits(0);
      }
    }
  }
  return packed;
}

// Image n's runs, [H][OW][kc]: runs[ih][ow] is the window row that output column ow reads from input row ih,
// x[n][ih][ow sw - pw + s][c] for s < S and c < C in order, zeros where a column lies outside the image and
// past the run. Each input row's runs are built once for the kernel rows that read it (three output rows of
// a 3x3 stem at stride 1).
void image_runs(const Conv2dGeometry& g, const bfloat16* x, std::int64_t n, int kc, bfloat16* runs) {
  const std::int64_t C = g.in_channels, W = g.in_width, S = g.kernel_w, OW = g.out_width();
  const __mmask32 row_lanes = first_lanes(kc), run_lanes = first_lanes(S * C);
  const __m512i zeros = _mm512_setzero_si512();
  for (std::int64_t ih = 0; ih < g.in_height; ++ih) {
    const bfloat16* const input_row = x + (n * g.in_height + ih) * W * C;
    for (std::int64_t ow = 0; ow < OW; ++ow) {
      bfloat16* const run = runs + (ih * OW + ow) * kc;
      const std::int64_t iw0 = ow * g.stride_w - g.pad_w;
      if (iw0 >= 0 && iw0 + S <= W) {  // the whole window inside: one masked load, zeros past the run
        _mm512_mask_storeu_epi16(run, row_lanes, _mm512_maskz_loadu_epi16(run_lanes, input_row + iw0 * C));
        continue;
      }
      // A border: the columns inside, shifted to their place in the run.
      const std::int64_t s_begin = std::max<std::int64_t>(0, -iw0);
      const std::int64_t s_end = std::max(s_begin, std::min<std::int64_t>(S, W - iw0));
      const __mmask32 inside = first_lanes((s_end - s_begin) * C);
      _mm512_mask_storeu_epi16(run, row_lanes, zeros);
      if (s_end > s_begin)
        _mm512_mask_storeu_epi16(run + s_begin * C, inside,
                                 _mm512_maskz_loadu_epi16(inside, input_row + (iw0 + s_begin) * C));
    }
  }
}

// ---- weight gradient --------------------------------------------------------------------------------------

// The weight gradient's operands for one image, by their counts: blocks of 32 of the image's output
// positions (the last one partial where they are not a multiple of 32: zeros of gy there), units of a kernel
// row and a column block of its run.
struct OperandShape {
  explicit OperandShape(const Conv2dGeometry& g)
      : kc(reduced_values(g)),
        positions(g.out_height() * g.out_width()),
        blocks((positions + kPositions - 1) / kPositions),
        k_blocks(g.out_channels / kBlockChannels),
        col_blocks((g.kernel_w * g.in_channels + kBlockChannels - 1) / kBlockChannels),
        units(g.kernel_h * col_blocks),
        runs_size(g.in_height * g.out_width() * kc) {}
  // bfloat16 of scratch: the runs, the A tiles, the B tiles.
  std::int64_t size() const { return runs_size + blocks * (k_blocks + units) * kTile; }

  int kc;
  std::int64_t positions, blocks, k_blocks, col_blocks, units, runs_size;
};

// One image's operands, in scratch: its runs (image_runs), then the A tiles [block][k block][16][32], then
// the B tiles [block][unit][16][16][2].
struct ImageOperands : OperandShape {
  ImageOperands(const Conv2dGeometry& geometry, bfloat16* scratch)
      : OperandShape(geometry),
        g(geometry),
        runs(scratch),
        a_tiles(runs + runs_size),
        b_tiles(a_tiles + blocks * k_blocks * kTile) {}

  // Image n's runs, A tiles and B tiles.
  void build(const bfloat16* gy, const bfloat16* x, std::int64_t n, const bfloat16* zeros) {
    const std::int64_t K = g.out_channels, OW = g.out_width();
    image_runs(g, x, n, kc, runs);
    for (std::int64_t block = 0; block < blocks; ++block) {
      const bfloat16* rows[kPositions];
      for (std::int64_t i = 0; i < kPositions; ++i) {
        const std::int64_t p = block * kPositions + i;
        rows[i] = p < positions ? gy + (n * positions + p) * K : zeros;
      }
      for (std::int64_t kb = 0; kb < k_blocks; ++kb)
        tiles::transposed_tile(rows, kb * kBlockChannels, a_tiles + (block * k_blocks + kb) * kTile);
      // The block's positions' first input rows (at kernel row 0) and columns, stepped along without
      // dividing (a divide per position and kernel row was most of this function's time).
      std::int64_t first_row[kPositions], column[kPositions];
      std::int64_t oh = block * kPositions / OW, ow = block * kPositions % OW;
      for (std::int64_t i = 0; i < kPositions; ++i) {
        first_row[i] = oh * g.stride_h - g.pad_h;
        column[i] = ow;
        if (++ow == OW) ow = 0, ++oh;
      }
      // Positions past the image's last (a partial last block) read zeros, as their gy does.
      const std::int64_t real = std::min(kPositions, positions - block * kPositions);
      for (std::int64_t r = 0; r < g.kernel_h; ++r) {
        for (std::int64_t i = 0; i < kPositions; ++i) {  // position i's run at kernel row r, or zeros
          const std::int64_t ih = first_row[i] + r * g.dilation_h;
          rows[i] = i < real && ih >= 0 && ih < g.in_height ? runs + (ih * OW + column[i]) * kc : zeros;
        }
        for (std::int64_t cb = 0; cb < col_blocks; ++cb) {
          bfloat16* const tile = b_tiles + (block * units + r * col_blocks + cb) * kTile;
          const std::int64_t c0 = cb * kBlockChannels;
          for (std::int64_t q = 0; q < kRows; ++q)
            tiles::interleave_pairs(rows[2 * q] + c0, rows[2 * q + 1] + c0, tile + q * kPositions);
        }
      }
    }
  }

  const Conv2dGeometry& g;
  bfloat16 *runs, *a_tiles, *b_tiles;
};

// Adds one image's products to a pass's sums [r][C_out][col_blocks 16] (float), which its accumulators start
// from (or from zero, for a chunk's first image) and end in.
void multiply(const ImageOperands& operands, const tiles::BlockPass& pass, bool accumulate, float* sums) {
  const std::int64_t K = operands.g.out_channels, columns = operands.col_blocks * kBlockChannels;
  const std::int64_t sums_stride = columns * static_cast<std::int64_t>(sizeof(float));
  const auto home = [&](int i, int j) {
    const std::int64_t unit = pass.b_first + j, r = unit / operands.col_blocks, cb = unit % operands.col_blocks;
    return sums + (r * K + (pass.a_first + i) * kBlockChannels) * columns + cb * kBlockChannels;
  };
  for (int i = 0; i < pass.a_count; ++i) {
    for (int j = 0; j < pass.b_count; ++j) {
      if (accumulate)
        tiles::load_accumulator(i * pass.b_count + j, home(i, j), sums_stride);
      else
        tiles::zero_accumulator(i * pass.b_count + j);
    }
  }
  for (std::int64_t block = 0; block < operands.blocks; ++block) {
    tiles::multiply_block(
        pass.a_count, kTileRowBytes,
        [&](int i) { return operands.a_tiles + (block * operands.k_blocks + pass.a_first + i) * kTile; },
        pass.b_count, kTileRowBytes,
        [&](int j) { return operands.b_tiles + (block * operands.units + pass.b_first + j) * kTile; });
  }
  for (int i = 0; i < pass.a_count; ++i)
    for (int j = 0; j < pass.b_count; ++j) tiles::store_accumulator(i * pass.b_count + j, home(i, j), sums_stride);
}

}  // namespace

void conv2d_forward_bf16_window_rows(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w,
                                     const bfloat16* bias, bfloat16* y) {
  const std::int64_t K = g.out_channels, H = g.in_height, R = g.kernel_h, OH = g.out_height(),
                     OW = g.out_width();
  const int kc = reduced_values(g);
  const std::int64_t blocks = K / kBlockChannels, b_tile = kc * kBlockChannels;
  const Bfloat16Scratch filter = packed_filter(g, w, kc);
  // An image's tile rows: 16 output columns of one output row each. Four a pass of one block of output
  // channels, or two of two blocks. A tile row past the output's edge reads the next input row's runs (the
  // slack past the last) and stores none of them; a kernel row above or below the image reads zeros.
  const std::int64_t row_tiles = (OW + kRows - 1) / kRows, tile_rows = OH * row_tiles;
  const int pass_rows = blocks == 1 ? 4 : 2;
  const std::int64_t pass_blocks = std::min<std::int64_t>(blocks, 2);
  const std::int64_t a_stride = kc * static_cast<std::int64_t>(sizeof(bfloat16)), b_stride = kTileRowBytes;
#pragma omp parallel
  {
    tiles::configure(static_cast<int>(a_stride), kc / 2);
    std::vector<bfloat16> runs(static_cast<std::size_t>((H * OW + kRows) * kc));
    const std::vector<bfloat16> zeros(static_cast<std::size_t>(kRows * kc), bfloat16::from_bits(0));
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < g.batch; ++n) {
      image_runs(g, x, n, kc, runs.data());
      for (std::int64_t first_row = 0; first_row < tile_rows; first_row += pass_rows) {
        const int rows = static_cast<int>(std::min<std::int64_t>(pass_rows, tile_rows - first_row));
        std::int64_t oh[4], j0[4];
        for (int i = 0; i < rows; ++i) oh[i] = (first_row + i) / row_tiles, j0[i] = (first_row + i) % row_tiles * kRows;
        const auto a_tile = [&](int i, std::int64_t r) {
          const std::int64_t ih = oh[i] * g.stride_h - g.pad_h + r * g.dilation_h;
          return ih < 0 || ih >= H ? zeros.data() : runs.data() + (ih * OW + j0[i]) * kc;
        };
        for (std::int64_t first_block = 0; first_block < blocks; first_block += pass_blocks) {
          const int block_count = static_cast<int>(std::min(pass_blocks, blocks - first_block));
          for (int k = 0; k < rows * block_count; ++k) tiles::zero_accumulator(k);
          for (std::int64_t r = 0; r < R; ++r) {
            tiles::multiply_block(
                rows, a_stride, [&](int i) { return a_tile(i, r); }, block_count, b_stride,
                [&](int k) { return filter.get() + (r * blocks + first_block + k) * b_tile; });
          }
          for (int i = 0; i < rows; ++i) {
            for (int k = 0; k < block_count; ++k) {
              const std::int64_t k0 = (first_block + k) * kBlockChannels;
              tiles::store_rounded(i * block_count + k, bias ? bias + k0 : nullptr,
                                   y + ((n * OH + oh[i]) * OW + j0[i]) * K + k0, K, 0,
                                   std::min<std::int64_t>(kRows, OW - j0[i]));
            }
          }
        }
      }
    }
    _tile_release();
  }
}

// Chunks of 4 images, fixed by the shape: 32 partial gradients at batch 128, each a few KiB to 56 KiB
// (ResNet-18's 7x7 stem: 7 kernel rows x 64 output channels x 32 columns of floats).
void conv2d_backward_weight_bf16_window_rows(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                             bfloat16* gw) {
  constexpr std::int64_t kImagesPerChunk = 4;
  const std::int64_t K = g.out_channels, C = g.in_channels, R = g.kernel_h, S = g.kernel_w;
  const OperandShape shape(g);
  const std::int64_t columns = shape.col_blocks * kBlockChannels, sums_size = R * K * columns;
  const std::vector<tiles::BlockPass> all = tiles::block_passes(shape.k_blocks, shape.units);
  const std::vector<bfloat16> zeros(static_cast<std::size_t>(std::max<std::int64_t>(K, kPositions)),
                                    bfloat16::from_bits(0));
  const std::int64_t chunks = (g.batch + kImagesPerChunk - 1) / kImagesPerChunk;
  const CpuScratch gradient = cpu_scratch(sums_size);
  batch_chunks::sum_over_chunks(
      chunks, sums_size, (shape.size() + 1) / 2, gradient.get(),
      [&](std::int64_t chunk, float* scratch, float* sums) {
        ImageOperands operands(g, reinterpret_cast<bfloat16*>(scratch));
        tiles::configure(static_cast<int>(kTileRowBytes), kRows);
        const std::int64_t n0 = chunk * kImagesPerChunk, n1 = std::min(g.batch, n0 + kImagesPerChunk);
        for (std::int64_t n = n0; n < n1; ++n) {
          operands.build(gy, x, n, zeros.data());
          for (const tiles::BlockPass& pass : all) multiply(operands, pass, n > n0, sums);
        }
        _tile_release();
      });
  // G_r[k][s C + c] to gw[k][c][r][s], rounded once.
  for (std::int64_t k = 0; k < K; ++k)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t r = 0; r < R; ++r)
        for (std::int64_t s = 0; s < S; ++s)
          gw[((k * C + c) * R + r) * S + s] = bfloat16(gradient[static_cast<std::size_t>((r * K + k) * columns + s * C + c)]);
}

}  // namespace kiln::kernels::amx
