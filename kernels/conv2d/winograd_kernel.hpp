// Winograd convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015), vectorized
// along the channels and fused per block of tiles, for 3x3 kernels at dilation 1, groups 1, with two tile
// sizes: F(2x2, 3x3) and F(4x4, 3x3) (F4x4: 36 multiplies for 16 outputs). At stride 1,
// forward and the weight gradient (any padding) and backward-data (the forward of gy through the flipped
// kernel with C_in and C_out swapped, padding 2 - pad, so pad <= 2) take either. At stride 2, forward and
// the weight gradient take either through a split of each patch by phase (F2x2Stride2, F4x4Stride2: 25
// multiplies per 2x2 outputs, 81 per 4x4), and backward-data at padding 1 through a split of the input
// gradient by phase (F2x2Stride2Data, F4x4Stride2Data).
//
// The algebra, the transforms B^T d B, G g G^T and A^T M A of each tile size and stride and the weight
// gradient's transposes of them, is in winograd_transforms.hpp; this file runs it. U = G g G^T once per call,
// V = B^T d B once per patch and input channel, and the sum over the input channels falls apart into one
// independent product per position p of the alpha x alpha patch (16 for F(2x2, 3x3), 36 for F(4x4, 3x3)):
//
//   M_p[t][co] = sum over ci of V_p[t][ci] * U_p[ci][co]
//
// Per chunk of images:
//   1. The chunk's input goes channels-last and zero-padded: xp[b][r][c][ci], r < m*TH + 2, c < m*TW + 2
//      (TH x TW tiles cover the output; the last row or column of tiles may hang over it; at stride 2,
//      r < 2m*TH + 1, c < 2m*TW + 1), ci padded with zeros to whole vectors. So a patch's channels are
//      vectors, and the padding needs no tests.
//   2. Per block of kTiles tiles, in raster order over (image, tile row, tile column):
//      a. input transform, vectorized along ci: V[p][t][ci] (F(2x2, 3x3), per vector: 16 loads, 32 adds,
//         16 stores)
//      b. the alpha^2 products (16, or 36 for F(4x4, 3x3)): direct_channels_kernel.hpp's tile as a plain
//         GEMM, kTiles tiles (broadcast from V) by kVectors vectors of output channels (loaded from U),
//         summing over K = C_in: M[p][t][co]
//      c. output transform, vectorized along co, plus the bias: the tile's m x m outputs channels-last, then
//         into NCHW through the register transpose, one run of tiles of one tile row at a time
//   A block's V, M and staged outputs stay in L1 and L2 from one step to the next, each position's rows an
//   odd number of cache lines after the last (position_stride: else a tile's positions can share one cache
//   set); U (alpha^2 x C_in x C_out floats) stays in L2 for the whole call up to 64 channels each side.
//   Layers whose U outgrows L3's fair share take blocks of a few hundred tiles and a GEMM per position
//   instead of 2b ("Wide layers", at forward below).
//
// Rounding: the transforms add before they multiply, so the bits are not the direct sum's. F(2x2, 3x3)
// stays within about 1e-6 of the largest output, F(4x4, 3x3), whose transforms scale by up to 8 and 1/24,
// within about 1e-5 (float32, 16 to 256 input channels of random data); at stride 2, about 1e-6 and 5e-6
// (im2col + GEMM's plain sums: within 1e-6). conv2d_fast_test.cpp holds all of them to the same float32
// tolerance as every other algorithm. An infinity in a patch makes NaN in all of its tile's outputs, as in
// any Winograd convolution. Every output is computed by one thread in a fixed order whatever the chunk it
// falls in, so the batch is cut for the threads (batch_chunks::balanced) and the bits are the same on any
// thread count.
//
// The activations (x, y, gy, gx) are float or bfloat16 (the template parameter A): bfloat16 widens in the
// copies of step 1 and rounds once in step 2c's stores ("bfloat16 activations", below).
#pragma once

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>

#include "core/error.hpp"
#include "kernels/batchnorm/batchnorm_vector_ops.hpp"
#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/conv2d/channel_pixels.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/direct_kernel.hpp"
#include "kernels/conv2d/winograd_transforms.hpp"
#include "kernels/gemm/gemm.hpp"
#include "kernels/parallel.hpp"
#include "kernels/simd/transpose_8x8.hpp"

namespace kiln::kernels::winograd {

// What one pass of the kernel computes: `batch` images of in_channels planes of in_height x in_width, read as
// zero-padded by pad_h rows and pad_w columns at the top and left (and as far as the tiles reach at the
// bottom and right), into out_channels planes of out_height x out_width, with weights [out][in][3][3]; with
// channels_last, input and output images are [height][width][channels] instead. A forward convolution's is
// Pass::of(g); backward-data's is one over gy.
struct Pass {
  std::int64_t batch, in_channels, in_height, in_width, pad_h, pad_w, out_channels, out_height, out_width;
  bool channels_last;

  static Pass of(const Conv2dGeometry& g) {
    return {.batch = g.batch,
            .in_channels = g.in_channels,
            .in_height = g.in_height,
            .in_width = g.in_width,
            .pad_h = g.pad_h,
            .pad_w = g.pad_w,
            .out_channels = g.out_channels,
            .out_height = g.out_height(),
            .out_width = g.out_width(),
            .channels_last = g.channels_last};
  }
};

// Where the tiles of one call are, and the padded channels-last input they read.
template <typename V, typename T>
struct Tiling {
  std::int64_t tiles_h, tiles_w;  // tiles per image, down and across
  std::int64_t rows, columns;  // of the padded input: step * tiles + patch - step, so every patch lies inside
  std::int64_t channels;       // input channels padded to whole vectors

  explicit Tiling(const Pass& g)
      : tiles_h((g.out_height + T::m - 1) / T::m),
        tiles_w((g.out_width + T::m - 1) / T::m),
        rows(T::step * tiles_h + T::patch - T::step),
        columns(T::step * tiles_w + T::patch - T::step),
        channels((g.in_channels + V::width - 1) / V::width * V::width) {}
  std::int64_t per_image() const { return tiles_h * tiles_w; }
  std::int64_t image_floats() const { return rows * columns * channels; }

