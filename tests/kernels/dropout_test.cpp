// Tests for the reference dropout kernel (kernels/dropout/dropout.hpp): the mask's values, y = x * mask,
// reproducibility from the Philox state, the kept fraction, and float/double agreement.
#include "kernels/dropout/dropout.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/error.hpp"

namespace kernels_dropout_test {

using namespace kiln::kernels;

namespace {

constexpr std::int64_t kElements = 100000;

// One dropout draw over n elements of x = 1, 2, 3, ... (so y = x * mask is easy to check).
template <typename T>
struct Draw {
  std::vector<T> x, y, mask;
};

template <typename T>
Draw<T> run_dropout(std::int64_t n, T p, const PhiloxState& state) {
  Draw<T> draw{std::vector<T>(static_cast<std::size_t>(n)), std::vector<T>(static_cast<std::size_t>(n)),
               std::vector<T>(static_cast<std::size_t>(n))};
  for (std::size_t i = 0; i < draw.x.size(); ++i) draw.x[i] = static_cast<T>(i % 97) + T(1);
  dropout_forward(kiln::Device::cpu(), n, p, state, draw.x.data(), draw.y.data(), draw.mask.data());
  return draw;
}

template <typename T>
std::int64_t kept_count(const std::vector<T>& mask) {
  std::int64_t kept = 0;
  for (const T m : mask) kept += m != T(0) ? 1 : 0;
  return kept;
}

}  // namespace

// With p = 0.3 the scale is 1 / 0.7; every mask entry is either exactly 0 or exactly that value (the one
// computed in T, as the kernel does), and y = x * mask bit for bit.
TEST_CASE_TEMPLATE("dropout_forward: mask is 0 or 1/(1-p) and y = x * mask", T, float, double) {
  const T p = T(0.3);
  const T scale = T(1) / (T(1) - p);
  const Draw<T> draw = run_dropout<T>(1000, p, PhiloxState{7, 0, 0});
  std::int64_t other_values = 0, wrong_products = 0;
  for (std::size_t i = 0; i < draw.mask.size(); ++i) {
    if (draw.mask[i] != T(0) && draw.mask[i] != scale) ++other_values;
    if (draw.y[i] != draw.x[i] * draw.mask[i]) ++wrong_products;
  }
  CHECK(other_values == 0);
  CHECK(wrong_products == 0);
  // Both outcomes occur (1000 draws at p = 0.3).
  CHECK(kept_count(draw.mask) > 0);
  CHECK(kept_count(draw.mask) < 1000);
}

// The contract every version (reference, AVX, CUDA) must meet: element i draws u_i = philox_uniform(state,
// i) -- block i / 4, lane i % 4 -- and is kept when u_i >= p.
TEST_CASE_TEMPLATE("dropout_forward: element i is decided by philox_uniform(state, i)", T, float, double) {
  const PhiloxState state{2718, 5, 3};
  const T p = T(0.5);
  const Draw<T> draw = run_dropout<T>(257, p, state);
  std::int64_t mismatches = 0;
  for (std::size_t i = 0; i < draw.mask.size(); ++i) {
    const bool keep = philox_uniform<T>(state, static_cast<std::uint64_t>(i)) >= p;
    if ((draw.mask[i] != T(0)) != keep) ++mismatches;
  }
  CHECK(mismatches == 0);
}

// Over n = 100k draws the kept fraction has standard deviation sqrt(p (1 - p) / n) ~= 0.0015 at p = 0.3,
// so 1% of 1 - p (0.007) is about five standard deviations.
TEST_CASE_TEMPLATE("dropout_forward: kept fraction is 1 - p within 1% over 100k elements", T, float, double) {
  for (const double p : {0.1, 0.3, 0.5, 0.8}) {
    CAPTURE(p);
    const Draw<T> draw = run_dropout<T>(kElements, static_cast<T>(p), PhiloxState{123, 4, 56});
    const double kept_fraction = static_cast<double>(kept_count(draw.mask)) / static_cast<double>(kElements);
    CHECK(std::fabs(kept_fraction - (1.0 - p)) < 0.01 * (1.0 - p));
  }
}

TEST_CASE("dropout_forward: the same state gives the same mask") {
  const PhiloxState state{99, 2, 10};
  const Draw<float> first = run_dropout<float>(4099, 0.4f, state);
  const Draw<float> second = run_dropout<float>(4099, 0.4f, state);
  CHECK(first.mask == second.mask);
  CHECK(first.y == second.y);
}

// A different offset, stream or seed gives a different mask (about 2 * 0.4 * 0.6 = 48% of the entries
// differ between two independent masks, so "differ somewhere" cannot pass by luck the other way).
TEST_CASE("dropout_forward: a different offset, stream or seed gives a different mask") {
  const Draw<float> base = run_dropout<float>(4096, 0.4f, PhiloxState{99, 2, 10});
  CHECK(run_dropout<float>(4096, 0.4f, PhiloxState{99, 2, 11}).mask != base.mask);
  CHECK(run_dropout<float>(4096, 0.4f, PhiloxState{99, 3, 10}).mask != base.mask);
  CHECK(run_dropout<float>(4096, 0.4f, PhiloxState{98, 2, 10}).mask != base.mask);
}

// The caller advances its offset by philox_blocks_for(n) after a draw of n elements. Two consecutive draws
// of n = 1000 (a multiple of 4, so no lane is skipped) are then exactly one draw of 2000.
TEST_CASE("dropout_forward: consecutive draws continue one sequence") {
  const PhiloxState state{5, 1, 20};
  const Draw<double> whole = run_dropout<double>(2000, 0.5, state);
  const Draw<double> first = run_dropout<double>(1000, 0.5, state);
  const Draw<double> second = run_dropout<double>(
      1000, 0.5, PhiloxState{state.seed, state.stream, state.offset + philox_blocks_for(1000)});
  std::int64_t first_mismatches = 0, second_mismatches = 0;
  for (std::size_t i = 0; i < 1000; ++i) {
    if (whole.mask[i] != first.mask[i]) ++first_mismatches;
    if (whole.mask[1000 + i] != second.mask[i]) ++second_mismatches;
  }
  CHECK(first_mismatches == 0);
  CHECK(second_mismatches == 0);
}

// Float uniforms keep the top bits of the same Philox word the double uniform uses, so for a p that both
// types hold exactly (a multiple of 2^-24, at most 1/2) the keep/drop decision is identical.
TEST_CASE("dropout_forward: float and double keep the same elements for the same state") {
  const PhiloxState state{31337, 0, 0};
  for (const double p : {0.25, 0.375, 0.5}) {
    CAPTURE(p);
    const Draw<float> as_float = run_dropout<float>(kElements, static_cast<float>(p), state);
    const Draw<double> as_double = run_dropout<double>(kElements, p, state);
    std::int64_t disagreements = 0;
    for (std::size_t i = 0; i < as_float.mask.size(); ++i) {
      if ((as_float.mask[i] != 0.0f) != (as_double.mask[i] != 0.0)) ++disagreements;
    }
    CHECK(disagreements == 0);
  }
}

TEST_CASE_TEMPLATE("dropout_forward: p = 0 keeps everything unscaled, p = 1 drops everything", T, float,
                   double) {
  SUBCASE("p = 0") {
    const Draw<T> draw = run_dropout<T>(1001, T(0), PhiloxState{1, 0, 0});
    std::int64_t not_one = 0;
    for (const T m : draw.mask) not_one += m != T(1) ? 1 : 0;
    CHECK(not_one == 0);
    CHECK(draw.y == draw.x);
  }
  SUBCASE("p = 1") {
    const Draw<T> draw = run_dropout<T>(1001, T(1), PhiloxState{1, 0, 0});
    CHECK(kept_count(draw.mask) == 0);
    std::int64_t nonzero_outputs = 0;
    for (const T v : draw.y) nonzero_outputs += v != T(0) ? 1 : 0;
    CHECK(nonzero_outputs == 0);
  }
}

}  // namespace kernels_dropout_test
