// bfloat16 GEMM on AVX512-BF16's dot-product instruction (gemm.hpp, namespace avx512_bf16). Compiled with
// -mavx512bf16 and AVX-512; dispatch calls it only where avx512_bf16_usable().
//
// VDPBF16PS acc, a, b: each of the 16 float lanes of acc adds the products of one bfloat16 pair of a and the
// pair beside it in b, acc[j] += a[2j] b[2j] + a[2j+1] b[2j+1]: 32 multiply-adds an instruction where a
// float FMA does 16, at the FMA's rate (two a cycle on Zen 5: 449 against 225 GFLOP/s a core, measured by a
// loop of independent instructions). Products of bfloat16 are exact in float, so a result differs from the
// float GEMM on widened operands only in the order its float additions round, as the AMX tiles' do
// (kernels/amx/amx.hpp). Like them, the instruction reads a subnormal bfloat16 (below 2^-126) as zero.
//
// The same five loops as the float GEMM (gemm_driver.hpp; Goto & van de Geijn) with the depth in pairs: a
// packed sliver holds, for each pair q of depth indices 2q, 2q + 1, the lines' pairs as 32-bit words
//
//   A sliver [KC/2][MR] words: word (q, r) = op(A)[i0 + r, p0 + 2q], op(A)[i0 + r, p0 + 2q + 1]
//   B sliver [KC/2][NR] words: word (q, j) = op(B)[p0 + 2q, j0 + j], op(B)[p0 + 2q + 1, j0 + j]
//
// (the pair layout AMX's B tiles load), an odd depth's last pair completed with a zero. The micro-kernel
// broadcasts one A word per row of the C tile and issues NR / 16 dot products against the B words: the float
// kernel's 8 x 32 tile, 16 accumulators, each instruction twice the work.
//
// Packing has two cases, as op(X)[line, p] lies along one of its two indices (GemmGeometry has no other):
//   depth contiguous (A as stored, B transposed): a pair is already a word in memory; R lines x KC/2 words
//     are transposed, 8 x 8 words at a time;
//   lines contiguous (A transposed, B as stored): the two depth rows 2q, 2q + 1 are interleaved, 16-bit
//     element by element, into R words.
//
// C in bfloat16 is rounded once as the micro-kernel stores it, where the whole depth is one KC block;
// deeper products run into float scratch and are rounded after. Threads: as the float GEMM (thread_cut.hpp),
// each a block of whole column slivers or row tiles, the depth never split, so any thread count gives the
// same bits.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cpu_scratch.hpp"
#include "kernels/gemm/gemm.hpp"
#include "kernels/gemm/pack_buffer.hpp"
#include "kernels/gemm/thread_cut.hpp"
#include "kernels/simd/float_vector_avx512.hpp"
#include "kernels/simd/transpose_8x8.hpp"
#include "kernels/widened_bfloat16.hpp"

