// The AMX bfloat16 weight gradient (amx_bf16_conv.hpp), compiled with -mamx-tile -mamx-bf16 and AVX-512:
//
//   gw[k][c][r][s] = sum over n, oh, ow of gy[n][oh][ow][k] xp[n][oh sh + r dh][ow sw + s dw][c]
//
// xp being the input zero-padded by pad_h and pad_w. Per tap (r, s) that is a GEMM gy^T [C_out, P] x [P, C_in]
// whose reduction, the P positions, runs down both operands' rows. The tile multiply (amx_bf16_tiles.hpp)
// reduces along A's rows and down B's pair rows, so A is gy^T, 16 output channels x 32 positions, and B is x,
// 32 positions x 16 channels, its row q interleaving positions 2q and 2q + 1.
//
// The phase grid, which makes every B tile a plain load. A tap reads every sh-th row and sw-th column of xp
// from (r dh, s dw) on. Split xp into its sh x sw phases, X_ab[i][j] = xp[i sh + a][j sw + b], each
// Hq = ceil(Hp / sh) rows by Wq = ceil(Wp / sw) columns (zeros past xp's edge): tap (r, s) reads phase
// ((r dh) mod sh, (s dw) mod sw) from row oh + floor(r dh / sh) and column ow + floor(s dw / sw), at stride 1.
// Lay the output positions on the same grid, v = (i Hq + oh) Wq + ow for the chunk's image i, gy being zero
// where oh >= OH or ow >= OW: the input a tap pairs with grid position v is then its phase's flat position
// v + offset(tap), offset = floor(r dh / sh) Wq + floor(s dw / sw), one number per tap, so 32 consecutive grid
// positions read 32 consecutive phase positions. Each phase is laid out in pairs twice, E[j] interleaving
// its positions 2j and 2j + 1 and O[j] its positions 2j + 1 and 2j + 2: the B tile of the block whose first
// phase position is u is E's rows u / 2 .. u / 2 + 15 when u is even, O's when it is odd. No tap rebuilds
// anything (the positions' pairs were rebuilt for every tap before: ResNet-20's 16 -> 16 layer at 32x32,
// batch 128, took 1.03 ms on two Sapphire Rapids cores, 0.67 since). The price is the grid's extra positions,
// zeros of gy the tiles multiply anyway: 1156 an image for ResNet's 1024 outputs at 32x32, 100 for 64 at 8x8.
// (Where no tap's offset is odd, a 1x1 filter's, O is never read and not built.)
//
// A, gy^T per block of 32 grid positions and 16 output channels: gy's rows interleaved in pairs (positions
// 2q, 2q + 1) make 16 rows of 16 pairs, a 16 x 16 matrix of 32-bit pairs, and one 16 x 16 transpose of those
// (moving bits only) gives 16 rows of one channel's 32 positions. Built once per chunk, read by every tap and
// input-channel block.
//
// The multiplies go in passes (Pass, below): four accumulators, each a block of 16 output channels by a unit
// of one tap and 16 input channels, over every block of the chunk.
//
// Chunks of whole images (conv2d_backward_weight_bf16_images_per_chunk: a chunk's pair layouts and A tiles
// fit in about 1 MiB, in L2; where the threads split the passes, ..._split_images_per_chunk: up to 4 MiB),
// fixed by the shape and never by the thread count; the sums are float, added in chunk order (the two ways
// threads share them are at conv2d_backward_weight_bf16), so the result has the same bits on any number of
// threads; it is rounded to bfloat16 once.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/conv2d/amx_bf16_conv.hpp"
#include "kernels/conv2d/amx_bf16_tiles.hpp"
#include "kernels/elementwise/elementwise.hpp"

