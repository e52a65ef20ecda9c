// kernels/simd/ holds the one vector vocabulary (FloatVector512, FloatVector256) that the vectorized
// kernels of every op family are written in, so one kernel text, a template over the vector trait,
// serves both AVX2 and AVX-512.
//
// FloatVector256: the AVX2 register of 8 floats (and 4 doubles), with the same operations as
// FloatVector512 (see float_vector_avx512.hpp), so the templated kernels compile for either.
// Include this header only from files named avx2*.cpp: they are the ones compiled with -mavx2 -mfma.
//
// AVX2 has no mask registers: a Mask is a register whose lanes are all-ones or all-zeros, and the partial
// loads and stores use _mm256_maskload_ps / _mm256_maskstore_ps, which never touch the masked-off lanes.
// Nor has it 16-bit masked moves: the bfloat16 tails go through 8 lanes on the stack.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/bfloat16.hpp"
#include "kernels/simd/intrinsics.hpp"  // <immintrin.h>

namespace kiln::kernels::simd {

struct FloatVector256 {
  using Reg = __m256;
  using Mask = __m256;
  static constexpr std::int64_t width = 8;
  static constexpr int registers = 16;  // ymm0-15

  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg broadcast(float v) { return _mm256_set1_ps(v); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  // v, made to live in a register: a value loaded once for several uses stays loaded once, where the
  // compiler would otherwise fold the load into every use as a memory operand (a load each).
  static Reg in_register(Reg v) {
    asm("" : "+v"(v));
    return v;
  }
  // Lane i is on when i < count.
  static __m256i first(std::int64_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  // The first `count` lanes (count <= width); the others read as zero and are never touched in memory.
  // A full vector is a plain load or store (maskload / maskstore cost more).
  static Reg load_partial(const float* p, std::int64_t count) {
    return count == width ? load(p) : _mm256_maskload_ps(p, first(count));
  }
  static void store_partial(float* p, Reg v, std::int64_t count) {
    if (count == width)
      store(p, v);
    else
      _mm256_maskstore_ps(p, first(count), v);
  }

  // 8 bfloat16 <-> 8 floats, as FloatVector512's (bit for bit bfloat16's own conversions). packus works
  // within 128-bit halves, so the two halves' four results are gathered by a 64-bit permute.
  static Reg widen(__m128i halves) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16));
  }
  static __m128i narrow(Reg v) {
    const __m256i bits = _mm256_castps_si256(v), top = _mm256_srli_epi32(bits, 16);
    const __m256i lowest_kept = _mm256_and_si256(top, _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(
        _mm256_add_epi32(bits, _mm256_add_epi32(lowest_kept, _mm256_set1_epi32(0x7fff))), 16);
    const __m256i quiet_nan = _mm256_or_si256(top, _mm256_set1_epi32(0x40));
    const __m256i chosen = _mm256_blendv_epi8(rounded, quiet_nan, _mm256_castps_si256(is_nan(v)));
    const __m256i packed = _mm256_packus_epi32(chosen, chosen);  // every value fits 16 bits unsigned
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
  }
  static Reg load(const bfloat16* p) { return widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static void store(bfloat16* p, Reg v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), narrow(v)); }
  static Reg load_partial(const bfloat16* p, std::int64_t count) {
    if (count == width) return load(p);
    alignas(16) std::uint16_t lanes[8] = {};
    std::memcpy(lanes, p, static_cast<std::size_t>(count) * sizeof(bfloat16));
    return widen(_mm_load_si128(reinterpret_cast<const __m128i*>(lanes)));
  }
  static void store_partial(bfloat16* p, Reg v, std::int64_t count) {
    if (count == width) return store(p, v);
    alignas(16) std::uint16_t lanes[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(lanes), narrow(v));
    std::memcpy(p, lanes, static_cast<std::size_t>(count) * sizeof(bfloat16));
  }

