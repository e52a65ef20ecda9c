// The int8 convolution on AVX-512 VNNI (int8_conv.hpp): vpdpbusd multiplies 64 unsigned activation bytes
// by 64 signed weight bytes and adds each group of 4 products into one of 16 s32 lanes, so one
// instruction does 64 multiply-adds where an fp32 FMA does 16.
//
// The register tile is P output pixels x B blocks of 16 output channels (P x B accumulators):
//
//            B weight vectors: 16 output channels x 4 input channels each (one 64-byte load per block)
//          ┌────────────┬────────────┐
//   pixel 0│ acc[0][0]  │ acc[0][1]  │ <- broadcast of pixel 0's 4 input-channel bytes (one u32)
//   pixel 1│ acc[1][0]  │ acc[1][1]  │
//     ...  │            │            │
//
// Each step over (tap, group of 4 input channels) loads B weight vectors, broadcasts each pixel's 4
// bytes, and issues P x B vpdpbusd. Because the activations are channels-last, a pixel's 4 channels are
// one aligned u32, read straight from the padded input: no im2col, no packing of activations. The P
// pixels are consecutive in (image, row, column) order, so a tile may run across rows and images; each
// keeps its own input pointer. The epilogue converts the sums to float, applies multiplier, offset,
// residual and clamp, and rounds to u8 with _mm512_cvtps_epi32 (round-half-even) or stores floats.
//
// Threads take (block group, pixel tile) pairs, group-major, so a thread keeps one group's weights in
// cache while it walks the pixels; each output element is computed by one thread in one order, so the
// result does not depend on the thread count.
#include <cstring>

#include "kernels/int8/int8_conv.hpp"
#include "kernels/simd/intrinsics.hpp"  // <immintrin.h>, without GCC 12's false -Wuninitialized

namespace kiln::kernels::avx512_vnni {
namespace {

struct Call {
  const Int8ConvGeometry& g;
  const std::uint8_t* x;
  const std::int8_t* w;
  const Int8Epilogue& e;
  void* y;
};

// The input bytes under output pixels first, first + 1, ... (flattened n, oh, ow) for tap (0, 0), channel
// 0. One division finds the first pixel; the rest step along the row and wrap to the next row or image
// (a division per pixel would cost as much as a 16-channel layer's whole tile of multiply-adds).
template <int P>
void pixel_origins(const Call& c, std::int64_t first, const std::uint8_t* (&origin)[P]) {
  const Int8ConvGeometry& g = c.g;
  const std::int64_t ow_count = g.out_width(), oh_count = g.out_height();
  std::int64_t n = first / (oh_count * ow_count), oh = first / ow_count % oh_count, ow = first % ow_count;
  for (int p = 0; p < P; ++p) {
    origin[p] =
        c.x + ((n * g.padded_height + oh * g.stride) * g.padded_width + ow * g.stride) * g.in_channel_stride;
    if (++ow == ow_count) {
      ow = 0;
      if (++oh == oh_count) oh = 0, ++n;
    }
  }
}

std::uint32_t load_four_bytes(const std::uint8_t* at) {
  std::uint32_t four;
  std::memcpy(&four, at, sizeof four);
  return four;
}

// The epilogue for 16 output channels from `channel` on, whose sums are `acc`, written at y[index ...]:
// float, fma with multiplier and offset, fma with the residual, clamp, then u8 (round-half-even, as
// MXCSR's default mode does) or float. The reference's scalar finish() performs the same operations.
void store_outputs(const Int8Epilogue& e, __m512i acc, std::int64_t channel, std::int64_t index, void* y) {
  __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_loadu_ps(e.multiplier + channel),
                             _mm512_loadu_ps(e.offset + channel));
  if (e.residual) {
    const __m512i r =
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(e.residual + index)));
    v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(r), _mm512_set1_ps(e.residual_multiplier), v);
  }
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(e.lower_bound)), _mm512_set1_ps(e.upper_bound));
  if (e.float_output) {
    _mm512_storeu_ps(static_cast<float*>(y) + index, v);
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<std::uint8_t*>(y) + index),
                     _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
  }
}

