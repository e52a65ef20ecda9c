// kernels/simd/ holds the one vector vocabulary (FloatVector512, FloatVector256) that the vectorized
// kernels of every op family are written in, so one kernel text, a template over the vector trait,
// serves both AVX2 and AVX-512.
//
// FloatVector512: the AVX-512 register of 16 floats (and 8 doubles) behind the small set of operations the
// vectorized kernels (elementwise, batchnorm, pooling, reductions, optimizer updates, the direct depthwise
// convolution and the conv2d bias) are written in. Include this header only from files named avx512*.cpp:
// they are the ones compiled with -mavx512f/bw/vl/dq.
//
// Tails: load_partial / store_partial touch only the first `count` (<= width) elements, with AVX-512
// masks, so a kernel never reads or writes past the end of a buffer.
//
// Memory may hold bfloat16 instead of float (`--precision bf16`): the same loads and stores take bfloat16
// pointers, widening exactly into the float register and rounding back to nearest even (NaN kept, quiet),
// bit for bit as bfloat16's own conversions (core/bfloat16.hpp), so a kernel written once over float
// registers serves both storage types.
#pragma once

#include <cstdint>

#include "core/bfloat16.hpp"
#include "kernels/simd/intrinsics.hpp"  // <immintrin.h>, without GCC 12's false -Wuninitialized

