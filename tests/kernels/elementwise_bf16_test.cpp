// Tests for the bfloat16 elementwise kernels (kernels/elementwise/elementwise.hpp) and for the Tensor-level
// elementwise ops, casts, copies and fills on bfloat16 tensors.
//
// The bfloat16 reference computes in double and rounds once to bfloat16. Its inputs here are random floats
// rounded to bfloat16 (so exact in float and double) plus NaN, infinities and signed zeros, so:
//   - it must equal the double reference on the same values, rounded to bfloat16, bit for bit;
//   - it must be within 1 bfloat16 ulp of the float reference rounded to bfloat16 (float's own rounding
//     can land on a bfloat16 tie that the double was not on: a double rounding).
// The results come through dispatch: the reference kernels, or at a fast CPU level the vectorized ones for
// the ops whose float result rounds to the reference's bits (kernels/elementwise/dispatch.cpp), which must
// then give those bits too.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/ops.hpp"
#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "kernels/elementwise/elementwise.hpp"
#include "tests/support/bfloat16_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_elementwise_bf16_test {

namespace {

using namespace kiln;
using kernels::BinaryOp;
using kernels::UnaryOp;
using testing::bfloat16_difference;
using testing::check_bfloat16_against_wider;
using testing::converted;
using testing::first_difference;
using testing::random_values;
using testing::Tolerance;

constexpr Device kCpu = Device::cpu();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- bfloat16 helpers --------------------------------------------------------------------------------

// n bfloat16 values uniform in [low, high), with the special values every op must get right spread among
// them (NaN, infinities, signed zeros, values where exp overflows, the clamp bounds).
std::vector<bfloat16> bf16_values(std::int64_t n, std::uint64_t seed, float low = -4.0f, float high = 4.0f) {
  std::vector<bfloat16> values = random_values<bfloat16>(n, seed, low, high);
  const double specials[] = {kNaN, kInf, -kInf, 0.0, -0.0, 1.0, -1.0, 800.0, -800.0, -0.5, 0.75, 2.0};
  for (std::size_t i = 0; i < std::size(specials) && i < values.size(); ++i)
    values[(i * 7919) % values.size()] = bfloat16(specials[i]);
  return values;
}

const UnaryOp kUnaryOps[] = {UnaryOp::Neg,       UnaryOp::Exp,  UnaryOp::Log,       UnaryOp::Sqrt,
                             UnaryOp::Abs,       UnaryOp::Relu, UnaryOp::LeakyRelu, UnaryOp::Sigmoid,
                             UnaryOp::Tanh,      UnaryOp::Gelu, UnaryOp::Silu,      UnaryOp::Hardsigmoid,
                             UnaryOp::Hardswish, UnaryOp::Clamp};
const BinaryOp kBinaryOps[] = {BinaryOp::Add,     BinaryOp::Sub,     BinaryOp::Mul,     BinaryOp::Div,
                               BinaryOp::Pow,     BinaryOp::Maximum, BinaryOp::Minimum, BinaryOp::Equal,
                               BinaryOp::Greater, BinaryOp::AddRelu};

// ---- unary -------------------------------------------------------------------------------------------

// The transcendental activations run vectorized approximations (kernels/simd/transcendentals.hpp), whose
// float results round to the double reference's bfloat16 but within a few float ulps of a tie, where they
// may take the neighbour: one bfloat16 step from the double reference, one from the float one.
bool transcendental(UnaryOp op) {
  return op == UnaryOp::Sigmoid || op == UnaryOp::Tanh || op == UnaryOp::Gelu || op == UnaryOp::Silu;
}
// The hard sigmoid and hard swish run a few float operations, each rounded, where the reference rounds once:
// the same one-step allowance.
bool rounded_in_float(UnaryOp op) { return op == UnaryOp::Hardsigmoid || op == UnaryOp::Hardswish; }

void check_against_wider(UnaryOp op, const std::vector<bfloat16>& actual,
                         const std::vector<double>& from_double, const std::vector<float>& from_float,
                         const std::string& what) {
  if (!transcendental(op) && !rounded_in_float(op))
    return check_bfloat16_against_wider(actual, from_double, from_float, what);
  const std::string close = testing::bfloat16_difference(actual, converted<bfloat16>(from_double), 1);
  CHECK_MESSAGE(close.empty(), what, " vs the double reference: ", close);
  const std::string near = testing::bfloat16_difference(actual, converted<bfloat16>(from_float), 1);
  CHECK_MESSAGE(near.empty(), what, " vs the float reference: ", near);
}

TEST_CASE("bfloat16 unary forward and backward: the double reference rounded once, every op") {
  kernels::UnaryParams params;
  params.alpha = 0.1;  // not a bfloat16: the slope stays double
  params.low = -0.5;
  params.high = 0.75;
  for (const std::int64_t n : {1, 31, 1031}) {
    const std::vector<bfloat16> x = bf16_values(n, 1), gy = bf16_values(n, 2);
    const auto count = static_cast<std::size_t>(n);
    for (const UnaryOp op : kUnaryOps) {
      INFO("n = ", n, ", op ", static_cast<int>(op));
      std::vector<bfloat16> y(count);
      kernels::unary_forward<bfloat16>(kCpu, op, params, n, x.data(), y.data());
      std::vector<double> y_double(count);
      std::vector<float> y_float(count);
      kernels::reference::unary_forward(op, params, n, converted<double>(x).data(), y_double.data());
      kernels::reference::unary_forward(op, params, n, converted<float>(x).data(), y_float.data());
      check_against_wider(op, y, y_double, y_float, "y");

      // The backward reads the bfloat16 forward's y on every side, so only the derivative is compared.
      std::vector<bfloat16> gx(count);
      kernels::unary_backward<bfloat16>(kCpu, op, params, n, x.data(), y.data(), gy.data(), gx.data());
      std::vector<double> gx_double(count);
      std::vector<float> gx_float(count);
      kernels::reference::unary_backward(op, params, n, converted<double>(x).data(),
                                         converted<double>(y).data(), converted<double>(gy).data(),
                                         gx_double.data());
      kernels::reference::unary_backward(op, params, n, converted<float>(x).data(),
                                         converted<float>(y).data(), converted<float>(gy).data(),
                                         gx_float.data());
      check_against_wider(op, gx, gx_double, gx_float, "gx");
    }
  }
}

// Over every bfloat16 value, at each fast level: the vectorized sigmoid, tanh, GELU, SiLU, hard sigmoid and
// hard swish within one bfloat16 step of the double reference rounded once, and off by that step rarely (a
// value within a few float ulps of a bfloat16 tie: fewer than one in a thousand here; none, as measured),
// but where the reference's result is a subnormal, which they may flush to zero (as the float test allows).
TEST_CASE("bfloat16 activations computed in float: within one step of the reference over every bfloat16") {
  std::vector<bfloat16> x;
  for (std::uint32_t bits = 0; bits < 0x10000u; ++bits)
    x.push_back(bfloat16::from_bits(static_cast<std::uint16_t>(bits)));
  const auto n = static_cast<std::int64_t>(x.size());
  testing::at_each_fast_level([&] {
    for (const UnaryOp op : {UnaryOp::Sigmoid, UnaryOp::Tanh, UnaryOp::Gelu, UnaryOp::Silu,
                             UnaryOp::Hardsigmoid, UnaryOp::Hardswish}) {
      INFO("op ", static_cast<int>(op));
      std::vector<bfloat16> y(x.size());
      kernels::unary_forward<bfloat16>(kCpu, op, {}, n, x.data(), y.data());
      std::vector<double> expected(x.size());
      kernels::reference::unary_forward(op, {}, n, converted<double>(x).data(), expected.data());
      const std::vector<bfloat16> rounded = converted<bfloat16>(expected);
      std::int64_t off = 0, far = 0;  // one step off; more (NaN on one side only counts as far)
      for (std::size_t i = 0; i < x.size(); ++i) {
        const float got = static_cast<float>(y[i]), want = static_cast<float>(rounded[i]);
        const float smallest_normal = std::numeric_limits<float>::min();
        if (testing::is_nan(y[i]) && testing::is_nan(rounded[i])) continue;
        if (std::abs(got) < smallest_normal && std::abs(want) < smallest_normal) continue;  // as for float
        const std::int64_t steps = testing::bfloat16_steps_apart(y[i], rounded[i]);
        off += steps == 1;
        far += steps > 1 || testing::is_nan(y[i]) != testing::is_nan(rounded[i]);
      }
      MESSAGE("op ", static_cast<int>(op), ": ", off, " of ", n, " one step off");
      CHECK(far == 0);
      CHECK(off * 1000 < n);
    }
  });
}

TEST_CASE("bfloat16 clamp: bounds bfloat16 holds (ReLU6's) take the vectorized kernels, bit for bit") {
  // Exact either way: x or a bound, and gy or 0. Bounds it cannot hold (0.1) keep the reference, whose
  // double bound the float kernel would round before comparing.
  testing::DispatchGuard guard;
  for (const kernels::UnaryParams params :
       {kernels::UnaryParams{.low = 0.0, .high = 6.0}, kernels::UnaryParams{.low = 0.1, .high = 6.0}}) {
    const std::int64_t n = 100003;
    const std::vector<bfloat16> x = bf16_values(n, 3, -8.0f, 8.0f), gy = bf16_values(n, 4);
    const auto count = static_cast<std::size_t>(n);
    std::vector<bfloat16> y_reference(count), gx_reference(count);
    kernels::reference::unary_forward(UnaryOp::Clamp, params, n, x.data(), y_reference.data());
    kernels::reference::unary_backward(UnaryOp::Clamp, params, n, x.data(), y_reference.data(), gy.data(),
                                       gx_reference.data());
    for (const kernels::CpuLevel level : testing::fast_levels()) {
      INFO(kernels::cpu_level_name(level), ", low ", params.low);
      kernels::set_cpu_level(level);
      std::vector<bfloat16> y(count), gx(count);
      kernels::unary_forward<bfloat16>(kCpu, UnaryOp::Clamp, params, n, x.data(), y.data());
      kernels::unary_backward<bfloat16>(kCpu, UnaryOp::Clamp, params, n, x.data(), y.data(), gy.data(),
                                        gx.data());
      for (std::size_t i = 0; i < count; ++i) {
        const bool same_y = y[i].bits == y_reference[i].bits ||
                            (y[i] != y[i] && y_reference[i] != y_reference[i]);  // NaN payloads aside
        const bool same_gx =
            gx[i].bits == gx_reference[i].bits || (gx[i] != gx[i] && gx_reference[i] != gx_reference[i]);
        if (!same_y || !same_gx) {
          FAIL_CHECK("element ", i, ": x ", static_cast<float>(x[i]), " y ", static_cast<float>(y[i]), " vs ",
                     static_cast<float>(y_reference[i]), ", gx ", static_cast<float>(gx[i]), " vs ",
                     static_cast<float>(gx_reference[i]));
          break;
        }
      }
    }
  }
}

TEST_CASE("bfloat16 unary: hand-worked values, and in place") {
  // Neg and Sqrt(4) are exact; exp(1) = 2.71828... rounds to 2.71875 (0x402e).
  std::vector<bfloat16> x = {bfloat16(1.0 + 1.0 / 128), bfloat16(4.0), bfloat16(1.0), bfloat16(-0.0)};
  std::vector<bfloat16> y(x.size());
  kernels::unary_forward<bfloat16>(kCpu, UnaryOp::Neg, {}, 4, x.data(), y.data());
  CHECK(static_cast<float>(y[0]) == -(1.0f + 1.0f / 128));
  CHECK(y[3].bits == 0x0000);  // -(-0) is +0
  kernels::unary_forward<bfloat16>(kCpu, UnaryOp::Sqrt, {}, 4, x.data(), y.data());
  CHECK(static_cast<float>(y[1]) == 2.0f);
  kernels::unary_forward<bfloat16>(kCpu, UnaryOp::Exp, {}, 4, x.data(), y.data());
  CHECK(y[2].bits == 0x402e);
  kernels::unary_forward<bfloat16>(kCpu, UnaryOp::Relu, {}, 4, x.data(), x.data());
  CHECK(static_cast<float>(x[1]) == 4.0f);
  CHECK(std::signbit(static_cast<float>(x[3])));  // relu(-0) = -0: x < 0 is false, x passes through
}

// ---- binary ------------------------------------------------------------------------------------------

// One broadcasting layout: the index space and each operand's element strides.
struct BinaryCase {
  const char* name;
  std::vector<std::int64_t> sizes, a_strides, b_strides;
};

// Elements a buffer needs for every index of sizes to be in range through strides (0 for an empty space).
std::int64_t extent(const std::vector<std::int64_t>& sizes, const std::vector<std::int64_t>& strides) {
  std::int64_t last = 0;
  for (std::size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 0) return 0;
    last += (sizes[d] - 1) * strides[d];
  }
  return last + 1;
}