  struct Place {
    std::int64_t image, row, column;  // the tile's image in the chunk, tile row, tile column
  };
  Place place(std::int64_t tile) const {
    const std::int64_t at = tile % per_image();
    return {tile / per_image(), at / tiles_w, at % tiles_w};
  }
};

// The distance, in floats, between the rows of neighbouring positions p in V, M and dM: at least `floats`
// (a position's tiles times their channels), rounded up to an odd number of 64-byte cache lines.
//
// Why odd: a tile's transform writes (or reads) its 16 or 36 positions together, one vector each, one
// position stride apart. The L1 data cache maps an address to one of 64 sets by bits 6-11 (48 KiB of 12
// ways on Zen 5, 32 KiB of 8 on Zen 4 and many of Intel's cores), so were the stride a multiple of 4 KiB (256
// tiles of 16 channels in the weight gradient, 16 tiles of 64 in the forward pass), all of a tile's positions
// would land in one set and evict each other, 12 ways for 36 lines, on every tile. An odd number of lines is
// coprime with the 64 sets, so up to 64 positions land in distinct ones. Measured on the weight gradient of
// ResNet-20's 16 -> 16 layer at 32x32 (batch 128, 1 thread), 256 tiles a block: 6.9 ms with the plain
// stride, 3.3 ms with this one.
inline constexpr std::int64_t kCacheLineFloats = 16;
inline std::int64_t position_stride(std::int64_t floats) {
  const std::int64_t lines = (floats + kCacheLineFloats - 1) / kCacheLineFloats;
  return (lines | 1) * kCacheLineFloats;
}

// A tile's transform reads or writes its positions' vectors one position stride apart: at + k * stride, k <
// alpha^2. So written, GCC strength-reduces the 36 addresses of F(4x4, 3x3) into 36 pointers carried across
// the loop over tiles, which spill: each store then loads its pointer from the stack and each tile adds the
// stride to all 36 there (transform_gradients spent half its time on them). Taking the positions in order
// from one cursor, which the empty asm hides from that optimization, keeps the address in a register.
// Measured, ResNet-20's 16 -> 16 layer at 32x32, F(4x4, 3x3), batch 128, 2 threads, AVX-512: forward 1.74 ->
// 1.56 ms, backward-data 1.65 -> 1.56, weight gradient 2.08 -> 1.86 (AVX2: 2.21 / 2.19 / 2.20 -> 2.08 /
// 2.09 / 1.99); its 32- and 64-channel layers 0-6%. (On V as its callers are, so that the AVX2 and AVX-512
// objects each keep their own copy, as with every function here.)
template <typename V, typename P>
P* next_position(P*& cursor, std::int64_t stride) {
  P* here = cursor;
  cursor += stride;
  asm("" : "+r"(cursor));
  return here;
}

// The transposes between NCHW and the channels-last tiles go a row of every channel at a time, so each
// channel's plane is a stream of its own, and a short one: at 32x32 a plane is one 4 KiB page, and hardware
// prefetchers stop at a page's end, so they train anew on every plane of every image and miss its first
// lines. So the copies in ask for the rows kPrefetchRows below, in every channel, and store_outputs for the
// rows one tile row below, which the next block writes, with intent to write (a store to a line not held
// waits for its read for ownership). Measured, 1 thread, batch 128, the sum of ResNet-20's 15 Winograd passes
// (3 directions x 5 shapes), reads only: 32.5 ms without, 29.9 with 2 rows, 31.0 with 4 (the weight
// gradients gain most, 10 to 18%: they copy both x and gy); the 10 forward and backward-data passes with
// writes too: 20.0 ms without either, 18.3 with both.
inline constexpr std::int64_t kPrefetchRows = 2;

enum class Intent { Read, Write };

// Prefetches `width` values of each of `channels` rows `plane` values apart, from `first` (float or
// bfloat16).
template <Intent kIntent, typename A>
void prefetch_rows(const A* first, std::int64_t plane, std::int64_t channels, std::int64_t width) {
  constexpr std::int64_t kLineValues = kCacheLineFloats * sizeof(float) / sizeof(A);
  for (std::int64_t c = 0; c < channels; ++c) {
    for (std::int64_t i = 0; i < width; i += kLineValues)
      __builtin_prefetch(first + c * plane + i, kIntent == Intent::Write ? 1 : 0, 3);
  }
}

// ---- bfloat16 activations ---------------------------------------------------------------------------------
//
// The activations (x, y, gy, gx) may be bfloat16 (`--precision bf16` where no AMX tiles serve): the kernel
// is the float kernel, and the tensors are read and written where they lie. Channels-last pixels widen and
// round in channel_pixels.hpp's copies. NCHW rows go through the float transposes, so the input side widens
// a band of rows of every channel into a float buffer first (PlaneRows), and the output side transposes a
// tile row's outputs into one and rounds them from it (store_outputs). Bands and rounded runs are whole
// rows of a channel, contiguous in the tensor: long runs of whole vectors, where one row of an 8x8 plane
// would be half a masked one. Widening is exact and each output is rounded once from the float kernel's
// result, so the bits are those of the float kernel on copies of whole tensors widened before and rounded
// after (the path this replaces), with half the activation bytes to read and write and no copies.

// The floats a pass needs for PlaneRows and the output side: none for float or channels-last activations,
// else `values`.
template <typename A>
std::int64_t rows_floats(const Pass& g, std::int64_t values) {
  return std::is_same_v<A, float> || g.channels_last ? 0 : values;
}

// At least this many values of each channel per widened band (whole rows, at most the plane).
inline constexpr std::int64_t kBandValues = 256;
inline std::int64_t band_rows(std::int64_t height, std::int64_t width) {
  return std::clamp<std::int64_t>((kBandValues + width - 1) / width, 1, height);
}
// PlaneRows' buffer for `channels` planes of height x width.
inline std::int64_t band_floats(std::int64_t channels, std::int64_t height, std::int64_t width) {
  return channels * band_rows(height, width) * width;
}

// `count` values from `from` into `to` through V's registers: bfloat16 widened exactly, float rounded once
// to bfloat16 (V's loads and stores).
template <typename V, typename From, typename To>
void converted_run(const From* from, std::int64_t count, To* to) {
  for (std::int64_t k = 0; k < count; k += V::width) {
    const std::int64_t lanes = std::min<std::int64_t>(V::width, count - k);
    V::store_partial(to + k, V::load_partial(from + k, lanes), lanes);
  }
}

// to[k] = to[k] + from[k] for k < count: an accumulating pass's outputs (store_outputs) added to what y
// held, in the order and arithmetic of an elementwise add of the two.
template <typename V>
void added_run(const float* from, std::int64_t count, float* to) {
  for (std::int64_t k = 0; k < count; k += V::width) {
    const std::int64_t lanes = std::min<std::int64_t>(V::width, count - k);
    V::store_partial(to + k, V::add(V::load_partial(to + k, lanes), V::load_partial(from + k, lanes)), lanes);
  }
}

// Row i of every channel of one NCHW image ([channels][height][width] values of A), as float rows `stride`
// apart from `first`: where they lie for float; for bfloat16, from a band of rows widened into `buffer`
// (band_floats of it) when row i starts one. So rows are asked for in order, each band from its first row.
struct FloatRows {
  const float* first;
  std::int64_t stride;
};
template <typename V, typename A>
class PlaneRows {
 public:
  PlaneRows(const A* image, std::int64_t channels, std::int64_t height, std::int64_t width, float* buffer)
      : image_(image),
        channels_(channels),
        height_(height),
        width_(width),
        band_(band_rows(height, width)),
        buffer_(buffer) {}

  FloatRows row(std::int64_t i) {
    const std::int64_t plane = height_ * width_;
    if constexpr (std::is_same_v<A, float>) {
      return {image_ + i * width_, plane};
    } else {
      const std::int64_t band_values = band_ * width_;
      if (i % band_ == 0) {
        const std::int64_t values = std::min(band_, height_ - i) * width_;
        for (std::int64_t c = 0; c < channels_; ++c)
          converted_run<V>(image_ + c * plane + i * width_, values, buffer_ + c * band_values);
      }
      return {buffer_ + i % band_ * width_, band_values};
    }
  }

 private:
  const A* image_;
  std::int64_t channels_, height_, width_, band_;
  float* buffer_;
};

// store_outputs' buffer for a pass's bfloat16 NCHW outputs: m rows of m * kTiles outputs of every channel.
template <typename T, int kTiles>
std::int64_t output_floats(const Pass& g) {
  return g.out_channels * T::m * T::m * kTiles;
}

// A normalization's per-channel coefficients (shift, scale, offset) packed as the bias is: `padded` floats
// each, one per lane of a vector of channels, zeros past the `channels` real ones. Both normalizations read
// them so: the input's (PackedInput) on xp's pixels, the output's (StagedAffine) on M's rows.
class PackedCoefficients {
 public:
  PackedCoefficients(const float* shift, const float* scale, const float* offset, std::int64_t channels,
                     std::int64_t padded)
      : floats_(cpu_scratch(3 * padded)), padded_(padded) {
    float* packed = floats_.get();
    std::fill(packed, packed + 3 * padded, 0.0f);
    std::copy(shift, shift + channels, packed);
    std::copy(scale, scale + channels, packed + padded);
    std::copy(offset, offset + channels, packed + 2 * padded);
  }
  const float* shift() const { return floats_.get(); }
  const float* scale() const { return floats_.get() + padded_; }
  const float* offset() const { return floats_.get() + 2 * padded_; }
  std::int64_t padded() const { return padded_; }

 private:
  CpuScratch floats_;
  std::int64_t padded_;
};

// An input normalization (InputNormalization, conv2d.hpp) as the copies in apply it: its coefficients packed
// one per channel of xp's pixels (tiling.channels of each; the zeros past C_in keep the padding channels
// zero: fma(0 - 0, 0, 0) = 0, and every activation's of 0 too), applied to each row's real pixels after the
// transpose (the zero padding around the image is the normalized tensor's padding, not normalized itself),
// with batch norm's activation (conv2d_input::Normalizer's arithmetic, channel by channel in lanes).
template <typename V>
class PackedInput {
 public:
  PackedInput(const InputNormalization& input, std::int64_t channels, std::int64_t padded_channels)
      : coefficients_(input.shift, input.scale, input.offset, channels, padded_channels),
        activation_{input.relu, input.relu_upper, input.hardswish} {}
  // `pixels` pixels of padded_channels floats each, from `row`, in place.
  void apply(float* row, std::int64_t pixels) const {
    const std::int64_t padded = coefficients_.padded();
    const typename V::Reg upper = V::broadcast(activation_.upper);
    for (std::int64_t c = 0; c < padded; c += V::width) {
      const typename V::Reg shift = V::load(coefficients_.shift() + c),
                            scale = V::load(coefficients_.scale() + c),
                            offset = V::load(coefficients_.offset() + c);
      for (std::int64_t p = 0; p < pixels; ++p) {
        float* at = row + p * padded + c;
        const typename V::Reg v = vectorized::normalized<V>(V::load(at), shift, scale, offset);
        V::store(at, vectorized::apply_activation<V>(activation_, upper, v));
      }
    }
  }

