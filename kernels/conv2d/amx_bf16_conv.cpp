// The AMX bfloat16 convolutions (amx_bf16_conv.hpp): the forward, laid out below, and backward data, which
// is forward convolutions too, one for each stride phase of gx (at its function); the weight gradient is
// amx_bf16_weight_gradient.cpp. Compiled with -mamx-tile -mamx-bf16 and AVX-512; dispatch.cpp calls them
// only where kernels::amx_bf16_usable().
//
// The forward's tiles (amx_bf16_tiles.hpp):
//   tmm0-3  accumulators: 16 positions x 16 output channels, float: a pass's four tile rows of one block of
//           output channels, or two tile rows of two blocks
//   tmm4, 6 A: 16 positions x kc input channels of one tap, bfloat16 (kc = 32, a 64-byte row, or 16)
//   tmm5, 7 B: kc input channels x 16 output channels of one tap, in the pair layout: row q holds, for each
//           output channel, the two channels 2q and 2q + 1 side by side
// TDPBF16PS adds A B to an accumulator: per output value, kc products summed in float.
//
// A: 16 positions, one of two ways (amx_bf16_conv.hpp's tile_rows_across_images). Along an output row:
// output columns ow0 .. ow0 + 15 of one output row, which at tap (r, s) read input columns
// ow * stride + s * dilation of input row oh * stride + r * dilation, each a run of C contiguous channels,
// the runs stride * C apart: one tile load with that row stride. Across images, for planes of at most 8
// columns: one output position in 16 images, whose runs at a tap lie an image apart.
// Borders, along rows: the input is first copied into a zero-padded [N, H + 2 pad, W + 2 pad, C] scratch, C
// being C_in rounded up to 16 with zero channels (padded_channels), so a tap that falls outside the image
// reads zeros; a final tile row narrower than 16 columns computes rows past the output's edge (reading the
// next padded row, or a zeroed slack at the very end) and stores only its own. Across images, a pass's 16
// images share one output position and so its taps: those that fall outside the input are skipped, and
// the tiles read the input where it lies unless its channels need padding to 16. Along rows with nothing to
// pad (no padding, C_in a multiple of 16, no tile row reading past the input's end), the tiles read the input
// where it lies too: MobileNet's pointwise layers (place_input).
// B: the weights are packed once per call into the pair layout, tap by tap, channel chunk by chunk, block of
// 16 output channels by block (72 KiB for a 3x3 64 -> 64 layer), and read from cache by every tile row;
// across images only the taps some output reaches (the centre alone on a 1x1 plane).
//
// Threads split the passes of tile rows; each configures its own tiles and releases them at the end. An
// output's sum does not depend on the split or on the tile rows beside it: the same bits on any thread
// count.
#include "kernels/conv2d/amx_bf16_conv.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/conv2d/amx_bf16_tiles.hpp"
#include "kernels/conv2d/ladder/stride_phases.hpp"