namespace kiln::kernels::avx512_bf16 {
namespace {

using Vector = simd::FloatVector512;
using Word = std::uint32_t;  // a pair of bfloat16, the lower depth index in the low half

// Register blocking as the float GEMM's AVX-512 kernel (blocking.hpp): 8 rows x 2 zmm of 16 columns.
constexpr int kMr = 8, kNr = 32;
// KC = 1024 depth indices: a B sliver is 512 pairs x 32 words = 64 KiB, read from L2 (a micro-tile needs 128
// bytes of it per 8 cycles), and every depth of MobileNet's pointwise layers (up to 1024) is one block, so a
// bfloat16 C is rounded as it is stored. MC = 128 rows: an A block of 256 KiB, a quarter of a Zen 5 core's
// L2. NC as the float kernel's. Measured (gemm_bench bf16_pointwise, 2 threads, GFLOP/s, noisy to +-5%):
// KC 512 / MC 256 against 1024 / 128: 785 / 796 on 2048 x 512 x 512, 631 / 774 on 512 x 1024 x 1024 (a
// second block, and float sums in scratch), 696 / 730 on 32768 x 128 x 128, 445 / 518 on the weight
// gradient 128 x 128 x 32768; KC 1024 with MC 256 came out alike.
constexpr std::int64_t kKc = 1024, kMc = 128, kNc = 3072;
// Twice the float GEMM's threshold (gemm_driver.hpp): each instruction does twice the multiply-adds.
constexpr std::int64_t kMinParallelMultiplyAdds = 400'000;

// op(X) as the packing reads it: element (line, p) at data[line * line_stride + p * depth_stride], line
// along M (A) or N (B), p along K; one of the strides is 1.
struct Operand {
  const bfloat16* data;
  std::int64_t line_stride, depth_stride;
  bfloat16 at(std::int64_t line, std::int64_t p) const { return data[line * line_stride + p * depth_stride]; }
};
Operand operand_a(const bfloat16* a, const GemmGeometry& g) {
  return g.trans_a ? Operand{a, 1, g.lda} : Operand{a, g.lda, 1};
}
Operand operand_b(const bfloat16* b, const GemmGeometry& g) {
  return g.trans_b ? Operand{b, g.ldb, 1} : Operand{b, 1, g.ldb};
}

Word pair(bfloat16 low, bfloat16 high) {
  return static_cast<Word>(low.bits) | static_cast<Word>(high.bits) << 16;
}

// dst[w * dst_stride + i] = rows[i][w] for i, w < 8: eight rows of eight words, transposed as floats.
void transpose_words_8x8(const bfloat16* const rows[8], Word* dst, std::int64_t dst_stride) {
  __m256 r[8], columns[8];
  for (int i = 0; i < 8; ++i)
    r[i] = _mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[i])));
  transpose_8x8(r, columns);
  for (int w = 0; w < 8; ++w)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + w * dst_stride), _mm256_castps_si256(columns[w]));
}

// Packs lines [line0, line0 + lines) x depth [p0, p0 + kc) into dst[(kc + 1) / 2][R] words (the sliver
// layout at the top), lines past `lines` and an odd depth's last high half as zeros.
template <int R>
void pack_sliver(const Operand& src, std::int64_t line0, int lines, std::int64_t p0, std::int64_t kc,
                 Word* dst) {
  const std::int64_t pairs = kc / 2;  // whole pairs; an odd kc leaves one index for the last word
  int r = 0;
  if (src.depth_stride == 1) {
    // A pair is a word in memory: R lines x pairs words, transposed 8 x 8 where whole.
    for (; r + 8 <= lines; r += 8) {
      const bfloat16* rows[8];
      for (int i = 0; i < 8; ++i) rows[i] = src.data + (line0 + r + i) * src.line_stride + p0;
      std::int64_t q = 0;
      for (; q + 8 <= pairs; q += 8) {
        transpose_words_8x8(rows, dst + q * R + r, R);
        for (const bfloat16*& row : rows) row += 16;
      }
      for (; q < pairs; ++q) {
        for (int i = 0; i < 8; ++i) std::memcpy(dst + q * R + r + i, rows[i] + 2 * (q % 8), sizeof(Word));
      }
    }
  } else if (R % 32 == 0) {
    // Lines contiguous: rows 2q and 2q + 1 of R values each (the first `lines`, masked: the others load as
    // zeros, the padding), interleaved 16 bits at a time, 16 lines per 512-bit output (element 2j from the
    // first row's j, 2j + 1 from the second's).
    const __m512i low_half = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                              39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i high_half = _mm512_add_epi16(low_half, _mm512_set1_epi16(16));
    for (int l = 0; l < R; l += 32) {
      const int valid = std::clamp(lines - l, 0, 32);
      const __mmask32 mask = valid == 32 ? ~__mmask32{0} : (__mmask32{1} << valid) - 1;
      for (std::int64_t q = 0; q < pairs; ++q) {
        const bfloat16* even = src.data + line0 + l + (p0 + 2 * q) * src.depth_stride;
        const __m512i first = _mm512_maskz_loadu_epi16(mask, even);
        const __m512i second = _mm512_maskz_loadu_epi16(mask, even + src.depth_stride);
        _mm512_storeu_si512(dst + q * R + l, _mm512_permutex2var_epi16(first, low_half, second));
        _mm512_storeu_si512(dst + q * R + l + 16, _mm512_permutex2var_epi16(first, high_half, second));
      }
    }
    r = R;
  } else if (R == 8) {
    const auto mask = static_cast<__mmask8>((1u << lines) - 1);
    for (std::int64_t q = 0; q < pairs; ++q) {
      const bfloat16* even = src.data + line0 + (p0 + 2 * q) * src.depth_stride;
      const __m128i first = _mm_maskz_loadu_epi16(mask, even);
      const __m128i second = _mm_maskz_loadu_epi16(mask, even + src.depth_stride);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + q * R), _mm_unpacklo_epi16(first, second));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + q * R + 4), _mm_unpackhi_epi16(first, second));
    }
    r = R;
  }
  // What is left (depth contiguous: lines short of a group of 8), one word at a time.
  for (; r < lines; ++r) {
    for (std::int64_t q = 0; q < pairs; ++q)
      dst[q * R + r] = pair(src.at(line0 + r, p0 + 2 * q), src.at(line0 + r, p0 + 2 * q + 1));
  }
  for (int padding = std::max(lines, r); padding < R; ++padding) {
    for (std::int64_t q = 0; q < pairs; ++q) dst[q * R + padding] = 0;
  }
  if (kc % 2 == 1) {  // the last word: its one depth index, then zero
    for (int line = 0; line < R; ++line)
      dst[pairs * R + line] =
          line < lines ? pair(src.at(line0 + line, p0 + kc - 1), bfloat16::from_bits(0)) : 0;
  }
}