 private:
  PackedCoefficients coefficients_;
  vectorized::OutputActivation activation_;
};

// xp for `count` images of x (NCHW, or channels-last with g.channels_last; `image_stride` values apart;
// float, or bfloat16 whose NCHW rows widen in `row_buffer`, rows_floats of band_floats): step 1 above. With
// `input` (float NCHW only), each row's pixels normalized once transposed, while in L1.
template <typename V, typename T, typename A>
void pad_input(const Pass& g, const Tiling<V, T>& tiling, const A* x, std::int64_t image_stride,
               std::int64_t count, float* xp, float* row_buffer, const PackedInput<V>* input = nullptr) {
  // At stride 2 without padding the patches may stop short of the input's last column, which no output
  // reads: only the columns the patches cover are copied.
  const std::int64_t width = std::min(g.in_width, tiling.columns - g.pad_w);
  const std::int64_t plane = g.in_height * g.in_width, row_floats = tiling.columns * tiling.channels;
  const std::int64_t left = g.pad_w * tiling.channels, right = (g.pad_w + width) * tiling.channels;
  for (std::int64_t b = 0; b < count; ++b) {
    PlaneRows<V, A> rows(x + b * image_stride, g.in_channels, g.in_height, g.in_width, row_buffer);
    for (std::int64_t r = 0; r < tiling.rows; ++r) {
      float* row = xp + (b * tiling.rows + r) * row_floats;
      const std::int64_t ih = r - g.pad_h;
      if (ih < 0 || ih >= g.in_height) {
        std::fill(row, row + row_floats, 0.0f);
        continue;
      }
      std::fill(row, row + left, 0.0f);
      std::fill(row + right, row + row_floats, 0.0f);
      if (g.channels_last) {
        channel_pixels::copy_pixels<V>(x + b * image_stride + ih * g.in_width * g.in_channels, g.in_channels,
                                       width, g.in_channels, row + left, tiling.channels);
        continue;
      }
      if (g.in_channels < tiling.channels) {
        for (std::int64_t iw = 0; iw < width; ++iw)
          std::fill(row + left + iw * tiling.channels + g.in_channels,
                    row + left + (iw + 1) * tiling.channels, 0.0f);
      }
      // (A bfloat16 image is read a band at a time, in long runs the hardware prefetchers follow.)
      if (std::is_same_v<A, float> && ih + kPrefetchRows < g.in_height)
        prefetch_rows<Intent::Read>(x + b * image_stride + (ih + kPrefetchRows) * g.in_width, plane,
                                    g.in_channels, width);
      const FloatRows in = rows.row(ih);
      transpose_matrix(in.first, in.stride, g.in_channels, width, row + left, tiling.channels);
      if (input) input->apply(row + left, width);
    }
  }
}

// The weight transforms run once per call, in double, on every thread: threads split the input channels,
// each of which owns its rows of U (and of gw's kernels, bar a cache line at the seams), from this many
// kernels (C_in x C_out) on.
inline constexpr std::int64_t kMinParallelKernels = 1024;

// Within a thread they run on eight output channels at once: the traits' weight maps are written for any
// type with double's arithmetic, and GCC's vector extension gives that to eight doubles, in whatever
// registers the including instruction-set file has. Each lane computes what a double would, bit for bit.
inline constexpr int kDoubleLanes = 8;
using Doubles = double __attribute__((vector_size(kDoubleLanes * sizeof(double))));
using DoubleLaneFloats = float __attribute__((vector_size(kDoubleLanes * sizeof(float))));

// k[t][l] = first[l * kernel_stride + t]: eight 3x3 kernels' taps as lanes of double. Each kernel's first
// eight taps are loaded together and the eight rows transposed, its ninth gathered. (Written lane by lane,
// each k[t] was eight 8-byte stores and one 64-byte load over them, which the store buffer cannot forward:
// the load waits for the stores to reach the cache. 128 -> 128 at 4x4, batch 128, two threads: forward 1.63
// -> 1.58 ms.)
// (On V, though it takes none of V's operations: compiled for AVX-512 its conversions are zmm instructions,
// and the AVX2 object must not link to that copy.)
template <typename V>
void load_kernels(const float* first, std::int64_t kernel_stride, Doubles (&k)[9]) {
  __m256 rows[kDoubleLanes], columns[kDoubleLanes];
  for (int l = 0; l < kDoubleLanes; ++l) rows[l] = _mm256_loadu_ps(first + l * kernel_stride);
  transpose_8x8(rows, columns);
  for (int t = 0; t < 8; ++t) k[t] = __builtin_convertvector(columns[t], Doubles);
  const __m256i lanes = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                           _mm256_set1_epi32(static_cast<int>(kernel_stride)));
  k[8] = __builtin_convertvector(_mm256_i32gather_ps(first + 8, lanes, sizeof(float)), Doubles);
}

// The floats from U_p's rows of a panel to U_{p+1}'s: its C_in rows of kChannels, at the position stride.
// A panel's C_in rows are a multiple of 4 KiB from 32 input channels on, and transform_weights writes a
// kernel's 16 or 36 positions at once: unpadded, into one L1 set, as V's and M's were (above). Measured,
// batch 128, two threads of a Xeon with AMX, forward / backward-data, ms, F(4x4, 3x3): 128 -> 128 at 4x4
// 1.58 / 1.71 -> 1.38 / 1.51, at 8x8 4.37 / 4.56 -> 4.12 / 4.27, 64 -> 64 at 8x8 0.86 / 0.84 -> 0.80 /
// 0.83; F(2x2, 3x3), 128 -> 128 at 4x4: 1.51 / 1.67 -> 1.21 / 1.45.
template <int kChannels>
std::int64_t weight_position_floats(const Pass& g) {
  return position_stride(g.in_channels * kChannels);
}

// packed[panel][p][ci][lane] = U_p[ci][panel * kChannels + lane] = (G g G^T)_p for g = w[co, ci], computed
// in double and rounded once; lanes past C_out are zero. Position p of a panel starts p *
// weight_position_floats floats after its position 0.
template <typename V, typename T, int kChannels>
void transform_weights(const Pass& g, const float* w, float* packed) {
  constexpr int kAlpha = T::alpha;
  const std::int64_t panels = (g.out_channels + kChannels - 1) / kChannels;
  const std::int64_t row_stride = weight_position_floats<kChannels>(g);  // from U_p's row ci to U_{p+1}'s
#pragma omp parallel for schedule(static) if (g.in_channels * g.out_channels >= kMinParallelKernels)
  for (std::int64_t ci = 0; ci < g.in_channels; ++ci) {
    for (std::int64_t panel = 0; panel < panels; ++panel) {
      float* rows = packed + panel * T::positions * row_stride + ci * kChannels;
      const std::int64_t lanes = std::min<std::int64_t>(kChannels, g.out_channels - panel * kChannels);
      for (int p = 0; p < T::positions; ++p)
        std::fill(rows + p * row_stride + lanes, rows + p * row_stride + kChannels, 0.0f);
      for (std::int64_t lane0 = 0; lane0 < lanes; lane0 += kDoubleLanes) {
        const std::int64_t count = std::min<std::int64_t>(kDoubleLanes, lanes - lane0);
        Doubles k[9];  // lane l: the kernel w[panel * kChannels + lane0 + l, ci] (lanes past C_out: zero)
        const float* first_kernel = w + ((panel * kChannels + lane0) * g.in_channels + ci) * 9;
        if (count == kDoubleLanes) {
          load_kernels<V>(first_kernel, g.in_channels * 9, k);
        } else {
          for (int l = 0; l < kDoubleLanes; ++l) {
            for (int t = 0; t < 9; ++t) k[t][l] = l < count ? first_kernel[l * g.in_channels * 9 + t] : 0.0;
          }
        }
        Doubles gk[kAlpha][3];  // G g, column by column
        for (int c = 0; c < 3; ++c) {
          const Doubles column[3] = {k[c], k[3 + c], k[6 + c]};
          Doubles out[kAlpha];
          T::weight(column, out);
          for (int r = 0; r < kAlpha; ++r) gk[r][c] = out[r];
        }
        for (int r = 0; r < kAlpha; ++r) {  // (G g) G^T, row by row
          const Doubles row[3] = {gk[r][0], gk[r][1], gk[r][2]};
          Doubles u[kAlpha];
          T::weight(row, u);
          for (int c = 0; c < kAlpha; ++c) {
            const DoubleLaneFloats rounded = __builtin_convertvector(u[c], DoubleLaneFloats);
            float* to = rows + (r * kAlpha + c) * row_stride + lane0;
            if (count == kDoubleLanes) {
              std::memcpy(to, &rounded, sizeof(rounded));  // one store
            } else {
              for (std::int64_t l = 0; l < count; ++l) to[l] = rounded[l];
            }
          }
        }
      }
    }
  }
}