namespace kiln::kernels::amx {
namespace {

using tiles::Bfloat16Scratch;
using tiles::kBlockChannels;
using tiles::kRows;
using tiles::padded_channels;

// Channels-last x [images, H, W, C_in] zero-padded to [images, H + 2 pad_h, W + 2 pad_w, C], C being C_in
// rounded up to 16 with zero channels, then `slack` zeros: what a tile row past the last position may read.
Bfloat16Scratch padded_input(const bfloat16* x, std::int64_t images, std::int64_t H, std::int64_t W,
                             std::int64_t C_in, std::int64_t pad_h, std::int64_t pad_w, std::int64_t slack) {
  const std::int64_t C = padded_channels(C_in), Hp = H + 2 * pad_h, Wp = W + 2 * pad_w;
  const std::int64_t padded_count = images * Hp * Wp * C;
  Bfloat16Scratch padded(padded_count + slack);
  bfloat16* const xp = padded.get();
  const auto row_bytes = [](std::int64_t elements) {
    return static_cast<std::size_t>(elements) * sizeof(bfloat16);
  };
#pragma omp parallel for schedule(static)
  for (std::int64_t image_row = 0; image_row < images * Hp; ++image_row) {
    const std::int64_t n = image_row / Hp, h = image_row % Hp - pad_h;
    bfloat16* const to = xp + image_row * Wp * C;
    if (h < 0 || h >= H) {
      std::memset(to, 0, row_bytes(Wp * C));
      continue;
    }
    std::memset(to, 0, row_bytes(pad_w * C));
    const bfloat16* const from = x + (n * H + h) * W * C_in;
    if (C == C_in) {
      std::memcpy(to + pad_w * C, from, row_bytes(W * C));
    } else {  // each position's channels, then zeros up to the tile's 16
      for (std::int64_t w = 0; w < W; ++w)
        tiles::copy_padded_channels(from + w * C_in, C_in, C, to + (pad_w + w) * C);
    }
    std::memset(to + (pad_w + W) * C, 0, row_bytes(pad_w * C));
  }
  std::memset(xp + padded_count, 0, row_bytes(slack));
  return padded;
}

// Input channels a tile multiply reduces, for C (a multiple of 16) input channels: 32 (a 64-byte A row)
// where they divide C, else 16.
int reduced_channels(std::int64_t C) { return C % 32 == 0 ? 32 : 16; }

// The implicit GEMM on tiles that the forward and each phase of backward data run (the top of the file):
// output (n, i, j)[k] = bias[k] + sum over taps (r, s) and channels c of
//   input[n][origin_h + i stride_h + r dilation_h][origin_w + j stride_w + s dilation_w][c]
//   filter[k][c][r][s]
// the input being zero outside its data: in a padded copy, pad_h rows and pad_w columns of zeros around it;
// where the tiles read the data itself (place_input), nothing at all, and no tile reads there.
struct TileConvolution {
  const bfloat16* input;                         // channels-last [images][rows][columns][channels]
  std::int64_t images, rows, columns, channels;  // channels a multiple of 16 once placed (place_input)
  std::int64_t pad_h, pad_w;                     // zeros around the data in `input`, on each side
  std::int64_t origin_h, origin_w;               // below 0 where a tap reaches above or left of the data
  std::int64_t out_rows, out_columns;            // outputs an image
  std::int64_t kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w;
  const bfloat16* filter;     // packed_filter's layout
  std::int64_t out_channels;  // a multiple of 16
  const bfloat16* bias;       // or null
  // Output (n, i, j)'s out_channels, contiguous, at output + n image_stride + i row_stride + j column_stride.
  bfloat16* output;
  std::int64_t image_stride, row_stride, column_stride;
  bool accumulate;  // add the outputs to output's values (tiles::store_rounded)