std::int64_t count_of(const std::vector<std::int64_t>& sizes) {
  std::int64_t count = 1;
  for (const std::int64_t size : sizes) count *= size;
  return count;
}

TEST_CASE("bfloat16 binary ops: the double reference rounded once, over broadcast and odd layouts") {
  const std::vector<BinaryCase> layouts = {
      {"dense, same shape", {1031}, {1}, {1}},
      {"[N,C,H,W] + [1,C,1,1]", {2, 3, 5, 7}, {105, 35, 7, 1}, {0, 1, 0, 0}},
      {"[N,F] + [F]", {4, 33}, {33, 1}, {0, 1}},
      {"tensor + scalar", {257}, {1}, {0}},
      {"transposed operand", {17, 19}, {19, 1}, {1, 17}},
      {"both broadcast: [3,1,5] + [1,4,1]", {3, 4, 5}, {5, 0, 1}, {0, 1, 0}},
      {"rank 0", {}, {}, {}},
      {"an empty dimension", {3, 0, 2}, {0, 2, 1}, {2, 2, 1}},
      {"rank 8", {2, 3, 1, 2, 3, 2, 1, 5}, {180, 60, 60, 30, 10, 5, 5, 1}, {0, 1, 0, 3, 0, 0, 0, 0}},
      {"sliced with step 2", {6, 10}, {40, 2}, {1, 0}},
  };
  for (const BinaryCase& layout : layouts) {
    const int rank = static_cast<int>(layout.sizes.size());
    const auto count = static_cast<std::size_t>(count_of(layout.sizes));
    const std::vector<bfloat16> a = bf16_values(extent(layout.sizes, layout.a_strides), 11, -3.0f, 3.0f);
    std::vector<bfloat16> b = bf16_values(extent(layout.sizes, layout.b_strides), 12, -3.0f, 3.0f);
    for (std::size_t i = 3; i < b.size() && i < a.size(); i += 5) b[i] = a[i];  // ties and equal pairs
    for (const BinaryOp op : kBinaryOps) {
      INFO(layout.name, ", op ", static_cast<int>(op));
      std::vector<bfloat16> out(count);
      kernels::binary_forward<bfloat16>(kCpu, op, rank, layout.sizes.data(), a.data(),
                                        layout.a_strides.data(), b.data(), layout.b_strides.data(),
                                        out.data());
      std::vector<double> out_double(count);
      std::vector<float> out_float(count);
      kernels::reference::binary_forward(op, rank, layout.sizes.data(), converted<double>(a).data(),
                                         layout.a_strides.data(), converted<double>(b).data(),
                                         layout.b_strides.data(), out_double.data());
      kernels::reference::binary_forward(op, rank, layout.sizes.data(), converted<float>(a).data(),
                                         layout.a_strides.data(), converted<float>(b).data(),
                                         layout.b_strides.data(), out_float.data());
      check_bfloat16_against_wider(out, out_double, out_float, "out");
    }
  }
}