// The MR x NR tile of C from `pairs` words of an A sliver and of a B sliver:
//   C[0..rows, 0..cols) = alpha * sum + beta * C + bias[column]       (beta == 0: C is not read; bias may be
// null), rounded to bfloat16 once where C is bfloat16. Partial tiles store masked.
template <typename Out>
void micro_kernel(std::int64_t pairs, const Word* a, const Word* b, float alpha, float beta,
                  const float* column_bias, Out* c, std::int64_t ldc, int rows, int cols) {
  __m512 acc[kMr][2];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (std::int64_t q = 0; q < pairs; ++q) {
    const __m512bh b0 = (__m512bh)(_mm512_loadu_si512(b));
    const __m512bh b1 = (__m512bh)(_mm512_loadu_si512(b + 16));
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const __m512bh a_pair = (__m512bh)(_mm512_set1_epi32(static_cast<int>(a[r])));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a_pair, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a_pair, b1);
    }
    a += kMr;
    b += kNr;
  }
  const __m512 alpha_v = _mm512_set1_ps(alpha), beta_v = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r) {
    if (r >= rows) break;
    Out* c_row = c + r * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) {
      const int lanes = std::min(cols - 16 * v, 16);
      if (lanes <= 0) break;
      __m512 result = _mm512_mul_ps(alpha_v, acc[r][v]);
      if (beta != 0.0f) result = _mm512_fmadd_ps(beta_v, Vector::load_partial(c_row + 16 * v, lanes), result);
      if (column_bias) result = _mm512_add_ps(result, Vector::load_partial(column_bias + 16 * v, lanes));
      Vector::store_partial(c_row + 16 * v, result, lanes);
    }
  }
}