  std::int64_t input_elements() const { return images * rows * columns * channels; }
};

// A 1x1 convolution at stride 1 over a dense input and output is one row of every position: tile rows then
// run across output rows and images (MobileNet's pointwise layers at 4x4 and 2x2 would fill a quarter of
// each tile, or less, one output row at a time).
TileConvolution as_one_row(TileConvolution t) {
  const bool dense = t.origin_h == 0 && t.origin_w == 0 && t.rows == t.out_rows &&
                     t.columns == t.out_columns && t.row_stride == t.out_columns * t.column_stride &&
                     t.image_stride == t.out_rows * t.row_stride;
  const bool pointwise = t.kernel_h == 1 && t.kernel_w == 1 && t.stride_h == 1 && t.stride_w == 1;
  if (!dense || !pointwise) return t;
  t.columns = t.out_columns = t.images * t.rows * t.columns;
  t.images = t.rows = t.out_rows = 1;
  t.row_stride = t.image_stride = t.out_columns * t.column_stride;
  return t;
}

// Which way a convolution's tiles take their positions (amx_bf16_conv.hpp's tile_rows_across_images): a
// pointwise layer as one row, the others by their planes' width.
bool runs_across_images(const TileConvolution& convolution) {
  const TileConvolution t = as_one_row(convolution);
  return tile_rows_across_images(t.images, t.out_columns);
}

// How far into `input` the tiles read along output rows, in elements: the last tile row's 16 positions (its
// rows past the output's edge too) at the last tap, to the end of their channels. Tile rows start further
// in as they go (images, output rows, then columns), so the last one reads furthest.
std::int64_t read_extent(const TileConvolution& convolution) {
  const TileConvolution t = as_one_row(convolution);
  const std::int64_t last_j0 = (t.out_columns - 1) / kRows * kRows;
  const std::int64_t last_row =
      (t.images - 1) * t.rows + t.origin_h + (t.out_rows - 1) * t.stride_h + (t.kernel_h - 1) * t.dilation_h;
  const std::int64_t last_column =
      t.origin_w + (last_j0 + kRows - 1) * t.stride_w + (t.kernel_w - 1) * t.dilation_w;
  return (last_row * t.columns + last_column + 1) * t.channels;
}

// The zeros a padded copy of the input needs after it, for the reads past its end (none across images:
// every read is of a tap inside the data).
std::int64_t slack(const TileConvolution& t) {
  if (runs_across_images(t)) return 0;
  return std::max<std::int64_t>(0, read_extent(t) - t.input_elements());
}

// The input as the tiles read it: the data itself, or `copy`.
struct TileInput {
  Bfloat16Scratch copy{0};
  const bfloat16* data = nullptr;
};

// Points convolutions over one input, `data`, at what their tiles read. Each describes the data as it lies,
// [images][rows][columns][C_in] (pad 0, channels C_in), with the origin it reads from. The tiles read `data`
// itself where its channels fill them (a multiple of 16) and each convolution either runs across images
// (its taps outside the data skipped) or reads nowhere outside the data (no padding, pad_h = pad_w = 0,
// and no tile row past its end); else a copy, zero-padded by pad_h and pad_w on each side, its channels
// rounded up to 16 with zeros, and zeros after it for the furthest read (MobileNet's pointwise layers read
// in place: their copy was a whole extra pass over their input; the bf16 step's pointwise forward and
// backward data 26.7 -> 23.0 ms, 20 steps on 2 threads, --profile).
TileInput place_input(std::vector<TileConvolution>& convolutions, const bfloat16* data, std::int64_t pad_h,
                      std::int64_t pad_w) {
  const TileConvolution& first = convolutions.front();
  const std::int64_t images = first.images, H = first.rows, W = first.columns, C_in = first.channels;
  bool in_place = padded_channels(C_in) == C_in;
  for (const TileConvolution& t : convolutions)
    in_place = in_place && (runs_across_images(t) || (pad_h == 0 && pad_w == 0 && slack(t) == 0));
  TileInput input;
  if (in_place) {
    input.data = data;
  } else {
    std::int64_t most_slack = 0;
    for (TileConvolution& t : convolutions) {
      t.rows += 2 * pad_h;
      t.columns += 2 * pad_w;
      t.channels = padded_channels(C_in);
      t.pad_h = pad_h;
      t.pad_w = pad_w;
      t.origin_h += pad_h;
      t.origin_w += pad_w;
      most_slack = std::max(most_slack, slack(t));
    }
    input.copy = padded_input(data, images, H, W, C_in, pad_h, pad_w, most_slack);
    input.data = input.copy.get();
  }
  for (TileConvolution& t : convolutions) t.input = input.data;
  return input;
}

// A pass's tile rows, up to four. Row i's 16 positions read the input from a_base[i] elements in (at tap
// (0, 0), channel 0), a_stride bytes apart, and write their outputs from out_base[i] elements into the
// output on, out_step elements apart; positions [first[i], last[i]) of them are stored (the rest lie past
// the output's edge, or are another tile row's).
struct PassRows {
  int count = 0;
  std::int64_t a_stride = 0, out_step = 0;
  std::int64_t a_base[4] = {}, out_base[4] = {};
  int first[4] = {}, last[4] = {};
};

// Filter taps [begin, end) along one axis.
struct TapRange {
  std::int64_t begin, end;
};

// The taps along one axis that read inside the data, for an output whose window starts at input coordinate
// `start`: start + tap dilation in [pad, size - pad), where the data lies.
TapRange taps_inside(std::int64_t start, std::int64_t dilation, std::int64_t taps, std::int64_t pad,
                     std::int64_t size) {
  const auto ceil_div = [](std::int64_t a, std::int64_t b) { return a >= 0 ? (a + b - 1) / b : -(-a / b); };
  const std::int64_t begin = std::clamp<std::int64_t>(ceil_div(pad - start, dilation), 0, taps);
  const std::int64_t end = std::clamp<std::int64_t>(ceil_div(size - pad - start, dilation), begin, taps);
  return {begin, end};
}

// Blocks of 16 output channels [begin, end).
struct BlockRange {
  std::int64_t begin, end;
};

// How a pass's four accumulators split between tile rows and blocks of output channels: four tile rows of
// the one block where there is one (the rows' A tiles share one B), else two rows of two blocks.
std::int64_t pass_blocks(const TileConvolution& t) {
  return std::min<std::int64_t>(t.out_channels / kBlockChannels, 2);
}
int pass_rows(const TileConvolution& t) { return 4 / static_cast<int>(pass_blocks(t)); }

// One pass: the four accumulators hold its tile rows times pass_blocks blocks of output channels, in turn
// over the blocks of pass_range; each sums taps taps_h x taps_w and every channel, then is stored with the
// bias added. Independent accumulators let the tile loads overlap the multiplies.
void multiply_pass(const TileConvolution& t, const PassRows& pass, TapRange taps_h, TapRange taps_w,
                   BlockRange pass_range) {
  const std::int64_t C = t.channels, K = t.out_channels, S = t.kernel_w;
  const int kc = reduced_channels(C);
  const std::int64_t chunks = C / kc, blocks = K / kBlockChannels, b_tile = kc * kBlockChannels;
  const std::int64_t b_stride = kBlockChannels * 2 * static_cast<std::int64_t>(sizeof(bfloat16));
  for (std::int64_t first_block = pass_range.begin; first_block < pass_range.end;
       first_block += pass_blocks(t)) {
    const int block_count = static_cast<int>(std::min(pass_blocks(t), pass_range.end - first_block));
    for (int k = 0; k < pass.count * block_count; ++k) tiles::zero_accumulator(k);
    for (std::int64_t r = taps_h.begin; r < taps_h.end; ++r) {
      for (std::int64_t s = taps_w.begin; s < taps_w.end; ++s) {
        const std::int64_t tap_offset = (r * t.dilation_h * t.columns + s * t.dilation_w) * C;
        const bfloat16* const b = t.filter + ((r * S + s) * chunks * blocks + first_block) * b_tile;
        for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
          tiles::multiply_block(
              pass.count, pass.a_stride,
              [&](int i) { return t.input + (pass.a_base[i] + tap_offset + chunk * kc); }, block_count,
              b_stride, [&](int k) { return b + (chunk * blocks + k) * b_tile; });
        }
      }
    }
    // Accumulator i * block_count + k: rows are tile row i's positions, 16 channels of block k each.
    for (int i = 0; i < pass.count; ++i) {
      for (int k = 0; k < block_count; ++k) {
        const std::int64_t k0 = (first_block + k) * kBlockChannels;
        tiles::store_rounded(i * block_count + k, t.bias ? t.bias + k0 : nullptr,
                             t.output + pass.out_base[i] + k0, pass.out_step, pass.first[i], pass.last[i],
                             t.accumulate);
      }
    }
  }
}

// Tile rows along output rows (16 output columns of one row each), in passes of four, or two where there
// are several blocks of output channels; every tap, the padded copy's zeros at the borders included.
void run_along_rows(const TileConvolution& convolution) {
  const TileConvolution t = as_one_row(convolution);
  const std::int64_t row_tiles = (t.out_columns + kRows - 1) / kRows;
  const std::int64_t tile_rows = t.images * t.out_rows * row_tiles;
  const int rows_a_pass = pass_rows(t);
  PassRows pass;
  pass.a_stride = t.stride_w * t.channels * static_cast<std::int64_t>(sizeof(bfloat16));
  pass.out_step = t.column_stride;
#pragma omp for schedule(static)
  for (std::int64_t first_row = 0; first_row < tile_rows; first_row += rows_a_pass) {
    pass.count = static_cast<int>(std::min<std::int64_t>(rows_a_pass, tile_rows - first_row));
    for (int i = 0; i < pass.count; ++i) {
      const std::int64_t output_row = (first_row + i) / row_tiles, j0 = (first_row + i) % row_tiles * kRows;
      const std::int64_t n = output_row / t.out_rows, oh = output_row % t.out_rows;
      pass.a_base[i] =
          ((n * t.rows + t.origin_h + oh * t.stride_h) * t.columns + t.origin_w + j0 * t.stride_w) *
          t.channels;
      pass.out_base[i] = n * t.image_stride + oh * t.row_stride + j0 * t.column_stride;
      pass.first[i] = 0;
      pass.last[i] = static_cast<int>(std::min<std::int64_t>(kRows, t.out_columns - j0));
    }
    multiply_pass(t, pass, {0, t.kernel_h}, {0, t.kernel_w}, {0, t.out_channels / kBlockChannels});
  }
}

// run_across_images's blocks of output channels at a time: the most whose packed filter fits half a core's
// L2, a whole number of pass_blocks that divides the blocks (sets of equal work, so the threads' equal
// shares of passes are equal shares of time), at least pass_blocks.
std::int64_t blocks_in_l2(const TileConvolution& t) {
  const std::int64_t blocks = t.out_channels / kBlockChannels, step = pass_blocks(t);
  const std::int64_t block_bytes =
      t.kernel_h * t.kernel_w * t.channels * kBlockChannels * static_cast<std::int64_t>(sizeof(bfloat16));
  for (std::int64_t set = std::min(blocks, per_core_l2_bytes() / 2 / block_bytes) / step * step; set > step;
       set -= step) {
    if (blocks % set == 0) return set;
  }
  return step;
}

// Tile rows across images (one output position in 16 images each): groups of 16 images, the last one
// starting 16 before the batch's end (its first rows the group before's, computed again and not stored).
// A pass takes up to four groups (two with several blocks of output channels) at one output position, so
// that they share its taps: those that reach the data there. Passes go by sets of output-channel blocks
// whose filter fits half of L2 (blocks_in_l2: all of them up to 128 -> 128 at 3x3, two sets at 256), then
// output position by position within a set of groups: each B tile serves one pass, so the set's filter stays
// in L2 for every position and image group. With 512 channels a side (4.7 MB of packed filter), passes taking
// every block streamed the whole filter from memory for each: two Sapphire Rapids cores, ms, forward /
// backward data, ResNet-18's 512 -> 512 at 4x4, batch 128, 7.4 / 7.5 -> 5.1 / 5.6, at 3x3 (batch 64) 2.1 /
// 2.1 -> 1.65 / 1.66; 256 -> 256 (two sets) at 2x2 0.33 / 0.33 -> 0.27 / 0.30, at 4x4 1.25 / 1.38 -> 1.32 /
// 1.43 (its one loss); in a bf16 ResNet-18 step on 128x128 images, batch 32, the three 512 -> 512 layers
// 8.0 / 7.5 -> 7.2 / 7.1 ms (the step within the noise). Smaller filters keep every block in a pass, so its
// A tiles are read once for all of them (by sets of two blocks, 128 -> 128 at 4x4 took 0.37 ms against
// 0.31). A thread's share is a run of sets.
void run_across_images(const TileConvolution& t) {
  const std::int64_t groups = (t.images + kRows - 1) / kRows;
  const int rows_a_pass = pass_rows(t);
  const std::int64_t sets = (groups + rows_a_pass - 1) / rows_a_pass, positions = t.out_rows * t.out_columns;
  const std::int64_t blocks = t.out_channels / kBlockChannels, set_blocks = blocks_in_l2(t);
  const std::int64_t block_sets = (blocks + set_blocks - 1) / set_blocks;
  const std::int64_t image_elements = t.rows * t.columns * t.channels;
  PassRows pass;
  pass.a_stride = image_elements * static_cast<std::int64_t>(sizeof(bfloat16));
  pass.out_step = t.image_stride;
#pragma omp for schedule(static)
  for (std::int64_t index = 0; index < block_sets * sets * positions; ++index) {
    const std::int64_t block_set = index / (sets * positions), pass_index = index % (sets * positions);
    const std::int64_t first_group = pass_index / positions * rows_a_pass, position = pass_index % positions;
    const std::int64_t oh = position / t.out_columns, ow = position % t.out_columns;
    const std::int64_t row = t.origin_h + oh * t.stride_h, column = t.origin_w + ow * t.stride_w;
    pass.count = static_cast<int>(std::min<std::int64_t>(rows_a_pass, groups - first_group));
    for (int i = 0; i < pass.count; ++i) {
      const std::int64_t group = first_group + i, n0 = std::min(group * kRows, t.images - kRows);
      pass.a_base[i] = n0 * image_elements + (row * t.columns + column) * t.channels;
      pass.out_base[i] = n0 * t.image_stride + oh * t.row_stride + ow * t.column_stride;
      pass.first[i] = static_cast<int>(group * kRows - n0);
      pass.last[i] = kRows;
    }
    multiply_pass(t, pass, taps_inside(row, t.dilation_h, t.kernel_h, t.pad_h, t.rows),
                  taps_inside(column, t.dilation_w, t.kernel_w, t.pad_w, t.columns),
                  {block_set * set_blocks, std::min(blocks, (block_set + 1) * set_blocks)});
  }
}

// Threads split the passes; each configures its own tiles and releases them at the end. An output's sum
// does not depend on the split or on the tile rows beside it: the same bits on any thread count.
void run(const TileConvolution& t) {
  const int kc = reduced_channels(t.channels);
#pragma omp parallel
  {
    tiles::configure(kc * static_cast<int>(sizeof(bfloat16)), kc / 2);
    if (runs_across_images(t))
      run_across_images(t);
    else
      run_along_rows(t);
    _tile_release();
  }
}

// Where a filter's weights lie: weight (k, c, tap) of the convolution a TileConvolution runs, output channel
// k and input channel c, is w[k * k_stride + c * c_stride + source_tap[tap]].
struct FilterView {
  const bfloat16* w;
  std::int64_t k_stride, c_stride;
  std::vector<std::int64_t> source_tap;
};

// The taps (r kernel_w + s) by which some output reaches the input: along rows every tap; across images
// those inside the input at some output position (at padding 1, a 1x1 plane's centre tap alone).
std::vector<std::int64_t> reached_taps(const TileConvolution& t) {
  TapRange rows{0, t.kernel_h}, columns{0, t.kernel_w};
  if (runs_across_images(t)) {
    const auto hull = [](std::int64_t outputs, auto taps_at) {
      TapRange all{0, 0};
      for (std::int64_t o = 0; o < outputs; ++o) {
        const TapRange taps = taps_at(o);
        if (taps.begin == taps.end) continue;
        all = all.begin == all.end ? taps
                                   : TapRange{std::min(all.begin, taps.begin), std::max(all.end, taps.end)};
      }
      return all;
    };
    rows = hull(t.out_rows, [&](std::int64_t oh) {
      return taps_inside(t.origin_h + oh * t.stride_h, t.dilation_h, t.kernel_h, t.pad_h, t.rows);
    });
    columns = hull(t.out_columns, [&](std::int64_t ow) {
      return taps_inside(t.origin_w + ow * t.stride_w, t.dilation_w, t.kernel_w, t.pad_w, t.columns);
    });
  }
  std::vector<std::int64_t> taps;
  for (std::int64_t r = rows.begin; r < rows.end; ++r)
    for (std::int64_t s = columns.begin; s < columns.end; ++s) taps.push_back(r * t.kernel_w + s);
  return taps;
}

// The filter in the pair layout the B tiles load, [tap][chunk][block][kc / 2][16 output channels][2], for K
// output channels and C input channels (C_in of them real, the rest zeros). Only `taps` are packed, the
// others' tiles left unwritten: no pass reads them. The threads split the units of 16 output channels by kc
// input channels (ResNet-18's 512 -> 512 filter packed on one thread, a tap at a time across all units, took
// longer than its 1x1 plane's product).
Bfloat16Scratch packed_filter(const FilterView& view, const std::vector<std::int64_t>& taps, std::int64_t K,
                              std::int64_t C_in, std::int64_t C) {
  const int kc = reduced_channels(C);
  const std::int64_t all_taps = static_cast<std::int64_t>(view.source_tap.size());
  const std::int64_t chunks = C / kc, blocks = K / kBlockChannels, b_tile = kc * kBlockChannels;
  Bfloat16Scratch packed(all_taps * chunks * blocks * b_tile);
  // Consecutive units walk along the filter's rows, the hardware prefetcher's streams: along the input
  // channels in the forward's [K][C][taps], along the output channels in backward data's (its roles
  // turned). Each thread takes a run of units.
  const bool chunks_inner = view.k_stride > view.c_stride;
  // Whole 32-channel chunks: each tap's tile is one 16 x 16 transpose of 32-bit channel pairs, from the
  // unit's 16 output channels' 32 channels gathered into `plain` (rows of 16 pairs). The element-by-element
  // scatter below, about 3 cycles an element, took 4.4 ms of a bf16 ResNet-18 step at batch 128 on two
  // threads (its forward and backward data's filters); this way the step ran 2-3 ms faster, and what is left
  // is mostly reading the bf16 weights from memory, 22 MB each way a step.
  const bool by_transpose = kc == 32 && C_in == C;
#pragma omp parallel for schedule(static)
  for (std::int64_t unit = 0; unit < chunks * blocks; ++unit) {
    const std::int64_t block = chunks_inner ? unit / chunks : unit % blocks;
    const std::int64_t chunk = chunks_inner ? unit % chunks : unit / blocks;
    const bfloat16* const unit_filter =
        view.w + block * kBlockChannels * view.k_stride + chunk * kc * view.c_stride;
    if (by_transpose) {
      alignas(64) bfloat16 plain[kBlockChannels * 32];  // [16 output channels][32 channels]
      for (const std::int64_t tap : taps) {
        const bfloat16* const filter = unit_filter + view.source_tap[static_cast<std::size_t>(tap)];
        for (std::int64_t col = 0; col < kBlockChannels; ++col)
          for (std::int64_t i = 0; i < 32; ++i)
            plain[col * 32 + i] = filter[col * view.k_stride + i * view.c_stride];
        bfloat16* const tile = packed.get() + ((tap * chunks + chunk) * blocks + block) * b_tile;
        transpose_16x16(reinterpret_cast<const float*>(plain), kBlockChannels, reinterpret_cast<float*>(tile),
                        kBlockChannels);
      }
      continue;
    }
    const std::int64_t real = std::clamp<std::int64_t>(C_in - chunk * kc, 0, kc);  // the rest zeros
    for (const std::int64_t tap : taps) {
      bfloat16* const tile = packed.get() + ((tap * chunks + chunk) * blocks + block) * b_tile;
      const bfloat16* const filter = unit_filter + view.source_tap[static_cast<std::size_t>(tap)];
      for (std::int64_t col = 0; col < kBlockChannels; ++col) {
        // Channel i of the chunk: the pair layout's row i / 2, element i % 2.
        for (std::int64_t i = 0; i < real; ++i)
          tile[((i / 2) * kBlockChannels + col) * 2 + i % 2] =
              filter[col * view.k_stride + i * view.c_stride];
        for (std::int64_t i = real; i < kc; ++i)
          tile[((i / 2) * kBlockChannels + col) * 2 + i % 2] = bfloat16::from_bits(0);
      }
    }
  }
  return packed;
}

}  // namespace

