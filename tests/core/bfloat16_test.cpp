// bfloat16 conversions: reading is exact, and writing rounds to nearest, ties to even, from float and from
// double, checked against a brute-force search over the bfloat16 values rather than against the same bit
// tricks the type uses.
#include "core/bfloat16.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

namespace core_bfloat16_test {

using namespace kiln;

namespace {

float float_of_bits(std::uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// The value of a non-negative bfloat16 bit pattern up to 0x7f80, where infinity's pattern stands for 2^128:
// the value a rounding to nearest treats as the next one past the largest finite bfloat16.
double magnitude_of(std::uint16_t bits) {
  return bits == 0x7f80 ? std::ldexp(1.0, 128) : static_cast<double>(float(bfloat16::from_bits(bits)));
}

// The correctly rounded bfloat16 bits of a finite double, by binary search over the non-negative patterns
// (their values increase with the bits) and a comparison of the two neighbours' distances; ties go to the
// even pattern.
std::uint16_t brute_force_round(double value) {
  const std::uint16_t sign = std::signbit(value) ? 0x8000 : 0;
  const double magnitude = std::fabs(value);
  std::uint16_t low = 0, high = 0x7f80;  // magnitude_of(low) <= magnitude < magnitude_of(high) once narrowed
  if (magnitude >= magnitude_of(high)) return sign | 0x7f80;
  while (high - low > 1) {
    const auto middle = static_cast<std::uint16_t>((low + high) / 2);
    (magnitude_of(middle) <= magnitude ? low : high) = middle;
  }
  const double below = magnitude - magnitude_of(low), above = magnitude_of(high) - magnitude;
  const std::uint16_t nearest = below < above ? low : above < below ? high : (low % 2 == 0 ? low : high);
  return sign | nearest;
}

}  // namespace

TEST_CASE("bfloat16: every pattern reads exactly as float and writes back to itself") {
  for (std::uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const bfloat16 original = bfloat16::from_bits(static_cast<std::uint16_t>(bits));
    const float widened = original;
    std::uint32_t float_bits;
    std::memcpy(&float_bits, &widened, sizeof float_bits);
    REQUIRE(float_bits == bits << 16);  // the top half of the float, nothing else
    const bool nan = std::isnan(widened);
    const bfloat16 from_float(widened), from_double(static_cast<double>(widened));
    if (nan) {
      CHECK(std::isnan(float(from_float)));
      CHECK(std::isnan(float(from_double)));
    } else {
      CHECK(from_float.bits == bits);
      CHECK(from_double.bits == bits);
    }
  }
}

TEST_CASE("bfloat16: float rounds to nearest, ties to even") {
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even pattern, 1.
  CHECK(bfloat16(1.0f + 0x1p-8f).bits == 0x3f80);
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up.
  CHECK(bfloat16(1.0f + 3 * 0x1p-8f).bits == 0x3f82);
  // Just past the tie rounds up.
  CHECK(bfloat16(1.0f + 0x1p-8f + 0x1p-23f).bits == 0x3f81);
  // Past the largest finite bfloat16 by half an ulp or more: infinity; less: the largest finite.
  CHECK(bfloat16(std::numeric_limits<float>::max()).bits == 0x7f80);
  CHECK(bfloat16(float_of_bits(0x7f7f7fff)).bits == 0x7f7f);
  CHECK(bfloat16(-std::numeric_limits<float>::infinity()).bits == 0xff80);
  CHECK(bfloat16(-0.0f).bits == 0x8000);
  // NaN stays NaN, quiet, whatever its payload (a payload in the dropped bits only must not become inf).
  CHECK(std::isnan(float(bfloat16(float_of_bits(0x7f800001)))));
  CHECK(std::isnan(float(bfloat16(float_of_bits(0xffffffff)))));
  CHECK((bfloat16(float_of_bits(0x7f800001)).bits & 0x0040) != 0);

  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const float value = float_of_bits(static_cast<std::uint32_t>(rng()));
    if (std::isnan(value)) continue;
    REQUIRE_MESSAGE(bfloat16(value).bits == brute_force_round(value), "float ", value);
  }
}

TEST_CASE("bfloat16: double rounds correctly, without rounding twice") {
  // 1 + 2^-8 + 2^-40 rounds to the float 1 + 2^-8, exactly a bfloat16 tie, which would then go down to 1.
  // The double itself lies above the tie, so its correct rounding is up.
  const double above_tie = 1.0 + 0x1p-8 + 0x1p-40;
  CHECK(static_cast<float>(above_tie) == 1.0f + 0x1p-8f);  // the trap is real
  CHECK(bfloat16(above_tie).bits == 0x3f81);
  CHECK(bfloat16(-above_tie).bits == 0xbf81);
  CHECK(bfloat16(1.0 + 0x1p-8 - 0x1p-40).bits == 0x3f80);
  CHECK(bfloat16(1e300).bits == 0x7f80);
  CHECK(bfloat16(1e-300).bits == 0x0000);
  CHECK(bfloat16(-1e-300).bits == 0x8000);
  CHECK(std::isnan(float(bfloat16(std::nan("")))));

  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> exponent(-140.0, 130.0);
  for (int i = 0; i < 200000; ++i) {
    // Random significands at every scale bfloat16 covers, subnormals and overflow included.
    const double value =
        (rng() % 2 ? -1.0 : 1.0) *
        std::ldexp(1.0 + static_cast<double>(rng() >> 11) * 0x1p-53, static_cast<int>(exponent(rng)));
    REQUIRE_MESSAGE(bfloat16(value).bits == brute_force_round(value), "double ", value);
  }
  // Values next to bfloat16 ties, where rounding through float goes wrong most often.
  for (int i = 0; i < 20000; ++i) {
    const std::uint16_t below = static_cast<std::uint16_t>(rng() % 0x7f80);
    const double tie = (magnitude_of(below) + magnitude_of(static_cast<std::uint16_t>(below + 1))) / 2;
    for (const double value : {tie, std::nextafter(tie, 0.0), std::nextafter(tie, INFINITY)}) {
      REQUIRE_MESSAGE(bfloat16(value).bits == brute_force_round(value), "double ", value);
    }
  }
}

TEST_CASE("bfloat16: integers convert through the same rounding") {
  CHECK(float(bfloat16(0)) == 0.0f);
  CHECK(float(bfloat16(256)) == 256.0f);
  CHECK(float(bfloat16(257)) == 256.0f);  // 257 needs 9 bits; the tie goes to the even 256
  CHECK(float(bfloat16(-3)) == -3.0f);
  CHECK(float(bfloat16(std::int64_t{1} << 40)) == 0x1p40f);
  // Past 2^53 a double cannot hold the integer: 2^60 + 2^52 + 1 lies just above the tie between 2^60 and
  // 2^60 + 2^53, so it rounds up, where going through a double (2^60 + 2^52, the tie) would round down.
  const std::int64_t above_tie = (std::int64_t{1} << 60) + (std::int64_t{1} << 52) + 1;
  CHECK(float(bfloat16(above_tie)) == 0x1p60f + 0x1p53f);
  CHECK(float(bfloat16(-above_tie)) == -(0x1p60f + 0x1p53f));
  CHECK(float(bfloat16(std::numeric_limits<std::int64_t>::min())) == -0x1p63f);
  CHECK(float(bfloat16(std::numeric_limits<std::uint64_t>::max() >> 1)) == 0x1p63f);
  CHECK(float(bfloat16(std::numeric_limits<std::uint64_t>::max())) == 0x1p64f);
  CHECK(float(bfloat16(std::uint8_t{255})) == 255.0f);  // eight significant bits: exact
}

TEST_CASE("bfloat16: opmath is float for bfloat16 and the type itself otherwise") {
  CHECK(std::is_same_v<opmath_t<bfloat16>, float>);
  CHECK(std::is_same_v<opmath_t<float>, float>);
  CHECK(std::is_same_v<opmath_t<double>, double>);
}

}  // namespace core_bfloat16_test