// The five loops on one thread, for C[M, N] (or a thread's part of it). Out bfloat16 needs K <= KC: each C
// tile is then stored once, rounded.
template <typename Out>
void gemm_one_thread(const GemmGeometry& g, float alpha, const bfloat16* a, const bfloat16* b, float beta,
                     const float* column_bias, Out* c) {
  const Operand a_src = operand_a(a, g), b_src = operand_b(b, g);
  const std::int64_t kc_max = std::min(kKc, g.k), pairs_max = (kc_max + 1) / 2;
  thread_local PackBuffer<Word> a_buffer, b_buffer;
  Word* const a_packed = a_buffer.reserve((std::min(kMc, g.m) + kMr - 1) / kMr * kMr * pairs_max);
  Word* const b_packed = b_buffer.reserve((std::min(kNc, g.n) + kNr - 1) / kNr * kNr * pairs_max);
  for (std::int64_t jc = 0; jc < g.n; jc += kNc) {
    const std::int64_t nc = std::min(kNc, g.n - jc), b_slivers = (nc + kNr - 1) / kNr;
    for (std::int64_t pc = 0; pc < g.k; pc += kKc) {
      const std::int64_t kc = std::min(kKc, g.k - pc), pairs = (kc + 1) / 2;
      const bool last_block = pc + kc == g.k;
      const float beta_here = pc == 0 ? beta : 1.0f;  // later depth blocks accumulate
      for (std::int64_t s = 0; s < b_slivers; ++s) {
        const std::int64_t j0 = jc + s * kNr;
        pack_sliver<kNr>(b_src, j0, static_cast<int>(std::min<std::int64_t>(kNr, g.n - j0)), pc, kc,
                         b_packed + s * kNr * pairs);
      }
      for (std::int64_t ic = 0; ic < g.m; ic += kMc) {
        const std::int64_t mc = std::min(kMc, g.m - ic), a_slivers = (mc + kMr - 1) / kMr;
        for (std::int64_t s = 0; s < a_slivers; ++s) {
          const std::int64_t i0 = ic + s * kMr;
          pack_sliver<kMr>(a_src, i0, static_cast<int>(std::min<std::int64_t>(kMr, g.m - i0)), pc, kc,
                           a_packed + s * kMr * pairs);
        }
        for (std::int64_t jr = 0; jr < b_slivers; ++jr) {
          const std::int64_t j0 = jc + jr * kNr;
          const int cols = static_cast<int>(std::min<std::int64_t>(kNr, g.n - j0));
          const float* bias = column_bias && last_block ? column_bias + j0 : nullptr;
          for (std::int64_t ir = 0; ir < a_slivers; ++ir) {
            const std::int64_t i0 = ic + ir * kMr;
            micro_kernel(pairs, a_packed + ir * kMr * pairs, b_packed + jr * kNr * pairs, alpha, beta_here,
                         bias, c + i0 * g.ldc + j0, g.ldc,
                         static_cast<int>(std::min<std::int64_t>(kMr, g.m - i0)), cols);
          }
        }
      }
    }
  }
}

// C cut among the threads as the float GEMM cuts it (thread_cut.hpp); each block runs the loops above on its
// own, on its rows of A, its columns of B, C and the bias.
template <typename Out>
void gemm_threads(const GemmGeometry& g, float alpha, const bfloat16* a, const bfloat16* b, float beta,
                  const float* column_bias, Out* c) {
  cut_among_threads(g, kMr, kNr, kMinParallelMultiplyAdds,
                    [&](std::int64_t row0, std::int64_t rows, std::int64_t col0, std::int64_t cols) {
                      GemmGeometry part = g;
                      part.m = rows;
                      part.n = cols;
                      gemm_one_thread(part, alpha, a + (g.trans_a ? row0 : row0 * g.lda),
                                      b + (g.trans_b ? col0 * g.ldb : col0), beta,
                                      column_bias ? column_bias + col0 : nullptr, c + row0 * g.ldc + col0);
                    });
}

// C = beta * C for K = 0 (an empty sum), plus the bias; beta == 0 does not read C.
template <typename Out>
void scale_c(const GemmGeometry& g, float beta, const float* column_bias, Out* c) {
  for (std::int64_t i = 0; i < g.m; ++i) {
    for (std::int64_t j = 0; j < g.n; ++j) {
      Out& c_ij = c[i * g.ldc + j];
      const float scaled = beta == 0.0f ? 0.0f : beta * static_cast<float>(c_ij);
      c_ij = Out(column_bias ? scaled + column_bias[j] : scaled);
    }
  }
}

}  // namespace

void gemm(const GemmGeometry& g, float alpha, const bfloat16* a, const bfloat16* b, float beta, float* c) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) return scale_c(g, beta, nullptr, c);
  gemm_threads(g, alpha, a, b, beta, nullptr, c);
}

void gemm(const GemmGeometry& g, float alpha, const bfloat16* a, const bfloat16* b, float beta, bfloat16* c,
          const float* column_bias) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) return scale_c(g, beta, column_bias, c);
  if (g.k <= kKc) return gemm_threads(g, alpha, a, b, beta, column_bias, c);
  // Deeper than one block: the float sums in scratch [M, N] (C widened into it first where beta reads it),
  // the bias added with the last block's, then rounded once.
  const CpuScratch sums = beta == 0.0f ? cpu_scratch(g.m * g.n) : widened(c, g.m, g.n, g.ldc);
  GemmGeometry dense = g;
  dense.ldc = g.n;
  gemm_threads(dense, alpha, a, b, beta, column_bias, sums.get());
  round_into(sums.get(), g.m, g.n, c, g.ldc);
}

}  // namespace kiln::kernels::avx512_bf16