namespace kiln::kernels::simd {

struct FloatVector512 {
  using Reg = __m512;
  using Mask = __mmask16;
  static constexpr std::int64_t width = 16;
  static constexpr int registers = 32;  // zmm0-31

  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg broadcast(float v) { return _mm512_set1_ps(v); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  // v, made to live in a register: a value loaded once for several uses stays loaded once, where the
  // compiler would otherwise fold the load into every use as a memory operand (a load each).
  static Reg in_register(Reg v) {
    asm("" : "+v"(v));
    return v;
  }
  static Mask first(std::int64_t count) { return static_cast<Mask>((1u << count) - 1u); }  // count <= 16
  // The first `count` lanes (count <= width); the others read as zero and are never touched in memory.
  // A full vector (the common case in kernels that step a row by width) is a plain load or store.
  static Reg load_partial(const float* p, std::int64_t count) {
    return count == width ? load(p) : _mm512_maskz_loadu_ps(first(count), p);
  }
  static void store_partial(float* p, Reg v, std::int64_t count) {
    if (count == width)
      store(p, v);
    else
      _mm512_mask_storeu_ps(p, first(count), v);
  }

  // 16 bfloat16 <-> 16 floats: the 16 bits become the float's top half; back, bfloat16::round_from_float
  // on every lane (add 0x7fff plus the lowest kept bit, keep the top half; a NaN keeps its top half,
  // quieted).
  static Reg widen(__m256i halves) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16));
  }
  static __m256i narrow(Reg v) {
    const __m512i bits = _mm512_castps_si512(v), top = _mm512_srli_epi32(bits, 16);
    const __m512i lowest_kept = _mm512_and_si512(top, _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(bits, _mm512_add_epi32(lowest_kept, _mm512_set1_epi32(0x7fff))), 16);
    const __m512i quiet_nan = _mm512_or_si512(top, _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(is_nan(v), rounded, quiet_nan));
  }
  static Reg load(const bfloat16* p) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static void store(bfloat16* p, Reg v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), narrow(v)); }
  static Reg load_partial(const bfloat16* p, std::int64_t count) {
    return count == width ? load(p) : widen(_mm256_maskz_loadu_epi16(first(count), p));
  }
  static void store_partial(bfloat16* p, Reg v, std::int64_t count) {
    if (count == width)
      store(p, v);
    else
      _mm256_mask_storeu_epi16(p, first(count), narrow(v));
  }

  // Lanes holding whole numbers below 2^24 (exact in float: positions, offsets), the first `count` stored as
  // int32 (the argmax tensors).
  static void store_partial_as_int32(std::int32_t* p, Reg v, std::int64_t count) {
    _mm512_mask_storeu_epi32(p, first(count), _mm512_cvttps_epi32(v));
  }
  // And back: the first `count` int32 (each below 2^24) as float lanes, zero past them.
  static Reg load_partial_int32_as_float(const std::int32_t* p, std::int64_t count) {
    return _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(first(count), p));
  }

  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm512_div_ps(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }  // a * b + c, one rounding
  static Reg sqrt(Reg a) { return _mm512_sqrt_ps(a); }
  // To the nearest integer, ties to even (the default rounding mode).
  static Reg round(Reg a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // a * 2^n for integral n (transcendentals.hpp's exp): overflow to infinity and underflow through the
  // subnormals as a multiplication would.
  static Reg times_power_of_two(Reg a, Reg n) { return _mm512_scalef_ps(a, n); }
  // max / min return the SECOND operand when either is NaN (the x86 rule); kernels order operands for it.
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm512_min_ps(a, b); }
  static Reg abs(Reg a) { return _mm512_andnot_ps(_mm512_set1_ps(-0.0f), a); }
  static Reg neg(Reg a) { return _mm512_xor_ps(_mm512_set1_ps(-0.0f), a); }

  // Comparisons are ordered and quiet: false when either side is NaN.
  static Mask greater(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static Mask less(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static Mask less_equal(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static Mask both(Mask a, Mask b) { return static_cast<Mask>(a & b); }
  static Mask either(Mask a, Mask b) { return static_cast<Mask>(a | b); }
  static Mask and_not(Mask a, Mask b) { return static_cast<Mask>(a & ~b); }  // a and not b
  static Mask is_nan(Reg a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static Reg select(Mask m, Reg if_true, Reg if_false) { return _mm512_mask_blend_ps(m, if_false, if_true); }

  // The even and the odd elements of the 32 floats lo:hi, in order: even = lo0 lo2 .. lo14 hi0 .. hi14.
  static void deinterleave(Reg lo, Reg hi, Reg& even, Reg& odd) {
    const __m512i even_index = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd_index = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    even = _mm512_permutex2var_ps(lo, even_index, hi);
    odd = _mm512_permutex2var_ps(lo, odd_index, hi);
  }

  // deinterleave's inverse: a and b's elements alternating, a0 b0 a1 b1 ... a15 b15, as low:high.
  static void interleave(Reg a, Reg b, Reg& low, Reg& high) {
    const __m512i low_index = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i high_index =
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    low = _mm512_permutex2var_ps(a, low_index, b);
    high = _mm512_permutex2var_ps(a, high_index, b);
  }

  // The sum of the 16 lanes, in float, folded in halves in a fixed order (never dependent on the thread
  // count): lane i += lane i + 8, then i += i + 4, i += i + 2, and lane 0 + lane 1, the left operand
  // always the lower lane (the same adds as FloatVector256::sum, one more fold).
  static float sum(Reg v) {
    const __m256 eight = _mm256_add_ps(_mm512_castps512_ps256(v),
                                       _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 four = _mm_add_ps(_mm256_castps256_ps128(eight), _mm256_extractf128_ps(eight, 1));
    four = _mm_add_ps(four, _mm_movehl_ps(four, four));
    four = _mm_add_ss(four, _mm_movehdup_ps(four));
    return _mm_cvtss_f32(four);
  }

  // The sum of the 16 lanes, in double, added in a fixed tree order (so it never depends on the thread
  // count): the two halves widened to double and added, then the 8 doubles reduced.
  static double sum_in_double(Reg v) {
    const __m512d low = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d high = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return _mm512_reduce_add_pd(_mm512_add_pd(low, high));
  }

  // Doubles, for kernels whose reference rounds once from double (the optimizer updates): a register of
  // width / 2 doubles, loaded from and stored to floats.
  using DoubleReg = __m512d;
  static constexpr std::int64_t double_width = 8;
  static DoubleReg broadcast_double(double v) { return _mm512_set1_pd(v); }
  static void store(double* p, DoubleReg v) { _mm512_storeu_pd(p, v); }
  static DoubleReg load_as_double(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  static DoubleReg load_partial_as_double(const float* p, std::int64_t count) {
    return _mm512_cvtps_pd(_mm256_maskz_loadu_ps(static_cast<__mmask8>((1u << count) - 1u), p));
  }
  static void store_as_float(float* p, DoubleReg v) { _mm256_storeu_ps(p, _mm512_cvtpd_ps(v)); }
  static void store_partial_as_float(float* p, DoubleReg v, std::int64_t count) {
    _mm256_mask_storeu_ps(p, static_cast<__mmask8>((1u << count) - 1u), _mm512_cvtpd_ps(v));
  }
  static DoubleReg load(const double* p) { return _mm512_loadu_pd(p); }
  // A float register's lanes as doubles, the low 8 and the high 8 (exact), and back (each rounded to
  // nearest, as a cast from double to float rounds).
  static void to_doubles(Reg v, DoubleReg& low, DoubleReg& high) {
    low = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    high = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
  }
  static Reg from_doubles(DoubleReg low, DoubleReg high) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(low)), _mm512_cvtpd_ps(high), 1);
  }
  // The same, each lane rounded to float "to odd" (toward zero, and the lowest bit set where that dropped
  // anything): a bfloat16 store of the result then rounds each double once, as bfloat16(double) does
  // (core/bfloat16.hpp's round_from_double, whose steps these are: to nearest, back a step where that went
  // away from zero, the lowest bit set where inexact).
  static Reg from_doubles_to_odd(DoubleReg low, DoubleReg high) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(to_odd(low)), to_odd(high), 1);
  }
  static DoubleReg add(DoubleReg a, DoubleReg b) { return _mm512_add_pd(a, b); }
  static DoubleReg sub(DoubleReg a, DoubleReg b) { return _mm512_sub_pd(a, b); }
  static DoubleReg mul(DoubleReg a, DoubleReg b) { return _mm512_mul_pd(a, b); }
  static DoubleReg div(DoubleReg a, DoubleReg b) { return _mm512_div_pd(a, b); }
  static DoubleReg sqrt(DoubleReg a) { return _mm512_sqrt_pd(a); }

 private:
  static __m256 to_odd(DoubleReg v) {
    const __m256 nearest = _mm512_cvtpd_ps(v);
    const DoubleReg back = _mm512_cvtps_pd(nearest);
    const __mmask8 away = _mm512_cmp_pd_mask(_mm512_abs_pd(back), _mm512_abs_pd(v), _CMP_GT_OQ);
    const __mmask8 inexact = _mm512_cmp_pd_mask(back, v, _CMP_NEQ_OQ);  // never for NaN
    const __m256i one = _mm256_set1_epi32(1);
    __m256i bits = _mm256_castps_si256(nearest);
    bits = _mm256_mask_sub_epi32(bits, away, bits, one);
    return _mm256_castsi256_ps(_mm256_mask_or_epi32(bits, inexact, bits, one));
  }
};

}  // namespace kiln::kernels::simd