TEST_CASE("bfloat16 binary: a sum that needs rounding rounds once, to nearest even") {
  // 1 + 2^-8 is the tie between 1 and 1 + 2^-7: even is 1. 1 + 3 * 2^-8 ties to 1 + 2^-6.
  const std::vector<bfloat16> a = {bfloat16(1.0), bfloat16(1.0), bfloat16(256.0)};
  const std::vector<bfloat16> b = {bfloat16(1.0 / 256), bfloat16(3.0 / 256), bfloat16(1.0)};
  std::vector<bfloat16> out(3);
  const std::int64_t sizes[] = {3}, strides[] = {1};
  kernels::binary_forward<bfloat16>(kCpu, BinaryOp::Add, 1, sizes, a.data(), strides, b.data(), strides,
                                    out.data());
  CHECK(static_cast<float>(out[0]) == 1.0f);
  CHECK(static_cast<float>(out[1]) == 1.0f + 1.0f / 64);
  CHECK(static_cast<float>(out[2]) == 256.0f);  // 257 is a tie between 256 and 258: even mantissa is 256
}

// Products below float's normal range (2^-126), where the float product lies on float's subnormal grid
// before the store rounds it to bfloat16 (dispatch.cpp: exact down to 2^-134, zero either way below): every
// pair of significands, at exponents that put the products across bfloat16's subnormal range and below it,
// each the reference's bits at every fast level.
TEST_CASE("bfloat16 binary: a product below float's normal range rounds once, as the reference's") {
  std::vector<bfloat16> a, b;
  for (int exponent = -62; exponent >= -72; exponent -= 2) {
    for (std::uint32_t i = 0; i < 256; ++i) {
      for (std::uint32_t j = 0; j < 256; j += 3) {
        const auto value = [](std::uint32_t significand, int power) {
          return bfloat16(std::ldexp(1.0 + (significand & 127u) / 128.0, power) *
                          ((significand & 128u) ? -1 : 1));
        };
        a.push_back(value(i, exponent));
        b.push_back(value(j, -70));
      }
    }
  }
  const std::int64_t n = static_cast<std::int64_t>(a.size()), sizes[] = {n}, strides[] = {1};
  std::vector<double> expected(a.size());
  kernels::reference::binary_forward(BinaryOp::Mul, 1, sizes, converted<double>(a).data(), strides,
                                     converted<double>(b).data(), strides, expected.data());
  const std::vector<bfloat16> rounded = converted<bfloat16>(expected);
  std::int64_t subnormal = 0;
  for (const double value : expected) subnormal += value != 0.0 && std::abs(value) < 0x1p-126;
  CHECK(subnormal * 2 > n);
  testing::at_each_fast_level([&] {
    std::vector<bfloat16> out(a.size());
    kernels::binary_forward<bfloat16>(kCpu, BinaryOp::Mul, 1, sizes, a.data(), strides, b.data(), strides,
                                      out.data());
    CHECK(testing::bfloat16_difference(out, rounded, 0).empty());
  });
}

