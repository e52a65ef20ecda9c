// The channels-last bfloat16 forward as im2col + the AVX512-BF16 GEMM (conv2d.hpp, im2col_dot_products),
// compiled with AVX-512 and AVX512-BF16; dispatch calls it only where avx512_bf16_usable(): any ungrouped
// geometry, for the layers no kernel of their own serves on bfloat16 without AMX (the 3-channel stems with
// more than 16 outputs: their odd C_in has no channel pairs for the direct kernel, their 27 products an
// output are too few for Winograd and leave the float direct kernel at a fifth of its peak). The weight
// gradient, which once ran here too, sums over image pairs (avx512_bf16_weight_gradient.cpp).
//
// A channels-last image unfolds into rows of the GEMM, one an output position, each the K = KH * KW * C_in
// input values its taps read in (r, s, c) order:
//
//   col [rows, K]    row (n, oh, ow), column (r * KW + s) * C_in + c holds
//                    x[n][oh sh - ph + r dh][ow sw - pw + s dw][c] (0 outside the image)
//   w_taps [C_out, K] the filter in the same (r, s, c) order (w is [C_out, C_in, KH, KW])
//
//   y [rows, C_out]  = col x w_taps^T, plus the bias, rounded once (y is channels-last)
//
// With dilation 1 along the width a row's KW taps of one kernel row are KW * C_in contiguous values of x
// (unfold_kernel_row). The batch goes in chunks of images (batch_chunks.hpp), a chunk's columns unfolded
// into the thread's scratch and multiplied there while they are in cache: the outputs do not depend on the
// chunks (each is one GEMM's sum over K), so they are the same bits on any thread count.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/gemm/gemm.hpp"
#include "kernels/simd/intrinsics.hpp"  // <immintrin.h>