// v[p * v_position + j * channels + ci] = (B^T d B)_p for tiles first + j, j < block, of the chunk (zeros for
// tiles past `tiles`).
template <typename V, typename T>
void transform_inputs(const Tiling<V, T>& tiling, const float* xp, std::int64_t first, std::int64_t block,
                      std::int64_t tiles, float* v, std::int64_t v_position) {
  using Reg = typename V::Reg;
  constexpr int kAlpha = T::alpha, kPatch = T::patch;
  const std::int64_t c = tiling.channels;
  for (std::int64_t j = 0; j < block; ++j) {
    if (first + j >= tiles) {
      for (int p = 0; p < T::positions; ++p) std::fill_n(v + p * v_position + j * c, c, 0.0f);
      continue;
    }
    const auto at = tiling.place(first + j);
    const float* patch =
        xp + ((at.image * tiling.rows + T::step * at.row) * tiling.columns + T::step * at.column) * c;
    for (std::int64_t lane0 = 0; lane0 < c; lane0 += V::width) {
      Reg e[kAlpha][kPatch];  // B^T d, one column of the patch at a time
#pragma GCC unroll 9
      for (int col = 0; col < kPatch; ++col) {
        Reg column[kPatch], out[kAlpha];
#pragma GCC unroll 9
        for (int r = 0; r < kPatch; ++r) column[r] = V::load(patch + (r * tiling.columns + col) * c + lane0);
        T::input(column, out);
#pragma GCC unroll 9
        for (int r = 0; r < kAlpha; ++r) e[r][col] = out[r];
      }
      float* to = v + j * c + lane0;
#pragma GCC unroll 9
      for (int r = 0; r < kAlpha; ++r) {  // (B^T d) B, row by row
        Reg out[kAlpha];
        T::input(e[r], out);
#pragma GCC unroll 9
        for (int col = 0; col < kAlpha; ++col) V::store(next_position<V>(to, v_position), out[col]);
      }
    }
  }
}

// m[j * m_stride + lane] = sum over ci < depth of v[j * v_stride + ci] * u[ci][lane], j < kTiles, lane <
// kVectors * width: one position's product for one panel of output channels. kVStride > 0 fixes v_stride at
// compile time, so the tiles' broadcasts are constant offsets from one pointer: with a runtime stride each
// of 16 tiles reads through a register of its own, more than x86-64 has to spare beside the loop's, and
// GCC kept five of them in vector registers, moved back on every step. ResNet's 16-channel stage (v_stride
// 16) takes it: 16 -> 16 at 32x32, batch 128, 2 threads, F(4x4, 3x3) forward 1.69-1.74 -> 1.61-1.66 ms.
template <typename V, int kTiles, int kVectors, int kVStride = 0>
void product_tile(std::int64_t depth, const float* v, std::int64_t v_stride, const float* u, float* m,
                  std::int64_t m_stride) {
  using Reg = typename V::Reg;
  if constexpr (kVStride > 0) v_stride = kVStride;
  constexpr int kChannels = kVectors * V::width;
  Reg acc[kTiles][kVectors];
#pragma GCC unroll 16
  for (int j = 0; j < kTiles; ++j) {
#pragma GCC unroll 4
    for (int k = 0; k < kVectors; ++k) acc[j][k] = V::zero();
  }
  for (std::int64_t ci = 0; ci < depth; ++ci) {
    Reg weights[kVectors];
#pragma GCC unroll 4
    for (int k = 0; k < kVectors; ++k) weights[k] = V::load(u + k * V::width);
#pragma GCC unroll 16
    for (int j = 0; j < kTiles; ++j) {
      const Reg input = V::broadcast(v[j * v_stride + ci]);
#pragma GCC unroll 4
      for (int k = 0; k < kVectors; ++k) acc[j][k] = V::fmadd(input, weights[k], acc[j][k]);
    }
    u += kChannels;
  }
#pragma GCC unroll 16
  for (int j = 0; j < kTiles; ++j) {
#pragma GCC unroll 4
    for (int k = 0; k < kVectors; ++k) V::store(m + j * m_stride + k * V::width, acc[j][k]);
  }
}

// An output normalization (OutputNormalization, conv2d.hpp) as the output transform applies it: its
// per-channel coefficients packed as the bias is, one per lane of M's rows (zeros past C_out), and its ReLU
// (capped, for ReLU6) when no residual comes between (the residual's sum, then the ReLU, follow the transpose
// into NCHW: add_residual_runs). Applied to the staged channels-last outputs, a channel vector's coefficients
// are loaded once for the tile's m x m outputs. (In an unnamed namespace as OutputActivation is:
// batchnorm_vector_ops.hpp.)
namespace {
struct StagedAffine {
  const float* shift;
  const float* scale;
  const float* offset;
  vectorized::OutputActivation relu;
};
}  // namespace

// staged[r][m * j + col][co] = (A^T M A)[r][col] + bias[co] for the block's valid tiles j < valid, from
// m[p * m_position + j * m_stride + co]: rows of m_stride floats, output row r starting m * kTiles rows after
// row r - 1. With `affine`, each of those sums v then becomes batch norm's normalized(v) with channel co's
// coefficients (batchnorm_vector_ops.hpp), and affine->relu of that (apply_relu): the eval kernel's
// operations in its order, on the float the plain pass would have stored, so the eval kernel's bits.
template <typename V, typename T, int kTiles>
void transform_outputs(const float* m, std::int64_t m_stride, std::int64_t m_position, const float* bias,
                       const StagedAffine* affine, std::int64_t valid, float* staged) {
  using Reg = typename V::Reg;
  constexpr int kAlpha = T::alpha, kM = T::m;
  for (std::int64_t j = 0; j < valid; ++j) {
    for (std::int64_t lane0 = 0; lane0 < m_stride; lane0 += V::width) {
      const float* from = m + j * m_stride + lane0;
      Reg s[kM][kAlpha];  // A^T M, one column at a time
#pragma GCC unroll 9
      for (int col = 0; col < kAlpha; ++col) {
        Reg column[kAlpha], out[kM];
        const float* position = from + col * m_position;  // column col's positions, kAlpha apart
#pragma GCC unroll 9
        for (int r = 0; r < kAlpha; ++r) column[r] = V::load(next_position<V>(position, kAlpha * m_position));
        T::output(column, out);
#pragma GCC unroll 4
        for (int r = 0; r < kM; ++r) s[r][col] = out[r];
      }
      const Reg b = bias ? V::load(bias + lane0) : V::zero();
      const Reg shift = affine ? V::load(affine->shift + lane0) : V::zero();
      const Reg scale = affine ? V::load(affine->scale + lane0) : V::zero();
      const Reg offset = affine ? V::load(affine->offset + lane0) : V::zero();
      const Reg upper = affine ? V::broadcast(affine->relu.upper) : V::zero();
      const auto finish = [&](Reg sum) {
        if (!affine) return sum;
        return vectorized::apply_relu<V>(affine->relu.relu, upper,
                                         vectorized::normalized<V>(sum, shift, scale, offset));
      };
#pragma GCC unroll 4
      for (int r = 0; r < kM; ++r) {  // (A^T M) A, row by row
        Reg out[kM];
        T::output(s[r], out);
        float* to = staged + (r * kM * kTiles + kM * j) * m_stride + lane0;
#pragma GCC unroll 4
        for (int col = 0; col < kM; ++col) V::store(to + col * m_stride, finish(V::add(out[col], b)));
      }
    }
  }
}

// y += residual, then `relu` of that (apply_relu), on `channels` runs of `count` outputs at y + at + c *
// plane for channel c (the residual's at the same offsets): an output normalization's sum and ReLU, after the
// affine part in transform_outputs, in the eval kernel's order.
template <typename V>
void add_residual_runs(const float* residual, vectorized::OutputActivation relu, std::int64_t at,
                       std::int64_t plane, std::int64_t count, std::int64_t channels, float* y) {
  const typename V::Reg upper = V::broadcast(relu.upper);
  for (std::int64_t c = 0; c < channels; ++c) {
    float* run = y + at + c * plane;
    const float* added = residual + at + c * plane;
    for (std::int64_t i = 0; i < count; i += V::width) {
      const std::int64_t lanes = std::min<std::int64_t>(V::width, count - i);
      const typename V::Reg v = V::add(V::load_partial(run + i, lanes), V::load_partial(added + i, lanes));
      V::store_partial(run + i, vectorized::apply_relu<V>(relu.relu, upper, v), lanes);
    }
  }
}

