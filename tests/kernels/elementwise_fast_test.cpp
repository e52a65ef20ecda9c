// Tests of the vectorized elementwise kernels (kernels/elementwise/avx512.cpp, avx2.cpp) against the
// reference kernels, at every dispatch level this CPU has, with 1 and 2 threads (which must agree bitwise):
// unary forward and backward over lengths around the vector widths and past the threading threshold, with
// NaN, infinities and signed zeros; binary ops over dense, per-channel, scalar and row broadcasts (and a
// transposed layout, which dispatch keeps on the reference); strided copies; fill.
//
// Tolerance (float32): atol 1e-5 + rtol 1e-4 against the reference, which computes in double and rounds
// once. Add/Sub/Mul/Div, Sqrt, copies and fill are in fact exact.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <tuple>
#include <vector>

#include "kernels/cpu_level.hpp"
#include "kernels/elementwise/elementwise.hpp"
#include "kernels/parallel.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_elementwise_fast_test {

namespace {

using kiln::Device;
using kiln::kernels::BinaryOp;
using kiln::kernels::CpuLevel;
using kiln::kernels::UnaryOp;
using kiln::kernels::UnaryParams;
using kiln::testing::at_each_fast_level;
using kiln::testing::bitwise_equal;
using kiln::testing::matches_reference;
using kiln::testing::one_and_two_threads;
using kiln::testing::random_floats;
using kiln::testing::Tolerance;
namespace kk = kiln::kernels;

constexpr Tolerance kFloat{1e-5, 1e-4};
const std::vector<std::int64_t> kLengths{1, 7, 8, 16, 17, 100, 16385, 70001};

// Random values in [low, high), with NaN, infinities and signed zeros in the first slots when special.
std::vector<float> values(std::int64_t n, std::uint64_t seed, float low = -2.0f, float high = 2.0f,
                          bool special = true) {
  std::vector<float> v = random_floats(n, seed, low, high);
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), 0.0f, -0.0f,
                            std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
  for (std::size_t i = 0; special && i < v.size() && i < 5; ++i) v[i] = specials[i];
  return v;
}

// Within kFloat (an infinity must equal the reference's exactly).
void check_close(const std::vector<float>& actual, const std::vector<float>& expected) {
  const auto report =
      matches_reference(actual.data(), expected.data(), static_cast<std::int64_t>(actual.size()), kFloat);
  CHECK_MESSAGE(report.ok, report.message);
}

}  // namespace

TEST_CASE("elementwise fast: unary forward matches the reference at every level") {
  const UnaryParams params{.alpha = 0.1, .low = -0.5, .high = 0.7};
  at_each_fast_level([&] {
    for (const UnaryOp op : {UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Relu, UnaryOp::LeakyRelu, UnaryOp::Clamp,
                             UnaryOp::Sqrt, UnaryOp::Sigmoid, UnaryOp::Tanh, UnaryOp::Gelu, UnaryOp::Silu,
                             UnaryOp::Hardsigmoid, UnaryOp::Hardswish}) {
      for (const std::int64_t n : kLengths) {
        INFO("op ", static_cast<int>(op), " n ", n);
        const std::vector<float> x = op == UnaryOp::Sqrt ? values(n, 1, 0.0f, 4.0f) : values(n, 1);
        std::vector<float> expected(x.size());
        kk::reference::unary_forward(op, params, n, x.data(), expected.data());
        check_close(one_and_two_threads(x.size(),
                                        [&](std::vector<float>& y) {
                                          kk::unary_forward(Device::cpu(), op, params, n, x.data(), y.data());
                                        }),
                    expected);
      }
    }
  });
}

// How many floats lie between a and b (0: the same value; +0 and -0 are the same): ulps of error.
std::int64_t ulps_apart(float a, float b) {
  const auto ordered = [](float v) {
    const auto bits = static_cast<std::int64_t>(std::bit_cast<std::int32_t>(v));
    return bits < 0 ? std::int64_t{std::numeric_limits<std::int32_t>::min()} - bits : bits;
  };
  return std::abs(ordered(a) - ordered(b));
}

// Every 1024th float (4 million: all of float's range, subnormals to infinities, both signs), then 40,000
// consecutive floats around each centre.
std::vector<float> float_sweep(std::initializer_list<float> centres) {
  std::vector<float> x;
  for (std::uint64_t bits = 0; bits < (std::uint64_t{1} << 32); bits += 1024)
    x.push_back(std::bit_cast<float>(static_cast<std::uint32_t>(bits)));
  for (const float centre : centres) {
    float v = centre;
    for (int i = 0; i < 20000; ++i) v = std::nextafter(v, -1000.0f);
    for (int i = 0; i < 40000; ++i, v = std::nextafter(v, 1000.0f)) x.push_back(v);
  }
  return x;
}

