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
// batch 128, took 1.03 ms on two Sapphire Rapids cores). The price is the grid's extra positions, zeros of gy
// the tiles multiply anyway: 1156 an image for ResNet's 1024 outputs at 32x32, 100 for 64 at 8x8.
//
// A, gy^T per block of 32 grid positions and 16 output channels: gy's rows interleaved in pairs (positions
// 2q, 2q + 1) make 16 rows of 16 pairs, a 16 x 16 matrix of 32-bit pairs, and one 16 x 16 transpose of those
// (moving bits only) gives 16 rows of one channel's 32 positions. Built once per chunk, read by every tap and
// input-channel block.
//
// Chunks of whole images (conv2d_backward_weight_bf16_images_per_chunk: a chunk's phases, pair layouts and A
// tiles fit in about 1 MiB, in L2), fixed by the shape and never by the thread count;
// batch_chunks::sum_over_chunks adds the chunks' sums in chunk order, so the result has the same bits on any
// number of threads; it is rounded to bfloat16 once.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/conv2d/amx_bf16_conv.hpp"
#include "kernels/conv2d/amx_bf16_tiles.hpp"
#include "kernels/simd/transpose_16x16.hpp"

namespace kiln::kernels::amx {
namespace {

using tiles::kAccumulators;
using tiles::kBlockChannels;
using tiles::kRows;

constexpr std::int64_t kBlock = 32;  // grid positions an A or B tile reduces over: 16 rows of pairs

// The phase grid of the top of the file, for one geometry.
struct PhaseGrid {
  explicit PhaseGrid(const Conv2dGeometry& geometry)
      : g(geometry),
        channels(tiles::padded_channels(geometry)),
        rows((geometry.in_height + 2 * geometry.pad_h + geometry.stride_h - 1) / geometry.stride_h),
        columns((geometry.in_width + 2 * geometry.pad_w + geometry.stride_w - 1) / geometry.stride_w),
        phases(geometry.stride_h * geometry.stride_w),
        max_offset(offset(g.kernel_h * g.kernel_w - 1)) {}

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