// The block's staged outputs into y (NCHW, or channels-last with g.channels_last; the chunk's first image at
// y, `image_stride` values apart): each run of tiles in one tile row is a contiguous run of outputs in each
// of its m output rows, a transpose into NCHW, a copy of channel vectors into channels-last. bfloat16 NCHW
// outputs are transposed into `row_buffer` (output_floats of it), [channel][row][output], and rounded from
// there a channel at a time: where the run spans whole output rows, a channel's m rows are one run of y.
//
// With a `residual` (float NCHW only; from the chunk's first image, as y), each channel's run adds it, and
// takes `relu` after it, right after the transpose wrote the run, while it is in L1.
// Accumulating (float NCHW only), the outputs are added to y's values instead of replacing them: transposed
// into `row_buffer` as bfloat16's are, then each channel's runs added into y (added_run), y's old value the
// first operand, as an elementwise add of y and the fresh outputs would.
template <typename V, typename T, int kTiles, typename A>
void store_outputs(const Pass& g, const Tiling<V, T>& tiling, std::int64_t first, std::int64_t valid,
                   const float* staged, std::int64_t m_stride, A* y, std::int64_t image_stride,
                   float* row_buffer, const float* residual = nullptr, vectorized::OutputActivation relu = {},
                   bool accumulate = false) {
  // Outputs that go through row_buffer on their way to y: bfloat16 NCHW ones (rounded there), and
  // accumulated ones (added there).
  const bool through_rows = !g.channels_last && (!std::is_same_v<A, float> || accumulate);
  const std::int64_t out_h = g.out_height, out_w = g.out_width, plane = out_h * out_w;
  for (std::int64_t j = 0; j < valid;) {
    const auto at = tiling.place(first + j);
    const std::int64_t run = std::min(valid - j, tiling.tiles_w - at.column);  // tiles left in the tile row
    const std::int64_t ow = T::m * at.column, outputs = std::min(T::m * run, out_w - ow);
    const std::int64_t rows = std::min<std::int64_t>(T::m, out_h - T::m * at.row);
    A* top = y + at.image * image_stride + T::m * at.row * out_w + ow;  // the run's first row, channel 0
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* from = staged + (r * T::m * kTiles + T::m * j) * m_stride;
      if (g.channels_last) {
        A* to = y + at.image * image_stride + ((T::m * at.row + r) * out_w + ow) * g.out_channels;
        channel_pixels::store_pixels<V>(from, m_stride, outputs, g.out_channels, to);
      } else if (through_rows) {
        transpose_matrix(from, m_stride, outputs, g.out_channels, row_buffer + r * outputs, T::m * outputs);
      } else if constexpr (std::is_same_v<A, float>) {
        transpose_matrix(from, m_stride, outputs, g.out_channels, top + r * out_w, plane);
        if (residual)
          add_residual_runs<V>(residual, relu, top - y + r * out_w, plane, outputs, g.out_channels, y);
        if (T::m * (at.row + 1) + r < out_h)
          prefetch_rows<Intent::Write>(top + T::m * out_w + r * out_w, plane, g.out_channels, outputs);
      }
    }
    if (through_rows) {
      // A channel's m rows are one run of y where the tiles span whole output rows.
      const bool whole_rows = outputs == out_w;
      const auto finish_run = [&](const float* from, std::int64_t count, A* to) {
        if constexpr (std::is_same_v<A, float>) {
          added_run<V>(from, count, to);
        } else {
          converted_run<V>(from, count, to);
        }
      };
      for (std::int64_t c = 0; c < g.out_channels; ++c) {
        const float* from = row_buffer + c * T::m * outputs;
        if (whole_rows) {
          finish_run(from, rows * outputs, top + c * plane);
          continue;
        }
        for (std::int64_t r = 0; r < rows; ++r)
          finish_run(from + r * outputs, outputs, top + c * plane + r * out_w);
      }
    }
    j += run;
  }
}

// body(block, scratch) for block < count: on every thread, each with its own `scratch_floats`, when the
// caller is not already inside a parallel region (fewer chunks than threads); else on the calling thread
// with `own`.
template <typename V, typename Body>
void for_each_block(std::int64_t count, std::int64_t scratch_floats, float* own, Body body) {
  if (count > 1 && compute_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel
    {
      const CpuScratch mine = cpu_scratch(scratch_floats);
#pragma omp for schedule(static)
      for (std::int64_t block = 0; block < count; ++block) body(block, mine.get());
    }
    return;
  }
  for (std::int64_t block = 0; block < count; ++block) body(block, own);
}

// Wide layers. U is T::positions x C_in x C_out floats; up to about 64 channels each side it stays in L2 for
// the whole call, and each block of kTiles tiles reads it from there. Past that it comes from L3 or memory
// for every block, kTiles tiles' worth of multiply-adds per float of it: 512 -> 512 channels at 4x4 (U 16
// MiB) ran its products at a third of the GEMM's speed. There the block grows to kWideBlockFloats of V and M
// (a few hundred tiles) and each position's product is one GEMM, M_p [tiles, C_out] = V_p [tiles, C_in] x
// U_p [C_in, C_out], which the GEMM's own cache blocking serves from L2; the output transform then goes
// kTiles tiles at a time as before. The price is V and M going through L3 instead of staying in L1 and L2,
// so the fused blocks keep every layer whose U fits in L3 with room to spare. Measured, batch 128, 2
// threads, forward / backward-data, ms, fused blocks against GEMMs:
//   512 -> 512 at 4x4, F(2x2, 3x3) (U 16 MiB)   22.2 / 22.2  against  17.4 / 18.6
//   512 -> 512 at 4x4, F(4x4, 3x3) (U 36 MiB)   44.7 / 45.5  against  19.0 / 21.8
//   256 -> 256 at 8x8, F(2x2, 3x3) (U 4 MiB)    12.6 / 12.6  against  13.9 / 13.7
//   256 -> 256 at 8x8, F(4x4, 3x3) (U 9 MiB)     8.2 /  8.3  against   9.9 / 10.4
// and a VGG-11 training step (`kiln train --profile`, 32x32 images) 330 -> 236 ms.
inline constexpr std::int64_t kWideUFloats = std::int64_t{3} << 20;      // 12 MiB of U
inline constexpr std::int64_t kWideBlockFloats = std::int64_t{1} << 21;  // 8 MiB of a block's V and M
inline constexpr std::int64_t kWideChunkFloats = std::int64_t{1} << 21;  // 8 MiB of a chunk's padded input