// ---- copies and fill ---------------------------------------------------------------------------------

struct CopyCase {
  const char* name;
  std::vector<std::int64_t> sizes, src_strides, dst_strides;
  std::int64_t src_offset = 0;  // where the view starts in the source buffer
};

std::vector<CopyCase> copy_cases() {
  return {
      {"dense", {1031}, {1}, {1}},
      {"transpose of [65, 33]", {33, 65}, {1, 33}, {65, 1}},
      {"rows 1..9 step 2, columns 3..39 step 3 of [10, 40]", {5, 13}, {80, 3}, {13, 1}, 43},
      {"expand [1,7,1] to [5,7,9] (stride 0 source)", {5, 7, 9}, {0, 1, 0}, {63, 9, 1}},
      {"into a transposed destination", {12, 20}, {20, 1}, {1, 12}},
      {"into a strided destination", {7, 5}, {5, 1}, {20, 2}},
      {"rank 0", {}, {}, {}},
      {"an empty dimension", {4, 0}, {1, 1}, {1, 1}},
      {"[2,3,4,5] permuted (0,2,3,1)", {2, 4, 5, 3}, {60, 5, 1, 20}, {60, 15, 3, 1}},
      // Between NCHW and channels-last: batches of transposes (bfloat16's pair rows; an odd row count goes
      // element by element).
      {"[3,16,5,6] NCHW to channels-last", {3, 16, 5, 6}, {480, 30, 6, 1}, {480, 1, 96, 16}},
      {"[2,16,4,6] channels-last to NCHW", {2, 16, 4, 6}, {384, 1, 96, 16}, {384, 24, 6, 1}},
      {"[2,5,3,7] NCHW to channels-last, 5 channels", {2, 5, 3, 7}, {105, 21, 7, 1}, {105, 1, 35, 5}},
      {"[2,6,3,7] channels-last to NCHW, 21 pixels", {2, 6, 3, 7}, {126, 1, 42, 6}, {126, 21, 7, 1}},
  };
}