template <int B, int P>
void conv_tile(const Call& c, std::int64_t first_pixel, std::int64_t first_block) {
  const Int8ConvGeometry& g = c.g;
  const std::uint8_t* origin[P];
  pixel_origins(c, first_pixel, origin);

  __m512i acc[P][B];
  for (int p = 0; p < P; ++p) {
    for (int b = 0; b < B; ++b) acc[p][b] = _mm512_setzero_si512();
  }
  const std::int64_t quads = g.channel_quads(), block_bytes = g.packed_block_bytes();
  const std::int8_t* w = c.w + first_block * block_bytes;
  for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
    for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
      const std::int64_t tap = (kh * g.padded_width + kw) * g.dilation * g.in_channel_stride;
      for (std::int64_t q = 0; q < quads; ++q, w += kInt8ChannelBlock * kInt8ChannelQuad) {
        __m512i weights[B];
        for (int b = 0; b < B; ++b) weights[b] = _mm512_loadu_si512(w + b * block_bytes);
        for (int p = 0; p < P; ++p) {
          const __m512i four_channels =
              _mm512_set1_epi32(static_cast<int>(load_four_bytes(origin[p] + tap + q * kInt8ChannelQuad)));
          for (int b = 0; b < B; ++b) acc[p][b] = _mm512_dpbusd_epi32(acc[p][b], four_channels, weights[b]);
        }
      }
    }
  }

  for (int b = 0; b < B; ++b) {
    const std::int64_t channel = (first_block + b) * kInt8ChannelBlock;
    for (int p = 0; p < P; ++p)
      store_outputs(c.e, acc[p][b], channel, (first_pixel + p) * g.out_channels + channel, c.y);
  }
}

// Below this many multiply-adds a call runs on the calling thread (a parallel region costs microseconds).
constexpr std::int64_t kParallelMacs = std::int64_t{1} << 18;

// B blocks of 16 output channels per tile and P = kTilePixels<B> pixels: P x B accumulators plus B weight
// vectors and one broadcast stay within the 32 zmm registers.
template <int B>
constexpr int kTilePixels = B == 4 ? 6 : 12;

template <int B>
void run(const Call& c) {
  constexpr int P = kTilePixels<B>;
  const std::int64_t pixels = c.g.out_pixels(), groups = c.g.out_channels / kInt8ChannelBlock / B;
  const std::int64_t tiles = pixels / P, tail_start = tiles * P, tail = pixels - tail_start;
  const std::int64_t macs = pixels * c.g.out_channels * c.g.kernel_h * c.g.kernel_w * c.g.in_channel_stride;
  const bool parallel = macs >= kParallelMacs;
  // Whole tiles, then the last pixels that do not fill one, one pixel at a time.
#pragma omp parallel for schedule(static) if (parallel)
  for (std::int64_t i = 0; i < groups * tiles; ++i) conv_tile<B, P>(c, i % tiles * P, i / tiles * B);
#pragma omp parallel for schedule(static) if (parallel)
  for (std::int64_t i = 0; i < groups * tail; ++i) conv_tile<B, 1>(c, tail_start + i % tail, i / tail * B);
}

}  // namespace

void int8_conv2d(const Int8ConvGeometry& g, const std::uint8_t* x, const std::int8_t* packed_w,
                 const Int8Epilogue& epilogue, void* y) {
  const Call call{g, x, packed_w, epilogue, y};
  const std::int64_t blocks = g.out_channels / kInt8ChannelBlock;
  if (blocks % 4 == 0) return run<4>(call);
  if (blocks % 2 == 0) return run<2>(call);
  return run<1>(call);
}

void int8_depthwise_conv2d(const Int8ConvGeometry& g, const std::uint8_t* x, const std::int8_t* w,
                           const Int8Epilogue& epilogue, void* y) {
  // Each channel has its own filter, so the vector runs across 16 channels and each tap is one widening
  // multiply-add: u8 -> s32 (vpmovzxbd), s8 -> s32 (vpmovsxbd), vpmulld, vpaddd. Rows of output run in
  // parallel.
  const std::int64_t oh_count = g.out_height(), ow_count = g.out_width(), channels = g.out_channels;
  const bool parallel = g.batch * oh_count * ow_count * channels * g.kernel_h * g.kernel_w >= kParallelMacs;
#pragma omp parallel for schedule(static) if (parallel)
  for (std::int64_t row = 0; row < g.batch * oh_count; ++row) {
    const std::int64_t n = row / oh_count, oh = row % oh_count;
    for (std::int64_t ow = 0; ow < ow_count; ++ow) {
      const std::int64_t pixel = row * ow_count + ow;
      for (std::int64_t c = 0; c < channels; c += kInt8ChannelBlock) {
        __m512i acc = _mm512_setzero_si512();
        for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
          for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
            const std::int64_t ih = oh * g.stride + kh * g.dilation, iw = ow * g.stride + kw * g.dilation;
            const std::uint8_t* in = x + ((n * g.padded_height + ih) * g.padded_width + iw) * channels + c;
            const std::int8_t* tap = w + (kh * g.kernel_w + kw) * channels + c;
            const __m512i xs = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in)));
            const __m512i ws = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tap)));
            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(xs, ws));
          }
        }
        store_outputs(epilogue, acc, c, pixel * channels + c, y);
      }
    }
  }
}

}  // namespace kiln::kernels::avx512_vnni