namespace kiln::kernels::amx {
namespace {

using tiles::Bfloat16Scratch;
using tiles::kAccumulators;
using tiles::kBlockChannels;
using tiles::kRows;

constexpr std::int64_t kBlock = 32;  // grid positions an A or B tile reduces over: 16 rows of pairs

// The phase grid of the top of the file, for one geometry.
struct PhaseGrid {
  explicit PhaseGrid(const Conv2dGeometry& geometry)
      : g(geometry),
        channels(tiles::padded_channels(geometry.in_channels)),
        rows((geometry.in_height + 2 * geometry.pad_h + geometry.stride_h - 1) / geometry.stride_h),
        columns((geometry.in_width + 2 * geometry.pad_w + geometry.stride_w - 1) / geometry.stride_w),
        phases(geometry.stride_h * geometry.stride_w),
        max_offset(offset(g.kernel_h * g.kernel_w - 1)) {
    for (std::int64_t tap = 0; tap < g.kernel_h * g.kernel_w; ++tap) odd_offsets |= offset(tap) % 2 == 1;
  }

  // The phase tap (r, s) reads, a * sw + b, and its offset there.
  std::int64_t phase(std::int64_t tap) const {
    const std::int64_t r = tap / g.kernel_w, s = tap % g.kernel_w;
    return r * g.dilation_h % g.stride_h * g.stride_w + s * g.dilation_w % g.stride_w;
  }
  std::int64_t offset(std::int64_t tap) const {
    const std::int64_t r = tap / g.kernel_w, s = tap % g.kernel_w;
    return r * g.dilation_h / g.stride_h * columns + s * g.dilation_w / g.stride_w;
  }

  // A chunk of `images` images: its blocks of 32 grid positions (through its last output position), and the
  // rows of E and of O a phase needs for them.
  std::int64_t blocks(std::int64_t images) const {
    const std::int64_t used = ((images - 1) * rows + g.out_height() - 1) * columns + g.out_width();
    return (used + kBlock - 1) / kBlock;
  }
  std::int64_t pair_rows(std::int64_t images) const { return ((blocks(images) - 1) * kBlock + max_offset) / 2 + kRows; }
  std::int64_t per_image() const { return rows * columns; }

  Conv2dGeometry g;
  std::int64_t channels;       // C: the input's channels padded to 16
  std::int64_t rows, columns;  // Hq, Wq
  std::int64_t phases;         // sh x sw
  std::int64_t max_offset;     // the last tap's offset, the largest
  bool odd_offsets = false;    // whether any tap's is odd: else no block reads O (a 1x1 filter's offset is 0)
};

// The chunk's positions in one phase, in order u = 0, 1, ...: each a pointer to C channels: in x, where the
// position is inside the input and C_in is already a multiple of 16; in a zero-padded copy, where the
// channels are padded; `zeros` outside the input and past the chunk's images.
class PhaseWalk {
 public:
  // From grid position `first` on.
  PhaseWalk(const PhaseGrid& grid, std::int64_t phase, const bfloat16* x, std::int64_t n0,
            std::int64_t images, const bfloat16* zeros, std::int64_t first)
      : g_(grid.g),
        grid_(grid),
        row_phase_(phase / grid.g.stride_w),
        column_phase_(phase % grid.g.stride_w),
        x_(x),
        n0_(n0),
        images_(images),
        zeros_(zeros),
        copies_(grid.channels == grid.g.in_channels ? 0 : static_cast<std::size_t>(3 * grid.channels)),
        image_(first / grid.per_image()),
        row_in_image_(first % grid.per_image() / grid.columns),
        column_(first % grid.columns) {
    start_row();
  }

  // The next position's channels. A padded copy stays valid for the next two calls: three slots in turn.
  const bfloat16* next() {
    const bfloat16* channels = zeros_;
    const std::int64_t w = column_ * g_.stride_w + column_phase_ - g_.pad_w;
    if (row_ != nullptr && w >= 0 && w < g_.in_width) {
      channels = row_ + w * g_.in_channels;
      if (!copies_.empty()) channels = padded_copy(channels);
    }
    if (++column_ == grid_.columns) {
      column_ = 0;
      if (++row_in_image_ == grid_.rows) row_in_image_ = 0, ++image_;
      start_row();
    }
    return channels;
  }

 private:
  void start_row() {
    const std::int64_t h = row_in_image_ * g_.stride_h + row_phase_ - g_.pad_h;
    const bool inside = image_ < images_ && h >= 0 && h < g_.in_height;
    row_ = inside ? x_ + ((n0_ + image_) * g_.in_height + h) * g_.in_width * g_.in_channels : nullptr;
  }
  // from's C_in channels, then zeros up to C.
  const bfloat16* padded_copy(const bfloat16* from) {
    bfloat16* const to = copies_.data() + (slot_++ % 3) * grid_.channels;
    tiles::copy_padded_channels(from, g_.in_channels, grid_.channels, to);
    return to;
  }