// `accumulate` (float NCHW only) adds the outputs to y's values (store_outputs), for backward data summing
// into a gradient that holds another use's.
template <typename V, typename T, int kTiles, int kVectors, typename A>
void forward(const Pass& g, const A* x, const float* w, const float* bias, A* y,
             const OutputNormalization* normalization = nullptr, const InputNormalization* input = nullptr,
             bool accumulate = false) {
  KILN_CHECK(
      (!normalization && !input && !accumulate) || (std::is_same_v<A, float> && !g.channels_last),
      "winograd forward: input and output normalization and accumulation take float NCHW activations only");
  KILN_CHECK(!accumulate || !normalization, "winograd forward: an accumulating pass normalizes nothing");
  constexpr std::int64_t kChannels = kVectors * V::width;
  const Tiling<V, T> tiling(g);
  const std::int64_t panels = (g.out_channels + kChannels - 1) / kChannels, m_stride = panels * kChannels;
  const std::int64_t in_image = g.in_channels * g.in_height * g.in_width;
  const std::int64_t out_image = g.out_channels * g.out_height * g.out_width;

  const std::int64_t u_position = weight_position_floats<kChannels>(g), u_panel = T::positions * u_position;
  const CpuScratch u = cpu_scratch(panels * u_panel);
  transform_weights<V, T, kChannels>(g, w, u.get());
  const CpuScratch packed_bias = cpu_scratch(m_stride);
  std::fill(packed_bias.get(), packed_bias.get() + m_stride, 0.0f);
  if (bias) std::copy(bias, bias + g.out_channels, packed_bias.get());
  std::optional<PackedInput<V>> packed_input;
  if (input) packed_input.emplace(*input, g.in_channels, tiling.channels);
  // The output normalization's coefficients packed as the bias is (transform_outputs; PackedCoefficients),
  // its residual added in NCHW.
  std::optional<PackedCoefficients> packed_output;
  std::optional<StagedAffine> affine;
  const vectorized::OutputActivation output_relu =
      normalization ? vectorized::OutputActivation{normalization->relu, normalization->relu_upper}
                    : vectorized::OutputActivation{};
  if (normalization) {
    const PackedCoefficients& packed = packed_output.emplace(normalization->shift, normalization->scale,
                                                             normalization->offset, g.out_channels, m_stride);
    affine = StagedAffine{packed.shift(),
                          packed.scale(),
                          packed.offset(),
                          {normalization->relu && !normalization->residual, normalization->relu_upper}};
  }

  const bool wide = panels * u_panel > kWideUFloats;
  const std::int64_t block_tiles =
      wide ? std::max<std::int64_t>(
                 kTiles, kWideBlockFloats / (T::positions * (tiling.channels + m_stride)) / kTiles * kTiles)
           : kTiles;
  const batch_chunks::Chunking chunks =
      batch_chunks::balanced(batch_chunks::chunk_batch(g.batch, 1, g.batch, tiling.image_floats(),
                                                       wide ? kWideChunkFloats : direct::kForwardChunkFloats),
                             g.batch, compute_threads());
  // A chunk's scratch: xp, and the rows its bfloat16 NCHW input widens in.
  const std::int64_t xp_floats = chunks.images_per_chunk * tiling.image_floats();
  const std::int64_t in_rows_floats = rows_floats<A>(g, band_floats(g.in_channels, g.in_height, g.in_width));
  // A block's scratch: V [positions][block_tiles][channels], M [positions][block_tiles][m_stride] (each
  // position v_position, m_position floats after the last), staged [m][m * kTiles][m_stride], and the rows
  // its bfloat16 NCHW outputs round from.
  const std::int64_t v_position = position_stride(block_tiles * tiling.channels);
  const std::int64_t m_position = position_stride(block_tiles * m_stride);
  const std::int64_t v_floats = T::positions * v_position, m_floats = T::positions * m_position;
  const std::int64_t staged_floats = T::m * T::m * kTiles * m_stride;
  const std::int64_t out_rows_floats =
      accumulate ? output_floats<T, kTiles>(g) : rows_floats<A>(g, output_floats<T, kTiles>(g));
  const std::int64_t block_floats = v_floats + m_floats + staged_floats + out_rows_floats;

  // M_p for `count` tiles of a wide block: U_p's columns are its panels' (u_panel floats apart, C_in rows of
  // kChannels each), which the GEMM reads as blocks of columns where they lie; M_p's rows are plain.
  const auto products_by_gemm = [&](const float* v, std::int64_t count, float* m) {
    const GemmGeometry product{.m = count,
                               .n = m_stride,
                               .k = g.in_channels,
                               .lda = tiling.channels,
                               .ldb = kChannels,
                               .ldc = m_stride,
                               .column_block = kChannels,
                               .b_column_block_stride = u_panel,
                               .c_column_block_stride = kChannels};
    for (int p = 0; p < T::positions; ++p) {
      gemm(Device::cpu(), product, 1.0f, v + p * v_position, u.get() + p * u_position, 0.0f,
           m + p * m_position);
    }
  };
  // A narrow block's product tile, V's stride fixed where it is 16 (product_tile's kVStride).
  const auto product_tile_here =
      tiling.channels == 16 ? product_tile<V, kTiles, kVectors, 16> : product_tile<V, kTiles, kVectors>;

  batch_chunks::for_each_chunk(
      chunks.chunk_count, xp_floats + in_rows_floats + block_floats, [&](std::int64_t chunk, float* scratch) {
        const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
        // The normalization's residual from the chunk's first image, as store_outputs takes y.
        const float* residual =
            normalization && normalization->residual ? normalization->residual + first * out_image : nullptr;
        float* xp = scratch;
        pad_input(g, tiling, x + first * in_image, in_image, count, xp, xp + xp_floats,
                  packed_input ? &*packed_input : nullptr);
        const std::int64_t tiles = count * tiling.per_image();
        for_each_block<V>(
            (tiles + block_tiles - 1) / block_tiles, block_floats, scratch + xp_floats + in_rows_floats,
            [&](std::int64_t block, float* block_scratch) {
              float* v = block_scratch;
              float* m = v + v_floats;
              float* staged = m + m_floats;
              float* out_rows = staged + staged_floats;
              const std::int64_t first_tile = block * block_tiles;
              if (wide) {
                const std::int64_t in_block = std::min(block_tiles, tiles - first_tile);
                transform_inputs<V, T>(tiling, xp, first_tile, in_block, tiles, v, v_position);
                products_by_gemm(v, in_block, m);
              } else {
                transform_inputs<V, T>(tiling, xp, first_tile, kTiles, tiles, v, v_position);
                for (int p = 0; p < T::positions; ++p) {
                  for (std::int64_t panel = 0; panel < panels; ++panel) {
                    product_tile_here(g.in_channels, v + p * v_position, tiling.channels,
                                      u.get() + panel * u_panel + p * u_position,
                                      m + p * m_position + panel * kChannels, m_stride);
                  }
                }
              }
              // The outputs kTiles tiles at a time (a wide block's M is their rows in turn).
              for (std::int64_t at = 0; at < block_tiles && first_tile + at < tiles; at += kTiles) {
                const std::int64_t valid = std::min<std::int64_t>(kTiles, tiles - first_tile - at);
                transform_outputs<V, T, kTiles>(m + at * m_stride, m_stride, m_position,
                                                bias ? packed_bias.get() : nullptr,
                                                affine ? &*affine : nullptr, valid, staged);
                store_outputs<V, T, kTiles>(g, tiling, first_tile + at, valid, staged, m_stride,
                                            y + first * out_image, out_image, out_rows, residual, output_relu,
                                            accumulate);
              }
            });
      });
}

template <typename V, typename T, int kTiles, int kVectors, typename A>
void forward(const Conv2dGeometry& g, const A* x, const float* w, const float* bias, A* y,
             const OutputNormalization* normalization = nullptr, const InputNormalization* input = nullptr,
             bool accumulate = false) {
  forward<V, T, kTiles, kVectors>(Pass::of(g), x, w, bias, y, normalization, input, accumulate);
}

// Backward-data: a forward pass through wt[ci, co, kh, kw] = w[co, ci, 2 - kh, 2 - kw], over gy.
//   stride 1: the forward convolution of gy padded by 2 - pad: input position (ih, iw) then reads exactly the
//             outputs it fed in the forward pass (the transposed convolution of direct_kernel.hpp's
//             backward-data);
//   stride 2, padding 1 (a Stride2Data trait, whose tiles are m = 2 * step gx pixels): a pass over gy with no
//             padding (the tiles' last rows read the zeros past it) into gx's size.
// `accumulate` (float NCHW) adds the gradient to gx's values (forward's accumulate).
template <typename V, typename T, int kTiles, int kVectors, typename A>
void backward_data(const Conv2dGeometry& g, const A* gy, const float* w, A* gx, bool accumulate) {
  const CpuScratch flipped = direct::flipped_weights<V>(g, w);
  if constexpr (T::m == T::step) {
    forward<V, T, kTiles, kVectors>(transposed_convolution(g), gy, flipped.get(), nullptr, gx, nullptr,
                                    nullptr, accumulate);
  } else {
    static_assert(T::m == 2 * T::step, "a stride-1 trait or a Stride2Data trait");
    const Pass pass{.batch = g.batch,
                    .in_channels = g.out_channels,
                    .in_height = g.out_height(),
                    .in_width = g.out_width(),
                    .pad_h = 0,
                    .pad_w = 0,
                    .out_channels = g.in_channels,
                    .out_height = g.in_height,
                    .out_width = g.in_width,
                    .channels_last = g.channels_last};
    forward<V, T, kTiles, kVectors>(pass, gy, flipped.get(), nullptr, gx, nullptr, nullptr, accumulate);
  }
}

// ---- backward-weight
// ---------------------------------------------------------------------------------------
//
// Each forward map transposed: dM = A dY A^T per tile (dY the tile's 2x2 of gy, zero where the tile hangs
// over the output), dU_p[ci][co] = sum over the tiles t of V_p[t][ci] * dM_p[t][co], and gw[co, ci] = G^T dU
// G. So the weight gradient is alpha^2 GEMMs with the tiles as their K: long sums, where the forward's were
// short. For F(2x2, 3x3) (F4x4's gradient and unweight maps hold the same for F(4x4, 3x3)):
//
//   A = [1  0]      G^T = [1  1/2  1/2  0]
//       [1  1]            [0  1/2 -1/2  0]
//       [1 -1]            [0  1/2  1/2  1]
//       [0 -1]
//
// The batch is cut into fixed chunks of images (kWeightChunkTiles tiles at least, in whole granules of
// kWeightGranuleTiles), each summed into its own partial dU, and the partials are added in chunk order
// (batch_chunks::sum_over_chunks): the same bits on any thread count. Within a chunk, kWeightBlockTiles tiles
// at a time (whole images) are padded, transformed and multiplied, each block adding into the chunk's dU in
// block order. A longer block is a longer K for each product between its loads and stores of dU; fewer
// chunks, fewer partial dUs to write and add, but fewer to share among threads (F(2x2, 3x3) at batch 128: 4
// chunks at 8x8, 16 at 16x16, 64 at 32x32; never fewer than kMinWeightChunks when the batch has the images).
// The block's length moves no bits: a product's running sums go to dU in float and come back unchanged; the
// chunks are sized by the granule, not by the block, so neither does changing it.
//
// A block's V and dM are T::positions x tiles x channels floats each, all written by the transforms before
// the products read them position by position: 256 tiles of 32 channels in F(4x4, 3x3) make 2.4 MB, past a
// core's 2 MiB of L2, so the products read back from L3 what the transforms had just written. Blocks of 64
// tiles keep them in L2. Measured (two Xeon cores with AMX, batch 128, F(4x4, 3x3), ms, blocks of 32 / 64 /
// 96 / 256 tiles):
//   16->16 at 32x32     1.60 / 1.61 / 1.50 / 1.85
//   32->32 at 32x32     4.34 / 4.30 / 5.11 / 6.29
//   32->32 at 16x16     1.16 / 1.14 / 1.26 / 1.61
//   64->64 at 8x8       1.17 / 1.20 / 1.20 / 1.34
//   128->128 at 8x8     4.17 / 3.88 / 4.08 / 4.01
// and F(2x2, 3x3) within 5% either way. (An earlier session had measured 256 best: 16->16 at 32x32 1.57 ms,
// 32->32 at 16x16 0.97.)
inline constexpr std::int64_t kWeightChunkTiles = 512;
inline constexpr std::int64_t kWeightGranuleTiles = 256;
inline constexpr std::int64_t kWeightBlockTiles = 64;
inline constexpr std::int64_t kMinWeightChunks = 4;
// Past kWideWeightUFloats of dU, a block's products are one GEMM per position, dU_p += V_p^T dM_p, as the
// forward pass's wide layers (above): the weight tiles read V and dM a few floats per tile from rows that
// are whole channel counts apart, which at 256 channels and more keep landing in the same L1 sets, where the
// GEMM packs them first. Measured, batch 128, 2 threads, ms, weight tiles against GEMMs: 256 -> 256 at 8x8
// F(2x2, 3x3) (dU 4 MiB) 16.8 / 15.3, F(4x4, 3x3) 16.6 / 15.1; 512 -> 512 at 4x4 18.5 / 16.0, at 2x2
// 6.9 / 5.9; 128 -> 128 at 8x8 F(4x4, 3x3) (dU 2.3 MiB) 3.1 / 3.6, which stays with the tiles. The GEMM
// adds in its own order (a block's sum, then dU), so its bits are not the tiles'; the blocks and chunks are
// the shape's, so they are the same on any thread count.
inline constexpr std::int64_t kWideWeightUFloats = std::int64_t{3} << 18;  // 3 MiB of dU

