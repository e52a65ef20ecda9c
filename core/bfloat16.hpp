// bfloat16: the upper half of an IEEE float32. 1 sign bit, the float's 8 exponent bits, 7 mantissa bits.
//
//   float32   s eeeeeeee mmmmmmmmmmmmmmmmmmmmmmm
//   bfloat16  s eeeeeeee mmmmmmm
//
// Same range as float (no loss scaling needed in mixed-precision training), about 3 significant digits.
// kiln stores activations in it under `--precision bf16`; arithmetic always runs in float or wider.
//
// The type is deliberately thin:
// - Reading is exact, so the conversion to float is implicit: `double sum = x[i];` works for any T.
// - Writing rounds, so every construction from float, double or an integer is explicit: code templated on
//   T that would accumulate in T (`T acc = 0; acc += ...`) fails to compile for bfloat16 instead of
//   silently rounding at every step.
// - No arithmetic operators: `a + b` converts both to float and yields a float.
//
// Rounding is to nearest, ties to even, from float and from double (correctly rounded, no double rounding:
// see from_double); NaN stays NaN (quiet), infinities and signed zeros are kept, subnormals round like any
// other value. The same functions run on the host and in CUDA kernels, so CPU and GPU round bit for bit
// alike; the memory layout equals CUDA's __nv_bfloat16, which cuBLAS reads.
#pragma once

#include <concepts>
#include <cstdint>
#include <cstring>
#include <type_traits>

#ifdef __CUDACC__
#define KILN_HOST_DEVICE __host__ __device__
#else
#define KILN_HOST_DEVICE
#endif

namespace kiln {

struct bfloat16 {
  std::uint16_t bits;  // left uninitialized like a float's, so the type stays trivial (CUDA __shared__)

  bfloat16() = default;
  KILN_HOST_DEVICE explicit bfloat16(float value) : bits(round_from_float(value)) {}
  KILN_HOST_DEVICE explicit bfloat16(double value) : bits(round_from_double(value)) {}
  template <std::integral I>
  KILN_HOST_DEVICE explicit bfloat16(I value)
      : bits(round_from_integer(is_negative(value), magnitude_of(value))) {}

  static KILN_HOST_DEVICE constexpr bfloat16 from_bits(std::uint16_t raw) {
    bfloat16 result;
    result.bits = raw;
    return result;
  }

  // Exact: the 16 bits become the top half of the float.
  KILN_HOST_DEVICE operator float() const { return float_from_bits(static_cast<std::uint32_t>(bits) << 16); }

  // float -> bfloat16, round to nearest even. Adding 0x7fff plus the lowest kept bit to the float's bits
  // and truncating rounds the dropped 16 bits half-to-even; a carry out of the mantissa correctly bumps
  // the exponent (up to infinity for values past the largest bfloat16). NaN is handled first, because the
  // addition could carry a NaN's payload into the sign or turn it into infinity.
  static KILN_HOST_DEVICE std::uint16_t round_from_float(float value) {
    const std::uint32_t f = bits_from_float(value);
    if ((f & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((f >> 16) | 0x0040u);  // quiet NaN
    const std::uint32_t lowest_kept_bit = (f >> 16) & 1u;
    return static_cast<std::uint16_t>((f + 0x7fffu + lowest_kept_bit) >> 16);
  }

  // double -> bfloat16 without double rounding. Rounding to float first and then to bfloat16 can go wrong
  // when the float lands exactly on a bfloat16 tie that the double was not on. Rounding to float "to odd"
  // instead (truncate toward zero, then set the lowest mantissa bit when anything was dropped) keeps the
  // information that the value was inexact in a bit bfloat16 drops, and then the float -> bfloat16 rounding
  // is the correct rounding of the double (float's 24 bits exceed bfloat16's 8 + 2).
  static KILN_HOST_DEVICE std::uint16_t round_from_double(double value) {
    float narrowed = static_cast<float>(value);  // to nearest; may have rounded away from zero
    if (narrowed != narrowed || narrowed - narrowed != 0.0f) return round_from_float(narrowed);  // NaN, inf
    const double back = static_cast<double>(narrowed);
    if (back == value) return round_from_float(narrowed);
    std::uint32_t f = bits_from_float(narrowed);
    if ((back > value) == (value > 0.0)) --f;  // rounded away from zero: step back toward zero (truncation)
    return round_from_float(float_from_bits(f | 1u));
  }

  // integer -> bfloat16, from its sign and magnitude. Up to 2^53 the magnitude is exact as a double. Above,
  // its low bits are folded into one sticky bit (set when any of them is) before the conversion, so the
  // double is exact again and still on the correct side of every bfloat16 tie: the round-to-odd idea above.
  static KILN_HOST_DEVICE std::uint16_t round_from_integer(bool negative, std::uint64_t magnitude) {
    double scale = 1.0;
    while (magnitude >> 53 != 0) {  // at most 11 steps
      magnitude = (magnitude >> 1) | (magnitude & 1u);
      scale *= 2.0;
    }
    const double exact = static_cast<double>(magnitude) * scale;
    return round_from_double(negative ? -exact : exact);
  }

 private:
  template <std::integral I>
  static KILN_HOST_DEVICE bool is_negative(I value) {
    if constexpr (std::is_signed_v<I>) return value < 0;
    return false;
  }
  template <std::integral I>
  static KILN_HOST_DEVICE std::uint64_t magnitude_of(I value) {
    const auto wide = static_cast<std::uint64_t>(value);  // two's complement for a negative value
    return is_negative(value) ? 0 - wide : wide;
  }
  static KILN_HOST_DEVICE std::uint32_t bits_from_float(float value) {
    std::uint32_t raw;
    std::memcpy(&raw, &value, sizeof raw);
    return raw;
  }
  static KILN_HOST_DEVICE float float_from_bits(std::uint32_t raw) {
    float value;
    std::memcpy(&value, &raw, sizeof value);
    return value;
  }
};

static_assert(sizeof(bfloat16) == 2 && std::is_trivially_copyable_v<bfloat16>);

// The type arithmetic on T runs in, and the type per-channel parameters and statistics kept beside T
// activations use (PyTorch's name for it): float for bfloat16, which has fp32 master weights, and T itself
// for float and double.
template <typename T>
struct opmath {
  using type = T;
};
template <>
struct opmath<bfloat16> {
  using type = float;
};
template <typename T>
using opmath_t = typename opmath<T>::type;

}  // namespace kiln