  const Conv2dGeometry& g_;
  const PhaseGrid& grid_;
  std::int64_t row_phase_, column_phase_;
  const bfloat16* x_;
  std::int64_t n0_, images_;
  const bfloat16* zeros_;
  std::vector<bfloat16> copies_;
  std::int64_t slot_ = 0;
  std::int64_t image_, row_in_image_, column_;               // the next position on the grid
  const bfloat16* row_ = nullptr;                            // its input row, null outside the input
};

// One chunk's operands (see the top), in scratch: each phase's E, then its O, then the A tiles.
class ChunkOperands {
 public:
  // bfloat16 of scratch for chunks of up to `images` images.
  static std::int64_t size(const PhaseGrid& grid, std::int64_t images) {
    return grid.phases * 2 * pairs_size(grid, images) + grid.blocks(images) * grid.g.out_channels * kBlock;
  }

  ChunkOperands(const PhaseGrid& grid, std::int64_t most_images, bfloat16* scratch, std::int64_t n0,
                std::int64_t images)
      : grid_(grid),
        pairs_size_(pairs_size(grid, most_images)),
        even_(scratch),
        a_tiles_(scratch + grid.phases * 2 * pairs_size_),
        n0_(n0),
        images_(images),
        blocks_(grid.blocks(images)),
        pair_rows_(grid.pair_rows(images)) {}

  std::int64_t blocks() const { return blocks_; }
  std::int64_t pair_rows() const { return pair_rows_; }

  // Rows [first, last) of E and O of one phase: rows of C pairs, [pair_rows][C][2]. (Tried and measured no
  // faster: gathering a piece's positions into an L1 buffer a grid row at a time, one copy per row's run of
  // input, then pairing from there. ResNet-20's 16-channel layer at 32x32 took the same 0.77 ms, the pairing
  // being bound by reading the input, not by this walk; its stride-2 layers slowed, 0.47 -> 0.65 ms.)
  void pair_up(std::int64_t phase, std::int64_t first, std::int64_t last, const bfloat16* x,
               const bfloat16* zeros) {
    const std::int64_t C = grid_.channels;
    bfloat16* const even = even_ + phase * 2 * pairs_size_;
    bfloat16* const odd = even + pairs_size_;
    PhaseWalk walk(grid_, phase, x, n0_, images_, zeros, 2 * first);
    const bfloat16* position = walk.next();  // 2j
    for (std::int64_t j = first; j < last; ++j) {
      const bfloat16* const second = walk.next();  // 2j + 1
      const bfloat16* const third = walk.next();   // 2j + 2
      for (std::int64_t c0 = 0; c0 < C; c0 += kBlockChannels) {
        tiles::interleave_pairs(position + c0, second + c0, even + j * 2 * C + 2 * c0);
        if (grid_.odd_offsets) tiles::interleave_pairs(second + c0, third + c0, odd + j * 2 * C + 2 * c0);
      }
      position = third;
    }
  }

  // The A tiles of blocks [first, last), [block][k block][16 output channels][32 positions]: gy^T on the
  // grid.
  void transpose_gy(std::int64_t first, std::int64_t last, const bfloat16* gy, const bfloat16* zeros) {
    const Conv2dGeometry& g = grid_.g;
    const std::int64_t K = g.out_channels, k_blocks = K / kBlockChannels, OH = g.out_height(),
                       OW = g.out_width();
    const bfloat16* rows[kBlock];                // the block's gy rows, or zeros off the outputs
    // The grid position's image, row and column.
    const std::int64_t v0 = first * kBlock;
    std::int64_t i = v0 / grid_.per_image(), y = v0 % grid_.per_image() / grid_.columns,
                 z = v0 % grid_.columns;
    for (std::int64_t block = first; block < last; ++block) {
      for (const bfloat16*& row : rows) {
        row = i < images_ && y < OH && z < OW ? gy + (((n0_ + i) * OH + y) * OW + z) * K : zeros;
        if (++z < grid_.columns) continue;
        z = 0;
        if (++y == grid_.rows) y = 0, ++i;
      }
      for (std::int64_t kb = 0; kb < k_blocks; ++kb)
        tiles::transposed_tile(rows, kb * kBlockChannels,
                               a_tiles_ + (block * k_blocks + kb) * kRows * kBlock);
    }
  }