// The largest ulps_apart of `actual` from `expected` and its index, over the pairs neither of which is a NaN,
// and how many pairs have a NaN on one side only. With skip_subnormal_results, a pair whose values are both
// below float's normal range (2^-126) is not compared.
struct UlpReport {
  std::int64_t worst = 0;
  std::size_t worst_at = 0;
  std::int64_t wrong_nan = 0;
};
UlpReport ulp_report(const std::vector<float>& actual, const std::vector<float>& expected,
                     bool skip_subnormal_results) {
  UlpReport report;
  const float smallest_normal = std::numeric_limits<float>::min();
  for (std::size_t i = 0; i < actual.size(); ++i) {
    if (std::isnan(expected[i]) || std::isnan(actual[i])) {
      report.wrong_nan += std::isnan(expected[i]) != std::isnan(actual[i]);
      continue;
    }
    if (skip_subnormal_results && std::abs(expected[i]) < smallest_normal &&
        std::abs(actual[i]) < smallest_normal)
      continue;
    if (const std::int64_t ulps = ulps_apart(actual[i], expected[i]); ulps > report.worst) {
      report.worst = ulps;
      report.worst_at = i;
    }
  }
  return report;
}

// The vectorized Sigmoid, Tanh, GELU and SiLU (kernels/simd/transcendentals.hpp) against the reference
// (double, rounded once), in ulps: over every 1024th float (4 million, all of float's range, subnormals to
// infinities, both signs), and densely around where the functions change their method or saturate (tanh's
// switch at 0.625, GELU's at |x| = 0.84 sqrt 2, zero, exp's overflow near 88.7 and 103, GELU's far tail).
// The worst error must stay within a bound a little above what each measured (sigmoid and tanh exactly
// their 2 and 1 ulps; GELU 8, measured 5; SiLU 4, measured 3), except where the reference's result is a
// subnormal (below 2^-126: sigmoid and GELU far below zero), which these may give with fewer bits, or as
// zero: there both must be below 2^-126. A NaN from either side must be a NaN from both.
TEST_CASE(
    "elementwise fast: sigmoid, tanh and gelu stay within a few ulps of the reference over the floats") {
  const std::vector<float> x = float_sweep(
      {0.625f, -0.625f, 0.0f, 88.7f, -88.7f, 87.3f, -87.3f, 103.0f, -103.0f, 1.18794f, -1.18794f, -13.0f});
  const auto n = static_cast<std::int64_t>(x.size());
  at_each_fast_level([&] {
    for (const auto& [op, name, bound] :
         {std::tuple{UnaryOp::Sigmoid, "sigmoid", 2}, std::tuple{UnaryOp::Tanh, "tanh", 1},
          std::tuple{UnaryOp::Gelu, "gelu", 8}, std::tuple{UnaryOp::Silu, "silu", 4}}) {
      INFO(name);
      std::vector<float> expected(x.size()), actual(x.size());
      kk::reference::unary_forward(op, {}, n, x.data(), expected.data());
      kk::unary_forward(Device::cpu(), op, {}, n, x.data(), actual.data());
      const UlpReport report = ulp_report(actual, expected, true);
      MESSAGE(name, ": worst ", report.worst, " ulps, at x = ", x[report.worst_at]);
      CHECK(report.worst <= bound);
      CHECK(report.wrong_nan == 0);
    }
  });
}