// gyp[b][r][c][co] for r < m * TH, c < m * TW: `count` images of gy (NCHW, or channels-last with
// g.channels_last; float, or bfloat16 whose NCHW rows widen in `row_buffer`, band_floats of it)
// channels-last, zero past the output and in the lanes from C_out up to `channels`.
template <typename V, typename T, typename A>
void pad_gradient(const Pass& g, const Tiling<V, T>& tiling, const A* gy, std::int64_t image_stride,
                  std::int64_t count, std::int64_t channels, float* gyp, float* row_buffer) {
  const std::int64_t out_h = g.out_height, out_w = g.out_width, plane = out_h * out_w;
  const std::int64_t rows = T::m * tiling.tiles_h, row_floats = T::m * tiling.tiles_w * channels;
  for (std::int64_t b = 0; b < count; ++b) {
    PlaneRows<V, A> planes(gy + b * image_stride, g.out_channels, out_h, out_w, row_buffer);
    for (std::int64_t r = 0; r < rows; ++r) {
      float* row = gyp + (b * rows + r) * row_floats;
      if (r >= out_h) {
        std::fill_n(row, row_floats, 0.0f);
        continue;
      }
      std::fill(row + out_w * channels, row + row_floats, 0.0f);
      if (g.channels_last) {
        channel_pixels::copy_pixels<V>(gy + b * image_stride + r * out_w * g.out_channels, g.out_channels,
                                       out_w, g.out_channels, row, channels);
        continue;
      }
      if (g.out_channels < channels) {
        for (std::int64_t ow = 0; ow < out_w; ++ow)
          std::fill_n(row + ow * channels + g.out_channels, channels - g.out_channels, 0.0f);
      }
      if (std::is_same_v<A, float> && r + kPrefetchRows < out_h)
        prefetch_rows<Intent::Read>(gy + b * image_stride + (r + kPrefetchRows) * out_w, plane,
                                    g.out_channels, out_w);
      const FloatRows in = planes.row(r);
      transpose_matrix(in.first, in.stride, g.out_channels, out_w, row, channels);
    }
  }
}

// dm[p * dm_position + t * channels + co] = (A dY A^T)_p for the tiles t < tiles of gyp (rows of `channels`
// floats), dY the tile's m x m block of gy.
template <typename V, typename T>
void transform_gradients(const Tiling<V, T>& tiling, const float* gyp, std::int64_t channels,
                         std::int64_t tiles, float* dm, std::int64_t dm_position) {
  using Reg = typename V::Reg;
  constexpr int kAlpha = T::alpha, kM = T::m;
  const std::int64_t row_floats = kM * tiling.tiles_w * channels;
  for (std::int64_t t = 0; t < tiles; ++t) {
    const auto at = tiling.place(t);
    const float* top =
        gyp +
        ((at.image * kM * tiling.tiles_h + kM * at.row) * kM * tiling.tiles_w + kM * at.column) * channels;
    for (std::int64_t lane0 = 0; lane0 < channels; lane0 += V::width) {
      Reg e[kAlpha][kM];  // A dY, one column at a time
#pragma GCC unroll 4
      for (int col = 0; col < kM; ++col) {
        Reg column[kM], out[kAlpha];
#pragma GCC unroll 4
        for (int r = 0; r < kM; ++r) column[r] = V::load(top + r * row_floats + col * channels + lane0);
        T::gradient(column, out);
#pragma GCC unroll 9
        for (int r = 0; r < kAlpha; ++r) e[r][col] = out[r];
      }
      float* to = dm + t * channels + lane0;
#pragma GCC unroll 9
      for (int r = 0; r < kAlpha; ++r) {  // (A dY) A^T, row by row
        Reg out[kAlpha];
        T::gradient(e[r], out);
#pragma GCC unroll 9
        for (int col = 0; col < kAlpha; ++col) V::store(next_position<V>(to, dm_position), out[col]);
      }
    }
  }
}

// du[j * du_stride + lane] (+)= sum over t < tiles of v[t * v_stride + j] * dm[t * dm_stride + lane], for
// j < Tile::taps input channels and lane < Tile::vectors * width output channels; `accumulate` adds to what
// du holds (a chunk's later blocks), else overwrites it.
template <typename V, typename Tile>
void weight_product_tile(std::int64_t tiles, const float* v, std::int64_t v_stride, const float* dm,
                         std::int64_t dm_stride, bool accumulate, float* du, std::int64_t du_stride) {
  using Reg = typename V::Reg;
  constexpr int kTaps = Tile::taps, kVectors = Tile::vectors;
  Reg acc[kTaps][kVectors];
#pragma GCC unroll 16
  for (int j = 0; j < kTaps; ++j) {
#pragma GCC unroll 4
    for (int k = 0; k < kVectors; ++k)
      acc[j][k] = accumulate ? V::load(du + j * du_stride + k * V::width) : V::zero();
  }
  for (std::int64_t t = 0; t < tiles; ++t) {
    Reg grad[kVectors];
#pragma GCC unroll 4
    for (int k = 0; k < kVectors; ++k) grad[k] = V::load(dm + k * V::width);
#pragma GCC unroll 16
    for (int j = 0; j < kTaps; ++j) {
      const Reg input = V::broadcast(v[j]);
#pragma GCC unroll 4
      for (int k = 0; k < kVectors; ++k) acc[j][k] = V::fmadd(input, grad[k], acc[j][k]);
    }
    v += v_stride;
    dm += dm_stride;
  }
#pragma GCC unroll 16
  for (int j = 0; j < kTaps; ++j) {
#pragma GCC unroll 4
    for (int k = 0; k < kVectors; ++k) V::store(du + j * du_stride + k * V::width, acc[j][k]);
  }
}

// gw[co, ci] = G^T dU_{ci, co} G, from du[p][ci][co] (rows of du_stride floats), in double.
template <typename V, typename T>
void untransform_weights(const Pass& g, const float* du, std::int64_t du_rows, std::int64_t du_stride,
                         float* gw) {
  constexpr int kAlpha = T::alpha;
#pragma omp parallel for schedule(static) if (g.in_channels * g.out_channels >= kMinParallelKernels)
  for (std::int64_t ci = 0; ci < g.in_channels; ++ci) {
    // Eight output channels at a time; du's rows are whole panels of output channels (du_stride, a
    // multiple of eight), so the last eight read past C_out stay inside the row.
    for (std::int64_t co0 = 0; co0 < g.out_channels; co0 += kDoubleLanes) {
      const std::int64_t count = std::min<std::int64_t>(kDoubleLanes, g.out_channels - co0);
      Doubles h[3][kAlpha];  // G^T dU, one column at a time
      for (int c = 0; c < kAlpha; ++c) {
        Doubles column[kAlpha], out[3];
        for (int r = 0; r < kAlpha; ++r) {
          DoubleLaneFloats row;
          std::memcpy(&row, du + ((r * kAlpha + c) * du_rows + ci) * du_stride + co0, sizeof(row));
          column[r] = __builtin_convertvector(row, Doubles);
        }
        T::unweight(column, out);
        for (int r = 0; r < 3; ++r) h[r][c] = out[r];
      }
      for (int r = 0; r < 3; ++r) {  // (G^T dU) G, row by row
        Doubles out[3];
        T::unweight(h[r], out);
        for (std::int64_t l = 0; l < count; ++l) {
          float* k = gw + ((co0 + l) * g.in_channels + ci) * 9;
          for (int c = 0; c < 3; ++c) k[r * 3 + c] = static_cast<float>(out[c][l]);
        }
      }
    }
  }
}