template <typename T>
T poison() {
  if constexpr (std::is_same_v<T, std::int64_t>)
    return -777;
  else
    return T(kNaN);
}

// Source values for a copy from Src: bfloat16-exact values with the specials for bfloat16, floats and
// doubles that are not bfloat16s (so the conversion must round), integers including ones bfloat16 rounds.
// Sources converted to int64 hold no NaN or infinity (that conversion is undefined).
template <typename Src, typename Dst>
std::vector<Src> copy_source(std::int64_t n, std::uint64_t seed) {
  if constexpr (std::is_same_v<Src, bfloat16>) {
    if constexpr (std::is_same_v<Dst, std::int64_t>)
      return random_values<bfloat16>(n, seed, -300.0f, 300.0f);
    else
      return bf16_values(n, seed, -300.0f, 300.0f);
  } else if constexpr (std::is_same_v<Src, std::uint8_t>) {
    std::vector<Src> values(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<Src>(i * 37 % 256);
    return values;
  } else if constexpr (std::is_same_v<Src, std::int64_t>) {
    std::vector<Src> values(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<Src>(i * 7919 % 2001) - 1000;
    const std::int64_t specials[] = {257, -259, (std::int64_t{1} << 40) + 1, 16777217};
    for (std::size_t i = 0; i < std::size(specials) && i * 3 < values.size(); ++i)
      values[i * 3] = specials[i];
    return values;
  } else {
    std::vector<Src> values = random_values<Src>(n, seed, -300.0f, 300.0f);
    if constexpr (std::is_same_v<Src, double>) {
      for (std::size_t i = 0; i < values.size(); ++i) values[i] += 1e-9 * static_cast<double>(i);
    }
    const double specials[] = {kNaN, kInf, -0.0, 1.0 + 1.0 / 256, 1.0 + 3.0 / 256};
    for (std::size_t i = 0; i < std::size(specials) && i * 3 < values.size(); ++i)
      values[i * 3] = static_cast<Src>(specials[i]);
    return values;
  }
}

// "" when two destination buffers hold the same values (bit for bit for bfloat16, NaN matching NaN).
template <typename T>
std::string copy_difference(const std::vector<T>& actual, const std::vector<T>& expected) {
  if constexpr (std::is_same_v<T, bfloat16>)
    return bfloat16_difference(actual, expected, 0);
  else
    return first_difference(actual, expected);
}

// copy_strided<Src, Dst> against the element-by-element conversion: which source element lands where comes
// from the reference copy of the source's positions, and each landed element is converted on its own.
template <typename Src, typename Dst>
void check_copy(const CopyCase& layout) {
  INFO(layout.name, ", source ", dtype_name(dtype_of_v<Src>), ", destination ", dtype_name(dtype_of_v<Dst>));
  const int rank = static_cast<int>(layout.sizes.size());
  const std::int64_t src_count = layout.src_offset + extent(layout.sizes, layout.src_strides);
  const std::int64_t dst_count = extent(layout.sizes, layout.dst_strides);
  const std::vector<Src> src = copy_source<Src, Dst>(src_count, 31);

  std::vector<double> positions(static_cast<std::size_t>(src_count)),
      landed(static_cast<std::size_t>(dst_count), -1);
  for (std::size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<double>(i);
  kernels::reference::copy_strided(rank, layout.sizes.data(), positions.data() + layout.src_offset,
                                   layout.src_strides.data(), landed.data(), layout.dst_strides.data());
  std::vector<Dst> expected(static_cast<std::size_t>(dst_count), poison<Dst>());
  for (std::size_t i = 0; i < landed.size(); ++i) {
    if (landed[i] >= 0) expected[i] = static_cast<Dst>(src[static_cast<std::size_t>(landed[i])]);
  }

  std::vector<Dst> actual(static_cast<std::size_t>(dst_count), poison<Dst>());
  kernels::copy_strided<Src, Dst>(kCpu, rank, layout.sizes.data(), src.data() + layout.src_offset,
                                  layout.src_strides.data(), actual.data(), layout.dst_strides.data());
  const std::string difference = copy_difference(actual, expected);
  CHECK_MESSAGE(difference.empty(), difference);
}

TEST_CASE("bfloat16 strided copies: every pair with bfloat16, each element converted once") {
  for (const CopyCase& layout : copy_cases()) {
    check_copy<bfloat16, bfloat16>(layout);
    check_copy<bfloat16, float>(layout);
    check_copy<bfloat16, double>(layout);
    check_copy<bfloat16, std::int64_t>(layout);
    check_copy<float, bfloat16>(layout);
    check_copy<double, bfloat16>(layout);
    check_copy<std::int64_t, bfloat16>(layout);
    check_copy<std::uint8_t, bfloat16>(layout);
  }
}

TEST_CASE("bfloat16 fill writes the one value everywhere") {
  for (const std::int64_t n : {0, 1, 1031}) {
    std::vector<bfloat16> out(static_cast<std::size_t>(n) + 1, bfloat16(-1.0));
    kernels::fill<bfloat16>(kCpu, n, bfloat16(0.1), out.data());
    for (std::int64_t i = 0; i < n; ++i) CHECK(out[static_cast<std::size_t>(i)].bits == bfloat16(0.1).bits);
    CHECK(static_cast<float>(out.back()) == -1.0f);  // nothing past n
  }
}

// ---- Tensor level ------------------------------------------------------------------------------------

// A bfloat16 tensor of random bfloat16-exact values and the same values as float32.
std::pair<Tensor, Tensor> bf16_and_float(const Shape& shape, std::uint64_t seed) {
  const Tensor bf16 = Tensor::from_vector(random_values<bfloat16>(shape.numel(), seed), shape);
  return {bf16, Tensor::from_vector(converted<float>(bf16.to_vector<bfloat16>()), shape)};
}

// Checks a bfloat16 tensor against a float32 one: within max_ulps bfloat16 steps of the float result
// rounded to bfloat16 (a single op: that result rounded once, 1 ulp for the double rounding), or, for a
// chain of ops that each round, under `tolerance`.
void check_tensor(const Tensor& bf16, const Tensor& reference, std::int64_t max_ulps) {
  CHECK(bf16.dtype() == DType::BFloat16);
  CHECK(bf16.shape() == reference.shape());
  const std::string difference = bfloat16_difference(
      bf16.to_vector<bfloat16>(), converted<bfloat16>(reference.to_vector<float>()), max_ulps);
  CHECK_MESSAGE(difference.empty(), difference);
}
void check_tensor(const Tensor& bf16, const Tensor& reference, Tolerance tolerance) {
  CHECK(bf16.dtype() == DType::BFloat16);
  const auto report = testing::matches_reference(raw::cast(bf16, DType::Float32), reference, tolerance);
  CHECK_MESSAGE(report.ok, report.message);
}

TEST_CASE("bfloat16 tensors: broadcasting ops, unary ops and their chains against float32") {
  const auto [x, x_f] = bf16_and_float(Shape{2, 3, 5, 7}, 41);
  const auto [bias, bias_f] = bf16_and_float(Shape{1, 3, 1, 1}, 42);
  const auto [row, row_f] = bf16_and_float(Shape{7}, 43);
  check_tensor(x + bias, x_f + bias_f, 1);
  check_tensor(relu(x + bias), relu(x_f + bias_f), 1);  // relu is exact: one rounding in all
  check_tensor(add_relu(x, bias), add_relu(x_f, bias_f), 1);
  check_tensor(x * row, x_f * row_f, 1);
  check_tensor(maximum(x, row), maximum(x_f, row_f), 0);  // a selection: nothing rounds
  check_tensor(x.transpose(1, 3) - row.unsqueeze(1).unsqueeze(1),
               x_f.transpose(1, 3) - row_f.unsqueeze(1).unsqueeze(1), 1);
  check_tensor(gelu(x), gelu(x_f), 1);
  // A double scalar becomes a tensor of x's dtype: bfloat16(0.1) = 0.10009765625 against 0.1f, 1e-3 apart
  // relatively, on top of the product's rounding; inside the stated bfloat16 tolerance.
  check_tensor(x * 0.1, x_f * 0.1, Tolerance::bfloat16());
  // Three rounded ops in a row: each can be off by half a bfloat16 ulp (2^-9 relative) and a difference can
  // cancel, so compare under the stated bfloat16 tolerance (1e-2 absolute and relative) for inputs in [-1,
  // 1).
  check_tensor(sigmoid(x * row - bias), sigmoid(x_f * row_f - bias_f), Tolerance::bfloat16());
}

TEST_CASE("bfloat16 tensors: gradients of relu(x + bias) through add, relu and sum_to") {
  const auto [x0, x_f0] = bf16_and_float(Shape{4, 3, 5}, 51);
  const auto [b0, b_f0] = bf16_and_float(Shape{3, 1}, 52);
  Tensor x = x0, b = b0, x_f = x_f0, b_f = b_f0;
  x.set_requires_grad();
  b.set_requires_grad();
  x_f.set_requires_grad();
  b_f.set_requires_grad();
  // The gradients are 0/1 and, for the broadcast bias, counts up to 20: exact in bfloat16.
  (relu(x + b) * 3.0).backward(Tensor::ones(Shape{4, 3, 5}, DType::BFloat16));
  (relu(x_f + b_f) * 3.0).backward(Tensor::ones(Shape{4, 3, 5}));
  check_tensor(x.grad(), x_f.grad(), 0);
  check_tensor(b.grad(), b_f.grad(), 0);
}

TEST_CASE("bfloat16 tensors: cast from and to float32, float64, int64 and uint8") {
  // float -> bfloat16: nearest, ties to even; NaN, infinities and -0 kept; past the largest bfloat16, inf.
  const std::vector<float> floats = {std::numeric_limits<float>::quiet_NaN(),
                                     std::numeric_limits<float>::infinity(),
                                     -std::numeric_limits<float>::infinity(),
                                     -0.0f,
                                     1.0f + 1.0f / 256,                // tie: down to the even 1
                                     1.0f + 3.0f / 256,                // tie: up to the even 1 + 2^-6
                                     1.0f + 1.0f / 256 + 1.0f / 4096,  // past the tie: up
                                     -(1.0f + 1.0f / 256 + 1.0f / 4096),
                                     std::numeric_limits<float>::max(),
                                     0.1f};
  const std::vector<float> expected = {0.0f,     INFINITY,         -INFINITY,         -0.0f,
                                       1.0f,     1.0f + 1.0f / 64, 1.0f + 1.0f / 128, -(1.0f + 1.0f / 128),
                                       INFINITY, 0.10009765625f};
  const Tensor as_bf16 = raw::cast(Tensor::from_vector(floats, Shape{10}), DType::BFloat16);
  CHECK(as_bf16.dtype() == DType::BFloat16);
  const std::vector<float> back = raw::cast(as_bf16, DType::Float32).to_vector<float>();
  CHECK(std::isnan(back[0]));
  for (std::size_t i = 1; i < expected.size(); ++i) {
    INFO("element ", i);
    CHECK(back[i] == expected[i]);
    CHECK(std::signbit(back[i]) == std::signbit(expected[i]));
  }
  // bfloat16 -> float -> bfloat16 is the identity.
  const std::string difference = bfloat16_difference(
      raw::cast(raw::cast(as_bf16, DType::Float32), DType::BFloat16).to_vector<bfloat16>(),
      as_bf16.to_vector<bfloat16>(), 0);
  CHECK_MESSAGE(difference.empty(), difference);

  // double -> bfloat16 rounds once: 1 + 2^-8 + 2^-40 is past the tie, though as a float it would be on it.
  const Tensor from_double = raw::cast(
      Tensor::from_vector(std::vector<double>{1.0 + 1.0 / 256 + 0x1p-40, -2.5}, Shape{2}), DType::BFloat16);
  CHECK(static_cast<float>(from_double.to_vector<bfloat16>()[0]) == 1.0f + 1.0f / 128);
  CHECK(raw::cast(from_double, DType::Float64).to_vector<double>()[1] == -2.5);
  // bfloat16 -> int64 truncates toward zero; int64 and uint8 -> bfloat16 round to nearest.
  CHECK(raw::cast(from_double, DType::Int64).to_vector<std::int64_t>() == std::vector<std::int64_t>{1, -2});
  const Tensor from_int =
      raw::cast(Tensor::from_vector(std::vector<std::int64_t>{257, -3}, Shape{2}), DType::BFloat16);
  CHECK(from_int.to_vector<float>() == std::vector<float>{256.0f, -3.0f});
  const Tensor from_bytes =
      raw::cast(Tensor::from_vector(std::vector<std::uint8_t>{0, 128, 255}, Shape{3}), DType::BFloat16);
  CHECK(from_bytes.to_vector<float>() == std::vector<float>{0.0f, 128.0f, 255.0f});
  // Nothing converts to uint8 but uint8.
  CHECK_THROWS(raw::cast(from_bytes, DType::UInt8));
}

TEST_CASE("bfloat16 tensors: strided views copied into bfloat16, and contiguous() of a bfloat16 view") {
  const Tensor x =
      Tensor::from_vector(random_values<float>(4 * 6 * 5 * 7, 61, -300.0f, 300.0f), Shape{4, 6, 5, 7});
  const Tensor view = x.transpose(1, 3).slice(2, 1, 5, 2);  // [4, 7, 2, 6], gathered
  const Tensor cast = raw::cast(view, DType::BFloat16);
  CHECK(cast.is_contiguous());
  std::string difference = bfloat16_difference(
      cast.to_vector<bfloat16>(), converted<bfloat16>(raw::contiguous(view).to_vector<float>()), 0);
  CHECK_MESSAGE(difference.empty(), difference);

  // Into a strided bfloat16 destination, broadcasting the source: every other column of [6, 10].
  const Tensor destination = Tensor::zeros(Shape{6, 10}, DType::BFloat16);
  const Tensor row = Tensor::from_vector(std::vector<double>{0.1, -0.2, 1e30, -1e-30, 3.0}, Shape{5});
  raw::copy(destination.slice(1, 0, 10, 2), row);
  const std::vector<bfloat16> written = destination.to_vector<bfloat16>();
  for (std::size_t r = 0; r < 6; ++r) {
    for (std::size_t c = 0; c < 10; ++c) {
      INFO("element [", r, ", ", c, "]");
      const bfloat16 want = c % 2 == 0 ? bfloat16(row.to_vector<double>()[c / 2]) : bfloat16(0.0);
      CHECK(written[r * 10 + c].bits == want.bits);
    }
  }

  // contiguous() of a transposed bfloat16 tensor: a bfloat16 -> bfloat16 copy, bit for bit.
  const Tensor bf16 = raw::cast(x, DType::BFloat16);
  difference =
      bfloat16_difference(raw::contiguous(bf16.transpose(0, 2)).to_vector<bfloat16>(),
                          converted<bfloat16>(raw::contiguous(x.transpose(0, 2)).to_vector<float>()), 0);
  CHECK_MESSAGE(difference.empty(), difference);
}

TEST_CASE("bfloat16 tensors: fill and full round the value once") {
  const Tensor t = Tensor::full(Shape{3, 5}, 0.1, DType::BFloat16);
  for (const bfloat16 v : t.to_vector<bfloat16>()) CHECK(v.bits == bfloat16(0.1).bits);
  // A strided destination goes through copy.
  const Tensor z = Tensor::zeros(Shape{4, 4}, DType::BFloat16);
  raw::fill(z.transpose(0, 1).slice(0, 1, 2), -3.0);
  const std::vector<float> values = z.to_vector<float>();
  for (std::size_t i = 0; i < 16; ++i) CHECK(values[i] == (i % 4 == 1 ? -3.0f : 0.0f));
}

}  // namespace

}  // namespace kernels_elementwise_bf16_test