// The vectorized hard sigmoid and hard swish (vectorized_elementwise.hpp) against the reference, in ulps,
// both ways: over every 1024th float and densely across their kinks at -3 and 3 and around zero, the gradient
// with a gy of every magnitude (the same floats, reversed). Each is a few float operations where the
// reference rounds once from double: hard sigmoid within an ulp of it, its gradient (gy / 6) on it, hard
// swish within two both ways (as measured). NaNs must match.
TEST_CASE("elementwise fast: hardsigmoid and hardswish are within two ulps of the reference both ways") {
  const std::vector<float> x = float_sweep({-3.0f, 3.0f, 0.0f, -1.5f});
  const std::vector<float> gy(x.rbegin(), x.rend());
  const auto n = static_cast<std::int64_t>(x.size());
  const auto worst_ulps = [&](const std::vector<float>& actual, const std::vector<float>& expected,
                              const char* what) {
    const UlpReport report = ulp_report(actual, expected, false);
    MESSAGE(what, ": worst ", report.worst, " ulps, at x = ", x[report.worst_at],
            ", gy = ", gy[report.worst_at]);
    CHECK(report.wrong_nan == 0);
    return report.worst;
  };
  at_each_fast_level([&] {
    for (const auto& [op, name, forward_bound, backward_bound] :
         {std::tuple{UnaryOp::Hardsigmoid, "hardsigmoid", 1, 0},
          std::tuple{UnaryOp::Hardswish, "hardswish", 2, 2}}) {
      std::vector<float> y(x.size()), expected(x.size()), actual(x.size());
      kk::reference::unary_forward(op, {}, n, x.data(), y.data());
      kk::unary_forward(Device::cpu(), op, {}, n, x.data(), actual.data());
      CHECK(worst_ulps(actual, y, name) <= forward_bound);
      kk::reference::unary_backward(op, {}, n, x.data(), y.data(), gy.data(), expected.data());
      kk::unary_backward(Device::cpu(), op, {}, n, x.data(), y.data(), gy.data(), actual.data());
      CHECK(worst_ulps(actual, expected, (std::string(name) + "'s gradient").c_str()) <= backward_bound);
    }
  });
}

// GELU's derivative, Phi(x) + x phi(x), vectorized: near its zero (x = -0.75) a difference of near-equal
// terms, so held to the reference in absolute terms there (2e-7, a few ulps of the terms) and in relative
// terms (4e-7) elsewhere, over [-16, 16] densely and the specials.
TEST_CASE("elementwise fast: gelu's backward is within 2e-7 + 4e-7 relative of the reference") {
  std::vector<float> x;
  for (float v = -16.0f; v <= 16.0f; v += 1.0f / 4096) x.push_back(v);
  for (const float special :
       {0.0f, -0.0f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
        std::numeric_limits<float>::quiet_NaN()})
    x.push_back(special);
  const auto n = static_cast<std::int64_t>(x.size());
  const std::vector<float> gy(x.size(), 1.0f);
  std::vector<float> y(x.size());
  kk::reference::unary_forward(UnaryOp::Gelu, {}, n, x.data(), y.data());
  at_each_fast_level([&] {
    std::vector<float> expected(x.size()), actual(x.size());
    kk::reference::unary_backward(UnaryOp::Gelu, {}, n, x.data(), y.data(), gy.data(), expected.data());
    kk::unary_backward(Device::cpu(), UnaryOp::Gelu, {}, n, x.data(), y.data(), gy.data(), actual.data());
    const auto report = matches_reference(actual.data(), expected.data(), n, Tolerance{2e-7, 4e-7});
    CHECK_MESSAGE(report.ok, report.message);
  });
}

TEST_CASE("elementwise fast: unary backward matches the reference at every level") {
  const UnaryParams params{.alpha = 0.1, .low = -0.5, .high = 0.7};
  at_each_fast_level([&] {
    for (const UnaryOp op :
         {UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Relu, UnaryOp::LeakyRelu, UnaryOp::Clamp, UnaryOp::Sigmoid,
          UnaryOp::Tanh, UnaryOp::Gelu, UnaryOp::Silu, UnaryOp::Hardsigmoid, UnaryOp::Hardswish}) {
      for (const std::int64_t n : kLengths) {
        INFO("op ", static_cast<int>(op), " n ", n);
        const std::vector<float> x = values(n, 2), gy = values(n, 3, -2.0f, 2.0f, false);
        std::vector<float> y(x.size()), expected(x.size());
        kk::reference::unary_forward(op, params, n, x.data(), y.data());
        kk::reference::unary_backward(op, params, n, x.data(), y.data(), gy.data(), expected.data());
        check_close(one_and_two_threads(x.size(),
                                        [&](std::vector<float>& gx) {
                                          kk::unary_backward(Device::cpu(), op, params, n, x.data(), y.data(),
                                                             gy.data(), gx.data());
                                        }),
                    expected);
      }
    }
  });
}

TEST_CASE("elementwise fast: in-place relu backward (gx aliases gy)") {
  at_each_fast_level([&] {
    const std::int64_t n = 1000;
    const std::vector<float> x = values(n, 4), gy = values(n, 5, -2.0f, 2.0f, false);
    std::vector<float> expected(gy.size()), inplace = gy;
    kk::reference::unary_backward(UnaryOp::Relu, {}, n, x.data(), x.data(), gy.data(), expected.data());
    kk::unary_backward(Device::cpu(), UnaryOp::Relu, {}, n, x.data(), x.data(), inplace.data(),
                       inplace.data());
    CHECK(bitwise_equal(inplace, expected));
  });
}