  Conv2dGeometry g;
  std::int64_t channels;       // C: the input's channels padded to 16
  std::int64_t rows, columns;  // Hq, Wq
  std::int64_t phases;         // sh x sw
  std::int64_t max_offset;     // the last tap's offset, the largest
};

// The chunk's positions in one phase, in order u = 0, 1, ...: each a pointer to C channels: in x, where the
// position is inside the input and C_in is already a multiple of 16; in a zero-padded copy, where the
// channels are padded; `zeros` outside the input and past the chunk's images.
class PhaseWalk {
 public:
  PhaseWalk(const PhaseGrid& grid, std::int64_t phase, const bfloat16* x, std::int64_t n0, std::int64_t images,
            const bfloat16* zeros)
      : g_(grid.g),
        grid_(grid),
        row_phase_(phase / grid.g.stride_w),
        column_phase_(phase % grid.g.stride_w),
        x_(x),
        n0_(n0),
        images_(images),
        zeros_(zeros),
        copies_(grid.channels == grid.g.in_channels ? 0 : static_cast<std::size_t>(3 * grid.channels)) {
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
    for (std::int64_t c0 = 0; c0 < grid_.channels; c0 += kBlockChannels) {
      const std::int64_t valid = std::clamp<std::int64_t>(g_.in_channels - c0, 0, kBlockChannels);
      const __mmask16 lanes = static_cast<__mmask16>((1u << valid) - 1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(to + c0), _mm256_maskz_loadu_epi16(lanes, from + c0));
    }
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
  std::int64_t image_ = 0, row_in_image_ = 0, column_ = 0;  // the next position on the grid
  const bfloat16* row_ = nullptr;                            // its input row, null outside the input
};

// E and O of a phase (see the top): pair_rows rows of C pairs each, [pair_rows][C][2].
void pair_up(PhaseWalk walk, std::int64_t pair_rows, std::int64_t C, bfloat16* even, bfloat16* odd) {
  const bfloat16* first = walk.next();  // position 2j
  for (std::int64_t j = 0; j < pair_rows; ++j) {
    const bfloat16* const second = walk.next();  // 2j + 1
    const bfloat16* const third = walk.next();   // 2j + 2
    for (std::int64_t c0 = 0; c0 < C; c0 += kBlockChannels) {
      tiles::interleave_pairs(first + c0, second + c0, even + j * 2 * C + 2 * c0);
      tiles::interleave_pairs(second + c0, third + c0, odd + j * 2 * C + 2 * c0);
    }
    first = third;
  }
}

// The chunk's A tiles, [block][k block][16 output channels][32 positions]: gy^T on the grid.
void build_a_tiles(const PhaseGrid& grid, const bfloat16* gy, std::int64_t n0, std::int64_t images,
                   const bfloat16* zeros, bfloat16* a_tiles) {
  const Conv2dGeometry& g = grid.g;
  const std::int64_t K = g.out_channels, k_blocks = K / kBlockChannels, OH = g.out_height(), OW = g.out_width();
  alignas(64) bfloat16 pairs[kRows * kBlock];  // 16 rows of 16 pairs, before their transpose
  const bfloat16* rows[kBlock];                // the block's gy rows, or zeros off the outputs
  std::int64_t i = 0, y = 0, z = 0;            // the grid position's image, row and column
  for (std::int64_t block = 0; block < grid.blocks(images); ++block) {
    for (const bfloat16*& row : rows) {
      row = i < images && y < OH && z < OW ? gy + (((n0 + i) * OH + y) * OW + z) * K : zeros;
      if (++z < grid.columns) continue;
      z = 0;
      if (++y == grid.rows) y = 0, ++i;
    }
    for (std::int64_t kb = 0; kb < k_blocks; ++kb) {
      const std::int64_t k0 = kb * kBlockChannels;
      for (std::int64_t q = 0; q < kRows; ++q)
        tiles::interleave_pairs(rows[2 * q] + k0, rows[2 * q + 1] + k0, pairs + q * kBlock);
      transpose_16x16(reinterpret_cast<const float*>(pairs), kBlock / 2,
                      reinterpret_cast<float*>(a_tiles + (block * k_blocks + kb) * kRows * kBlock), kBlock / 2);
    }
  }
}

}  // namespace

void conv2d_backward_weight_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                 bfloat16* gw) {
  const PhaseGrid grid(g);
  const std::int64_t C = grid.channels, C_in = g.in_channels, K = g.out_channels;
  const std::int64_t taps = g.kernel_h * g.kernel_w, k_blocks = K / kBlockChannels;
  const std::int64_t images_per_chunk = conv2d_backward_weight_bf16_images_per_chunk(g);
  const std::int64_t chunks = (g.batch + images_per_chunk - 1) / images_per_chunk;
  const std::vector<bfloat16> zeros(static_cast<std::size_t>(std::max(K, C)), bfloat16::from_bits(0));

  // The four accumulators hold a pass's blocks of output channels times its taps: four blocks of one tap
  // where there are four blocks (a B tile for four A tiles), else two of two, or one block of four taps.
  const std::int64_t pass_k_blocks = std::min<std::int64_t>(2, k_blocks);
  const std::int64_t pass_taps = kAccumulators / pass_k_blocks;

  // A thread's scratch, sized for the largest chunk: each phase's E and O, then the A tiles (bfloat16).
  const std::int64_t pairs_size = grid.pair_rows(images_per_chunk) * 2 * C;
  const std::int64_t a_offset = grid.phases * 2 * pairs_size;
  const std::int64_t scratch_size = a_offset + grid.blocks(images_per_chunk) * K * kBlock;

  const std::int64_t gw_count = K * C_in * taps;
  const batch_chunks::Scratch gradient = batch_chunks::scratch(gw_count);
  const auto chunk_sums = [&](std::int64_t chunk, float* scratch, float* sums) {
    bfloat16* const even = reinterpret_cast<bfloat16*>(scratch);  // phase p's E at p * 2 pairs_size, O after
    bfloat16* const a_tiles = even + a_offset;
    const std::int64_t n0 = chunk * images_per_chunk, images = std::min(images_per_chunk, g.batch - n0);
    const std::int64_t blocks = grid.blocks(images);
    for (std::int64_t phase = 0; phase < grid.phases; ++phase) {
      bfloat16* const own = even + phase * 2 * pairs_size;
      pair_up(PhaseWalk(grid, phase, x, n0, images, zeros.data()), grid.pair_rows(images), C, own,
              own + pairs_size);
    }
    build_a_tiles(grid, gy, n0, images, zeros.data(), a_tiles);
    // The B tile of grid block `block` at `tap`, 16 rows of pairs (2 C bfloat16 apart) from channel c0 on.
    const auto b_tile = [&](std::int64_t block, std::int64_t tap, std::int64_t c0) {
      const std::int64_t u = block * kBlock + grid.offset(tap);  // the block's first phase position
      return even + grid.phase(tap) * 2 * pairs_size + (u & 1) * pairs_size + (u >> 1) * 2 * C + 2 * c0;
    };
    const std::int64_t b_stride = 2 * C * static_cast<std::int64_t>(sizeof(bfloat16));
    const std::int64_t a_stride = kBlock * static_cast<std::int64_t>(sizeof(bfloat16));

    tiles::configure(kBlock * sizeof(bfloat16), kBlock / 2);
    alignas(64) float staged[kRows][kBlockChannels];
    for (std::int64_t c0 = 0; c0 < C; c0 += kBlockChannels) {
      for (std::int64_t tap0 = 0; tap0 < taps; tap0 += pass_taps) {
        const int t_count = static_cast<int>(std::min(pass_taps, taps - tap0));
        for (std::int64_t kb0 = 0; kb0 < k_blocks; kb0 += pass_k_blocks) {
          const int k_count = static_cast<int>(std::min(pass_k_blocks, k_blocks - kb0));
          for (int k = 0; k < k_count * t_count; ++k) tiles::zero_accumulator(k);
          for (std::int64_t block = 0; block < blocks; ++block) {
            const bfloat16* const a_block = a_tiles + (block * k_blocks + kb0) * kRows * kBlock;
            tiles::multiply_block(
                k_count, a_stride, [&](int a) { return a_block + a * kRows * kBlock; }, t_count, b_stride,
                [&](int t) { return b_tile(block, tap0 + t, c0); });
          }
          // Accumulator a * t_count + t: rows are output channels of block kb0 + a, columns input channels,
          // of tap tap0 + t; stored straight into the chunk's sums, [tap][C_out][C_in], where 16 channels fit.
          for (int a = 0; a < k_count; ++a) {
            for (int t = 0; t < t_count; ++t) {
              float* const to = sums + ((tap0 + t) * K + (kb0 + a) * kBlockChannels) * C_in + c0;
              if (c0 + kBlockChannels <= C_in) {
                tiles::store_accumulator(a * t_count + t, to, C_in * sizeof(float));
                continue;
              }
              tiles::store_accumulator(a * t_count + t, &staged[0][0], sizeof(staged[0]));
              for (std::int64_t i = 0; i < kRows; ++i)
                std::copy_n(staged[i], C_in - c0, to + i * C_in);
            }
          }
        }
      }
    }
    _tile_release();
  };
  batch_chunks::sum_over_chunks(chunks, gw_count, (scratch_size + 1) / 2, gradient.get(), chunk_sums);
  // [tap][C_out][C_in] to kiln's [C_out][C_in][tap], rounded once.
  for (std::int64_t k = 0; k < K; ++k)
    for (std::int64_t c = 0; c < C_in; ++c)
      for (std::int64_t tap = 0; tap < taps; ++tap)
        gw[(k * C_in + c) * taps + tap] = bfloat16(gradient[static_cast<std::size_t>((tap * K + k) * C_in + c)]);
}

}  // namespace kiln::kernels::amx