namespace kiln::kernels::im2col_dot_products {
namespace {

// K: the values of x one output reads.
std::int64_t taps(const Conv2dGeometry& g) { return g.kernel_h * g.kernel_w * g.in_channels; }

// Chunks of whole images, about as many output positions as a chunk of the float GEMM's columns.
batch_chunks::Chunking chunking(const Conv2dGeometry& g) {
  const std::int64_t positions = g.out_height() * g.out_width();
  return batch_chunks::chunk_batch(g.batch, positions, batch_chunks::kForwardChunkColumns,
                                   positions * taps(g) / 2 + 1, batch_chunks::kMaxChunkFloats);
}

// Scratch floats that hold a chunk's columns (bfloat16, two a float).
std::int64_t column_floats(const Conv2dGeometry& g, const batch_chunks::Chunking& chunks) {
  return (chunks.images_per_chunk * g.out_height() * g.out_width() * taps(g) + 1) / 2;
}

// One row's taps of kernel row r, [KW][C] from input row `ih` (x's row of the image, or none when ih falls
// outside): the taps s in [s_begin, s_end) read input columns w0 + s * dilation_w, the others are zeros.
// With dilation 1 those are one run of x; where a kernel row's taps fit a register (KW * C <= 32: the
// stems' 3 x 3), one masked load and store, the lanes outside the image masked off (a masked-off lane is
// never read, so the load may start before the row); else copies.
void unfold_kernel_row(const Conv2dGeometry& g, const bfloat16* input_row, std::int64_t w0,
                       std::int64_t s_begin, std::int64_t s_end, bfloat16* to) {
  const std::int64_t C = g.in_channels, width = g.kernel_w * C;
  const auto bytes = [](std::int64_t values) { return static_cast<std::size_t>(values) * sizeof(bfloat16); };
  if (g.dilation_w == 1 && width <= 32) {
    const auto lanes = [](std::int64_t count) {
      return count >= 32 ? ~__mmask32{0} : (__mmask32{1} << count) - 1;
    };
    __m512i values = _mm512_setzero_si512();
    if (input_row != nullptr && s_begin < s_end) {
      const __mmask32 inside = lanes(s_end * C) & ~lanes(s_begin * C);
      const auto address = reinterpret_cast<std::uintptr_t>(input_row) +
                           static_cast<std::uintptr_t>(w0 * C * static_cast<std::int64_t>(sizeof(bfloat16)));
      values = _mm512_maskz_loadu_epi16(inside, reinterpret_cast<const void*>(address));
    }
    _mm512_mask_storeu_epi16(to, lanes(width), values);
    return;
  }
  if (input_row == nullptr || s_begin >= s_end) {
    std::memset(to, 0, bytes(width));
    return;
  }
  std::memset(to, 0, bytes(s_begin * C));
  if (g.dilation_w == 1) {
    std::memcpy(to + s_begin * C, input_row + (w0 + s_begin) * C, bytes((s_end - s_begin) * C));
  } else {
    for (std::int64_t s = s_begin; s < s_end; ++s)
      std::memcpy(to + s * C, input_row + (w0 + s * g.dilation_w) * C, bytes(C));
  }
  std::memset(to + s_end * C, 0, bytes((g.kernel_w - s_end) * C));
}

// col [count * OH * OW, K] for images [first, first + count) of the channels-last x.
void unfold(const Conv2dGeometry& g, const bfloat16* x, std::int64_t first, std::int64_t count,
            bfloat16* col) {
  const std::int64_t C = g.in_channels, K = taps(g), OH = g.out_height(), OW = g.out_width();
  bfloat16* row = col;
  for (std::int64_t n = first; n < first + count; ++n) {
    const bfloat16* image = x + n * g.in_height * g.in_width * C;
    for (std::int64_t oh = 0; oh < OH; ++oh) {
      for (std::int64_t ow = 0; ow < OW; ++ow, row += K) {
        const std::int64_t w0 = ow * g.stride_w - g.pad_w;
        // The kernel columns whose input column lies inside the image: [s_begin, s_end).
        const std::int64_t s_begin =
            w0 >= 0 ? 0 : std::min(g.kernel_w, (-w0 + g.dilation_w - 1) / g.dilation_w);
        const std::int64_t s_end =
            w0 >= g.in_width ? 0 : std::min(g.kernel_w, (g.in_width - 1 - w0) / g.dilation_w + 1);
        for (std::int64_t r = 0; r < g.kernel_h; ++r) {
          const std::int64_t ih = oh * g.stride_h - g.pad_h + r * g.dilation_h;
          const bfloat16* input_row = ih >= 0 && ih < g.in_height ? image + ih * g.in_width * C : nullptr;
          unfold_kernel_row(g, input_row, w0, s_begin, s_end, row + r * g.kernel_w * C);
        }
      }
    }
  }
}

}  // namespace

void conv2d_forward_bf16(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w, const float* bias,
                         bfloat16* y) {
  const std::int64_t K = taps(g), positions = g.out_height() * g.out_width();
  // w [C_out, C_in, KH, KW] -> w_taps [C_out, (r, s, c)].
  const CpuScratch w_taps_floats = cpu_scratch((g.out_channels * K + 1) / 2);
  bfloat16* w_taps = reinterpret_cast<bfloat16*>(w_taps_floats.get());
  for (std::int64_t k = 0; k < g.out_channels; ++k)
    for (std::int64_t c = 0; c < g.in_channels; ++c)
      for (std::int64_t tap = 0; tap < g.kernel_h * g.kernel_w; ++tap)
        w_taps[k * K + tap * g.in_channels + c] = w[(k * g.in_channels + c) * g.kernel_h * g.kernel_w + tap];
  const batch_chunks::Chunking chunks = chunking(g);
  batch_chunks::for_each_chunk(
      chunks.chunk_count, column_floats(g, chunks), [&](std::int64_t chunk, float* scratch) {
        const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
        bfloat16* col = reinterpret_cast<bfloat16*>(scratch);
        unfold(g, x, first, count, col);
        const GemmGeometry product{.m = count * positions,
                                   .n = g.out_channels,
                                   .k = K,
                                   .trans_b = true,
                                   .lda = K,
                                   .ldb = K,
                                   .ldc = g.out_channels};
        avx512_bf16::gemm(product, 1.0f, col, w_taps, 0.0f, y + first * positions * g.out_channels, bias);
      });
}

}  // namespace kiln::kernels::im2col_dot_products
