// Tests for the Philox4x32-10 generator (kernels/random/philox.hpp): the published known-answer vectors,
// the mapping of kiln's (seed, stream, offset) state onto Philox's (key, counter), and the statistics of
// the uniform and normal draws built on it.
#include "kernels/random/philox.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

namespace kernels_philox_test {

using namespace kiln::kernels;

namespace {

constexpr int kDraws = 100000;

}  // namespace

// Random123's kat_vectors file lists, for philox4x32_10, (counter, key) -> output.
TEST_CASE("philox4x32_10: Random123 known-answer vectors") {
  SUBCASE("counter 0, key 0") {
    const PhiloxBlock out = philox4x32_10({0u, 0u, 0u, 0u}, {0u, 0u});
    CHECK(out == PhiloxBlock{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  }
  SUBCASE("counter all ones, key all ones") {
    const PhiloxBlock out =
        philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
    CHECK(out == PhiloxBlock{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  }
  SUBCASE("counter and key from the digits of pi") {
    const PhiloxBlock out =
        philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u});
    CHECK(out == PhiloxBlock{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
  }
}

// kiln's mapping: key = {seed lo, seed hi}, counter = {block lo, block hi, stream lo, stream hi}, with
// block = offset + the block asked for. Built this way, the third known-answer vector must come back.
TEST_CASE("philox_block: seed, stream and offset map onto key and counter") {
  PhiloxState state;
  state.seed = 0x299f31d0'a4093822ull;
  state.stream = 0x03707344'13198a2eull;
  state.offset = 0x85a308d3'243f6a88ull - 5;
  const PhiloxBlock expected{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u};
  CHECK(philox_block(state, 5) == expected);

  // Element i of a draw is lane i % 4 of block i / 4: elements 20..23 are block 5.
  CHECK(philox_uniform<double>(state, 20) == uniform_open01_double(expected[0]));
  CHECK(philox_uniform<double>(state, 23) == uniform_open01_double(expected[3]));
  CHECK(philox_uniform<float>(state, 22) == uniform_open01_float(expected[2]));
}

TEST_CASE("philox_block: seed, stream and offset each change the output") {
  const PhiloxState base{1234, 0, 0};
  const PhiloxBlock reference_block = philox_block(base, 0);
  CHECK(philox_block(PhiloxState{1235, 0, 0}, 0) != reference_block);
  CHECK(philox_block(PhiloxState{1234, 1, 0}, 0) != reference_block);
  CHECK(philox_block(PhiloxState{1234, 0, 1}, 0) != reference_block);
  // Advancing the offset by one block is the same as asking for the next block.
  CHECK(philox_block(PhiloxState{1234, 0, 1}, 0) == philox_block(base, 1));
}

TEST_CASE("philox_blocks_for: rounds up to whole 4-word blocks") {
  CHECK(philox_blocks_for(0) == 0);
  CHECK(philox_blocks_for(1) == 1);
  CHECK(philox_blocks_for(4) == 1);
  CHECK(philox_blocks_for(5) == 2);
  CHECK(philox_blocks_for(100001) == 25001);
}

// The extreme words map strictly inside (0, 1): word 0 -> 0.5 / 2^23 (float) or 0.5 / 2^32 (double), and
// word 0xffffffff -> 1 - 0.5 / 2^32 (double).
TEST_CASE("uniform_open01: extreme words stay strictly inside (0, 1)") {
  CHECK(uniform_open01_float(0u) == 0.5f / 8388608.0f);
  CHECK(uniform_open01_double(0u) == 0.5 / 4294967296.0);
  CHECK(uniform_open01_double(0xffffffffu) == 1.0 - 0.5 / 4294967296.0);
  CHECK(uniform_open01_double(0xffffffffu) < 1.0);
}

// (word >> 8) + 0.5f would need 25 significant bits and round the largest word up to exactly 1.0f;
// keeping 23 bits is exact, so the float uniform stays open at the top.
TEST_CASE("uniform_open01_float: the largest word stays below 1") {
  CHECK(uniform_open01_float(0xffffffffu) < 1.0f);
}

// Over n = 100k draws the sample mean of U(0, 1) has standard deviation sqrt(1/12 / n) ~= 0.0009, so a
// tolerance of 0.005 is over five standard deviations.
TEST_CASE("philox_uniform: draws lie in (0, 1) with mean 1/2 and variance 1/12") {
  const PhiloxState state{42, 7, 3};
  double sum = 0.0, sum_squares = 0.0;
  int outside = 0;
  for (int i = 0; i < kDraws; ++i) {
    const double u = philox_uniform<double>(state, static_cast<std::uint64_t>(i));
    if (!(u > 0.0 && u < 1.0)) ++outside;
    sum += u;
    sum_squares += u * u;
  }
  const double mean = sum / kDraws;
  const double variance = sum_squares / kDraws - mean * mean;
  CHECK(outside == 0);
  CHECK(std::fabs(mean - 0.5) < 0.005);
  CHECK(std::fabs(variance - 1.0 / 12.0) < 0.002);
}

TEST_CASE("philox_uniform: float draws lie in (0, 1) too") {
  const PhiloxState state{9, 0, 0};
  int outside = 0;
  for (int i = 0; i < kDraws; ++i) {
    const float u = philox_uniform<float>(state, static_cast<std::uint64_t>(i));
    if (!(u > 0.0f && u < 1.0f)) ++outside;
  }
  CHECK(outside == 0);
}

// Float keeps the top bits of the word, double all 32: they differ by at most 2^-24, one float step at
// the top of (0, 1), so they agree to float precision.
TEST_CASE("philox_uniform: float and double draws agree to float precision") {
  const PhiloxState state{2024, 3, 11};
  double largest_gap = 0.0;
  for (int i = 0; i < kDraws; ++i) {
    const auto index = static_cast<std::uint64_t>(i);
    const double gap = std::fabs(static_cast<double>(philox_uniform<float>(state, index)) -
                                 philox_uniform<double>(state, index));
    if (gap > largest_gap) largest_gap = gap;
  }
  CHECK(largest_gap <= std::ldexp(1.0, -24));
}

// For N(0, 1) over n = 100k draws: the sample mean has standard deviation 1/sqrt(n) ~= 0.0032 and the
// sample variance sqrt(2/n) ~= 0.0045; the tolerances are about five of those.
TEST_CASE("philox_normal: mean 0 and variance 1 over 100k draws") {
  const PhiloxState state{17, 1, 0};
  double sum = 0.0, sum_squares = 0.0;
  int non_finite = 0;
  for (int i = 0; i < kDraws; ++i) {
    const double z = philox_normal<double>(state, static_cast<std::uint64_t>(i));
    if (!std::isfinite(z)) ++non_finite;
    sum += z;
    sum_squares += z * z;
  }
  const double mean = sum / kDraws;
  const double variance = sum_squares / kDraws - mean * mean;
  CHECK(non_finite == 0);
  CHECK(std::fabs(mean) < 0.016);
  CHECK(std::fabs(variance - 1.0) < 0.025);
}

// A Box-Muller pair uses the same radius: z_even^2 + z_odd^2 = -2 log u1 for both lanes of a pair.
TEST_CASE("philox_normal: lanes (0, 1) and (2, 3) form Box-Muller pairs") {
  const PhiloxState state{5, 0, 0};
  const PhiloxBlock words = philox_block(state, 0);
  for (unsigned pair = 0; pair < 4; pair += 2) {
    const double z_even = philox_normal<double>(state, pair);
    const double z_odd = philox_normal<double>(state, pair + 1);
    const double radius_squared = -2.0 * std::log(uniform_open01_double(words[pair]));
    CHECK(z_even * z_even + z_odd * z_odd == doctest::Approx(radius_squared).epsilon(1e-12));
  }
  // float draws are the double draws rounded.
  CHECK(philox_normal<float>(state, 3) == static_cast<float>(philox_normal<double>(state, 3)));
}

}  // namespace kernels_philox_test