  // Lanes holding whole numbers below 2^24 (exact in float: positions, offsets), the first `count` stored as
  // int32 (the argmax tensors).
  static void store_partial_as_int32(std::int32_t* p, Reg v, std::int64_t count) {
    const __m256i whole = _mm256_cvttps_epi32(v);
    if (count == width) return _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), whole);
    alignas(32) std::int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), whole);
    std::memcpy(p, lanes, static_cast<std::size_t>(count) * sizeof(std::int32_t));
  }
  // And back: the first `count` int32 (each below 2^24) as float lanes, zero past them.
  static Reg load_partial_int32_as_float(const std::int32_t* p, std::int64_t count) {
    if (count == width) return _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    alignas(32) std::int32_t lanes[8] = {};
    std::memcpy(lanes, p, static_cast<std::size_t>(count) * sizeof(std::int32_t));
    return _mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(lanes)));
  }

  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm256_div_ps(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg sqrt(Reg a) { return _mm256_sqrt_ps(a); }
  // To the nearest integer, ties to even.
  static Reg round(Reg a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // a * 2^n for integral n in [-252, 254] (transcendentals.hpp's exp), as two multiplications by powers of
  // two each a normal float (built in the exponent bits), so that overflow gives infinity and underflow goes
  // through the subnormals as a multiplication does (one of them may round twice there).
  static Reg times_power_of_two(Reg a, Reg n) {
    const __m256i whole = _mm256_cvtps_epi32(n);
    const __m256i half = _mm256_srai_epi32(whole, 1), rest = _mm256_sub_epi32(whole, half);
    const auto power = [](__m256i e) {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23));
    };
    return _mm256_mul_ps(_mm256_mul_ps(a, power(half)), power(rest));
  }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
  static Reg abs(Reg a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static Reg neg(Reg a) { return _mm256_xor_ps(_mm256_set1_ps(-0.0f), a); }

  static Mask greater(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static Mask less(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static Mask less_equal(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static Mask both(Mask a, Mask b) { return _mm256_and_ps(a, b); }
  static Mask either(Mask a, Mask b) { return _mm256_or_ps(a, b); }
  static Mask and_not(Mask a, Mask b) { return _mm256_andnot_ps(b, a); }  // a and not b
  static Mask is_nan(Reg a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static Reg select(Mask m, Reg if_true, Reg if_false) { return _mm256_blendv_ps(if_false, if_true, m); }

  // The even and the odd elements of the 16 floats lo:hi, in order. shuffle_ps works within 128-bit lanes
  // (lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6); permute4x64 then puts the 64-bit pairs in order.
  static void deinterleave(Reg lo, Reg hi, Reg& even, Reg& odd) {
    even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8));
    odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8));
  }

  // deinterleave's inverse: a and b's elements alternating, a0 b0 a1 b1 ... a7 b7, as low:high.
  static void interleave(Reg a, Reg b, Reg& low, Reg& high) {
    const __m256 pairs_low = _mm256_unpacklo_ps(a, b);   // a0 b0 a1 b1 | a4 b4 a5 b5
    const __m256 pairs_high = _mm256_unpackhi_ps(a, b);  // a2 b2 a3 b3 | a6 b6 a7 b7
    low = _mm256_permute2f128_ps(pairs_low, pairs_high, 0x20);
    high = _mm256_permute2f128_ps(pairs_low, pairs_high, 0x31);
  }

  // The sum of the 8 lanes, in float, folded in halves in a fixed order (see FloatVector512::sum):
  // lane i += lane i + 4, then i += i + 2, and lane 0 + lane 1.
  static float sum(Reg v) {
    __m128 four = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    four = _mm_add_ps(four, _mm_movehl_ps(four, four));
    four = _mm_add_ss(four, _mm_movehdup_ps(four));
    return _mm_cvtss_f32(four);
  }

  // The sum of the 8 lanes, in double, added in a fixed tree order (see FloatVector512::sum_in_double).
  static double sum_in_double(Reg v) {
    const __m256d quad = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                                       _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    const __m128d pair = _mm_add_pd(_mm256_castpd256_pd128(quad), _mm256_extractf128_pd(quad, 1));
    return _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)));
  }

  using DoubleReg = __m256d;
  static constexpr std::int64_t double_width = 4;
  static __m128i first4(std::int64_t count) {
    return _mm_cmpgt_epi32(_mm_set1_epi32(static_cast<int>(count)), _mm_setr_epi32(0, 1, 2, 3));
  }
  static DoubleReg broadcast_double(double v) { return _mm256_set1_pd(v); }
  static void store(double* p, DoubleReg v) { _mm256_storeu_pd(p, v); }
  static DoubleReg load_as_double(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  static DoubleReg load_partial_as_double(const float* p, std::int64_t count) {
    return _mm256_cvtps_pd(_mm_maskload_ps(p, first4(count)));
  }
  static void store_as_float(float* p, DoubleReg v) { _mm_storeu_ps(p, _mm256_cvtpd_ps(v)); }
  static void store_partial_as_float(float* p, DoubleReg v, std::int64_t count) {
    _mm_maskstore_ps(p, first4(count), _mm256_cvtpd_ps(v));
  }
  static DoubleReg load(const double* p) { return _mm256_loadu_pd(p); }
  static void to_doubles(Reg v, DoubleReg& low, DoubleReg& high) {
    low = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    high = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
  }
  static Reg from_doubles(DoubleReg low, DoubleReg high) {
    return _mm256_set_m128(_mm256_cvtpd_ps(high), _mm256_cvtpd_ps(low));
  }
  // The same, each lane rounded to float "to odd" (FloatVector512's: a bfloat16 store of the result rounds
  // each double once).
  static Reg from_doubles_to_odd(DoubleReg low, DoubleReg high) {
    return _mm256_set_m128(to_odd(high), to_odd(low));
  }
  static DoubleReg add(DoubleReg a, DoubleReg b) { return _mm256_add_pd(a, b); }
  static DoubleReg sub(DoubleReg a, DoubleReg b) { return _mm256_sub_pd(a, b); }
  static DoubleReg mul(DoubleReg a, DoubleReg b) { return _mm256_mul_pd(a, b); }
  static DoubleReg div(DoubleReg a, DoubleReg b) { return _mm256_div_pd(a, b); }
  static DoubleReg sqrt(DoubleReg a) { return _mm256_sqrt_pd(a); }

 private:
  // AVX2 has no mask registers: each comparison's 64-bit lanes of all ones, their low halves gathered into
  // four 32-bit lanes (-1 where true).
  static __m128i low_halves(DoubleReg mask) {
    const __m256i picked =
        _mm256_permutevar8x32_epi32(_mm256_castpd_si256(mask), _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
    return _mm256_castsi256_si128(picked);
  }
  static __m128 to_odd(DoubleReg v) {
    const __m128 nearest = _mm256_cvtpd_ps(v);
    const DoubleReg back = _mm256_cvtps_pd(nearest);
    const DoubleReg magnitude = _mm256_set1_pd(-0.0);
    const DoubleReg away =
        _mm256_cmp_pd(_mm256_andnot_pd(magnitude, back), _mm256_andnot_pd(magnitude, v), _CMP_GT_OQ);
    const DoubleReg inexact = _mm256_cmp_pd(back, v, _CMP_NEQ_OQ);                    // never for NaN
    const __m128i bits = _mm_add_epi32(_mm_castps_si128(nearest), low_halves(away));  // -1 where away
    const __m128i odd = _mm_and_si128(low_halves(inexact), _mm_set1_epi32(1));
    return _mm_castsi128_ps(_mm_or_si128(bits, odd));
  }
};

}  // namespace kiln::kernels::simd