namespace {

struct BinaryCase {
  const char* name;
  std::vector<std::int64_t> sizes, a_strides, b_strides;
  std::int64_t a_extent, b_extent;  // elements each operand's buffer holds
};

std::vector<BinaryCase> binary_cases() {
  return {
      {"dense [3,5,17]", {3, 5, 17}, {85, 17, 1}, {85, 17, 1}, 255, 255},
      {"per-channel [2,17,5,7] + [1,17,1,1]", {2, 17, 5, 7}, {595, 35, 7, 1}, {0, 1, 0, 0}, 1190, 17},
      {"per-channel, a broadcast [1,5,1,1] * [3,5,4,4]", {3, 5, 4, 4}, {0, 1, 0, 0}, {80, 16, 4, 1}, 5, 240},
      {"scalar [4,33] - []", {4, 33}, {33, 1}, {0, 0}, 132, 1},
      {"row [6,19] / [19]", {6, 19}, {19, 1}, {0, 1}, 114, 19},
      {"size-1 dims [2,1,40,1]", {2, 1, 40, 1}, {40, 40, 1, 1}, {40, 7, 1, 9}, 80, 80},
      {"threaded [32,16,16,16] + [1,16,1,1]", {32, 16, 16, 16}, {4096, 256, 16, 1}, {0, 1, 0, 0}, 131072, 16},
      {"transposed (reference path) [20,30]", {20, 30}, {30, 1}, {1, 20}, 600, 600},
      // rows longer than one parallel piece (16384): split into pieces
      {"long dense [3,70001]", {3, 70001}, {70001, 1}, {70001, 1}, 210003, 210003},
      {"long rows [2,40000] * [40000]", {2, 40000}, {40000, 1}, {0, 1}, 80000, 40000},
      {"long per-channel rows [2,3,20000] + [1,3,1]", {2, 3, 20000}, {60000, 20000, 1}, {0, 1, 0}, 120000, 3},
  };
}

}  // namespace

TEST_CASE("elementwise fast: binary add, sub, mul, div over dense and broadcast layouts") {
  at_each_fast_level([&] {
    for (const BinaryCase& c : binary_cases()) {
      for (const BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::AddRelu}) {
        INFO(c.name, " op ", static_cast<int>(op));
        const std::vector<float> a = values(c.a_extent, 6), b = values(c.b_extent, 7, 0.5f, 2.0f, false);
        const int rank = static_cast<int>(c.sizes.size());
        std::int64_t count = 1;
        for (const std::int64_t s : c.sizes) count *= s;
        std::vector<float> expected(static_cast<std::size_t>(count));
        kk::reference::binary_forward(op, rank, c.sizes.data(), a.data(), c.a_strides.data(), b.data(),
                                      c.b_strides.data(), expected.data());
        const std::vector<float> actual = one_and_two_threads(expected.size(), [&](std::vector<float>& out) {
          kk::binary_forward(Device::cpu(), op, rank, c.sizes.data(), a.data(), c.a_strides.data(), b.data(),
                             c.b_strides.data(), out.data());
        });
        CHECK(bitwise_equal(actual, expected));  // + - * / are correctly rounded in float
      }
    }
  });
}