  // The A tile of block `block` and output-channel block kb; the B tile of `block` at `tap`, 16 rows of pairs
  // 2 C bfloat16 apart, from channel c0 on.
  const bfloat16* a_tile(std::int64_t block, std::int64_t kb) const {
    return a_tiles_ + (block * (grid_.g.out_channels / kBlockChannels) + kb) * kRows * kBlock;
  }
  const bfloat16* b_tile(std::int64_t block, std::int64_t tap, std::int64_t c0) const {
    const std::int64_t u = block * kBlock + grid_.offset(tap);  // the block's first phase position
    return even_ + grid_.phase(tap) * 2 * pairs_size_ + (u & 1) * pairs_size_ +
           (u >> 1) * 2 * grid_.channels + 2 * c0;
  }
  // From block b's B tile at a tap to block b + 1's, in bfloat16: kBlock positions further on, the same
  // parity (kBlock is even), kBlock / 2 pair rows of 2 C.
  std::int64_t b_block_stride() const { return kBlock * grid_.channels; }

 private:
  static std::int64_t pairs_size(const PhaseGrid& grid, std::int64_t images) {
    return grid.pair_rows(images) * 2 * grid.channels;
  }

  const PhaseGrid& grid_;
  std::int64_t pairs_size_;
  bfloat16* even_;  // phase p's E at p * 2 pairs_size, its O after it
  bfloat16* a_tiles_;
  std::int64_t n0_, images_, blocks_, pair_rows_;
};

// A pass of the multiply loop: its accumulators a * units + t hold output-channel block k_block + a
// (a < k_blocks) times B unit unit + t (t < units), a unit being a tap and a block of 16 input channels,
// unit = tap * C / 16 + c0 / 16. Two blocks by two units where there are that many (two A and two B tiles
// for four multiplies), else one block by four units (the 16-channel layers: their four taps share an A).
//
// In order of output-channel blocks, then units: consecutive passes read the same A tiles, while the B
// tiles go by. Which order changes no bit (each pass owns its accumulators), but where the threads split the
// passes (MobileNet's large pointwise layers, whose operands do not fit L2) it decides what each thread's
// passes read from L3: units first there, 512 -> 512 at 4x4 ran 1.49 ms against 1.33, 512 -> 1024 at 2x2
// 0.76 against 0.64, 1024 -> 1024 1.41 against 1.29 (conv2d_bench --bf16 --channels-last, two threads;
// the layers whose threads take whole chunks, operands in L2, within the noise either way).
struct Pass {
  std::int64_t k_block;
  int k_blocks;
  std::int64_t unit;
  int units;
};

std::vector<Pass> passes(const PhaseGrid& grid) {
  const std::int64_t k_blocks = grid.g.out_channels / kBlockChannels;
  const std::int64_t units = grid.g.kernel_h * grid.g.kernel_w * (grid.channels / kBlockChannels);
  const std::int64_t pass_k_blocks = std::min<std::int64_t>(2, k_blocks);
  const std::int64_t pass_units = kAccumulators / pass_k_blocks;
  std::vector<Pass> all;
  for (std::int64_t kb0 = 0; kb0 < k_blocks; kb0 += pass_k_blocks)
    for (std::int64_t u0 = 0; u0 < units; u0 += pass_units)
      all.push_back({kb0, static_cast<int>(std::min(pass_k_blocks, k_blocks - kb0)), u0,
                     static_cast<int>(std::min(pass_units, units - u0))});
  return all;
}

// Runs `pass` over the chunk's blocks, its accumulators starting from zero or, with `accumulate`, from the
// gradient, and ending there: sums [tap][C_out][C] in float (C, the channels padded to 16).
void multiply(const PhaseGrid& grid, const ChunkOperands& operands, const Pass& pass, bool accumulate,
              float* sums) {
  const std::int64_t C = grid.channels, K = grid.g.out_channels, c_blocks = C / kBlockChannels;
  const std::int64_t b_stride = 2 * C * static_cast<std::int64_t>(sizeof(bfloat16));
  const std::int64_t a_stride = kBlock * static_cast<std::int64_t>(sizeof(bfloat16));
  const std::int64_t sums_stride = C * static_cast<std::int64_t>(sizeof(float));
  const auto tap = [&](int t) { return (pass.unit + t) / c_blocks; };
  const auto c0 = [&](int t) { return (pass.unit + t) % c_blocks * kBlockChannels; };
  // Accumulator a * units + t: rows output channels of block k_block + a, columns unit t's input channels.
  const auto home = [&](int a, int t) {
    return sums + (tap(t) * K + (pass.k_block + a) * kBlockChannels) * C + c0(t);
  };
  for (int a = 0; a < pass.k_blocks; ++a) {
    for (int t = 0; t < pass.units; ++t) {
      if (accumulate) {
        tiles::load_accumulator(a * pass.units + t, home(a, t), sums_stride);
      } else {
        tiles::zero_accumulator(a * pass.units + t);
      }
    }
  }
  // Block 0's B tile of each unit, the others' a whole number of b_block_stride() further: b_tile's divisions
  // (a unit's tap and channels, a tap's phase and offset) once a pass, not once a block. In the block loop
  // they were ten 64-bit integer divides ahead of every two tile loads, address arithmetic GCC did not hoist
  // out of it (`perf annotate`: a run of idiv before each tileloadd). Batch 128, two threads of a Xeon with
  // AMX, ms: MobileNet's pointwise 512 -> 512 at 4x4 1.35 -> 0.88, 1024 -> 1024 at 2x2 1.39 -> 0.82, 32 -> 64
  // at 32x32 1.12 -> 0.93; ResNet-20's 16 -> 16 at 32x32 0.70 -> 0.60, 64 -> 64 at 8x8 0.49 -> 0.39; the
  // VGG-style net's 128 -> 128 at 8x8 1.80 -> 1.48.
  const bfloat16* b_first[kAccumulators];
  for (int t = 0; t < pass.units; ++t) b_first[t] = operands.b_tile(0, tap(t), c0(t));
  const std::int64_t b_block = operands.b_block_stride();
  for (std::int64_t block = 0; block < operands.blocks(); ++block) {
    tiles::multiply_block(
        pass.k_blocks, a_stride, [&](int a) { return operands.a_tile(block, pass.k_block + a); }, pass.units,
        b_stride, [&](int t) { return b_first[t] + block * b_block; });
  }
  for (int a = 0; a < pass.k_blocks; ++a)
    for (int t = 0; t < pass.units; ++t)
      tiles::store_accumulator(a * pass.units + t, home(a, t), sums_stride);
}

}  // namespace

// Two ways to share the work among threads, each giving the same bits on any thread count:
// - By chunk (most layers): each thread takes whole chunks, builds their operands and sums them into a
//   partial gradient of its own; the partials are added in chunk order (batch_chunks::sum_over_chunks).
// - By pass, where the gradient is large (half the core's L2 or more: MobileNet's 512 -> 512 pointwise
//   layer at 4x4, 1 MiB of float sums), so that a partial per thread would crowd the chunk's operands out of
//   L2: the chunks go one after another, the threads building each one's operands together and then
//   splitting its passes, each pass adding into the gradient where it lies.
void conv2d_backward_weight_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x, bfloat16* gw,
                                 std::int64_t images_per_chunk) {
  if (images_per_chunk <= 0 && window_rows_serve(g))
    return conv2d_backward_weight_bf16_window_rows(g, gy, x, gw);
  if (images_per_chunk <= 0 && weight_gradient_across_images(g))
    return conv2d_backward_weight_bf16_across_images(g, gy, x, gw);
  const PhaseGrid grid(g);
  const std::int64_t C = grid.channels, C_in = g.in_channels, K = g.out_channels;
  const std::int64_t taps = g.kernel_h * g.kernel_w;
  const bool splits_passes = conv2d_backward_weight_bf16_splits_passes(g);
  if (images_per_chunk <= 0) {
    images_per_chunk = splits_passes ? conv2d_backward_weight_bf16_split_images_per_chunk(g)
                                     : conv2d_backward_weight_bf16_images_per_chunk(g);
  }
  const std::int64_t chunks = (g.batch + images_per_chunk - 1) / images_per_chunk;
  const std::vector<bfloat16> zeros(static_cast<std::size_t>(std::max(K, C)), bfloat16::from_bits(0));
  const std::vector<Pass> all_passes = passes(grid);
  const std::int64_t operands_size = ChunkOperands::size(grid, images_per_chunk);  // bfloat16
  const std::int64_t sums_size = taps * K * C;                                     // [tap][C_out][C]
  const CpuScratch gradient = cpu_scratch(sums_size);

  if (!splits_passes) {
    batch_chunks::sum_over_chunks(chunks, sums_size, (operands_size + 1) / 2, gradient.get(),
                                  [&](std::int64_t chunk, float* scratch, float* sums) {
                                    const std::int64_t n0 = chunk * images_per_chunk;
                                    ChunkOperands operands(grid, images_per_chunk,
                                                           reinterpret_cast<bfloat16*>(scratch), n0,
                                                           std::min(images_per_chunk, g.batch - n0));
                                    for (std::int64_t phase = 0; phase < grid.phases; ++phase)
                                      operands.pair_up(phase, 0, operands.pair_rows(), x, zeros.data());
                                    operands.transpose_gy(0, operands.blocks(), gy, zeros.data());
                                    tiles::configure(kBlock * sizeof(bfloat16), kBlock / 2);
                                    for (const Pass& pass : all_passes)
                                      multiply(grid, operands, pass, false, sums);
                                    _tile_release();
                                  });
  } else {
    const Bfloat16Scratch shared(operands_size);
    for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
      const std::int64_t n0 = chunk * images_per_chunk;
      ChunkOperands operands(grid, images_per_chunk, shared.get(), n0,
                             std::min(images_per_chunk, g.batch - n0));
      const std::int64_t rows = operands.pair_rows(), blocks = operands.blocks();
      constexpr std::int64_t kRowsAPiece = 64;  // pair rows or A blocks a thread takes at a time
#pragma omp parallel
      {
        const std::int64_t pieces = (rows + kRowsAPiece - 1) / kRowsAPiece;
#pragma omp for schedule(static) collapse(2)
        for (std::int64_t phase = 0; phase < grid.phases; ++phase)
          for (std::int64_t piece = 0; piece < pieces; ++piece)
            operands.pair_up(phase, piece * kRowsAPiece, std::min(rows, (piece + 1) * kRowsAPiece), x,
                             zeros.data());
#pragma omp for schedule(static) nowait
        for (std::int64_t first = 0; first < blocks; first += kRowsAPiece)
          operands.transpose_gy(first, std::min(blocks, first + kRowsAPiece), gy, zeros.data());
#pragma omp barrier
        tiles::configure(kBlock * sizeof(bfloat16), kBlock / 2);
#pragma omp for schedule(static)
        for (std::size_t p = 0; p < all_passes.size(); ++p)
          multiply(grid, operands, all_passes[p], chunk > 0, gradient.get());
        _tile_release();
      }
    }
  }

  // [tap][C_out][C] to kiln's [C_out][C_in][tap], the padded channels dropped, rounded once.
  if (taps == 1 && C == C_in) {  // the same layout: the elementwise family's dense conversion
    const std::int64_t dense = 1;
    return copy_strided<float, bfloat16>(Device::cpu(), 1, &sums_size, gradient.get(), &dense, gw, &dense);
  }
  for (std::int64_t k = 0; k < K; ++k)
    for (std::int64_t c = 0; c < C_in; ++c)
      for (std::int64_t tap = 0; tap < taps; ++tap)
        gw[(k * C_in + c) * taps + tap] = bfloat16(gradient[static_cast<std::size_t>((tap * K + k) * C + c)]);
}

}  // namespace kiln::kernels::amx