void conv2d_forward_bf16(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w, const bfloat16* bias,
                         bfloat16* y) {
  if (window_rows_serve(g)) return conv2d_forward_bf16_window_rows(g, x, w, bias, y);
  const std::int64_t C_in = g.in_channels, C = padded_channels(C_in), K = g.out_channels;
  const std::int64_t taps = g.kernel_h * g.kernel_w, OH = g.out_height(), OW = g.out_width();
  FilterView view{w, C_in * taps, taps, std::vector<std::int64_t>(static_cast<std::size_t>(taps))};
  for (std::int64_t tap = 0; tap < taps; ++tap) view.source_tap[static_cast<std::size_t>(tap)] = tap;
  std::vector<TileConvolution> convolution{{.input = nullptr,  // x, or its padded copy: place_input
                                            .images = g.batch,
                                            .rows = g.in_height,
                                            .columns = g.in_width,
                                            .channels = C_in,
                                            .pad_h = 0,
                                            .pad_w = 0,
                                            .origin_h = -g.pad_h,
                                            .origin_w = -g.pad_w,
                                            .out_rows = OH,
                                            .out_columns = OW,
                                            .kernel_h = g.kernel_h,
                                            .kernel_w = g.kernel_w,
                                            .stride_h = g.stride_h,
                                            .stride_w = g.stride_w,
                                            .dilation_h = g.dilation_h,
                                            .dilation_w = g.dilation_w,
                                            .filter = nullptr,  // packed below
                                            .out_channels = K,
                                            .bias = bias,
                                            .output = y,
                                            .image_stride = OH * OW * K,
                                            .row_stride = OW * K,
                                            .column_stride = K,
                                            .accumulate = false}};
  const Bfloat16Scratch packed = packed_filter(view, reached_taps(convolution.front()), K, C_in, C);
  convolution.front().filter = packed.get();
  const TileInput input = place_input(convolution, x, g.pad_h, g.pad_w);
  run(convolution.front());
}