template <typename V, typename T, typename Tile, typename A>
void backward_weight(const Conv2dGeometry& geometry, const A* gy, const A* x, float* gw,
                     const InputNormalization* input = nullptr) {
  const Pass g = Pass::of(geometry);
  KILN_CHECK(!input || (std::is_same_v<A, float> && !g.channels_last),
             "winograd backward_weight: input normalization takes float NCHW activations only");
  constexpr std::int64_t kChannels = Tile::vectors * V::width;
  constexpr int kPositions = T::positions;
  const Tiling<V, T> tiling(g);
  const std::int64_t panels = (g.out_channels + kChannels - 1) / kChannels, dm_stride = panels * kChannels;
  const std::int64_t groups = (g.in_channels + Tile::taps - 1) / Tile::taps, du_rows = groups * Tile::taps;
  const std::int64_t in_image = g.in_channels * g.in_height * g.in_width;
  const std::int64_t out_image = g.out_channels * g.out_height * g.out_width;

  // At most a kMinWeightChunks-th of the batch per chunk, so small images still leave the threads chunks
  // to share (their transforms run on the chunk's thread).
  const std::int64_t most_images = (g.batch + kMinWeightChunks - 1) / kMinWeightChunks;
  const auto images_for = [&](std::int64_t tiles) {
    return std::clamp<std::int64_t>((tiles + tiling.per_image() - 1) / tiling.per_image(), 1, most_images);
  };
  const std::int64_t granule_images = images_for(kWeightGranuleTiles);
  const std::int64_t chunk_granules =
      std::max<std::int64_t>(1, (kWeightChunkTiles + granule_images * tiling.per_image() - 1) /
                                    (granule_images * tiling.per_image()));
  const std::int64_t chunk_images = std::min(most_images, chunk_granules * granule_images);
  const std::int64_t chunk_count = (g.batch + chunk_images - 1) / chunk_images;
  const std::int64_t block_images = std::min(images_for(kWeightBlockTiles), chunk_images);
  const std::int64_t block_tiles = block_images * tiling.per_image();

  // A block's scratch: xp, gy channels-last, V [positions][tiles][channels] (plus Tile::taps floats that the
  // last tile's last group of input channels may read past its row: they meet rows of dU that are never
  // used), dM [positions][tiles][dm_stride], each position v_position, dm_position floats after the last,
  // and the rows bfloat16 NCHW x and gy widen in.
  const std::int64_t xp_floats = block_images * tiling.image_floats();
  const std::int64_t gyp_floats = block_images * T::m * T::m * tiling.per_image() * dm_stride;
  const std::int64_t v_position = position_stride(block_tiles * tiling.channels);
  const std::int64_t dm_position = position_stride(block_tiles * dm_stride);
  const std::int64_t v_floats = kPositions * v_position + Tile::taps;
  const std::int64_t dm_floats = kPositions * dm_position;
  const std::int64_t in_rows_floats =
      rows_floats<A>(g, std::max(band_floats(g.in_channels, g.in_height, g.in_width),
                                 band_floats(g.out_channels, g.out_height, g.out_width)));
  const std::int64_t du_floats = kPositions * du_rows * dm_stride;
  const CpuScratch du = cpu_scratch(du_floats);
  const bool wide = du_floats > kWideWeightUFloats;
  std::optional<PackedInput<V>> packed_input;
  if (input) packed_input.emplace(*input, g.in_channels, tiling.channels);

  batch_chunks::sum_over_chunks(
      chunk_count, du_floats, xp_floats + gyp_floats + v_floats + dm_floats + in_rows_floats, du.get(),
      [&](std::int64_t chunk, float* scratch, float* du_chunk) {
        float* xp = scratch;
        float* gyp = xp + xp_floats;
        float* v = gyp + gyp_floats;
        float* dm = v + v_floats;
        float* rows = dm + dm_floats;
        const std::int64_t chunk_end = std::min(g.batch, (chunk + 1) * chunk_images);
        for (std::int64_t first = chunk * chunk_images; first < chunk_end; first += block_images) {
          const std::int64_t count = std::min(block_images, chunk_end - first);
          const std::int64_t tiles = count * tiling.per_image();
          pad_input(g, tiling, x + first * in_image, in_image, count, xp, rows,
                    packed_input ? &*packed_input : nullptr);
          pad_gradient(g, tiling, gy + first * out_image, out_image, count, dm_stride, gyp, rows);
          transform_inputs<V, T>(tiling, xp, 0, tiles, tiles, v, v_position);
          transform_gradients<V, T>(tiling, gyp, dm_stride, tiles, dm, dm_position);
          const bool accumulate = first > chunk * chunk_images;
          if (wide) {
            // dU_p [du_rows, dm_stride] (+)= V_p^T [du_rows, tiles] x dM_p [tiles, dm_stride]: V_p's rows are
            // tiles of `channels` floats, input channels past C_in zero.
            const GemmGeometry product{.m = du_rows,
                                       .n = dm_stride,
                                       .k = tiles,
                                       .trans_a = true,
                                       .lda = tiling.channels,
                                       .ldb = dm_stride,
                                       .ldc = dm_stride};
            for (int p = 0; p < kPositions; ++p) {
              gemm(Device::cpu(), product, 1.0f, v + p * v_position, dm + p * dm_position,
                   accumulate ? 1.0f : 0.0f, du_chunk + p * du_rows * dm_stride);
            }
            continue;
          }
          direct::for_each_tile<V>(kPositions * groups * panels, [&](std::int64_t tile) {
            const std::int64_t p = tile / (groups * panels), group = tile / panels % groups,
                               panel = tile % panels;
            weight_product_tile<V, Tile>(
                tiles, v + p * v_position + group * Tile::taps, tiling.channels,
                dm + p * dm_position + panel * kChannels, dm_stride, accumulate,
                du_chunk + (p * du_rows + group * Tile::taps) * dm_stride + panel * kChannels, dm_stride);
          });
        }
      });
  untransform_weights<V, T>(g, du.get(), du_rows, dm_stride, gw);
}

// ---- the entry points -------------------------------------------------------------------------------------
//
// Each instruction set's file (avx512_winograd.cpp, avx2_winograd.cpp) names its product tiles in a struct:
// V, and forward, backward_data and backward_weight for a transform trait T and activations A. These pick T
// by tile and stride (with_transform): at stride 2 the patch-by-phase traits, and for backward-data the
// input-gradient-by-phase ones.
//
// with_transform calls body(std::type_identity<T>{}) with the trait for `tile` and the stride (backward_data:
// its own stride-2 traits).
template <typename V, bool backward_data, typename Body>
void with_transform(WinogradTile tile, const Conv2dGeometry& g, Body body) {
  using F2x2Strided = std::conditional_t<backward_data, F2x2Stride2Data<V>, F2x2Stride2<V>>;
  using F4x4Strided = std::conditional_t<backward_data, F4x4Stride2Data<V>, F4x4Stride2<V>>;
  const bool two = g.stride_h == 2;
  if (tile == WinogradTile::F2x2) {
    if (two) return body(std::type_identity<F2x2Strided>{});
    return body(std::type_identity<F2x2<V>>{});
  }
  if (two) return body(std::type_identity<F4x4Strided>{});
  body(std::type_identity<F4x4<V>>{});
}
template <typename Tiles, typename A>
void run_forward(WinogradTile tile, const Conv2dGeometry& g, const A* x, const float* w, const float* bias,
                 A* y, const OutputNormalization* normalization, const InputNormalization* input) {
  with_transform<typename Tiles::V, false>(tile, g, [&]<typename T>(std::type_identity<T>) {
    Tiles::template forward<T>(g, x, w, bias, y, normalization, input);
  });
}
template <typename Tiles, typename A>
void run_backward_data(WinogradTile tile, const Conv2dGeometry& g, const A* gy, const float* w, A* gx,
                       bool accumulate) {
  with_transform<typename Tiles::V, true>(tile, g, [&]<typename T>(std::type_identity<T>) {
    Tiles::template backward_data<T>(g, gy, w, gx, accumulate);
  });
}
template <typename Tiles, typename A>
void run_backward_weight(WinogradTile tile, const Conv2dGeometry& g, const A* gy, const A* x, float* gw,
                         const InputNormalization* input) {
  with_transform<typename Tiles::V, false>(tile, g, [&]<typename T>(std::type_identity<T>) {
    Tiles::template backward_weight<T>(g, gy, x, gw, input);
  });
}

}  // namespace kiln::kernels::winograd

// The entry points conv2d.hpp declares for activations A, instantiated in each instruction set's namespace
// (avx512_winograd.cpp, avx2_winograd.cpp) after their template definitions there.
#define KILN_INSTANTIATE_WINOGRAD_ENTRY_POINTS(A)                                                           \
  template void winograd_conv2d_forward<A>(WinogradTile, const Conv2dGeometry&, const A*, const float*,     \
                                           const float*, A*, const OutputNormalization*,                    \
                                           const InputNormalization*);                                      \
  template void winograd_conv2d_backward_data<A>(WinogradTile, const Conv2dGeometry&, const A*,             \
                                                 const float*, A*, bool);                                   \
  template void winograd_conv2d_backward_weight<A>(WinogradTile, const Conv2dGeometry&, const A*, const A*, \
                                                   float*, const InputNormalization*);