TEST_CASE("elementwise fast: strided copies and fill") {
  at_each_fast_level([&] {
    // A [3, 5, 20] window of a [4, 6, 24] tensor, copied into the middle of a [3, 5, 22] buffer: rows
    // dense on both sides, strided between them.
    const std::vector<std::int64_t> sizes{3, 5, 20}, src_strides{144, 24, 1}, dst_strides{110, 22, 1};
    const std::vector<float> src = values(4 * 6 * 24, 8);
    std::vector<float> expected(3 * 5 * 22, -1.0f);
    kk::reference::copy_strided(3, sizes.data(), src.data() + 1, src_strides.data(), expected.data() + 1,
                                dst_strides.data());
    const std::vector<float> actual = one_and_two_threads(expected.size(), [&](std::vector<float>& dst) {
      std::fill(dst.begin(), dst.end(), -1.0f);
      kk::copy_strided(Device::cpu(), 3, sizes.data(), src.data() + 1, src_strides.data(), dst.data() + 1,
                       dst_strides.data());
    });
    CHECK(bitwise_equal(actual, expected));

    // Rows longer than one parallel piece: a [2, 30000] window of a [2, 30010] tensor.
    const std::vector<std::int64_t> long_sizes{2, 30000}, long_src{30010, 1}, long_dst{30000, 1};
    const std::vector<float> long_source = values(2 * 30010, 9);
    std::vector<float> long_expected(60000);
    kk::reference::copy_strided(2, long_sizes.data(), long_source.data() + 3, long_src.data(),
                                long_expected.data(), long_dst.data());
    CHECK(bitwise_equal(one_and_two_threads(long_expected.size(),
                                            [&](std::vector<float>& dst) {
                                              kk::copy_strided(Device::cpu(), 2, long_sizes.data(),
                                                               long_source.data() + 3, long_src.data(),
                                                               dst.data(), long_dst.data());
                                            }),
                        long_expected));

    // Rows that are not dense go row by row (copy_strided_rows): a transpose; x[:, :, ::2, ::2] of a
    // [16, 16, 32, 32] tensor (65536 elements: threaded) and its scatter back; short rows of 3; rank 1;
    // and a broadcast destination, which stays on the reference.
    struct StridedCopy {
      std::vector<std::int64_t> sizes, src_strides, dst_strides;
      std::int64_t src_floats, dst_floats;
    };
    const StridedCopy strided_copies[] = {
        {{24, 20}, {1, 24}, {20, 1}, 480, 480},
        {{16, 16, 16, 16}, {16384, 1024, 64, 2}, {4096, 256, 16, 1}, 16 * 16 * 32 * 32, 65536},
        {{16, 16, 16, 16}, {4096, 256, 16, 1}, {16384, 1024, 64, 2}, 65536, 16 * 16 * 32 * 32},
        {{5, 7, 3}, {1, 5, 35}, {21, 3, 1}, 105, 105},
        {{37}, {3}, {1}, 111, 37},
        // A destination broadcast along the first dimension (every row lands on the same 20000 floats):
        // threaded, the rows would race (and only sometimes lose), so it stays on the reference, whose last
        // row wins.
        {{4, 20000}, {20000, 1}, {0, 1}, 80000, 20000},
        // NCHW to channels-last and back (transpose_matrices): [3, 17, 5, 7], ragged against the 8 x 8
        // blocks; [2, 37, 5, 9], 37 x 45 planes: 16 x 16 blocks (AVX-512), then 8 x 8 blocks and single
        // floats right of them and below; [16, 16, 16, 16], threaded.
        {{3, 17, 5, 7}, {595, 35, 7, 1}, {595, 1, 119, 17}, 1785, 1785},
        {{3, 17, 5, 7}, {595, 1, 119, 17}, {595, 35, 7, 1}, 1785, 1785},
        {{2, 37, 5, 9}, {1665, 45, 9, 1}, {1665, 1, 333, 37}, 3330, 3330},
        {{2, 37, 5, 9}, {1665, 1, 333, 37}, {1665, 45, 9, 1}, 3330, 3330},
        {{16, 16, 16, 16}, {4096, 256, 16, 1}, {4096, 1, 256, 16}, 65536, 65536},
        {{16, 16, 16, 16}, {4096, 1, 256, 16}, {4096, 256, 16, 1}, 65536, 65536},
    };
    for (const StridedCopy& c : strided_copies) {
      const int rank = static_cast<int>(c.sizes.size());
      INFO("strided copy of rank ", rank, ", ", c.dst_floats, " floats out");
      const std::vector<float> from = values(c.src_floats, 10);
      std::vector<float> strided_expected(static_cast<std::size_t>(c.dst_floats), -1.0f);
      kk::reference::copy_strided(rank, c.sizes.data(), from.data(), c.src_strides.data(),
                                  strided_expected.data(), c.dst_strides.data());
      const std::vector<float> strided_actual =
          one_and_two_threads(strided_expected.size(), [&](std::vector<float>& dst) {
            std::fill(dst.begin(), dst.end(), -1.0f);
            kk::copy_strided(Device::cpu(), rank, c.sizes.data(), from.data(), c.src_strides.data(),
                             dst.data(), c.dst_strides.data());
          });
      CHECK(bitwise_equal(strided_actual, strided_expected));
    }

    for (const std::int64_t n : kLengths) {
      INFO("fill n ", n);
      std::vector<float> expected_fill(static_cast<std::size_t>(n));
      kk::reference::fill(n, 2.5f, expected_fill.data());
      CHECK(bitwise_equal(
          one_and_two_threads(expected_fill.size(),
                              [&](std::vector<float>& out) { kk::fill(Device::cpu(), n, 2.5f, out.data()); }),
          expected_fill));
    }
  });
}

}  // namespace kernels_elementwise_fast_test