// Backward data, gx[n][h][w][c] = sum over the taps (r, s) and output positions (oh, ow) with
// h + pad_h = oh stride_h + r dilation_h (and w likewise) of gy[n][oh][ow][k] w[k][c][r][s]. The rows h of
// one stride phase ((h + pad_h) mod stride_h) are reached by the same taps, evenly spaced
// (ladder/stride_phases.hpp works them out, as the GPU ladder's stride-phase steps do): each phase of gx is a
// forward convolution of gy, at stride 1, with those taps turned around and their outputs stride rows and
// columns apart in gx. At stride 1 there is one phase, the transposed convolution; at stride 2 four, of
// 2 x 2, 2 x 1, 1 x 2 and 1 x 1 taps for a 3x3 filter, where computing the whole transposed convolution would
// multiply zeros three times in four. A phase no tap reaches (1x1 filters at stride 2) is zero.
void conv2d_backward_data_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w, bfloat16* gx,
                               bool accumulate) {
  namespace phases = conv2d_ladder;
  const std::int64_t K = g.out_channels, C = g.in_channels, H = g.in_height, W = g.in_width;
  const std::int64_t OH = g.out_height(), OW = g.out_width(), taps = g.kernel_h * g.kernel_w;
  const phases::PhaseGrid grid = phases::phase_grid(g);

  // Phase position i reads gy rows base + i + t' tap_q_step for its taps t' (turned: t' = taps - 1 - t), base
  // = q0 - tap_q0 - (taps - 1) tap_q_step. A padded copy of gy is zero-padded enough on both sides for every
  // phase's reads.
  const auto base = [](const phases::AxisPhase& p, int tap_q_step) {
    return std::int64_t{p.q0} - p.tap_q0 - std::int64_t{p.taps - 1} * tap_q_step;
  };
  const auto padding = [&](const std::vector<phases::AxisPhase>& axis, int tap_q_step, std::int64_t size) {
    std::int64_t pad = 0;
    for (const phases::AxisPhase& p : axis) {
      if (p.taps == 0) continue;
      const std::int64_t first = base(p, tap_q_step), last = first + p.count - 1 + (p.taps - 1) * tap_q_step;
      pad = std::max({pad, -first, last - (size - 1)});
    }
    return pad;
  };
  const std::int64_t pad_h = padding(grid.h, grid.steps_h.tap_q_step, OH);
  const std::int64_t pad_w = padding(grid.w, grid.steps_w.tap_q_step, OW);
  const std::int64_t K_padded = padded_channels(K);

  // Each phase's convolution and its filter, turned: output channel c, input channel k, tap (t', u') is
  // w[k][c][r][s] with r = tap0 + (taps - 1 - t') tap_step, s likewise (t', u' < the phase's taps).
  std::vector<TileConvolution> convolutions;
  std::vector<Bfloat16Scratch> filters;
  for (const phases::AxisPhase& ph : grid.h) {
    for (const phases::AxisPhase& pw : grid.w) {
      bfloat16* const first = gx + (std::int64_t{ph.first} * W + pw.first) * C;
      if (ph.taps == 0 || pw.taps == 0) {  // no tap reaches these positions: zeros (added, nothing)
        if (accumulate) continue;
#pragma omp parallel for schedule(static)
        for (std::int64_t row = 0; row < g.batch * ph.count; ++row) {
          bfloat16* const row_start = first + (row / ph.count * H + row % ph.count * g.stride_h) * W * C;
          for (std::int64_t j = 0; j < pw.count; ++j)
            std::memset(row_start + j * g.stride_w * C, 0, static_cast<std::size_t>(C) * sizeof(bfloat16));
        }
        continue;
      }
      FilterView view{w, taps, C * taps, {}};  // output channel c of gx, input channel k of gy
      for (int t = 0; t < ph.taps; ++t) {
        for (int u = 0; u < pw.taps; ++u) {
          const std::int64_t r = ph.tap0 + (ph.taps - 1 - t) * grid.steps_h.tap_step;
          const std::int64_t s = pw.tap0 + (pw.taps - 1 - u) * grid.steps_w.tap_step;
          view.source_tap.push_back(r * g.kernel_w + s);
        }
      }
      TileConvolution t{.input = nullptr,  // gy, or its padded copy: place_input
                        .images = g.batch,
                        .rows = OH,
                        .columns = OW,
                        .channels = K,
                        .pad_h = 0,
                        .pad_w = 0,
                        .origin_h = base(ph, grid.steps_h.tap_q_step),
                        .origin_w = base(pw, grid.steps_w.tap_q_step),
                        .out_rows = ph.count,
                        .out_columns = pw.count,
                        .kernel_h = ph.taps,
                        .kernel_w = pw.taps,
                        .stride_h = 1,
                        .stride_w = 1,
                        .dilation_h = grid.steps_h.tap_q_step,
                        .dilation_w = grid.steps_w.tap_q_step,
                        .filter = nullptr,  // packed below
                        .out_channels = C,
                        .bias = nullptr,
                        .output = first,
                        .image_stride = H * W * C,
                        .row_stride = g.stride_h * W * C,
                        .column_stride = g.stride_w * C,
                        .accumulate = accumulate};
      filters.push_back(packed_filter(view, reached_taps(t), C, K, K_padded));
      t.filter = filters.back().get();
      convolutions.push_back(t);
    }
  }
  if (convolutions.empty()) return;
  const TileInput input = place_input(convolutions, gy, pad_h, pad_w);
  for (const TileConvolution& t : convolutions) run(t);
}

}  // namespace kiln::kernels::amx
